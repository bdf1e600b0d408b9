//! The desktop protocol: the JSON messages a remote desktop exchanges with a session, over
//! JSON lines (`opencti connect`) or WebSocket (the browser gateway).
//!
//! The client sends requests, each with an id of its choosing:
//!
//! ```text
//! {"id":"r1","command":{"type":"answer","call":"call-3"}}
//! {"id":"r2","query":{"type":"snapshot"}}
//! {"id":"r3","query":{"type":"allowed_commands","call":"call-3"}}
//! ```
//!
//! The server sends replies, events and snapshots, each tagged by its one key:
//!
//! ```text
//! {"snapshot":{"seq":4,"agent":"alice",...}}
//! {"event":{"seq":5,"at":...,"type":"call_offered","call":"call-3",...}}
//! {"reply":{"id":"r1","confirmed":{"command":2,"seq":6}}}
//! {"reply":{"id":"r9","error":{"kind":"invalid_state","message":"...","allowed":["answer"]}}}
//! ```
//!
//! Requests take effect in the order they arrive, each checked against the state as
//! confirmed so far: a command that depends on another (ready after login) is sent once
//! the other's reply has come. A command's reply comes when its confirming event has
//! arrived (after that event), or when it fails; replies to different requests may come
//! in any order. A line that is not
//! a valid request gets a reply with the error, and with the id when one could be read.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::capabilities::Capabilities;
use crate::command::{Command, CommandSet};
use crate::desktop::DesktopInterface;
use crate::error::ErrorBody;
use crate::event::{Event, EventEnvelope};
use crate::ids::{CallId, CommandId};
use crate::line_access::LineAccess;
use crate::session::PendingCommand;
use crate::snapshot::Snapshot;
use crate::text::{no_control, validated_text};
use crate::{Error, ErrorKind};

validated_text!(
    /// The client's id for a request, echoed in its reply: any text without control
    /// characters, at most 64 bytes.
    RequestId, what = "request id", max = 64, check = no_control
);

/// A question answered from the session's state, without asking the switch.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Query {
    /// The agent, its calls and the link.
    Snapshot {},
    /// What the connector can do.
    Capabilities {},
    /// The commands allowed now, for the agent or one call.
    AllowedCommands {
        /// The call, or none for the agent's own commands.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<CallId>,
    },
}

/// What a request asks for.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestBody {
    /// Carry out a command.
    Command(Command),
    /// Answer a query.
    Query(Query),
}

/// One message from the client.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    /// The client's id, echoed in the reply.
    pub id: RequestId,
    /// The command or query.
    #[serde(flatten)]
    pub body: RequestBody,
}

/// The answer to one request.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id; absent when the request was too broken to read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: ReplyOutcome,
}

/// What a request came to.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplyOutcome {
    /// The command took effect: its id and the `seq` of the event that confirmed it.
    Confirmed {
        /// The command's id.
        command: CommandId,
        /// The confirming event's `seq`.
        seq: u64,
    },
    /// The session's snapshot.
    Snapshot(Box<Snapshot>),
    /// The connector's capabilities.
    Capabilities(Capabilities),
    /// The commands allowed now.
    AllowedCommands(CommandSet),
    /// The request failed.
    Error(ErrorBody),
}

/// One message from the server.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The whole state: sent on connect and after every resynchronisation.
    Snapshot(Box<Snapshot>),
    /// A canonical event.
    Event(Box<EventEnvelope>),
    /// The answer to a request.
    Reply(Reply),
}

/// The longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Reads one request, or says why it cannot be read (with its id, where one is there).
pub fn parse_request(text: &str) -> Result<ClientRequest, Reply> {
    if text.len() > MAX_REQUEST {
        return Err(error_reply(
            None,
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "request of {} bytes; at most {} are accepted",
                    text.len(),
                    MAX_REQUEST
                ),
            ),
        ));
    }
    serde_json::from_str::<ClientRequest>(text).map_err(|e| {
        // Recover the id, if the line is JSON with a usable one, so the client can match.
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .and_then(|id| RequestId::new(id).ok());
        error_reply(
            id,
            Error::new(ErrorKind::BadInput, format!("not a valid request: {}", e)),
        )
    })
}

