//! What the far end does, as canonical events: the stack's events for one line (new
//! INVITEs, progress, answers, ends, in-dialog requests) become the line's calls and
//! its session's events; session timers (RFC 4028) and the media inactivity timeout
//! end calls whose far end is gone.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use opencti_core::{Direction, Error, ErrorKind, Event};

use crate::calls::{Progress, SipCall};
use crate::line::{Shared, SipLine};
use crate::sdp;
use crate::sipfrag;
use crate::stack::{
    DialogEnd, DialogKey, InDialogRequest, IncomingCall, Reply, SessionTimer, StackError,
    StackEvent,
};
use crate::translate::{address_from_uri, cause_from_end, cause_from_status, display_name};

/// Arms the media inactivity timeout of a call that just connected: once its RTP
/// stream reports no RTP for [`MediaConfig::inactivity_timeout`] while RTP is expected,
/// the far end counts as gone. A BYE goes out in the background (best effort: a far end
/// that vanished will not answer it) and the call ends now as `vanished`.
///
/// [`MediaConfig::inactivity_timeout`]: crate::MediaConfig::inactivity_timeout
pub(crate) fn watch_media(shared: &Arc<Shared>, call: &SipCall) {
    let (Some(timeout), Some(rtp)) = (shared.config.media.inactivity_timeout, &call.rtp) else {
        return;
    };
    let silent = rtp.watch(timeout);
    let shared = shared.clone();
    let key = call.key.clone();
    tokio::spawn(async move {
        // An error: the stream stopped first (the call ended).
        if silent.await.is_err() || shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let connected = shared
            .line()
            .calls
            .by_key(&key)
            .is_some_and(|c| c.is_connected());
        if !connected {
            return;
        }
        tracing::warn!(
            ?timeout,
            "SIP: no RTP from the far end within the inactivity timeout; it is gone, ending the call"
        );
        if let Some(stack) = shared.stack.get().cloned() {
            let bye_key = key.clone();
            // The dialog is forgotten once the BYE is done, not before: it needs it.
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(HANGUP_LIMIT, stack.hangup(&bye_key)).await;
                tracing::debug!(?outcome, "SIP: BYE after media inactivity");
                stack.forget(&bye_key);
            });
        }
        finish_call(&shared, &key, &DialogEnd::Timeout, false);
    });
}

pub(crate) fn end_call(shared: &Shared, key: &DialogKey, end: &DialogEnd) {
    finish_call(shared, key, end, true);
}

/// Removes the call of `key` and tells the session how it ended; `forget`: drops the
/// stack's dialog too.
fn finish_call(shared: &Shared, key: &DialogKey, end: &DialogEnd, forget: bool) {
    let mut desk = shared.line();
    let Some(mut call) = desk.calls.remove(key) else {
        return;
    };
    if forget {
        if let Some(stack) = shared.stack.get() {
            stack.forget(key);
        }
    }
    drop(call.rtp.take());
    let connected = call.is_connected();
    let local_cancel = DialogEnd::LocalCancel;
    let end = if *end == DialogEnd::LocalBye && !connected {
        &local_cancel
    } else {
        end
    };
    let mut cause = cause_from_end(end, connected);
    if let Some(transfer) = call.transfer.take() {
        // Still waiting for the final sipfrag: the call ended first.
        desk.emit(
            Event::CommandFailed {
                error: Error::new(
                    ErrorKind::Rejected,
                    format!("the call ended before the transfer completed ({end:?})"),
                )
                .to_body(),
            },
            Some(transfer.command),
        );
    }
    if call.data.get(TRANSFERRED_KEY).is_some() {
        cause = opencti_core::Cause::Transferred;
    }
    if call.state().is_setup()
        && !matches!(
            end,
            DialogEnd::LocalBye
                | DialogEnd::LocalCancel
                | DialogEnd::Declined
                | DialogEnd::RemoteCancel
        )
        && call.ending.is_none()
    {
        desk.emit(
            Event::CallFailed {
                call: call.id.clone(),
                cause,
            },
            None,
        );
    }
    desk.emit(
        Event::CallEnded {
            call: call.id.clone(),
            cause,
        },
        call.ending,
    );
}

