//! [`SipConnector`]: the `opencti_core::Connector` that is the agent's SIP phone.
//! Commands become SIP requests through the [`SipStack`]; what the stack reports
//! becomes canonical events in the session's [`EventSink`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use opencti_core::{
    Address, Capabilities, ChosenState, Command, CommandId, CommandKind, Connector, Direction,
    Error, ErrorKind, Event, EventSink, Line, Request, Result, SwitchState,
};

use crate::calls::{CallTable, Leg, PendingTransfer, SipCall};
use crate::config::{DtmfMode, NotReadyPolicy, SipConfig};
use crate::media::RtpStream;
use crate::monitor::{self, Monitor};
use crate::registration::{self, LinkReport};
use crate::rsip::RsipStack;
use crate::sdp;
use crate::sipfrag;
use crate::stack::{
    Admission, DialogEnd, DialogKey, InDialogRequest, IncomingCall, Reply, SessionTimer, SipStack,
    StackError, StackEvent,
};
use crate::translate::{address_from_uri, cause_from_end, cause_from_status, display_name};

/// The line's own state, shared by the event task and the commands: the session's sink,
/// the locally kept agent state (a plain SIP line has no switch that knows it), and the
/// SIP dialogs behind the calls. Call and agent state for the desktop are the core
/// session's; this is only what the user agent needs to speak SIP.
struct LineState {
    sink: Option<EventSink>,
    agent: ChosenState,
    calls: CallTable,
}

struct Shared {
    config: SipConfig,
    line: Mutex<LineState>,
    stack: OnceLock<Arc<dyn SipStack>>,
    monitor: Monitor,
    stopped: AtomicBool,
    up: AtomicBool,
    started: AtomicBool,
    next_call: AtomicU64,
    nonce: String,
}

impl Shared {
    fn line(&self) -> MutexGuard<'_, LineState> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, event: Event) {
        if let Some(sink) = &self.line().sink {
            sink.emit(event);
        }
    }
}

impl LineState {
    fn emit(&self, event: Event, command: Option<CommandId>) {
        if let Some(sink) = &self.sink {
            match command {
                Some(id) => sink.emit_for(id, event),
                None => sink.emit(event),
            }
        }
    }
}

struct Link(Arc<Shared>);

impl LinkReport for Link {
    fn up(&self) {
        tracing::info!(aor = %self.0.config.aor(), "SIP: registered again");
        self.0.up.store(true, Ordering::SeqCst);
        self.0.emit(Event::LinkUp);
    }

    fn down(&self, reason: String) {
        tracing::warn!(aor = %self.0.config.aor(), %reason, "SIP: registration lost");
        self.0.up.store(false, Ordering::SeqCst);
        self.0.emit(Event::LinkDown {
            reason: format!("SIP: {reason}"),
        });
    }

    fn stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }
}

/// The SIP connector: registers the agent's line and acts as its phone. Cheap to clone;
/// clones share the line. One connector serves one session.
///
/// ```no_run
/// # async fn demo() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use opencti_core::{AgentId, DeviceId, Session};
/// use opencti_sip::{Secret, SipConfig, SipConnector};
///
/// let config = SipConfig::new("10.0.0.5:5060".parse().unwrap(), "1001", opencti_sip::password_from_file("/run/secrets/sip")?);
/// let connector = Arc::new(SipConnector::new(config)?);
/// let session = Session::builder(connector, AgentId::new("alice")?, DeviceId::new("1001")?)
///     .start()
///     .await?;
/// # drop(session); Ok(()) }
/// ```
#[derive(Clone)]
pub struct SipConnector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SipConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipConnector")
            .field("config", &self.shared.config)
            .field("registered", &self.shared.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn stack_error(what: &str, e: StackError) -> Error {
    match e {
        StackError::Unreachable(why) => {
            Error::new(ErrorKind::LinkDown, format!("{what}: no answer ({why})"))
        }
        StackError::Unauthorized(code) => Error::new(
            ErrorKind::Unauthorized,
            format!("{what}: credentials refused ({code})"),
        ),
        StackError::Status(code, reason) => Error::new(
            ErrorKind::Rejected,
            format!("{what}: the far end answered {code} {reason}"),
        ),
        StackError::NoDialog => Error::new(
            ErrorKind::NotFound,
            format!("{what}: the call's dialog is gone"),
        ),
        StackError::Other(why) => Error::new(ErrorKind::Other, format!("{what}: {why}")),
    }
}

fn not_found(call: &opencti_core::CallId) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("call {call} is not (or no longer) on this SIP line"),
    )
}