fn error_reply(id: Option<RequestId>, error: Error) -> Reply {
    Reply {
        id,
        outcome: ReplyOutcome::Error(error.to_body()),
    }
}

/// A request under way: answered at once, or a command waiting for its confirmation.
#[derive(Debug)]
pub enum Started {
    /// The reply is ready (a query, or a command refused before it reached the switch).
    Replied(Reply),
    /// The command went to the switch; [`Waiting::reply`] gives its reply when it is
    /// confirmed or fails.
    Waiting(Waiting),
}

/// A command handed to the switch, waiting for its confirming event.
#[derive(Debug)]
pub struct Waiting {
    id: RequestId,
    pending: PendingCommand,
}

impl Waiting {
    /// Waits for the command's outcome and turns it into the reply.
    pub async fn reply(self) -> Reply {
        let outcome = match self.pending.confirmed().await {
            Ok(confirmation) => ReplyOutcome::Confirmed {
                command: confirmation.command,
                seq: confirmation.event.seq,
            },
            Err(error) => ReplyOutcome::Error(error.to_body()),
        };
        Reply {
            id: Some(self.id),
            outcome,
        }
    }
}

/// Starts one request on a session: queries are answered and commands are checked and
/// handed to the switch at once, so requests take effect in the order they arrive;
/// confirmations are then awaited separately, so one slow command does not hold up the
/// next.
pub async fn start(line: &dyn LineAccess, request: ClientRequest) -> Started {
    match request.body {
        RequestBody::Command(command) => match line.submit(command).await {
            Ok(pending) => Started::Waiting(Waiting {
                id: request.id,
                pending,
            }),
            Err(error) => Started::Replied(Reply {
                id: Some(request.id),
                outcome: ReplyOutcome::Error(error.to_body()),
            }),
        },
        RequestBody::Query(_) => Started::Replied(handle(line, request).await),
    }
}

/// How many outgoing messages may wait for a slow client before its events lag (and a
/// snapshot stands in for the skipped ones).
pub const OUTBOX: usize = 1024;