/// The shortest session interval (seconds) honoured from a far end's 2xx: a refresh
/// every second at most, whatever a far end grants.
const MIN_SESSION_INTERVAL: u32 = 2;

/// How long a CANCEL or BYE may wait for its answer before the call ends anyway.
pub(crate) const HANGUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

/// Marks (in the connector's own table only) a call that left by a transfer.
const TRANSFERRED_KEY: &str = "sip.transferred";

/// Runs the stack's events into the desk until the stack closes.
pub(crate) async fn run_events(
    line: SipLine,
    mut events: tokio::sync::mpsc::UnboundedReceiver<StackEvent>,
) {
    while let Some(event) = events.recv().await {
        if line.shared.stopped.load(Ordering::SeqCst) {
            if let StackEvent::Request { reply, .. } = event {
                reply.send(481, None).await;
            }
            continue;
        }
        match event {
            StackEvent::Incoming(call) => line.on_incoming(call),
            StackEvent::Progress { key, code, sdp } => line.on_progress(&key, code, &sdp),
            StackEvent::Answered { key, sdp, session } => line.on_answered(&key, &sdp, session),
            StackEvent::Confirmed { key } => line.on_confirmed(&key),
            StackEvent::Ended { key, end } => end_call(&line.shared, &key, &end),
            StackEvent::Request {
                key,
                request,
                reply,
            } => line.on_request(&key, request, reply).await,
            StackEvent::SubscriptionNotify { resource, request } => {
                line.shared.monitor.notify(&resource, &request.body)
            }
        }
    }
}

