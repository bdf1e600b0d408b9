//! A supervisor's connection: the whole centre first, then its changes, and the
//! supervisor commands.
//!
//! Requests: `{"id":"r1","supervise":{"type":"force_not_ready","agent":"alice",
//! "reason":"meeting"}}`, `{"type":"force_log_out","agent":..}` and
//! `{"type":"monitor","agent":..,"mode":"listen"|"whisper"|"barge"}`. Each is answered
//! `{"reply":{"id":"r1","done":true}}` once the agent's session confirmed it, or
//! `{"reply":{"id":"r1","error":{..}}}`. The commands act through the agent's own
//! session, so the switch and the agent's desk see them as any other change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use opencti_core::protocol::RequestId;
use opencti_core::{
    AgentId, CallState, DesktopInterface, DesktopInterfaceExt, Error, ErrorBody, ErrorKind,
    MonitorMode, ReasonCode, Result,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::auth::Grant;
use crate::centre::Centre;
use crate::limits::Bucket;
use crate::request_text::{has_member, request_id};
use crate::router::Shared;

/// Supervisor commands one connection may have running at once.
const RUNNING_AT_ONCE: usize = 4;

/// `{"id":..,"supervise":{..}}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupervisorRequest {
    /// The request's id, echoed in the reply.
    id: String,
    /// What to do.
    supervise: Supervise,
}

/// A supervisor command.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Supervise {
    /// Makes the agent not ready (after their current call, if they are on one).
    ForceNotReady {
        agent: AgentId,
        #[serde(default)]
        reason: Option<ReasonCode>,
    },
    /// Logs the agent out.
    ForceLogOut { agent: AgentId },
    /// Rings the supervisor's device and joins it to the agent's call.
    Monitor { agent: AgentId, mode: MonitorMode },
}

/// `{"reply":{"id":..,"done":true}}` or `{"reply":{"id":..,"error":{..}}}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SupervisorReply {
    reply: ReplyBody,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct ReplyBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<RequestId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl SupervisorReply {
    fn outcome(id: Option<RequestId>, outcome: Result<()>) -> Self {
        let (done, error) = match outcome {
            Ok(()) => (Some(true), None),
            Err(error) => (None, Some(error.to_body())),
        };
        SupervisorReply {
            reply: ReplyBody { id, done, error },
        }
    }

    fn text(&self) -> Utf8Bytes {
        // Serialising our own types cannot fail; an empty object is the harmless fallback.
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string()))
    }
}

/// Whether `text` is a supervisor command: only those have a top-level `supervise`.
pub(crate) fn is_supervisor_request(text: &str) -> bool {
    has_member(text, "supervise")
}