impl SipConnector {
    /// A connector with this config (checked now; nothing is sent before `start`).
    pub fn new(config: SipConfig) -> Result<SipConnector> {
        config.validate()?;
        Ok(SipConnector {
            shared: Arc::new(Shared {
                config,
                line: Mutex::new(LineState {
                    sink: None,
                    agent: ChosenState::LoggedOut,
                    calls: CallTable::default(),
                }),
                stack: OnceLock::new(),
                monitor: Monitor::default(),
                stopped: AtomicBool::new(false),
                up: AtomicBool::new(false),
                started: AtomicBool::new(false),
                next_call: AtomicU64::new(1),
                nonce: format!("{:06x}", fastrand::u32(..0x100_0000)),
            }),
        })
    }

    /// The config.
    pub fn config(&self) -> &SipConfig {
        &self.shared.config
    }

    /// Whether the line is registered now.
    pub fn is_registered(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// The local SIP address, once started.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.stack.get().map(|s| s.local_addr())
    }

    /// Watches other extensions (busy lamp field): subscribes to the dialog event
    /// package (RFC 4235) of each and reports their state changes on the returned
    /// stream. Needs a started connector and a registrar with a presence server.
    pub async fn monitor(
        &self,
        extensions: &[opencti_core::Dialable],
    ) -> Result<monitor::DeviceEvents> {
        let stack = self.stack()?;
        let events = self.shared.monitor.subscribe();
        for ext in extensions {
            let resource = self.shared.config.target_uri(ext);
            self.shared.monitor.watch(&resource, ext.as_str());
            stack
                .subscribe(&resource, "dialog", "application/dialog-info+xml", 600)
                .await
                .map_err(|e| stack_error(&format!("SUBSCRIBE to {resource}"), e))?;
        }
        Ok(events)
    }

    fn stack(&self) -> Result<Arc<dyn SipStack>> {
        match self.shared.stack.get() {
            Some(s) if !self.shared.stopped.load(Ordering::SeqCst) => Ok(s.clone()),
            _ => Err(Error::new(
                ErrorKind::LinkDown,
                "the SIP connector is not started (or stopped)",
            )),
        }
    }

