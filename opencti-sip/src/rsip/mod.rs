//! The [`SipEndpoint`] on top of rsipstack (transactions, dialogs, UDP, TCP and TLS
//! transports, digest auth): [`RsipEndpoint`] owns the one rsipstack endpoint and its
//! transports and routes what arrives to the accounts on it ([`account`]). Every
//! rsipstack type stays in this module.

mod account;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::key::TransactionRole;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::{make_tag, Endpoint, TransactionReceiver};
use rsipstack::transport::{
    udp::UdpConnection, SipAddr, TcpListenerConnection, TlsConfig, TransportLayer,
};
use rsipstack::EndpointBuilder;
use tokio_util::sync::CancellationToken;

use crate::config::{SipConfig, Transport};
use crate::stack::{InDialogRequest, ReplyTo, SipEndpoint, SipStack, StackError, StackEvent};

use account::Account;

/// What every account on the endpoint shares: the rsipstack endpoint, its dialog layer,
/// the registrar, and the table that routes new requests to accounts.
struct Shared {
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    dialogs: Arc<DialogLayer>,
    registrar: SipAddr,
    registrar_uri: Uri,
    /// `;transport=...` for this UA's URIs (empty for UDP).
    transport_param: &'static str,
    transport: Transport,
    local: SocketAddr,
    /// The From of the OPTIONS pings: the config's address of record.
    ping_from: Uri,
    /// Open accounts by SIP user (lower-cased).
    accounts: Mutex<HashMap<String, Arc<Account>>>,
    /// Subscription Call-IDs → (account user, subscribed resource).
    subscriptions: Mutex<HashMap<String, (String, String)>>,
}

impl Shared {
    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Arc<Account>>> {
        // Nothing panics while holding it; a poisoned lock still guards a valid map.
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subscriptions(&self) -> MutexGuard<'_, HashMap<String, (String, String)>> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn account(&self, user: &str) -> Option<Arc<Account>> {
        self.accounts().get(&user.to_ascii_lowercase()).cloned()
    }
}

/// The rsipstack-backed endpoint: one socket (UDP, plus a TCP listener on the same port
/// with [`Transport::Tcp`]) and one TLS connection to the registrar with
/// [`Transport::Tls`], shared by every account.
pub(crate) struct RsipEndpoint {
    shared: Arc<Shared>,
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

fn status_text(code: &StatusCode) -> String {
    code.to_string()
}

impl RsipEndpoint {
    /// Binds the transports and starts the endpoint. `tls` is, with [`Transport::Tls`],
    /// the CA certificates (PEM) to trust and the server name to verify.
    pub(crate) async fn start(
        config: &SipConfig,
        tls: Option<(Vec<u8>, Option<String>)>,
    ) -> Result<RsipEndpoint, StackError> {
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
        let shared = Arc::new(Shared {
            endpoint: endpoint.inner.clone(),
            dialogs,
            registrar,
            registrar_uri: uri(&format!("sip:{}{transport_param}", config.domain))?,
            transport_param,
            transport: config.transport,
            local,
            ping_from: uri(&config.aor())?,
            accounts: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
        });
        tokio::spawn(incoming_loop(shared.clone(), incoming));
        Ok(RsipEndpoint {
            shared,
            cancel,
            _endpoint: endpoint,
        })
    }
}

impl Drop for RsipEndpoint {
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

/// The account a new INVITE is for: the user of its Request-URI (the Contact the
/// account registered, as the registrar's lookup rewrote it), else the user of its To,
/// else the only account when there is one (a PBX that puts the dialled number in the
/// Request-URI of a single line's INVITE).
fn account_for(shared: &Shared, req: &rsipstack::sip::Request) -> Option<Arc<Account>> {
    let by_uri = req
        .uri
        .auth
        .as_ref()
        .and_then(|auth| shared.account(&auth.user));
    by_uri
        .or_else(|| {
            let to = req.to_header().ok()?.typed().ok()?;
            shared.account(&to.uri.auth?.user)
        })
        .or_else(|| {
            let accounts = shared.accounts();
            match accounts.len() {
                1 => accounts.values().next().cloned(),
                _ => None,
            }
        })
}

async fn incoming_loop(shared: Arc<Shared>, mut incoming: TransactionReceiver) {
    while let Some(mut tx) = incoming.recv().await {
        let method = tx.original.method;
        match method {
            Method::Invite if !has_to_tag(&tx) => match account_for(&shared, &tx.original) {
                Some(account) => account::new_invite(&account, tx),
                None => {
                    tokio::spawn(async move { tx.reply(StatusCode::NotFound).await.ok() });
                }
            },
            Method::Options if !has_to_tag(&tx) => {
                tokio::spawn(async move { tx.reply(StatusCode::OK).await.ok() });
            }
            Method::Notify if subscription_of(&shared, &tx).is_some() => {
                if let Some((user, resource)) = subscription_of(&shared, &tx) {
                    if let Some(account) = shared.account(&user) {
                        let request = in_dialog(&tx.original);
                        account.emit(StackEvent::SubscriptionNotify { resource, request });
                    }
                }
                tokio::spawn(async move { tx.reply(StatusCode::OK).await.ok() });
            }
            Method::Ack => {
                if let Some(mut dialog) = shared.dialogs.match_dialog(&tx) {
                    tokio::spawn(async move { dialog.handle(&mut tx).await.ok() });
                }
            }
            _ => match shared.dialogs.match_dialog(&tx) {
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

fn subscription_of(shared: &Shared, tx: &Transaction) -> Option<(String, String)> {
    let call_id = tx.original.call_id_header().ok()?.value().to_string();
    shared.subscriptions().get(&call_id).cloned()
}

#[async_trait]
impl SipEndpoint for RsipEndpoint {
    fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    async fn ping(&self) -> bool {
        let shared = &self.shared;
        // Over UDP to the registrar's port (it listens on UDP and TCP alike); over the
        // TLS connection with TLS, whose port is TLS only.
        let tls = shared.transport == Transport::Tls;
        let request = format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {local};rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {branch}@{ip}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            uri = shared.registrar_uri,
            via = if tls { "TLS" } else { "UDP" },
            local = shared.local,
            branch = make_tag(),
            aor = shared.ping_from,
            tag = make_tag(),
            ip = shared.local.ip(),
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
        let mut tx = Transaction::new_client(key, request, shared.endpoint.clone(), None);
        let mut destination = shared.registrar.clone();
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

    fn account(&self, config: &SipConfig) -> Result<Arc<dyn SipStack>, StackError> {
        Ok(Arc::new(account::RsipStack::open(&self.shared, config)?))
    }

    fn shutdown(&self) {
        self.cancel.cancel();
    }
}
