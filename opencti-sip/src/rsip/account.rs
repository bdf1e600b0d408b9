//! One account on the endpoint: [`RsipStack`], the [`SipStack`] of one line, with its
//! own credentials, REGISTER, Contact, dialogs and events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::dialog::registration::Registration;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::key::TransactionRole;
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{in_dialog, other, stack_error, status_text, uri, HandleReply, Shared};
use crate::config::{SipConfig, Transport};
use crate::stack::{
    Admission, DialogEnd, DialogKey, IncomingCall, Registered, Reply, SessionTimer, SipStack,
    StackError, StackEvent,
};

/// One account's state, shared by its stack handle, its dialog-state task and the
/// endpoint's router.
pub(super) struct Account {
    ep: Arc<Shared>,
    /// The SIP user, as routed (lower-cased).
    user: String,
    credential: Credential,
    aor: Uri,
    contact: Uri,
    states: DialogStateSender,
    events: mpsc::UnboundedSender<StackEvent>,
    known: Mutex<HashMap<String, InviteDialog>>,
    admission: Mutex<Admission>,
    max_dialogs: usize,
    closed: CancellationToken,
}

impl Account {
    fn known(&self) -> MutexGuard<'_, HashMap<String, InviteDialog>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dialog(&self, key: &DialogKey) -> Result<InviteDialog, StackError> {
        self.known()
            .get(&key.0)
            .cloned()
            .ok_or(StackError::NoDialog)
    }

    pub(super) fn emit(&self, event: StackEvent) {
        let _ = self.events.send(event);
    }
}

/// The stack of one line: its account on the shared endpoint.
pub(crate) struct RsipStack {
    inner: Arc<Account>,
    registration: tokio::sync::Mutex<Registration>,
    events: Mutex<Option<mpsc::UnboundedReceiver<StackEvent>>>,
}

impl RsipStack {
    /// Opens the account of `config`'s user on the endpoint `ep`.
    pub(super) fn open(ep: &Arc<Shared>, config: &SipConfig) -> Result<RsipStack, StackError> {
        let user = config.user.to_ascii_lowercase();
        let (states, state_rx) = ep.dialogs.new_dialog_state_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let credential = Credential {
            username: config.user.clone(),
            password: config.password.expose_secret().to_owned(),
            realm: None,
            auth_username: config.auth_user.clone(),
        };
        let inner = Arc::new(Account {
            ep: ep.clone(),
            user: user.clone(),
            credential: credential.clone(),
            aor: uri(&config.aor())?,
            contact: uri(&format!(
                "sip:{}@{}{}",
                config.user, ep.local, ep.transport_param
            ))?,
            states,
            events,
            known: Mutex::new(HashMap::new()),
            admission: Mutex::new(Admission::Offer),
            max_dialogs: 64,
            closed: CancellationToken::new(),
        });
        {
            let mut accounts = ep.accounts();
            if accounts.contains_key(&user) {
                return Err(StackError::Other(format!(
                    "the SIP user {} has an account on this endpoint already",
                    config.user
                )));
            }
            accounts.insert(user, inner.clone());
        }
        let mut registration = Registration::new(ep.endpoint.clone(), Some(credential));
        registration.outbound_proxy = Some(config.registrar);
        tokio::spawn(state_loop(inner.clone(), state_rx));
        Ok(RsipStack {
            inner,
            registration: tokio::sync::Mutex::new(registration),
            events: Mutex::new(Some(events_rx)),
        })
    }
}

impl Drop for RsipStack {
    fn drop(&mut self) {
        self.close_account();
    }
}

impl RsipStack {
    fn close_account(&self) {
        let inner = &self.inner;
        inner.closed.cancel();
        let mut accounts = inner.ep.accounts();
        if accounts
            .get(&inner.user)
            .is_some_and(|a| Arc::ptr_eq(a, inner))
        {
            accounts.remove(&inner.user);
        }
        drop(accounts);
        inner
            .ep
            .subscriptions()
            .retain(|_, (user, _)| *user != inner.user);
    }
}

fn auto_answer(req: &rsipstack::sip::Request) -> bool {
    let call_info = req
        .header_value("Call-Info")
        .is_some_and(|v| v.to_ascii_lowercase().contains("answer-after=0"));
    let alert = req
        .header_value("Alert-Info")
        .is_some_and(|v| v.to_ascii_lowercase().contains("auto answer"));
    call_info || alert
}

