//! The seam between the connector and the SIP stack: what the link needs from a stack
//! (one endpoint with its transports, and on it one account per line: register,
//! dialogs, in-dialog requests), in the connector's own types. The one implementation,
//! [`crate::rsip::RsipEndpoint`], wraps rsipstack; no rsipstack type crosses this file,
//! so swapping stacks touches one file.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::SipConfig;

/// One dialog, as the stack names it (its Call-ID: each call this UA places gets a
/// fresh one, and a forked INVITE to it is answered once).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DialogKey(pub(crate) String);

impl fmt::Display for DialogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stack failure, in terms the connector maps onto its error kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StackError {
    /// No answer in time (transaction timeout) or the transport failed.
    Unreachable(String),
    /// Credentials refused (401/403/407 after the digest retry).
    Unauthorized(u16),
    /// A final error response.
    Status(u16, String),
    /// The dialog is not known (any more).
    NoDialog,
    /// Anything else.
    Other(String),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::Unreachable(why) => write!(f, "no answer: {why}"),
            StackError::Unauthorized(code) => write!(f, "credentials refused ({code})"),
            StackError::Status(code, reason) => write!(f, "{code} {reason}"),
            StackError::NoDialog => f.write_str("no such dialog"),
            StackError::Other(why) => f.write_str(why),
        }
    }
}

/// A new INVITE for this UA.
#[derive(Debug, Clone)]
pub(crate) struct IncomingCall {
    pub(crate) key: DialogKey,
    /// The From URI.
    pub(crate) from: String,
    /// The From display name.
    pub(crate) from_name: Option<String>,
    /// The To URI.
    pub(crate) to: String,
    /// The SDP offer (may be empty: offer in the answer).
    pub(crate) sdp: Vec<u8>,
    /// An auto-answer request (`Call-Info: ;answer-after=0` or `Alert-Info: auto answer`).
    pub(crate) auto_answer: bool,
}

/// How a dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialogEnd {
    /// The far end sent BYE.
    RemoteBye,
    /// This side sent BYE.
    LocalBye,
    /// The caller cancelled before the answer.
    RemoteCancel,
    /// This side cancelled before the answer.
    LocalCancel,
    /// An outbound INVITE got a final error response.
    Failed(u16),
    /// This side declined an inbound INVITE.
    Declined,
    /// Timeout (no ACK, no response) or transport failure.
    Timeout,
}

/// A request inside an existing dialog, to be answered with [`Reply`].
#[derive(Debug, Clone)]
pub(crate) struct InDialogRequest {
    /// `INVITE` (re-INVITE), `UPDATE`, `REFER`, `NOTIFY`, `INFO`, `OPTIONS`, `MESSAGE`.
    pub(crate) method: String,
    /// `Content-Type`, lower-cased, without parameters.
    pub(crate) content_type: Option<String>,
    /// `Event` header value, lower-cased, without parameters.
    pub(crate) event: Option<String>,
    /// `Subscription-State` value, lower-cased, without parameters.
    pub(crate) subscription_state: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Answers an in-dialog request.
pub(crate) struct Reply(pub(crate) Box<dyn ReplyTo>);

/// The stack's side of [`Reply`].
#[async_trait]
pub(crate) trait ReplyTo: Send + Sync {
    /// Sends the response; `body` is `(content type, bytes)`.
    async fn send(&self, code: u16, body: Option<(String, Vec<u8>)>);
}

impl Reply {
    pub(crate) async fn send(self, code: u16, body: Option<(String, Vec<u8>)>) {
        self.0.send(code, body).await
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// The session timer a 2xx granted (RFC 4028 `Session-Expires: delta;refresher=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    /// The session interval in seconds.
    pub(crate) interval: u32,
    /// Whether this side (the UAC) refreshes: `refresher=uac`, or no `refresher`
    /// parameter (this UA asked for `uac`).
    pub(crate) uac_refreshes: bool,
}

impl SessionTimer {
    /// Parses a `Session-Expires` value; `None` for anything that is not one.
    pub(crate) fn parse(value: &str) -> Option<SessionTimer> {
        let mut parts = value.split(';');
        let delta = parts.next()?.trim();
        if delta.is_empty() || delta.len() > 10 || !delta.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let interval: u32 = delta.parse().ok()?;
        let mut uac_refreshes = true;
        for param in parts {
            if let Some((name, v)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("refresher") {
                    uac_refreshes = !v.trim().eq_ignore_ascii_case("uas");
                }
            }
        }
        Some(SessionTimer {
            interval,
            uac_refreshes,
        })
    }
}

/// What the stack reports.
#[derive(Debug)]
pub(crate) enum StackEvent {
    /// A new inbound call (the stack has sent 100 Trying, nothing more).
    Incoming(IncomingCall),
    /// An outbound call got a provisional answer (180, 183), with early media SDP.
    Progress {
        key: DialogKey,
        code: u16,
        sdp: Vec<u8>,
    },
    /// An outbound call was answered (ACK sent), with the session timer its 2xx granted
    /// (RFC 4028 `Session-Expires`; `None` when the 2xx has none).
    Answered {
        key: DialogKey,
        sdp: Vec<u8>,
        session: Option<SessionTimer>,
    },
    /// An inbound call's 200 OK was acknowledged.
    Confirmed { key: DialogKey },
    /// The dialog is over.
    Ended { key: DialogKey, end: DialogEnd },
    /// A request inside a dialog.
    Request {
        key: DialogKey,
        request: InDialogRequest,
        reply: Reply,
    },
    /// A NOTIFY for one of this UA's subscriptions.
    SubscriptionNotify {
        /// The subscribed resource (as given to `subscribe`).
        resource: String,
        request: InDialogRequest,
    },
}

/// What the stack does with a new INVITE; the connector sets it from the agent state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Offer it to the connector.
    Offer,
    /// Refuse it with 486 Busy Here.
    Busy,
    /// Redirect it with 302 to this URI.
    Divert(String),
}

/// The outcome of a REGISTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    /// The lifetime the registrar granted, in seconds.
    pub(crate) expires: u32,
}