    fn up_stack(&self) -> Result<Arc<dyn SipStack>> {
        let stack = self.stack()?;
        if !self.shared.up.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::LinkDown,
                format!("the line {} is not registered", self.shared.config.aor()),
            ));
        }
        Ok(stack)
    }

    fn admission_for(&self, state: &ChosenState) -> Admission {
        match (state, &self.shared.config.not_ready) {
            (ChosenState::NotReady { .. }, NotReadyPolicy::Busy) => Admission::Busy,
            (ChosenState::NotReady { .. }, NotReadyPolicy::Divert(to)) => {
                Admission::Divert(self.shared.config.target_uri(to))
            }
            _ => Admission::Offer,
        }
    }

    fn set_agent(&self, id: CommandId, state: ChosenState) -> Result<()> {
        let stack = self.stack()?;
        stack.set_admission(self.admission_for(&state));
        let mut desk = self.shared.line();
        desk.agent = state.clone();
        desk.emit(
            Event::AgentStateChanged {
                state: state.to_agent_state(),
            },
            Some(id),
        );
        Ok(())
    }

    fn new_call_id(&self) -> Result<opencti_core::CallId> {
        let n = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        opencti_core::CallId::new(format!("sip-{}-{n}", self.shared.nonce))
    }

    async fn place_call(
        &self,
        id: CommandId,
        to: &opencti_core::Dialable,
        consult_of: Option<opencti_core::CallId>,
        data: opencti_core::CallData,
    ) -> Result<()> {
        let stack = self.up_stack()?;
        let config = &self.shared.config;
        let call_id = self.new_call_id()?;
        let rtp = RtpStream::open(config.media.rtp_ip, config.media.audio.open(&call_id)).await?;
        let mut call = SipCall::new(
            call_id.clone(),
            DialogKey(String::new()),
            Direction::Outbound,
            Leg::Dialling,
            config.media.rtp_ip,
        );
        call.rtp = Some(rtp);
        call.to = Address::new(to.as_str()).ok();
        call.consult_of = consult_of.clone();
        call.data = data.clone();
        call.made_by = Some(id);
        let sdp = call.local_sdp(None);
        let mut headers = Vec::new();
        if let Some(se) = config.session_expires {
            headers.push(("Session-Expires".to_owned(), format!("{se};refresher=uac")));
            headers.push(("Supported".to_owned(), "timer, replaces".to_owned()));
        }
        let target = config.target_uri(to);
        // Hold the desk while the INVITE goes out so that no answer is handled before
        // the call is in the table.
        let mut desk = self.shared.line();
        let key = stack
            .invite(&target, sdp, headers)
            .map_err(|e| stack_error(&format!("INVITE to {target}"), e))?;
        call.key = key;
        desk.calls.insert(call);
        desk.emit(
            Event::CallInitiated {
                call: call_id,
                to: Address::new(to.as_str()).ok(),
                consult_of,
                data,
            },
            Some(id),
        );
        Ok(())
    }

    async fn answer(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
        let stack = self.stack()?;
        let (key, call_id, remote) = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if c.leg != Leg::Offered {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {call} is not ringing on this line"),
                ));
            }
            (c.key.clone(), c.id.clone(), c.remote.clone())
        };
        if let Some(remote) = &remote {
            if remote.codec().is_none() {
                let _ = stack.refuse(&key, 488, None);
                return Err(Error::new(
                    ErrorKind::Rejected,
                    format!("call {call} offers no G.711 audio (PCMU or PCMA); refused with 488"),
                ));
            }
        }
        let config = &self.shared.config;
        let rtp = RtpStream::open(config.media.rtp_ip, config.media.audio.open(&call_id)).await?;
        let mut desk = self.shared.line();
        let c = desk.calls.by_key(&key).ok_or_else(|| not_found(call))?;
        c.rtp = Some(rtp);
        let sdp = c.local_sdp(remote.as_ref());
        c.retarget();
        c.leg = Leg::Answering;
        c.answer = Some(id);
        stack
            .answer(&key, sdp)
            .map_err(|e| stack_error("answering (200 OK)", e))
    }

    async fn reject(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
        let stack = self.stack()?;
        let key = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if c.leg != Leg::Offered {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {call} is not ringing on this line"),
                ));
            }
            c.ending = Some(id);
            c.key.clone()
        };
        stack
            .refuse(&key, 603, None)
            .map_err(|e| stack_error("reject (603 Decline)", e))
    }

    async fn hangup(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
        let stack = self.stack()?;
        let key = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            c.ending = Some(id);
            c.key.clone()
        };
        // CANCEL or BYE in the background: a far end that vanished must not keep the
        // call on the panel. Whatever the answer (or none within the limit), the call
        // ends here; the stack's own end, if it comes first, wins.
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(HANGUP_LIMIT, stack.hangup(&key)).await;
            if !matches!(outcome, Ok(Ok(()))) {
                tracing::debug!(
                    ?outcome,
                    "SIP: hangup got no clean answer; ending the call here"
                );
            }
            // A cancelled INVITE ends when its 487 arrives; give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            end_call(&shared, &key, &DialogEnd::LocalBye);
        });
        Ok(())
    }

    /// Hold (`hold = true`) or retrieve by re-INVITE; the far end's answer confirms.
    async fn rehold(&self, id: CommandId, call: &opencti_core::CallId, hold: bool) -> Result<()> {
        let stack = self.up_stack()?;
        let (key, sdp) = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if !c.is_connected() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {call} is not connected"),
                ));
            }
            let was = c.holding;
            c.holding = hold;
            let sdp = c.local_sdp(None);
            c.holding = was;
            (c.key.clone(), sdp)
        };
        let what = if hold {
            "hold (re-INVITE sendonly)"
        } else {
            "retrieve (re-INVITE sendrecv)"
        };
        let (_, answer) = stack
            .request(
                &key,
                "INVITE",
                Vec::new(),
                Some(("application/sdp".into(), sdp)),
            )
            .await
            .map_err(|e| stack_error(what, e))?;
        let mut desk = self.shared.line();
        let Some(c) = desk.calls.by_key(&key) else {
            return Err(not_found(call));
        };
        c.holding = hold;
        if let Ok(remote) = sdp::parse(&answer) {
            let far_end_held = c.far_end_holds;
            c.apply_remote(remote);
            // An answer to our sendonly is recvonly: that is not the far end holding.
            c.far_end_holds = far_end_held;
        }
        c.retarget();
        let call_id = c.id.clone();
        let event = if hold {
            Event::CallHeld { call: call_id }
        } else {
            Event::CallRetrieved { call: call_id }
        };
        desk.emit(event, Some(id));
        Ok(())
    }

    async fn send_dtmf(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        digits: &opencti_core::DtmfDigits,
    ) -> Result<()> {
        let stack = self.up_stack()?;
        let (key, rfc4733) = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            let negotiated = c
                .remote
                .as_ref()
                .is_some_and(|r| r.telephone_event.is_some());
            (
                c.key.clone(),
                negotiated && self.shared.config.dtmf == DtmfMode::Rfc4733,
            )
        };
        let connector = self.clone();
        let (call, digits) = (call.clone(), digits.clone());
        tokio::spawn(async move {
            let sent = if rfc4733 {
                let rtp_sent = {
                    // The stream lives in the desk; send through a handle taken out of it.
                    let stream = connector
                        .shared
                        .line()
                        .calls
                        .by_key(&key)
                        .and_then(|c| c.rtp.take());
                    match stream {
                        Some(stream) => {
                            let ok = stream.send_dtmf(digits.as_str()).await;
                            if let Some(c) = connector.shared.line().calls.by_key(&key) {
                                c.rtp = Some(stream);
                            }
                            ok
                        }
                        None => false,
                    }
                };
                if rtp_sent {
                    Ok(())
                } else {
                    Err(Error::new(ErrorKind::Rejected, "the RTP stream could not send RFC 4733 events (no telephone-event, or the media is not sending)"))
                }
            } else {
                let mut result = Ok(());
                for digit in digits.as_str().chars() {
                    let body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
                    if let Err(e) = stack
                        .request(
                            &key,
                            "INFO",
                            Vec::new(),
                            Some(("application/dtmf-relay".into(), body)),
                        )
                        .await
                    {
                        result = Err(stack_error("DTMF by SIP INFO", e));
                        break;
                    }
                }
                result
            };
            let desk = connector.shared.line();
            match sent {
                Ok(()) => desk.emit(Event::DtmfSent { call, digits }, Some(id)),
                Err(e) => desk.emit(Event::CommandFailed { error: e.to_body() }, Some(id)),
            }
        });
        Ok(())
    }

    async fn refer(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        refer_to: String,
        to: Option<Address>,
        consult: Option<opencti_core::CallId>,
    ) -> Result<()> {
        let stack = self.up_stack()?;
        let key = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if !c.is_connected() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {call} is not connected"),
                ));
            }
            c.transfer = Some(PendingTransfer {
                command: id,
                to,
                consult,
            });
            c.key.clone()
        };
        let headers = vec![
            ("Refer-To".to_owned(), refer_to),
            (
                "Referred-By".to_owned(),
                format!("<{}>", self.shared.config.aor()),
            ),
        ];
        if let Err(e) = stack.request(&key, "REFER", headers, None).await {
            if let Some(c) = self.shared.line().calls.by_key(&key) {
                c.transfer = None;
            }
            return Err(stack_error("transfer (REFER)", e));
        }
        Ok(())
    }

    async fn blind_transfer(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        to: &opencti_core::Dialable,
    ) -> Result<()> {
        let target = self.shared.config.target_uri(to);
        self.refer(
            id,
            call,
            format!("<{target}>"),
            Address::new(to.as_str()).ok(),
            None,
        )
        .await
    }

    async fn consult(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        to: &opencti_core::Dialable,
    ) -> Result<()> {
        let held = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if !c.is_connected() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {call} is not connected"),
                ));
            }
            c.holding
        };
        if !held {
            // The hold is the far end's to confirm; it has no command of its own.
            let stack = self.up_stack()?;
            let (key, sdp) = {
                let mut desk = self.shared.line();
                let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
                c.holding = true;
                let sdp = c.local_sdp(None);
                (c.key.clone(), sdp)
            };
            let result = stack
                .request(
                    &key,
                    "INVITE",
                    Vec::new(),
                    Some(("application/sdp".into(), sdp)),
                )
                .await;
            let mut desk = self.shared.line();
            if let Some(c) = desk.calls.by_key(&key) {
                if let Err(e) = result {
                    c.holding = false;
                    return Err(stack_error("consult: holding the call (re-INVITE)", e));
                }
                c.retarget();
                let call = c.id.clone();
                desk.emit(Event::CallHeld { call }, None);
            }
        }
        self.place_call(id, to, Some(call.clone()), opencti_core::CallData::new())
            .await
    }

    async fn complete_transfer(&self, id: CommandId, consult: &opencti_core::CallId) -> Result<()> {
        let stack = self.up_stack()?;
        let (primary, consult_key) = {
            let mut desk = self.shared.line();
            let c = desk
                .calls
                .by_id(consult)
                .ok_or_else(|| not_found(consult))?;
            let Some(primary) = c.consult_of.clone() else {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("call {consult} is not a consultation call"),
                ));
            };
            if !c.is_connected() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("consultation call {consult} is not connected"),
                ));
            }
            (primary, c.key.clone())
        };
        let Some((call_id, local_tag, remote_tag, target)) = stack.dialog_ids(&consult_key) else {
            return Err(not_found(consult));
        };
        let target = target
            .split(';')
            .next()
            .unwrap_or(&target)
            .trim_matches(|c| c == '<' || c == '>')
            .to_owned();
        let replaces = format!("{};to-tag={};from-tag={}", call_id, remote_tag, local_tag);
        let refer_to = format!("<{target}?Replaces={}>", escape_uri_header(&replaces));
        let to = {
            let mut desk = self.shared.line();
            desk.calls.by_id(consult).and_then(|c| c.to.clone())
        };
        self.refer(id, &primary, refer_to, to, Some(consult.clone()))
            .await
    }

    /// Removes the call of `key` and tells the session how it ended.
    fn end_call(&self, key: &DialogKey, end: &DialogEnd) {
        end_call(&self.shared, key, end);
    }
}

