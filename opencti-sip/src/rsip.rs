//! [`RsipStack`]: the [`SipStack`] on top of rsipstack (transactions, dialogs, UDP, TCP
//! and TLS transports, digest auth). Every rsipstack type stays in this file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::dialog::registration::Registration;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::key::TransactionRole;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::{make_tag, Endpoint, TransactionReceiver};
use rsipstack::transport::{
    udp::UdpConnection, SipAddr, TcpListenerConnection, TlsConfig, TransportLayer,
};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{SipConfig, Transport};
use crate::stack::{
    Admission, DialogEnd, DialogKey, InDialogRequest, IncomingCall, Registered, Reply, ReplyTo,
    SessionTimer, SipStack, StackError, StackEvent,
};

struct Inner {
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    dialogs: Arc<DialogLayer>,
    credential: Credential,
    registrar: SipAddr,
    registrar_uri: Uri,
    aor: Uri,
    contact: Uri,
    local: SocketAddr,
    states: DialogStateSender,
    events: mpsc::UnboundedSender<StackEvent>,
    known: Mutex<HashMap<String, InviteDialog>>,
    subscriptions: Mutex<HashMap<String, String>>,
    admission: Mutex<Admission>,
    max_dialogs: usize,
    transport: AtomicU8,
}

impl Inner {
    fn known(&self) -> MutexGuard<'_, HashMap<String, InviteDialog>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dialog(&self, key: &DialogKey) -> Result<InviteDialog, StackError> {
        self.known()
            .get(&key.0)
            .cloned()
            .ok_or(StackError::NoDialog)
    }

    fn emit(&self, event: StackEvent) {
        let _ = self.events.send(event);
    }
}

/// The rsipstack-backed stack.
pub(crate) struct RsipStack {
    inner: Arc<Inner>,
    registration: tokio::sync::Mutex<Registration>,
    events: Mutex<Option<mpsc::UnboundedReceiver<StackEvent>>>,
    cancel: CancellationToken,
    _endpoint: Endpoint,
}

fn uri(text: &str) -> Result<Uri, StackError> {
    Uri::try_from(text).map_err(|e| StackError::Other(format!("bad SIP URI {text:?}: {e}")))
}

fn other(e: impl std::fmt::Display) -> StackError {
    StackError::Other(e.to_string())
}

fn stack_error(e: rsipstack::Error) -> StackError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("timeout") || lower.contains("timed out") || lower.contains("transport") {
        StackError::Unreachable(text)
    } else {
        StackError::Other(text)
    }
}

