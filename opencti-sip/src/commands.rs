//! The session's commands as SIP: INVITE with an SDP offer, 200 OK with the answer,
//! CANCEL/BYE, hold and retrieve by re-INVITE, DTMF (RFC 4733 or INFO), REFER for blind
//! and attended transfers. Each returns once the request is out; the confirming event
//! comes from the far end's answer (see [`dialogs`](crate::dialogs)).

use opencti_core::{Address, CommandId, Direction, Error, ErrorKind, Event, Result};

use crate::calls::{PendingTransfer, Progress, SipCall};
use crate::config::DtmfMode;
use crate::dialogs::{end_call, HANGUP_LIMIT};
use crate::line::{not_found, stack_error, SipLine};
use crate::media::RtpStream;
use crate::sdp;
use crate::stack::{DialogEnd, DialogKey};

impl SipLine {
    pub(crate) async fn place_call(
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
            Progress::Dialling,
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

    pub(crate) async fn answer(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
        let stack = self.stack()?;
        let (key, call_id, remote) = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if c.progress != Progress::Offered {
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
        c.progress = Progress::Answering;
        c.answer = Some(id);
        stack
            .answer(&key, sdp)
            .map_err(|e| stack_error("answering (200 OK)", e))
    }

    pub(crate) async fn reject(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
        let stack = self.stack()?;
        let key = {
            let mut desk = self.shared.line();
            let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
            if c.progress != Progress::Offered {
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

    pub(crate) async fn hangup(&self, id: CommandId, call: &opencti_core::CallId) -> Result<()> {
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
    pub(crate) async fn rehold(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        hold: bool,
    ) -> Result<()> {
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

    pub(crate) async fn send_dtmf(
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
        let line = self.clone();
        let (call, digits) = (call.clone(), digits.clone());
        tokio::spawn(async move {
            let sent = if rfc4733 {
                let rtp_sent = {
                    // The stream lives in the desk; send through a handle taken out of it.
                    let stream = line
                        .shared
                        .line()
                        .calls
                        .by_key(&key)
                        .and_then(|c| c.rtp.take());
                    match stream {
                        Some(stream) => {
                            let ok = stream.send_dtmf(digits.as_str()).await;
                            if let Some(c) = line.shared.line().calls.by_key(&key) {
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
            let desk = line.shared.line();
            match sent {
                Ok(()) => desk.emit(Event::DtmfSent { call, digits }, Some(id)),
                Err(e) => desk.emit(Event::CommandFailed { error: e.to_body() }, Some(id)),
            }
        });
        Ok(())
    }

    pub(crate) async fn refer(
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

    pub(crate) async fn blind_transfer(
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

    pub(crate) async fn consult(
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

    pub(crate) async fn complete_transfer(
        &self,
        id: CommandId,
        consult: &opencti_core::CallId,
    ) -> Result<()> {
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