/// `%`-escapes a value for a URI header (RFC 3261 §19.1.1: `;`, `=`, `@`, `?`, `%`…).
pub fn escape_uri_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:+$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Arms the media inactivity timeout of a call that just connected: once its RTP
/// stream reports no RTP for [`MediaConfig::inactivity_timeout`] while RTP is expected,
/// the far end counts as gone. A BYE goes out in the background (best effort: a far end
/// that vanished will not answer it) and the call ends now as `vanished`.
///
/// [`MediaConfig::inactivity_timeout`]: crate::MediaConfig::inactivity_timeout
fn watch_media(shared: &Arc<Shared>, call: &SipCall) {
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

fn end_call(shared: &Shared, key: &DialogKey, end: &DialogEnd) {
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
const HANGUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

/// Marks (in the connector's own table only) a call that left by a transfer.
const TRANSFERRED_KEY: &str = "sip.transferred";

/// Runs the stack's events into the desk until the stack closes.
async fn run_events(
    connector: SipConnector,
    mut events: tokio::sync::mpsc::UnboundedReceiver<StackEvent>,
) {
    while let Some(event) = events.recv().await {
        if connector.shared.stopped.load(Ordering::SeqCst) {
            if let StackEvent::Request { reply, .. } = event {
                reply.send(481, None).await;
            }
            continue;
        }
        match event {
            StackEvent::Incoming(call) => connector.on_incoming(call),
            StackEvent::Progress { key, code, sdp } => connector.on_progress(&key, code, &sdp),
            StackEvent::Answered { key, sdp, session } => {
                connector.on_answered(&key, &sdp, session)
            }
            StackEvent::Confirmed { key } => connector.on_confirmed(&key),
            StackEvent::Ended { key, end } => connector.end_call(&key, &end),
            StackEvent::Request {
                key,
                request,
                reply,
            } => connector.on_request(&key, request, reply).await,
            StackEvent::SubscriptionNotify { resource, request } => {
                connector.shared.monitor.notify(&resource, &request.body)
            }
        }
    }
}

impl SipConnector {
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
            Leg::Offered,
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
        if c.leg == Leg::Dialling && (code == 180 || code == 183) {
            c.leg = Leg::Ringback;
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
        c.leg = Leg::Connected;
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
        let connector = self.clone();
        tokio::spawn(async move {
            let every = std::time::Duration::from_millis(u64::from(interval) * 500);
            loop {
                tokio::time::sleep(every).await;
                let sdp = {
                    let mut desk = connector.shared.line();
                    match desk.calls.by_key(&key) {
                        Some(c) if c.is_connected() => c.local_sdp(None),
                        _ => return,
                    }
                };
                let Ok(stack) = connector.stack() else {
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
                            if let Some(c) = connector.shared.line().calls.by_key(&key) {
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
                        end_call(&connector.shared, &key, &DialogEnd::Timeout);
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
        if c.leg != Leg::Answering {
            return;
        }
        c.leg = Leg::Connected;
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

#[async_trait]
impl Connector for SipConnector {
    fn capabilities(&self) -> Capabilities {
        use CommandKind::*;
        Capabilities::none()
            .with(Login)
            .with(Logout)
            .with(SetAgentState)
            .with(MakeCall)
            .with(Answer)
            .with(Reject)
            .with(Hangup)
            .with(Hold)
            .with(Retrieve)
            .with(SendDtmf)
            .with(BlindTransfer)
            .with(Consult)
            .with(CompleteTransfer)
            .with(SetCallData)
            .with_next_state_after_call(false)
            .with_wrap_up(false)
    }

    async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
        if self.shared.started.swap(true, Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "this SIP connector was started already; create one per session",
            ));
        }
        tracing::debug!(agent = %line.agent, device = %line.device, "SIP: starting");
        let config = &self.shared.config;
        let tls = config.tls_trust()?;
        let stack: Arc<dyn SipStack> = Arc::new(
            RsipStack::start(config, tls)
                .await
                .map_err(|e| stack_error("starting the SIP stack", e))?,
        );
        let events = stack.take_events();
        let _ = self.shared.stack.set(stack.clone());
        self.shared.line().sink = Some(sink);
        if let Some(events) = events {
            tokio::spawn(run_events(self.clone(), events));
        }
        let first = match registration::register_once(
            stack.as_ref(),
            config,
            config.register_expires,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                self.shared.stopped.store(true, Ordering::SeqCst);
                stack.shutdown();
                return Err(e);
            }
        };
        self.shared.up.store(true, Ordering::SeqCst);
        self.shared.emit(Event::LinkUp);
        tokio::spawn(registration::keep_registered(
            stack,
            config.clone(),
            first,
            Arc::new(Link(self.shared.clone())),
        ));
        Ok(())
    }

    async fn submit(&self, request: Request) -> Result<()> {
        let id = request.id;
        match &request.command {
            Command::Login {} => self.set_agent(id, ChosenState::NotReady { reason: None }),
            Command::Logout { .. } => self.set_agent(id, ChosenState::LoggedOut),
            Command::SetAgentState { state, after_call } => {
                if *after_call {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the SIP line cannot queue a state change until after the call",
                    ));
                }
                if *state == ChosenState::LoggedOut {
                    return Err(Error::new(
                        ErrorKind::BadInput,
                        "set_agent_state takes ready or not_ready; use logout",
                    ));
                }
                self.set_agent(id, state.clone())
            }
            Command::MakeCall { to, data } => self.place_call(id, to, None, data.clone()).await,
            Command::Answer { call } => self.answer(id, call).await,
            Command::Reject { call } => self.reject(id, call).await,
            Command::Hangup { call } => self.hangup(id, call).await,
            Command::Hold { call } => self.rehold(id, call, true).await,
            Command::Retrieve { call } => self.rehold(id, call, false).await,
            Command::SendDtmf { call, digits } => self.send_dtmf(id, call, digits).await,
            Command::BlindTransfer { call, to } => self.blind_transfer(id, call, to).await,
            Command::Consult { call, to } => self.consult(id, call, to).await,
            Command::CompleteTransfer { call } => self.complete_transfer(id, call).await,
            Command::SetCallData { call, data } => {
                // A plain SIP line keeps call data on the desk only.
                let mut desk = self.shared.line();
                let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
                c.data.merge(data)?;
                desk.emit(
                    Event::CallDataChanged {
                        call: call.clone(),
                        data: data.clone(),
                    },
                    Some(id),
                );
                Ok(())
            }
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!("the SIP connector does not support {}", other.kind()),
            )),
        }
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        let desk = self.shared.line();
        Ok(SwitchState {
            agent: desk.agent.to_agent_state(),
            calls: desk.calls.iter().map(SipCall::to_call).collect(),
            withheld: Vec::new(),
        })
    }

    async fn stop(&self) -> Result<()> {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let calls = self.shared.line().calls.drain();
        self.shared.line().sink = None;
        if let Some(stack) = self.shared.stack.get().cloned() {
            for call in calls {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    stack.hangup(&call.key),
                )
                .await;
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), stack.register(0)).await;
            stack.shutdown();
        }
        self.shared.up.store(false, Ordering::SeqCst);
        Ok(())
    }
}