impl RsipStack {
    /// Binds the transports and starts the endpoint. `tls` is, with [`Transport::Tls`],
    /// the CA certificates (PEM) to trust and the server name to verify.
    pub(crate) async fn start(
        config: &SipConfig,
        tls: Option<(Vec<u8>, Option<String>)>,
    ) -> Result<RsipStack, StackError> {
        let cancel = CancellationToken::new();
        let transport_layer = TransportLayer::new(cancel.clone());
        if let Some((ca, server_name)) = tls {
            transport_layer.set_tls_config(TlsConfig {
                ca_certs: Some(ca),
                sni_hostname: server_name,
                ..Default::default()
            });
        }
        let udp = UdpConnection::create_connection(config.local, None, Some(cancel.child_token()))
            .await
            .map_err(|e| {
                StackError::Other(format!("cannot bind SIP/UDP on {}: {e}", config.local))
            })?;
        let local_sip = udp.get_addr().clone();
        let local: SocketAddr = local_sip
            .get_socketaddr()
            .map_err(|e| StackError::Other(format!("local SIP address: {e}")))?;
        transport_layer.add_transport(udp.into());
        if config.transport == Transport::Tcp {
            let tcp = TcpListenerConnection::new(local, None).await.map_err(|e| {
                StackError::Other(format!("cannot listen for SIP/TCP on {local}: {e}"))
            })?;
            transport_layer.add_transport(tcp.into());
        }
        let option = rsipstack::transaction::endpoint::EndpointOption {
            callid_suffix: Some(local.ip().to_string()),
            ..Default::default()
        };
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport_layer)
            .with_user_agent(&config.user_agent)
            .with_option(option)
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| StackError::Other(e.to_string()))?;
        let serving = endpoint.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = serving.serve().await {
                tracing::debug!(error = %e, "SIP endpoint stopped");
            }
        });
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (states, state_rx) = dialogs.new_dialog_state_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let transport_param = match config.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        let registrar = SipAddr {
            r#type: Some(match config.transport {
                Transport::Udp => rsipstack::sip::Transport::Udp,
                Transport::Tcp => rsipstack::sip::Transport::Tcp,
                Transport::Tls => rsipstack::sip::Transport::Tls,
            }),
            addr: config.registrar.into(),
        };
        let credential = Credential {
            username: config.user.clone(),
            password: config.password.expose_secret().to_owned(),
            realm: None,
            auth_username: config.auth_user.clone(),
        };
        let inner = Arc::new(Inner {
            endpoint: endpoint.inner.clone(),
            dialogs,
            credential: credential.clone(),
            registrar,
            registrar_uri: uri(&format!("sip:{}{transport_param}", config.domain))?,
            aor: uri(&config.aor())?,
            contact: uri(&format!("sip:{}@{local}{transport_param}", config.user))?,
            local,
            states,
            events,
            known: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
            admission: Mutex::new(Admission::Offer),
            max_dialogs: 64,
            transport: AtomicU8::new(config.transport as u8),
        });
        let mut registration = Registration::new(endpoint.inner.clone(), Some(credential));
        registration.outbound_proxy = Some(config.registrar);
        tokio::spawn(incoming_loop(inner.clone(), incoming));
        tokio::spawn(state_loop(inner.clone(), state_rx));
        Ok(RsipStack {
            inner,
            registration: tokio::sync::Mutex::new(registration),
            events: Mutex::new(Some(events_rx)),
            cancel,
            _endpoint: endpoint,
        })
    }
}

