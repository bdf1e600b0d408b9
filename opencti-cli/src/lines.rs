//! The desktop protocol over JSON lines: requests on one stream, replies, events and
//! snapshots on another.

use futures::StreamExt;
use opencti_core::protocol::{self, ServerMessage};
use opencti_core::{ErrorKind, Event, Session};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// How many outgoing lines may wait for a slow reader before events start to lag.
const OUTBOX: usize = 1024;

/// Serves `session` until `input` ends: each line of `input` is a request; `output`
/// gets a snapshot first, then every event, every reply, and a fresh snapshot after each
/// resynchronisation or lag.
pub(crate) async fn serve(
    session: Session,
    input: impl AsyncBufRead + Unpin,
    output: impl AsyncWrite + Unpin + Send + 'static,
) -> std::io::Result<()> {
    let (outbox, inbox) = mpsc::channel::<ServerMessage>(OUTBOX);
    let writer = tokio::spawn(write_lines(inbox, output));

    let (snapshot, mut events) = session.snapshot_and_subscribe();
    // The seq of the last event written out (or covered by a snapshot written out): a
    // command's reply waits for its confirming event to be written first.
    let (written, written_rx) = watch::channel(snapshot.seq);
    outbox
        .send(ServerMessage::Snapshot(Box::new(snapshot)))
        .await
        .ok();
    let events_out = outbox.clone();
    let events_session = session.clone();
    let forward = tokio::spawn(async move {
        while let Some(item) = events.next().await {
            let snapshot = match item {
                Ok(event) => {
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
                    opencti_core::DesktopInterface::snapshot(&events_session)
                }
                Err(e) if e.kind() == ErrorKind::Lagged => {
                    opencti_core::DesktopInterface::snapshot(&events_session)
                }
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

    let mut lines = read_lines(input);
    while let Some(line) = lines.next().await {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match protocol::parse_request(&line) {
            Ok(request) => match protocol::start(&session, request).await {
                protocol::Started::Replied(reply) => {
                    let _ = outbox.send(ServerMessage::Reply(reply)).await;
                }
                protocol::Started::Waiting(waiting) => {
                    let outbox = outbox.clone();
                    let mut written = written_rx.clone();
                    // The confirmation is awaited on its own, so a slow command does not
                    // hold up the next request.
                    tokio::spawn(async move {
                        let reply = waiting.reply().await;
                        if let protocol::ReplyOutcome::Confirmed { seq, .. } = &reply.outcome {
                            let seq = *seq;
                            let _ = written.wait_for(|w| *w >= seq).await;
                        }
                        let _ = outbox.send(ServerMessage::Reply(reply)).await;
                    });
                }
            },
            Err(reply) => {
                let _ = outbox.send(ServerMessage::Reply(reply)).await;
            }
        }
    }
    forward.abort();
    drop(outbox);
    let _ = session.stop().await;
    // Give replies still in flight a moment, then finish writing.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(session);
    writer.await.unwrap_or(Ok(()))
}

/// Lines of at most `MAX_REQUEST` bytes; a longer one is cut there, and the rest of it
/// skipped, so memory stays bounded whatever the client sends.
fn read_lines(
    input: impl AsyncBufRead + Unpin,
) -> impl futures::Stream<Item = std::io::Result<String>> + Unpin {
    Box::pin(futures::stream::unfold(input, |mut input| async move {
        let mut line = Vec::new();
        let mut overlong = false;
        loop {
            let buf = match input.fill_buf().await {
                Ok(buf) => buf,
                Err(e) => return Some((Err(e), input)),
            };
            if buf.is_empty() {
                if line.is_empty() && !overlong {
                    return None;
                }
                break;
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = (protocol::MAX_REQUEST + 1).saturating_sub(line.len());
            line.extend_from_slice(&buf[..take.min(room)]);
            overlong |= take > room;
            input.consume(take);
            if done {
                break;
            }
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        Some((Ok(text), input))
    }))
}

async fn write_lines(
    mut inbox: mpsc::Receiver<ServerMessage>,
    mut output: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    while let Some(message) = inbox.recv().await {
        let mut line = serde_json::to_vec(&message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        output.write_all(&line).await?;
        if inbox.is_empty() {
            output.flush().await?;
        }
    }
    output.flush().await
}