/// Serves one client connection on a line's session (in this process or reached through
/// a transport), whatever carries the connection: each item of `requests` is one
/// request's text; every message for the client goes into `outbox`.
///
/// The client gets a snapshot first, then every event after it, the replies (each after
/// the event that confirmed its command), and a fresh snapshot after each
/// resynchronisation or lag; no event the client already has through a snapshot is sent
/// again. Returns when `requests` ends or the outbox closes; the session is left running.
pub async fn serve_connection(
    line: Arc<dyn LineAccess>,
    mut requests: impl Stream<Item = String> + Unpin,
    outbox: mpsc::Sender<ServerMessage>,
) {
    let (snapshot, mut events) = line.snapshot_and_subscribe();
    // The seq of the last event handed to the client (or covered by a snapshot handed
    // over): a command's reply waits until its confirming event went first.
    let (written, written_rx) = watch::channel(snapshot.seq);
    if outbox
        .send(ServerMessage::Snapshot(Box::new(snapshot)))
        .await
        .is_err()
    {
        return;
    }
    let events_out = outbox.clone();
    let events_line = line.clone();
    let forward = tokio::spawn(async move {
        while let Some(item) = events.next().await {
            let snapshot = match item {
                Ok(event) => {
                    // Held by the last snapshot sent (taken after the event was queued).
                    if event.seq <= *written.borrow() {
                        continue;
                    }
                    let resynced = matches!(event.event, Event::Resynced { .. });
                    let seq = event.seq;
                    if events_out
                        .send(ServerMessage::Event(Box::new((*event).clone())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    written.send_replace(seq);
                    if !resynced {
                        continue;
                    }
                    events_line.snapshot()
                }
                Err(e) if e.kind() == ErrorKind::Lagged => events_line.snapshot(),
                Err(_) => return,
            };
            let seq = snapshot.seq;
            if events_out
                .send(ServerMessage::Snapshot(Box::new(snapshot)))
                .await
                .is_err()
            {
                return;
            }
            written.send_replace(seq);
        }
    });

    while let Some(text) = requests.next().await {
        if outbox.is_closed() {
            break;
        }
        if text.trim().is_empty() {
            continue;
        }
        let request = match parse_request(&text) {
            Ok(request) => request,
            Err(reply) => {
                let _ = outbox.send(ServerMessage::Reply(reply)).await;
                continue;
            }
        };
        match start(line.as_ref(), request).await {
            Started::Replied(reply) => {
                let _ = outbox.send(ServerMessage::Reply(reply)).await;
            }
            Started::Waiting(waiting) => {
                let outbox = outbox.clone();
                let mut written = written_rx.clone();
                // The confirmation is awaited on its own, so a slow command does not hold
                // up the next request.
                tokio::spawn(async move {
                    let reply = waiting.reply().await;
                    if let ReplyOutcome::Confirmed { seq, .. } = &reply.outcome {
                        let seq = *seq;
                        let _ = written.wait_for(|w| *w >= seq).await;
                    }
                    let _ = outbox.send(ServerMessage::Reply(reply)).await;
                });
            }
        }
    }
    forward.abort();
}

/// Carries out one request on a desktop and says how it went.
pub async fn handle(desktop: &dyn DesktopInterface, request: ClientRequest) -> Reply {
    let outcome = match request.body {
        RequestBody::Command(command) => match desktop.execute(command).await {
            Ok(confirmation) => ReplyOutcome::Confirmed {
                command: confirmation.command,
                seq: confirmation.event.seq,
            },
            Err(error) => ReplyOutcome::Error(error.to_body()),
        },
        RequestBody::Query(Query::Snapshot {}) => {
            ReplyOutcome::Snapshot(Box::new(desktop.snapshot()))
        }
        RequestBody::Query(Query::Capabilities {}) => {
            ReplyOutcome::Capabilities(desktop.capabilities())
        }
        RequestBody::Query(Query::AllowedCommands { call }) => {
            ReplyOutcome::AllowedCommands(desktop.allowed_commands(call.as_ref()))
        }
    };
    Reply {
        id: Some(request.id),
        outcome,
    }
}

/// The JSON Schema of the protocol: what a client sends (`client_to_server`) and what it
/// receives (`server_to_client`), generated from these types so it cannot drift from
/// them.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    serde_json::json!({
        "title": "opencti desktop protocol",
        "client_to_server": schemars::schema_for!(ClientRequest),
        "server_to_client": schemars::schema_for!(ServerMessage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_commands_and_queries_and_refuse_the_rest_naming_the_id() {
        let r = parse_request(r#"{"id":"r1","command":{"type":"hold","call":"c1"}}"#).unwrap();
        assert_eq!(r.id.as_str(), "r1");
        assert!(matches!(r.body, RequestBody::Command(Command::Hold { .. })));
        let r = parse_request(r#"{"id":"r2","query":{"type":"allowed_commands"}}"#).unwrap();
        assert_eq!(
            r.body,
            RequestBody::Query(Query::AllowedCommands { call: None })
        );
        let bad = parse_request(r#"{"id":"r3","command":{"type":"hold"}}"#).unwrap_err();
        assert_eq!(bad.id.unwrap().as_str(), "r3");
        match bad.outcome {
            ReplyOutcome::Error(e) => {
                assert_eq!(e.kind, ErrorKind::BadInput);
                assert!(e.message.contains("missing field `call`"), "{}", e.message);
            }
            other => panic!("{:?}", other),
        }
        let bad = parse_request(r#"{"id":"r4","query":{"type":"snapshot"},"x":1}"#).unwrap_err();
        assert!(matches!(bad.outcome, ReplyOutcome::Error(_)));
        let bad = parse_request("not json").unwrap_err();
        assert_eq!(bad.id, None);
        let huge = format!(r#"{{"id":"r5","pad":"{}"}}"#, "x".repeat(MAX_REQUEST));
        let bad = parse_request(&huge).unwrap_err();
        match bad.outcome {
            ReplyOutcome::Error(e) => assert!(e.message.contains("at most 65536")),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn server_messages_are_tagged_by_one_key() {
        let reply = ServerMessage::Reply(Reply {
            id: Some(RequestId::new("r1").unwrap()),
            outcome: ReplyOutcome::Confirmed {
                command: CommandId::new(std::num::NonZeroU64::MIN),
                seq: 6,
            },
        });
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"reply":{"id":"r1","confirmed":{"command":1,"seq":6}}}"#
        );
        let back: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
        assert_eq!(back, reply);
    }
}