impl SipLine {
    fn on_incoming(&self, incoming: IncomingCall) {
        let Some(stack) = self.shared.stack.get() else {
            return;
        };
        let remote = if incoming.sdp.is_empty() {
            None
        } else {
            match sdp::parse(&incoming.sdp) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, from = %incoming.from, "SIP: INVITE with bad SDP refused (488)");
                    let _ = stack.refuse(&incoming.key, 488, None);
                    stack.forget(&incoming.key);
                    return;
                }
            }
        };
        let Ok(call_id) = self.new_call_id() else {
            return;
        };
        let mut desk = self.shared.line();
        if desk.calls.len() >= opencti_core::machine::Desk::MAX_CALLS {
            let _ = stack.refuse(&incoming.key, 486, None);
            stack.forget(&incoming.key);
            return;
        }
        let mut call = SipCall::new(
            call_id.clone(),
            incoming.key.clone(),
            Direction::Inbound,
            Progress::Offered,
            self.shared.config.media.rtp_ip,
        );
        call.from = address_from_uri(&incoming.from);
        call.from_name = incoming.from_name.as_deref().and_then(display_name);
        call.to = address_from_uri(&incoming.to);
        if let Some(remote) = remote {
            call.far_end_holds = remote.is_hold();
            call.remote = Some(remote);
        }
        let mut data = opencti_core::CallData::new();
        if incoming.auto_answer {
            // Click-to-dial to a desk phone: the caller asks this line to answer by
            // itself. The desktop decides; the request shows as call data.
            if let Ok(d) = opencti_core::CallData::from_pairs([("sip.auto_answer", "true")]) {
                data = d;
            }
        }
        call.data = data.clone();
        let (from, to) = (call.from.clone(), call.to.clone());
        let party = call.party();
        desk.calls.insert(call);
        if let Err(e) = stack.provisional(&incoming.key, 180) {
            tracing::debug!(error = %e, "SIP: 180 Ringing not sent");
        }
        desk.emit(
            Event::CallOffered {
                call: call_id.clone(),
                from,
                to,
                queue: None,
                data,
            },
            None,
        );
        if let Some(party) = party {
            desk.emit(
                Event::PartyJoined {
                    call: call_id,
                    party,
                },
                None,
            );
        }
    }

    fn on_progress(&self, key: &DialogKey, code: u16, sdp_body: &[u8]) {
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(key) else {
            return;
        };
        if !sdp_body.is_empty() {
            if let Ok(remote) = sdp::parse(sdp_body) {
                // Early media (183): the caller hears the far end's ringback.
                c.apply_remote(remote);
            }
        }
        if c.progress == Progress::Dialling && (code == 180 || code == 183) {
            c.progress = Progress::Ringback;
            let call = c.id.clone();
            desk.emit(Event::CallRingback { call }, None);
        }
    }

    fn on_answered(&self, key: &DialogKey, sdp_body: &[u8], session: Option<SessionTimer>) {
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(key) else {
            return;
        };
        if c.is_connected() {
            return;
        }
        match sdp::parse(sdp_body) {
            Ok(remote) => c.apply_remote(remote),
            Err(e) => tracing::warn!(error = %e, "SIP: 200 OK with unusable SDP; no media"),
        }
        c.progress = Progress::Connected;
        watch_media(&self.shared, c);
        let call = c.id.clone();
        let party = c.party();
        desk.emit(Event::CallConnected { call: call.clone() }, None);
        if let Some(party) = party {
            desk.emit(Event::PartyJoined { call, party }, None);
        }
        drop(desk);
        self.start_session_timer(key.clone(), session);
    }

    /// RFC 4028: the 2xx decides. With `Session-Expires: N;refresher=uac` (or no
    /// `refresher`) this side re-INVITEs every `N/2` seconds, `N` being what the far end
    /// **granted**, not what was asked; with `refresher=uas` the far end refreshes; with
    /// no `Session-Expires` there is no session timer (§7.2). A granted interval below
    /// the RFC's 90 s minimum is honoured as given (refreshing more often than needed
    /// is harmless), with a floor of [`MIN_SESSION_INTERVAL`] seconds. A refresh that
    /// gets no answer, or 481, means the far end is gone: the call ends as `vanished`
    /// instead of staying on the panel.
    fn start_session_timer(&self, key: DialogKey, granted: Option<SessionTimer>) {
        if self.shared.config.session_expires.is_none() {
            return;
        }
        let Some(granted) = granted.filter(|t| t.uac_refreshes) else {
            return;
        };
        let interval = granted.interval.max(MIN_SESSION_INTERVAL);
        let line = self.clone();
        tokio::spawn(async move {
            let every = std::time::Duration::from_millis(u64::from(interval) * 500);
            loop {
                tokio::time::sleep(every).await;
                let sdp = {
                    let mut desk = line.shared.line();
                    match desk.calls.by_key(&key) {
                        Some(c) if c.is_connected() => c.local_sdp(None),
                        _ => return,
                    }
                };
                let Ok(stack) = line.stack() else {
                    return;
                };
                let headers = vec![(
                    "Session-Expires".to_owned(),
                    format!("{interval};refresher=uac"),
                )];
                match stack
                    .request(
                        &key,
                        "INVITE",
                        headers,
                        Some(("application/sdp".into(), sdp)),
                    )
                    .await
                {
                    Ok((_, answer)) => {
                        if let Ok(remote) = sdp::parse(&answer) {
                            if let Some(c) = line.shared.line().calls.by_key(&key) {
                                let far_end_held = c.far_end_holds;
                                c.apply_remote(remote);
                                c.far_end_holds = far_end_held;
                            }
                        }
                    }
                    // Glare: the far end is re-INVITEing too; the session is alive.
                    Err(StackError::Status(491, _)) => {}
                    Err(StackError::NoDialog) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "SIP: session refresh failed; the far end is gone");
                        let _ = tokio::time::timeout(HANGUP_LIMIT, stack.hangup(&key)).await;
                        end_call(&line.shared, &key, &DialogEnd::Timeout);
                        return;
                    }
                }
            }
        });
    }

    fn on_confirmed(&self, key: &DialogKey) {
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(key) else {
            return;
        };
        if c.progress != Progress::Answering {
            return;
        }
        c.progress = Progress::Connected;
        watch_media(&self.shared, c);
        let command = c.answer.take();
        let call = c.id.clone();
        desk.emit(Event::CallConnected { call }, command);
    }

    async fn on_request(&self, key: &DialogKey, request: InDialogRequest, reply: Reply) {
        match request.method.as_str() {
            "INVITE" | "UPDATE" => {
                let (code, body) = self.answer_reinvite(key, &request);
                reply.send(code, body).await;
            }
            "NOTIFY"
                if request.event.as_deref() == Some("refer")
                    && request.content_type.as_deref() == Some("message/sipfrag") =>
            {
                reply.send(200, None).await;
                self.on_refer_notify(key, &request);
            }
            "INFO" | "OPTIONS" | "MESSAGE" | "NOTIFY" => reply.send(200, None).await,
            // Being transferred by the far end is not supported: decline.
            "REFER" => reply.send(603, None).await,
            _ => reply.send(405, None).await,
        }
    }

    /// The answer to a re-INVITE (or UPDATE) from the far end: hold, retrieve, a
    /// media change, or a refresh.
    fn answer_reinvite(
        &self,
        key: &DialogKey,
        request: &InDialogRequest,
    ) -> (u16, Option<(String, Vec<u8>)>) {
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(key) else {
            return (481, None);
        };
        let offer = if request.body.is_empty() {
            None
        } else {
            match sdp::parse(&request.body) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(error = %e, "SIP: re-INVITE with bad SDP refused (488)");
                    return (488, None);
                }
            }
        };
        let was_held = c.far_end_holds;
        let sdp = c.local_sdp(offer.as_ref());
        if let Some(offer) = offer {
            c.apply_remote(offer);
        }
        let now_held = c.far_end_holds;
        if was_held != now_held {
            // The canonical model has no far-end hold state: it shows as call data, so
            // the panel can say "on hold by the caller".
            let value = if now_held { "true" } else { "false" };
            if let Ok(data) = opencti_core::CallData::from_pairs([("sip.far_end_hold", value)]) {
                let _ = c.data.merge(&data);
                let call = c.id.clone();
                desk.emit(Event::CallDataChanged { call, data }, None);
            }
        }
        (200, Some(("application/sdp".into(), sdp)))
    }

    fn on_refer_notify(&self, key: &DialogKey, request: &InDialogRequest) {
        let Some(status) = sipfrag::parse_status(&request.body) else {
            return;
        };
        let terminated = request.subscription_state.as_deref() == Some("terminated");
        if !status.is_final() && !terminated {
            return;
        }
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(key) else {
            return;
        };
        let Some(transfer) = c.transfer.take() else {
            return;
        };
        if status.is_success() {
            let call = c.id.clone();
            if let Ok(mark) = opencti_core::CallData::from_pairs([(TRANSFERRED_KEY, "true")]) {
                let _ = c.data.merge(&mark);
            }
            desk.emit(
                Event::CallTransferred {
                    call,
                    to: transfer.to.clone(),
                },
                Some(transfer.command),
            );
            let mut keys = vec![key.clone()];
            if let Some(consult) = &transfer.consult {
                if let Some(cc) = desk.calls.by_id(consult) {
                    if let Ok(mark) =
                        opencti_core::CallData::from_pairs([(TRANSFERRED_KEY, "true")])
                    {
                        let _ = cc.data.merge(&mark);
                    }
                    keys.push(cc.key.clone());
                }
            }
            drop(desk);
            // The transfer is done: leave the call (and the consultation).
            if let Some(stack) = self.shared.stack.get().cloned() {
                tokio::spawn(async move {
                    for key in keys {
                        let _ = stack.hangup(&key).await;
                    }
                });
            }
        } else {
            let code = if status.is_final() { status.code } else { 487 };
            desk.emit(
                Event::CommandFailed {
                    error: Error::new(
                        ErrorKind::Rejected,
                        format!(
                            "the transfer failed: the target answered {code} ({}); the call stays here",
                            cause_from_status(code)
                        ),
                    )
                    .to_body(),
                },
                Some(transfer.command),
            );
        }
    }
}
