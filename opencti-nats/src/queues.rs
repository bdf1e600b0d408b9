//! Publishing a site's queue figures to JetStream.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use opencti_core::queue::QueueBoard;
use opencti_core::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::publish::KIND_HEADER;
use crate::subject::Site;

/// [`KIND_HEADER`] of a queue event on `opencti.<site>.queues`: the payload is the core's
/// `QueueEnvelope` JSON (the event, its `seq` and time, and the figures of every queue it
/// changed).
pub const KIND_QUEUE_EVENT: &str = "queue_event";
/// [`KIND_HEADER`] of the queues' figures on `opencti.<site>.queues`: the payload is the
/// core's `QueueSnapshot` JSON (every queue), published when publishing starts and after
/// events were skipped; events with a higher `seq` follow it.
pub const KIND_QUEUE_SNAPSHOT: &str = "queue_snapshot";

/// Publishes a [`QueueBoard`] of `site` (its figures first, then each of its events, in
/// `seq` order) until dropped: what wallboards and analytics jobs of the site follow. The
/// stream must exist ([`ensure_stream`](crate::ensure_stream)).
///
/// Each message's `Nats-Msg-Id` is `<site>.queues.<epoch>.<seq>` (`...snapshot.<seq>` for
/// the figures), `epoch` telling this board from an earlier one (a link service that took
/// over starts a board of its own). A publish that fails is logged and retried with the
/// same id; a publisher that falls behind the board publishes its figures again and
/// carries on after them.
#[must_use = "the queues are published only while the QueueFeed lives"]
#[derive(Debug)]
pub struct QueueFeed {
    task: JoinHandle<()>,
    published: watch::Receiver<u64>,
}

impl QueueFeed {
    /// Starts publishing `board`.
    pub fn start(jetstream: jetstream::Context, site: Site, board: QueueBoard) -> QueueFeed {
        let epoch = Timestamp::now();
        let (published, watcher) = watch::channel(0);
        let task = tokio::spawn(run(jetstream, site, board, epoch, published));
        QueueFeed {
            task,
            published: watcher,
        }
    }

    /// Waits until the board's event `seq` (or figures covering it) is in the stream, at
    /// most `timeout`; `false` if it is not.
    pub async fn published(&self, seq: u64, timeout: Duration) -> bool {
        let mut published = self.published.clone();
        tokio::time::timeout(timeout, published.wait_for(|&done| done >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for QueueFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    jetstream: jetstream::Context,
    site: Site,
    board: QueueBoard,
    epoch: Timestamp,
    published: watch::Sender<u64>,
) {
    let subject = site.queues();
    let (snapshot, mut events) = board.snapshot_and_subscribe();
    let mut covered = snapshot.seq;
    let id = |what: &str, seq: u64| format!("{site}.queues.{}.{what}{seq}", epoch.as_micros());
    publish(
        &jetstream,
        &subject,
        id("snapshot.", covered),
        KIND_QUEUE_SNAPSHOT,
        serde_json::to_vec(&snapshot),
    )
    .await;
    published.send_replace(covered);
    while let Some(next) = events.next().await {
        match next {
            Ok(envelope) if envelope.seq <= covered => {}
            Ok(envelope) => {
                let seq = envelope.seq;
                publish(
                    &jetstream,
                    &subject,
                    id("", seq),
                    KIND_QUEUE_EVENT,
                    serde_json::to_vec(&*envelope),
                )
                .await;
                covered = seq;
            }
            Err(error) => {
                let snapshot = board.snapshot();
                tracing::warn!(%site, %error, seq = snapshot.seq, "the queue publisher fell behind; publishing the figures instead");
                covered = snapshot.seq;
                publish(
                    &jetstream,
                    &subject,
                    id("snapshot.", covered),
                    KIND_QUEUE_SNAPSHOT,
                    serde_json::to_vec(&snapshot),
                )
                .await;
            }
        }
        published.send_replace(covered);
    }
}

/// Publishes one message, retrying with the same id until the stream has it.
async fn publish(
    jetstream: &jetstream::Context,
    subject: &str,
    id: String,
    kind: &'static str,
    payload: serde_json::Result<Vec<u8>>,
) {
    let payload = match payload {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(%error, id, "could not encode the queues' message; skipped");
            return;
        }
    };
    let mut wait = Duration::from_millis(50);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(KIND_HEADER, kind);
        let acked = match jetstream
            .publish_with_headers(subject.to_owned(), headers, payload.clone().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match acked {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, id, "publishing the queues failed; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
