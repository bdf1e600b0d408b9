//! One browser connection: authenticate first, then the desktop protocol over WebSocket
//! text frames, within the connection's limits.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use opencti_core::protocol::{self, Reply, ReplyOutcome, RequestId, ServerMessage};
use opencti_core::{Error, ErrorKind};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::contacts::{is_contacts_request, ContactsReply, Searcher};
use crate::limits::{Bucket, Limits};
use crate::router::Shared;
use crate::supervisor::is_supervisor_request;

/// The first message a browser sends: `{"auth":{"token":"..."}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hello {
    auth: HelloAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HelloAuth {
    token: String,
}

fn error_message(id: Option<&str>, error: Error) -> ServerMessage {
    ServerMessage::Reply(Reply {
        id: id.and_then(|i| RequestId::new(i).ok()),
        outcome: ReplyOutcome::Error(error.to_body()),
    })
}

fn frame(message: &ServerMessage) -> Message {
    // Serialising our own types cannot fail; an empty object is the harmless fallback.
    let text = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_string());
    Message::Text(Utf8Bytes::from(text))
}

pub(crate) async fn serve(socket: WebSocket, shared: Arc<Shared>, peer: Option<SocketAddr>) {
    let (mut sink, mut stream) = socket.split();
    let limits = shared.limits;

    // 1. Authenticate, before anything else is read or sent.
    let first = tokio::time::timeout(limits.auth_timeout, stream.next()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(text)))) if text.len() <= limits.max_message_bytes => text,
        Err(_) => {
            tracing::warn!(?peer, "connection closed: no authentication in time");
            let refusal = Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "authenticate within {:?} with {{\"auth\":{{\"token\":...}}}}",
                    limits.auth_timeout
                ),
            );
            let _ = sink
                .send(frame(&error_message(Some("auth"), refusal)))
                .await;
            let _ = sink.close().await;
            return;
        }
        _ => {
            tracing::warn!(
                ?peer,
                "connection closed: the first message was not an authentication"
            );
            let refusal = Error::new(
                ErrorKind::Unauthorized,
                "the first message must be {\"auth\":{\"token\":...}}",
            );
            let _ = sink
                .send(frame(&error_message(Some("auth"), refusal)))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    let grant = match serde_json::from_str::<Hello>(&text) {
        Ok(hello) => shared.authenticator.authenticate(&hello.auth.token).await,
        Err(_) => Err(Error::new(
            ErrorKind::Unauthorized,
            "the first message must be {\"auth\":{\"token\":...}}",
        )),
    };
    let grant = match grant {
        Ok(grant) => grant,
        Err(error) => {
            // The token is never logged; the authenticator's message must not hold it.
            tracing::warn!(?peer, reason = %error.message(), "authentication refused");
            let refusal = Error::new(ErrorKind::Unauthorized, error.message().to_string());
            let _ = sink
                .send(frame(&error_message(Some("auth"), refusal)))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    if grant.role == Role::Supervisor {
        return crate::supervisor::serve(sink, stream, shared, grant, peer).await;
    }
    let desk = match shared.sessions.for_grant(&grant).await {
        Ok(desk) => desk,
        Err(error) => {
            tracing::warn!(?peer, agent = %grant.agent, %error, "no session for the agent");
            let _ = sink.send(frame(&error_message(Some("auth"), error))).await;
            let _ = sink.close().await;
            return;
        }
    };
    tracing::info!(?peer, agent = %grant.agent, device = %grant.device, "desktop connected");

    // 2. The protocol: everything for the browser goes through one outbox, in order.
    let (outbox, mut inbox) = mpsc::channel::<ServerMessage>(protocol::OUTBOX);
    let (closing, mut close_with) = tokio::sync::oneshot::channel::<CloseFrame>();
    let mut pops = desk.pops.subscribe();
    let mut waiting = queues_waiting(&shared, &grant);
    let (found, mut contacts) = mpsc::channel::<ContactsReply>(4);
    let searcher = Searcher::start(shared.sessions.crm.clone(), found);
    let writer = tokio::spawn(async move {
        // The desk's snapshot is the first message; the queues' figures follow it.
        let mut snapshot_sent = false;
        loop {
            let frame = tokio::select! {
                message = inbox.recv() => match message {
                    Some(message) => {
                        snapshot_sent = true;
                        frame(&message)
                    }
                    None => break,
                },
                Some(reply) = contacts.recv() => Message::Text(Utf8Bytes::from(reply.to_json())),
                Some(text) = waiting.next(), if snapshot_sent => Message::Text(text),
                pop = pops.recv() => match pop {
                    Ok(pop) => {
                        let text = serde_json::json!({ "screen_pop": &*pop }).to_string();
                        Message::Text(Utf8Bytes::from(text))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                close = &mut close_with => {
                    // What is already queued (the refusal among it) goes first.
                    while let Ok(message) = inbox.try_recv() {
                        if sink.send(frame(&message)).await.is_err() {
                            return;
                        }
                    }
                    if let Ok(close) = close {
                        let _ = sink.send(Message::Close(Some(close))).await;
                    }
                    break;
                }
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut bucket = Bucket::new(&limits);
    let refusals = outbox.clone();
    // The frame that ends the connection when a frame cannot be read: too large to
    // buffer, or a text frame that is not UTF-8.
    let fatal: Arc<std::sync::Mutex<Option<CloseFrame>>> = Arc::default();
    let fatal_in = fatal.clone();
    // Nothing is read after a close or an error: the reader may be mid-frame.
    let frames = futures::stream::unfold((stream, false), |(mut stream, done)| async move {
        if done {
            return None;
        }
        let item = stream.next().await?;
        let done = matches!(item, Err(_) | Ok(Message::Close(_)));
        Some((item, (stream, done)))
    });
    let requests = frames.filter_map(move |item| {
        let verdict = match item {
            Ok(Message::Text(text)) => {
                if text.len() > limits.max_message_bytes {
                    Err(Error::new(
                        ErrorKind::BadInput,
                        format!(
                            "message of {} bytes; at most {} are accepted",
                            text.len(),
                            limits.max_message_bytes
                        ),
                    ))
                } else if !bucket.take() {
                    Err(Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "more than {} requests a second; this one was dropped",
                            limits.requests_per_second
                        ),
                    ))
                } else if is_supervisor_request(&text) {
                    Err(Error::new(
                        ErrorKind::Unauthorized,
                        "supervisor commands need a supervisor's sign-in",
                    ))
                } else if is_contacts_request(&text) {
                    // The gateway's own request: answered beside the desktop protocol.
                    searcher.ask(text.to_string());
                    Ok(None)
                } else {
                    Ok(Some(text.to_string()))
                }
            }
            Ok(Message::Binary(_)) => Err(Error::new(
                ErrorKind::BadInput,
                "binary frames are not part of the protocol: send JSON text frames",
            )),
            Ok(_) => Ok(None),
            Err(error) => match unreadable(error, &limits) {
                Some((refusal, close)) => {
                    tracing::warn!(
                        ?peer,
                        code = close.code,
                        "connection closed: {}",
                        close.reason
                    );
                    *fatal_in.lock().unwrap_or_else(|e| e.into_inner()) = Some(close);
                    Err(refusal)
                }
                None => Ok(None),
            },
        };
        let refusals = refusals.clone();
        async move {
            match verdict {
                Ok(text) => text,
                Err(error) => {
                    let _ = refusals.try_send(error_message(None, error));
                    None
                }
            }
        }
    });
    protocol::serve_connection(desk.session.clone(), Box::pin(requests), outbox).await;
    tracing::info!(?peer, agent = %grant.agent, "desktop disconnected");
    let close = fatal.lock().unwrap_or_else(|e| e.into_inner()).take();
    match close {
        Some(close) => {
            // Let the writer send the refusal and the close frame, briefly.
            let _ = closing.send(close);
            let mut writer = writer;
            if tokio::time::timeout(Duration::from_secs(2), &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        }
        None => writer.abort(),
    }
}

/// How many callers wait in each queue the agent works in: now, then at every change.
/// Nothing without a queue board.
fn queues_waiting(
    shared: &Arc<Shared>,
    grant: &crate::auth::Grant,
) -> futures::stream::BoxStream<'static, Utf8Bytes> {
    let Some(board) = shared.sessions.queues() else {
        return futures::stream::pending().boxed();
    };
    let centre = shared
        .centre
        .get_or_init(|| crate::centre::Centre::start(&shared.sessions))
        .clone();
    let (now, receivers): (Vec<Utf8Bytes>, Vec<_>) = board
        .queues_of(&grant.agent)
        .iter()
        .filter_map(|queue| centre.follow_waiting(&shared.sessions, queue))
        .unzip();
    let changes = receivers.into_iter().map(|receiver| {
        futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(text) => return Some((text, receiver)),
                    // The next change brings the figure level again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    });
    futures::stream::iter(now)
        .chain(futures::stream::select_all(changes))
        .chain(futures::stream::pending())
        .boxed()
}

/// The refusal and the close frame for a frame that could not be read, or `None` for a
/// connection that simply went away.
fn unreadable(error: axum::Error, limits: &Limits) -> Option<(Error, CloseFrame)> {
    use tungstenite::error::Error as WsError;
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>()? {
        WsError::Capacity(_) => Some((
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "a frame or message too large to read (at most {} bytes are accepted); \
                     the connection is closed",
                    limits.max_message_bytes
                ),
            ),
            CloseFrame {
                code: close_code::SIZE,
                reason: Utf8Bytes::from_static("message too big"),
            },
        )),
        WsError::Utf8(_) => Some((
            Error::new(
                ErrorKind::BadInput,
                "a text frame that is not UTF-8; the connection is closed",
            ),
            CloseFrame {
                code: close_code::INVALID,
                reason: Utf8Bytes::from_static("text frame is not UTF-8"),
            },
        )),
        _ => None,
    }
}
