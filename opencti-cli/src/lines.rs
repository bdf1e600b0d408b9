//! The desktop protocol over JSON lines: requests on one stream, replies, events and
//! snapshots on another. The protocol itself is `opencti_core::protocol`.

use futures::StreamExt;
use opencti_core::protocol::{self, ServerMessage};
use std::sync::Arc;

use opencti_core::Session;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Serves `session` until `input` ends: each line of `input` is a request; `output` gets
/// one message a line.
pub(crate) async fn serve(
    session: Session,
    input: impl AsyncBufRead + Unpin,
    output: impl AsyncWrite + Unpin + Send + 'static,
) -> std::io::Result<()> {
    let (outbox, inbox) = mpsc::channel::<ServerMessage>(protocol::OUTBOX);
    let writer = tokio::spawn(write_lines(inbox, output));
    // A read error ends the input, as its end does.
    let requests = read_lines(input)
        .take_while(|line| std::future::ready(line.is_ok()))
        .filter_map(|line| std::future::ready(line.ok()));
    protocol::serve_connection(Arc::new(session.clone()), Box::pin(requests), outbox).await;
    let _ = session.stop().await;
    // Replies still in flight hold the outbox open for a moment; then the writer ends.
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