impl Drop for RsipStack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn header_param_free(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn in_dialog(req: &rsipstack::sip::Request) -> InDialogRequest {
    InDialogRequest {
        method: req.method.to_string(),
        content_type: req
            .header_value("Content-Type")
            .map(|v| header_param_free(&v)),
        event: req.header_value("Event").map(|v| header_param_free(&v)),
        subscription_state: req
            .header_value("Subscription-State")
            .map(|v| header_param_free(&v)),
        body: req.body.clone(),
    }
}

struct HandleReply(TransactionHandle);

#[async_trait]
impl ReplyTo for HandleReply {
    async fn send(&self, code: u16, body: Option<(String, Vec<u8>)>) {
        let (headers, body) = match body {
            Some((ctype, bytes)) => (Some(vec![Header::ContentType(ctype.into())]), Some(bytes)),
            None => (None, None),
        };
        let _ = self.0.respond(StatusCode::from(code), headers, body).await;
    }
}

fn has_to_tag(tx: &Transaction) -> bool {
    tx.original
        .to_header()
        .ok()
        .and_then(|to| to.tag().ok().flatten())
        .is_some()
}

async fn incoming_loop(inner: Arc<Inner>, mut incoming: TransactionReceiver) {
    while let Some(mut tx) = incoming.recv().await {
        let method = tx.original.method;
        match method {
            Method::Invite if !has_to_tag(&tx) => new_invite(&inner, tx),
            Method::Options if !has_to_tag(&tx) => {
                tokio::spawn(async move { tx.reply(StatusCode::OK).await.ok() });
            }
            Method::Notify if subscription_of(&inner, &tx).is_some() => {
                let resource = subscription_of(&inner, &tx).unwrap_or_default();
                let request = in_dialog(&tx.original);
                inner.emit(StackEvent::SubscriptionNotify { resource, request });
                tokio::spawn(async move { tx.reply(StatusCode::OK).await.ok() });
            }
            Method::Ack => {
                if let Some(mut dialog) = inner.dialogs.match_dialog(&tx) {
                    tokio::spawn(async move { dialog.handle(&mut tx).await.ok() });
                }
            }
            _ => match inner.dialogs.match_dialog(&tx) {
                Some(mut dialog) => {
                    tokio::spawn(async move {
                        if let Err(e) = dialog.handle(&mut tx).await {
                            tracing::debug!(error = %e, "SIP: in-dialog request failed");
                        }
                    });
                }
                None => {
                    let code = if matches!(method, Method::Register | Method::Publish) {
                        StatusCode::MethodNotAllowed
                    } else {
                        StatusCode::CallTransactionDoesNotExist
                    };
                    tokio::spawn(async move { tx.reply(code).await.ok() });
                }
            },
        }
    }
}

fn subscription_of(inner: &Inner, tx: &Transaction) -> Option<String> {
    let call_id = tx.original.call_id_header().ok()?.value().to_string();
    inner
        .subscriptions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&call_id)
        .cloned()
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

fn new_invite(inner: &Arc<Inner>, mut tx: Transaction) {
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
    let dialog = match inner.dialogs.get_or_create_server_invite(
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

async fn state_loop(inner: Arc<Inner>, mut states: DialogStateReceiver) {
    while let Some(state) = states.recv().await {
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
                inner.dialogs.remove_dialog(&id);
                if let Some(d) = dialog {
                    inner.dialogs.remove_dialog(&d.id());
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

fn status_text(code: &StatusCode) -> String {
    code.to_string()
}

#[async_trait]
impl SipStack for RsipStack {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    async fn register(&self, expires: u32) -> Result<Registered, StackError> {
        let mut registration = self.registration.lock().await;
        let response = registration
            .register(self.inner.registrar_uri.clone(), Some(expires))
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

    async fn ping(&self) -> bool {
        // Over UDP to the registrar's port (it listens on UDP and TCP alike); over the
        // TLS connection with TLS, whose port is TLS only.
        let tls = self.inner.transport.load(Ordering::Relaxed) == Transport::Tls as u8;
        let request = format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {local};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {branch}@{ip}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            uri = self.inner.registrar_uri,
            via = if tls { "TLS" } else { "UDP" },
            local = self.inner.local,
            branch = make_tag(),
            aor = self.inner.aor,
            tag = make_tag(),
            ip = self.inner.local.ip(),
        );
        let Ok(request) = rsipstack::sip::Request::try_from(request.as_str()) else {
            return false;
        };
        let Ok(key) = rsipstack::transaction::key::TransactionKey::from_request(
            &request,
            TransactionRole::Client,
        ) else {
            return false;
        };
        let mut tx = Transaction::new_client(key, request, self.inner.endpoint.clone(), None);
        let mut destination = self.inner.registrar.clone();
        if !tls {
            destination.r#type = Some(rsipstack::sip::Transport::Udp);
        }
        tx.destination = Some(destination);
        if tx.send().await.is_err() {
            return false;
        }
        while let Some(msg) = tx.receive().await {
            if let rsipstack::sip::SipMessage::Response(r) = msg {
                if r.status_code.kind() != StatusCodeKind::Provisional {
                    return true;
                }
            }
        }
        false
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
            destination: Some(self.inner.registrar.clone()),
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
        let call_id = format!("{}@{}", make_tag(), self.inner.local.ip());
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call_id.clone(), resource.to_owned());
        let transport = match self.inner.transport.load(Ordering::Relaxed) {
            t if t == Transport::Tcp as u8 => "TCP",
            t if t == Transport::Tls as u8 => "TLS",
            _ => "UDP",
        };
        let request = format!(
            "SUBSCRIBE {resource} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: <{resource}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 SUBSCRIBE\r\nContact: <{contact}>\r\nEvent: {event}\r\nAccept: {accept}\r\n\
             Expires: {expires}\r\nContent-Length: 0\r\n\r\n",
            local = self.inner.local,
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
        let mut tx = Transaction::new_client(key, request, self.inner.endpoint.clone(), None);
        tx.destination = Some(self.inner.registrar.clone());
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
            self.inner.dialogs.remove_dialog(&d.id());
        }
    }

    fn shutdown(&self) {
        self.cancel.cancel();
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StackEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