pub(super) fn new_invite(inner: &Arc<Account>, mut tx: Transaction) {
    let admission = inner
        .admission
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let full = inner.known().len() >= inner.max_dialogs;
    match (admission, full) {
        (_, true) | (Admission::Busy, _) => {
            tokio::spawn(async move { tx.reply(StatusCode::BusyHere).await.ok() });
            return;
        }
        (Admission::Divert(to), _) => {
            let contact = Header::Contact(format!("<{to}>").into());
            tokio::spawn(async move {
                tx.reply_with(StatusCode::MovedTemporarily, vec![contact], None)
                    .await
                    .ok()
            });
            return;
        }
        (Admission::Offer, false) => {}
    }
    let req = tx.original.clone();
    let Ok(call_id) = req.call_id_header().map(|c| c.value().to_string()) else {
        tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await.ok() });
        return;
    };
    let from = req.from_header().ok().and_then(|f| f.typed().ok());
    let to = req.to_header().ok().and_then(|t| t.typed().ok());
    let dialog = match inner.ep.dialogs.get_or_create_server_invite(
        &tx,
        inner.states.clone(),
        None,
        Some(inner.contact.clone()),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "SIP: cannot create a dialog for an INVITE");
            tokio::spawn(async move { tx.reply(StatusCode::BadRequest).await.ok() });
            return;
        }
    };
    inner.known().insert(call_id.clone(), dialog.clone());
    inner.emit(StackEvent::Incoming(IncomingCall {
        key: DialogKey(call_id),
        from: from.as_ref().map(|f| f.uri.to_string()).unwrap_or_default(),
        from_name: from
            .and_then(|f| f.display_name)
            .map(|n| n.trim_matches('"').to_owned()),
        to: to.map(|t| t.uri.to_string()).unwrap_or_default(),
        sdp: req.body.clone(),
        auto_answer: auto_answer(&req),
    }));
    let mut dialog = dialog;
    tokio::spawn(async move {
        if let Err(e) = dialog.handle(&mut tx).await {
            tracing::debug!(error = %e, "SIP: INVITE transaction ended with an error");
        }
    });
}

fn end_of(reason: &TerminatedReason, role: TransactionRole) -> DialogEnd {
    let server = role == TransactionRole::Server;
    match reason {
        TerminatedReason::UacBye if server => DialogEnd::RemoteBye,
        TerminatedReason::UacBye => DialogEnd::LocalBye,
        TerminatedReason::UasBye if server => DialogEnd::LocalBye,
        TerminatedReason::UasBye => DialogEnd::RemoteBye,
        TerminatedReason::UacCancel if server => DialogEnd::RemoteCancel,
        TerminatedReason::UacCancel => DialogEnd::LocalCancel,
        TerminatedReason::UasDecline if server => DialogEnd::Declined,
        TerminatedReason::UasDecline => DialogEnd::Failed(603),
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => DialogEnd::Failed(486),
        TerminatedReason::ProxyAuthRequired => DialogEnd::Failed(407),
        TerminatedReason::ProxyError(code)
        | TerminatedReason::UacOther(code)
        | TerminatedReason::UasOther(code) => DialogEnd::Failed(code.code()),
        TerminatedReason::Timeout => DialogEnd::Timeout,
    }
}

async fn state_loop(inner: Arc<Account>, mut states: DialogStateReceiver) {
    loop {
        let state = tokio::select! {
            state = states.recv() => state,
            () = inner.closed.cancelled() => None,
        };
        let Some(state) = state else {
            return;
        };
        match state {
            DialogState::Early(id, resp) => {
                let role = inner.known().get(&id.call_id).map(|d| d.role());
                if role == Some(TransactionRole::Client) {
                    inner.emit(StackEvent::Progress {
                        key: DialogKey(id.call_id),
                        code: resp.status_code.code(),
                        sdp: resp.body,
                    });
                }
            }
            DialogState::Confirmed(id, _) => {
                let role = inner.known().get(&id.call_id).map(|d| d.role());
                if role == Some(TransactionRole::Server) {
                    inner.emit(StackEvent::Confirmed {
                        key: DialogKey(id.call_id),
                    });
                }
            }
            DialogState::Terminated(id, reason) => {
                let dialog = inner.known().remove(&id.call_id);
                let role = dialog
                    .as_ref()
                    .map(|d| d.role())
                    .unwrap_or(TransactionRole::Client);
                inner.ep.dialogs.remove_dialog(&id);
                if let Some(d) = dialog {
                    inner.ep.dialogs.remove_dialog(&d.id());
                }
                inner.emit(StackEvent::Ended {
                    key: DialogKey(id.call_id),
                    end: end_of(&reason, role),
                });
            }
            DialogState::Updated(id, req, handle)
            | DialogState::Refer(id, req, handle)
            | DialogState::Notify(id, req, handle)
            | DialogState::Info(id, req, handle)
            | DialogState::Options(id, req, handle)
            | DialogState::Message(id, req, handle)
            | DialogState::Publish(id, req, handle) => {
                inner.emit(StackEvent::Request {
                    key: DialogKey(id.call_id),
                    request: in_dialog(&req),
                    reply: Reply(Box::new(HandleReply(handle))),
                });
            }
            DialogState::Calling(_) | DialogState::Trying(_) | DialogState::WaitAck(..) => {}
        }
    }
}

