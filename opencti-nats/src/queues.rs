//! Publishing a site's queue figures to JetStream.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use opencti_core::queue::{Mirrored, QueueBoard, QueueEnvelope, QueueMirror, QueueSnapshot};
use opencti_core::{AgentId, Error, ErrorKind, LinkState, QueueId, Result, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::publish::kind_of;
use crate::publish::KIND_HEADER;
use crate::subject::Site;

/// [`KIND_HEADER`] of a queue event on `opencti.<site>.queues.events`: the payload is the core's
/// `QueueEnvelope` JSON (the event, its `seq` and time, and the figures of every queue it
/// changed).
pub const KIND_QUEUE_EVENT: &str = "queue_event";
/// [`KIND_HEADER`] of the queues' figures on `opencti.<site>.queues.figures`: the payload is the
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
    let (figures, events_subject) = (site.queue_figures(), site.queue_events());
    let (snapshot, mut events) = board.snapshot_and_subscribe();
    let mut covered = snapshot.seq;
    let id = |what: &str, seq: u64| format!("{site}.queues.{}.{what}{seq}", epoch.as_micros());
    // The figures as of a snapshot: what a follower starts from, and starts again from
    // when the publisher fell behind the board.
    let publish_figures = |snapshot: QueueSnapshot| {
        let (jetstream, figures, id) = (&jetstream, &figures, id("snapshot.", snapshot.seq));
        async move {
            let body = serde_json::to_vec(&snapshot);
            publish(jetstream, figures, id, KIND_QUEUE_SNAPSHOT, body).await;
        }
    };
    publish_figures(snapshot).await;
    published.send_replace(covered);
    while let Some(next) = events.next().await {
        match next {
            Ok(envelope) if envelope.seq <= covered => {}
            Ok(envelope) => {
                let seq = envelope.seq;
                publish(
                    &jetstream,
                    &events_subject,
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
                publish_figures(snapshot).await;
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

/// A [`QueueMirror`] of the board a site's link service publishes, kept from the stream
/// (a gateway on NATS shows its figures): its last published figures, then each event
/// after them. Stops following when dropped.
///
/// Before any link service has published a board, the copy is empty with the link down;
/// a link service that takes over publishes its board's figures first, which replace the
/// copy. Reading the stream in order, the copy misses nothing; an event that does not
/// follow on is set aside until the next figures.
#[derive(Debug)]
pub struct RemoteQueues {
    mirror: QueueMirror,
    task: JoinHandle<()>,
}

impl RemoteQueues {
    /// Follows `site`'s queues; `members` are the queues each agent belongs to as far as
    /// the caller knows (a deployment file says), for an agent's "waiting in my queues".
    pub async fn open(
        jetstream: &jetstream::Context,
        site: &Site,
        members: HashMap<AgentId, Vec<QueueId>>,
    ) -> Result<RemoteQueues> {
        let unreachable = |what: &str, e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::LinkDown, format!("{what}: {e}"))
        };
        let stream = jetstream
            .get_stream(site.stream_name())
            .await
            .map_err(|e| unreachable(&format!("stream {} is not there", site.stream_name()), &e))?;
        let last = match stream
            .get_last_raw_message_by_subject(&site.queue_figures())
            .await
        {
            Ok(message) => Some(message),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                None
            }
            Err(e) => return Err(unreachable("could not read the queues' last figures", &e)),
        };
        let (snapshot, deliver_policy) = match last {
            Some(message) => {
                let snapshot: QueueSnapshot =
                    serde_json::from_slice(&message.payload).map_err(|e| {
                        Error::new(
                            ErrorKind::BadInput,
                            format!("the queues' last figures are not a snapshot: {e}"),
                        )
                    })?;
                let policy = jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: message.sequence + 1,
                };
                (snapshot, policy)
            }
            None => {
                let now = Timestamp::now();
                let empty = QueueSnapshot {
                    seq: 0,
                    at: now,
                    link: LinkState::Down,
                    since: now,
                    queues: Vec::new(),
                };
                (empty, jetstream::consumer::DeliverPolicy::All)
            }
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: site.all_queues(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable("could not follow the site's queues", &e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| unreachable("could not follow the site's queues", &e))?;
        let mirror = QueueMirror::new(snapshot, members);
        let task = tokio::spawn(mirror_queues(messages, mirror.clone(), site.clone()));
        Ok(RemoteQueues { mirror, task })
    }

    /// The copy.
    pub fn mirror(&self) -> &QueueMirror {
        &self.mirror
    }
}

impl Drop for RemoteQueues {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mirror_queues(
    mut messages: jetstream::consumer::pull::Ordered,
    mirror: QueueMirror,
    site: Site,
) {
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%site, %error, "reading the site's queues");
                continue;
            }
        };
        let kind = kind_of(message.headers.as_ref()).map(str::to_owned);
        match kind.as_deref() {
            Some(KIND_QUEUE_SNAPSHOT) => {
                match serde_json::from_slice::<QueueSnapshot>(&message.payload) {
                    Ok(snapshot) => mirror.reseed(snapshot),
                    Err(error) => {
                        tracing::warn!(%site, %error, "queue figures that do not decode; skipped")
                    }
                }
            }
            Some(KIND_QUEUE_EVENT) => {
                match serde_json::from_slice::<QueueEnvelope>(&message.payload) {
                    Ok(envelope) => {
                        if mirror.offer(envelope) == Mirrored::Gap {
                            tracing::warn!(%site, "a queue event that does not follow on; waiting for the next figures");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%site, %error, "a queue event that does not decode; skipped")
                    }
                }
            }
            other => {
                tracing::warn!(%site, kind = ?other, "an unknown message among the queues; skipped")
            }
        }
    }
}