/// One SIP endpoint: the transports (one local address) shared by every account on it.
#[async_trait]
pub(crate) trait SipEndpoint: Send + Sync {
    /// The local SIP address.
    fn local_addr(&self) -> SocketAddr;

    /// Pings the registrar with OPTIONS; any response counts.
    async fn ping(&self) -> bool;

    /// An account on this endpoint for `config`'s user and credentials: new INVITEs whose
    /// Request-URI (or To) user is that user go to it. One account per user.
    fn account(&self, config: &SipConfig) -> Result<Arc<dyn SipStack>, StackError>;

    /// Stops the transports and every task.
    fn shutdown(&self);
}

/// One account (one line) on a [`SipEndpoint`]: what a line needs from the SIP stack.
#[async_trait]
pub(crate) trait SipStack: Send + Sync {
    /// Registers (expires > 0) or unregisters (0), with one digest retry.
    async fn register(&self, expires: u32) -> Result<Registered, StackError>;

    /// Sends an INVITE to `target` through the registrar; progress comes as events.
    fn invite(
        &self,
        target: &str,
        sdp: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<DialogKey, StackError>;

    /// Sends a provisional answer (180 or 183) to an inbound INVITE.
    fn provisional(&self, key: &DialogKey, code: u16) -> Result<(), StackError>;

    /// Answers an inbound INVITE with 200 OK and this SDP.
    fn answer(&self, key: &DialogKey, sdp: Vec<u8>) -> Result<(), StackError>;

    /// Refuses an inbound INVITE (`contact` for a 3xx redirect).
    fn refuse(&self, key: &DialogKey, code: u16, contact: Option<String>)
        -> Result<(), StackError>;

    /// Ends a dialog: CANCEL before the answer, BYE after.
    async fn hangup(&self, key: &DialogKey) -> Result<(), StackError>;

    /// Sends a request in the dialog and returns the final status and body. An INVITE
    /// here is a re-INVITE (ACKed by the stack).
    async fn request(
        &self,
        key: &DialogKey,
        method: &str,
        headers: Vec<(String, String)>,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<(u16, Vec<u8>), StackError>;

    /// The dialog identifiers for a `Replaces` header (RFC 3891): Call-ID, local tag,
    /// remote tag, and the far end's target URI.
    fn dialog_ids(&self, key: &DialogKey) -> Option<(String, String, String, String)>;

    /// Subscribes to `event` for `resource` (a SIP URI) through the registrar; NOTIFYs
    /// come as [`StackEvent::SubscriptionNotify`].
    async fn subscribe(
        &self,
        resource: &str,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> Result<(), StackError>;

    /// What to do with new INVITEs from now on.
    fn set_admission(&self, admission: Admission);

    /// Forgets a dialog that has ended.
    fn forget(&self, key: &DialogKey);

    /// Stops routing to this account: its new INVITEs are refused (404) and its events
    /// stop. The endpoint stays.
    fn close(&self);

    /// The events; taken once.
    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StackEvent>>;
}

#[cfg(test)]
mod tests {
    use super::SessionTimer;

    #[test]
    fn session_expires_values() {
        let t = |interval, uac_refreshes| {
            Some(SessionTimer {
                interval,
                uac_refreshes,
            })
        };
        assert_eq!(SessionTimer::parse("1800;refresher=uac"), t(1800, true));
        assert_eq!(SessionTimer::parse(" 4 ; Refresher = UAS"), t(4, false));
        assert_eq!(SessionTimer::parse("90"), t(90, true));
        assert_eq!(SessionTimer::parse(""), None);
        assert_eq!(SessionTimer::parse("-5;refresher=uac"), None);
        assert_eq!(SessionTimer::parse("99999999999"), None);
        assert_eq!(SessionTimer::parse("abc"), None);
    }
}