#[async_trait]
impl SipStack for RsipStack {
    async fn register(&self, expires: u32) -> Result<Registered, StackError> {
        let mut registration = self.registration.lock().await;
        let response = registration
            .register(self.inner.ep.registrar_uri.clone(), Some(expires))
            .await
            .map_err(stack_error)?;
        let code = response.status_code.code();
        match response.status_code.kind() {
            StatusCodeKind::Successful => Ok(Registered {
                expires: registration.granted_expires.unwrap_or(expires),
            }),
            _ if matches!(code, 401 | 403 | 407) => Err(StackError::Unauthorized(code)),
            _ => Err(StackError::Status(code, status_text(&response.status_code))),
        }
    }

    fn invite(
        &self,
        target: &str,
        sdp: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<DialogKey, StackError> {
        let option = InviteOption {
            caller: self.inner.aor.clone(),
            callee: uri(target)?,
            destination: Some(self.inner.ep.registrar.clone()),
            content_type: Some("application/sdp".into()),
            offer: Some(sdp),
            contact: self.inner.contact.clone(),
            credential: Some(self.inner.credential.clone()),
            headers: Some(
                headers
                    .into_iter()
                    .map(|(k, v)| Header::Other(k, v))
                    .collect(),
            ),
            ..Default::default()
        };
        let (dialog, handle) = self
            .inner
            .ep
            .dialogs
            .do_invite_async(option, self.inner.states.clone())
            .map_err(stack_error)?;
        let key = DialogKey(dialog.id().call_id.clone());
        self.inner.known().insert(key.0.clone(), dialog);
        let inner = self.inner.clone();
        let k = key.clone();
        tokio::spawn(async move {
            match handle.await {
                Ok(Ok((_, Some(resp))))
                    if resp.status_code.kind() == StatusCodeKind::Successful =>
                {
                    let session = resp
                        .headers
                        .iter()
                        .find(|h| matches!(h, Header::SessionExpires(_)))
                        .and_then(|h| SessionTimer::parse(h.value()));
                    inner.emit(StackEvent::Answered {
                        key: k,
                        sdp: resp.body,
                        session,
                    });
                }
                Ok(Ok((_, Some(resp)))) => {
                    inner.known().remove(&k.0);
                    inner.emit(StackEvent::Ended {
                        end: DialogEnd::Failed(resp.status_code.code()),
                        key: k,
                    });
                }
                Ok(Ok((_, None))) | Ok(Err(_)) | Err(_) => {
                    let cancelled = inner.known().remove(&k.0).is_some_and(|d| {
                        d.snapshot().state
                            == rsipstack::dialog::dialog::DialogSnapshotState::Terminated
                    });
                    inner.emit(StackEvent::Ended {
                        end: if cancelled {
                            DialogEnd::LocalCancel
                        } else {
                            DialogEnd::Timeout
                        },
                        key: k,
                    });
                }
            }
        });
        Ok(key)
    }

    fn provisional(&self, key: &DialogKey, code: u16) -> Result<(), StackError> {
        let dialog = self.inner.dialog(key)?;
        if code == 180 {
            dialog.ringing(None, None).map_err(stack_error)
        } else {
            Err(StackError::Other(format!("provisional {code} is not sent")))
        }
    }

    fn answer(&self, key: &DialogKey, sdp: Vec<u8>) -> Result<(), StackError> {
        let dialog = self.inner.dialog(key)?;
        dialog
            .accept(
                Some(vec![Header::ContentType("application/sdp".into())]),
                Some(sdp),
            )
            .map_err(stack_error)
    }

    fn refuse(
        &self,
        key: &DialogKey,
        code: u16,
        _contact: Option<String>,
    ) -> Result<(), StackError> {
        let dialog = self.inner.dialog(key)?;
        dialog
            .reject(Some(StatusCode::from(code)), None)
            .map_err(stack_error)
    }

    async fn hangup(&self, key: &DialogKey) -> Result<(), StackError> {
        let dialog = self.inner.dialog(key)?;
        let state = dialog.snapshot().state;
        use rsipstack::dialog::dialog::DialogSnapshotState as S;
        match (dialog.role(), state) {
            (TransactionRole::Server, S::Calling | S::Trying | S::Early) => dialog
                .reject(Some(StatusCode::TemporarilyUnavailable), None)
                .map_err(stack_error),
            (TransactionRole::Client, S::Calling | S::Trying | S::Early) => {
                dialog.cancel().await.map_err(stack_error)
            }
            _ => dialog.bye().await.map_err(stack_error),
        }
    }

    async fn request(
        &self,
        key: &DialogKey,
        method: &str,
        headers: Vec<(String, String)>,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<(u16, Vec<u8>), StackError> {
        let dialog = self.inner.dialog(key)?;
        let mut hs: Vec<Header> = headers
            .into_iter()
            .map(|(k, v)| match k.as_str() {
                "Refer-To" => Header::ReferTo(v.into()),
                "Event" => Header::Event(v.into()),
                _ => Header::Other(k, v),
            })
            .collect();
        let bytes = body.map(|(ctype, bytes)| {
            hs.push(Header::ContentType(ctype.into()));
            bytes
        });
        let response = match method {
            "INVITE" => dialog.reinvite(Some(hs), bytes).await,
            "INFO" => dialog.info(Some(hs), bytes).await,
            "REFER" => dialog.request(Method::Refer, Some(hs), bytes).await,
            "UPDATE" => dialog.update(Some(hs), bytes).await,
            other => {
                return Err(StackError::Other(format!(
                    "{other} is not sent in a dialog"
                )))
            }
        }
        .map_err(stack_error)?;
        match response {
            Some(r) => {
                let code = r.status_code.code();
                if code >= 300 {
                    Err(StackError::Status(code, status_text(&r.status_code)))
                } else {
                    Ok((code, r.body))
                }
            }
            None => Err(StackError::Other(
                "the dialog is not confirmed (yet or any more)".into(),
            )),
        }
    }

    fn dialog_ids(&self, key: &DialogKey) -> Option<(String, String, String, String)> {
        let dialog = self.inner.dialog(key).ok()?;
        let id = dialog.id();
        let snapshot = dialog.snapshot();
        let target = snapshot
            .remote_contact
            .as_ref()
            .and_then(|c| c.typed().ok())
            .map(|c| c.uri.to_string())
            .unwrap_or_else(|| snapshot.remote_uri.to_string());
        Some((id.call_id, id.local_tag, id.remote_tag, target))
    }

    async fn subscribe(
        &self,
        resource: &str,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> Result<(), StackError> {
        let call_id = format!("{}@{}", make_tag(), self.inner.ep.local.ip());
        self.inner.ep.subscriptions().insert(
            call_id.clone(),
            (self.inner.user.clone(), resource.to_owned()),
        );
        let transport = match self.inner.ep.transport {
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            _ => "UDP",
        };
        let request = format!(
            "SUBSCRIBE {resource} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: <{resource}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 SUBSCRIBE\r\nContact: <{contact}>\r\nEvent: {event}\r\nAccept: {accept}\r\n\
             Expires: {expires}\r\nContent-Length: 0\r\n\r\n",
            local = self.inner.ep.local,
            branch = make_tag(),
            aor = self.inner.aor,
            tag = make_tag(),
            contact = self.inner.contact,
        );
        let request = rsipstack::sip::Request::try_from(request.as_str()).map_err(other)?;
        let key = rsipstack::transaction::key::TransactionKey::from_request(
            &request,
            TransactionRole::Client,
        )
        .map_err(other)?;
        let mut tx = Transaction::new_client(key, request, self.inner.ep.endpoint.clone(), None);
        tx.destination = Some(self.inner.ep.registrar.clone());
        tx.send().await.map_err(stack_error)?;
        let mut auth = rsipstack::dialog::authenticate::AuthRetry::new();
        while let Some(msg) = tx.receive().await {
            let rsipstack::sip::SipMessage::Response(r) = msg else {
                continue;
            };
            let code = r.status_code.code();
            if (code == 401 || code == 407) && auth.should_answer(&r) {
                tx = rsipstack::dialog::authenticate::handle_client_authenticate(
                    2,
                    &tx,
                    r,
                    &self.inner.credential,
                )
                .await
                .map_err(stack_error)?;
                tx.send().await.map_err(stack_error)?;
                continue;
            }
            match code {
                100..=199 => continue,
                200..=299 => return Ok(()),
                401 | 403 | 407 => return Err(StackError::Unauthorized(code)),
                _ => return Err(StackError::Status(code, status_text(&r.status_code))),
            }
        }
        Err(StackError::Unreachable(format!(
            "no answer to SUBSCRIBE for {resource}"
        )))
    }

    fn set_admission(&self, admission: Admission) {
        *self
            .inner
            .admission
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = admission;
    }

    fn forget(&self, key: &DialogKey) {
        if let Some(d) = self.inner.known().remove(&key.0) {
            self.inner.ep.dialogs.remove_dialog(&d.id());
        }
    }

    fn close(&self) {
        self.close_account();
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StackEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