/// Serves a supervisor until the connection ends.
pub(crate) async fn serve(
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    shared: Arc<Shared>,
    grant: Grant,
    peer: Option<SocketAddr>,
) {
    let limits = shared.limits;
    let centre = shared
        .centre
        .get_or_init(|| Centre::start(&shared.sessions))
        .clone();
    // Subscribed before the whole is read: nothing falls between the two.
    let mut updates = centre.subscribe();
    let whole = centre.whole(&shared.sessions).await;
    if sink.send(Message::Text(whole)).await.is_err() {
        return;
    }
    tracing::info!(?peer, supervisor = %grant.agent, "supervisor connected");
    let (replies, mut to_send) = mpsc::channel::<Utf8Bytes>(RUNNING_AT_ONCE * 2);
    let running = Arc::new(AtomicUsize::new(0));
    let mut bucket = Bucket::new(&limits);
    loop {
        let message = tokio::select! {
            update = updates.recv() => match update {
                Ok(text) => Message::Text(text),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Message::Text(centre.whole(&shared.sessions).await)
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some(reply) = to_send.recv() => Message::Text(reply),
            frame = stream.next() => {
                let refusal = match frame {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > limits.max_message_bytes {
                            Some(Error::new(
                                ErrorKind::BadInput,
                                format!(
                                    "message of {} bytes; at most {} are accepted",
                                    text.len(),
                                    limits.max_message_bytes
                                ),
                            ))
                        } else if !bucket.take() {
                            Some(Error::new(
                                ErrorKind::RateLimited,
                                format!(
                                    "more than {} requests a second; this one was dropped",
                                    limits.requests_per_second
                                ),
                            ))
                        } else {
                            start(&text, &shared, &grant, &replies, &running).err()
                        }
                    }
                    Some(Ok(Message::Binary(_))) => Some(Error::new(
                        ErrorKind::BadInput,
                        "binary frames are not part of the protocol: send JSON text frames",
                    )),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => None,
                };
                match refusal {
                    Some(error) => Message::Text(SupervisorReply::outcome(None, Err(error)).text()),
                    None => continue,
                }
            }
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
    tracing::info!(?peer, supervisor = %grant.agent, "supervisor disconnected");
    let _ = sink.close().await;
}

/// Reads a request and starts it; its reply goes to `replies` when it is done. A request
/// that cannot be read is refused at once, as is one beyond those already running.
fn start(
    text: &str,
    shared: &Arc<Shared>,
    grant: &Grant,
    replies: &mpsc::Sender<Utf8Bytes>,
    running: &Arc<AtomicUsize>,
) -> Result<()> {
    let request: SupervisorRequest = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(error) => {
            // Answered under the request's id where one can be read.
            let id = request_id(text);
            let refusal = Error::new(
                ErrorKind::BadInput,
                format!(
                    "a supervisor request is {{\"id\":\"..\",\"supervise\":{{\"type\":..,\"agent\":..}}}}: {}",
                    error
                ),
            );
            if id.is_none() {
                return Err(refusal);
            }
            let _ = replies.try_send(SupervisorReply::outcome(id, Err(refusal)).text());
            return Ok(());
        }
    };
    let id = RequestId::new(&request.id)?;
    if running.fetch_add(1, Ordering::SeqCst) >= RUNNING_AT_ONCE {
        running.fetch_sub(1, Ordering::SeqCst);
        let busy = Error::new(
            ErrorKind::RateLimited,
            format!(
                "{} supervisor commands are running; wait for one to finish",
                RUNNING_AT_ONCE
            ),
        );
        let _ = replies.try_send(SupervisorReply::outcome(Some(id), Err(busy)).text());
        return Ok(());
    }
    let (shared, grant, replies, running) = (
        shared.clone(),
        grant.clone(),
        replies.clone(),
        running.clone(),
    );
    tokio::spawn(async move {
        let outcome = run(&shared, &grant, request.supervise).await;
        running.fetch_sub(1, Ordering::SeqCst);
        let _ = replies
            .send(SupervisorReply::outcome(Some(id), outcome).text())
            .await;
    });
    Ok(())
}

async fn run(shared: &Shared, supervisor: &Grant, command: Supervise) -> Result<()> {
    let agent = match &command {
        Supervise::ForceNotReady { agent, .. }
        | Supervise::ForceLogOut { agent }
        | Supervise::Monitor { agent, .. } => agent.clone(),
    };
    let session = shared.sessions.of_agent(&agent).await.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("agent {} has no session on this gateway", agent),
        )
    })?;
    let outcome = match command {
        Supervise::ForceNotReady { reason, .. } => session.not_ready(reason).await.map(|_| ()),
        Supervise::ForceLogOut { .. } => session.logout(None).await.map(|_| ()),
        Supervise::Monitor { mode, .. } => {
            let snapshot = session.snapshot();
            let on_call = snapshot
                .calls
                .iter()
                .any(|c| matches!(c.state, CallState::Connected | CallState::Held));
            if !on_call {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("agent {} is on no call to {}", agent, mode.as_str()),
                ));
            }
            shared
                .sessions
                .factory
                .monitor(supervisor, &snapshot, mode)
                .await
        }
    };
    match &outcome {
        Ok(()) => tracing::info!(supervisor = %supervisor.agent, %agent, "supervisor command done"),
        Err(error) => {
            tracing::info!(supervisor = %supervisor.agent, %agent, %error, "supervisor command refused")
        }
    }
    outcome
}
