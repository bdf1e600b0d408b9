//! Publishing a line's canonical events to JetStream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use opencti_core::{
    AgentId, DesktopInterface, DeviceId, Error, ErrorKind, EventEnvelope, Result, Snapshot,
    Timestamp,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::subject::Site;

/// The header that says what a message on a line's subject holds: [`KIND_EVENT`] or
/// [`KIND_SNAPSHOT`].
pub const KIND_HEADER: &str = "Opencti-Kind";
/// [`KIND_HEADER`] of an event: the payload is an `EventEnvelope`'s canonical JSON.
pub const KIND_EVENT: &str = "event";
/// [`KIND_HEADER`] of a snapshot: the payload is a `Snapshot`'s canonical JSON,
/// published when the publisher fell behind the session and skipped events.
pub const KIND_SNAPSHOT: &str = "snapshot";

/// The [`KIND_HEADER`] of a message, if it has one: what its payload holds.
pub fn kind_of(headers: Option<&HeaderMap>) -> Option<&str> {
    headers
        .and_then(|h| h.get(KIND_HEADER))
        .map(|value| value.as_str())
}

/// What the server said about one published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message's sequence number in the stream.
    pub stream_seq: u64,
    /// Whether the server already had a message with this `Nats-Msg-Id` and dropped this
    /// copy.
    pub duplicate: bool,
}

/// How a publisher retries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

/// Publishes lines' canonical events to a site's JetStream stream.
///
/// Each event goes to its line's subject (`opencti.<site>.events.<agent>.<device>`) as
/// the `EventEnvelope`'s JSON, unchanged, with a `Nats-Msg-Id` made of the line, the
/// session's epoch and the event's `seq`: a copy published again (after a lost ack, a
/// reconnect, a second publisher of the same session) is dropped by the server.
///
/// The stream must exist: call [`ensure_stream`](crate::ensure_stream) first.
#[derive(Clone, Debug)]
pub struct EventPublisher {
    jetstream: jetstream::Context,
    site: Site,
    retry: RetryPolicy,
}

impl EventPublisher {
    /// A publisher for `site` over `jetstream`.
    pub fn new(jetstream: jetstream::Context, site: Site) -> Self {
        EventPublisher {
            jetstream,
            site,
            retry: RetryPolicy::default(),
        }
    }

    /// With another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Publishes one event of the session started at `epoch`, and waits for the stream's
    /// acknowledgement. No retry: a failure is returned.
    pub async fn publish_event(
        &self,
        envelope: &EventEnvelope,
        epoch: Timestamp,
    ) -> Result<Published> {
        let subject = self.site.line_events(&envelope.agent, &envelope.device);
        let id = self
            .site
            .event_msg_id(&envelope.agent, &envelope.device, epoch, envelope.seq);
        let payload = serde_json::to_vec(envelope).map_err(|e| {
            Error::new(ErrorKind::Other, "could not encode an event").with_source(e)
        })?;
        self.publish(subject, id, KIND_EVENT, payload).await
    }

    /// Publishes a line's snapshot (the publisher fell behind; events before
    /// `snapshot.seq` may be missing) and waits for the acknowledgement.
    pub async fn publish_snapshot(
        &self,
        snapshot: &Snapshot,
        epoch: Timestamp,
    ) -> Result<Published> {
        let subject = self.site.line_events(&snapshot.agent, &snapshot.device);
        let id = self
            .site
            .snapshot_msg_id(&snapshot.agent, &snapshot.device, epoch, snapshot.seq);
        let payload = serde_json::to_vec(snapshot).map_err(|e| {
            Error::new(ErrorKind::Other, "could not encode a snapshot").with_source(e)
        })?;
        self.publish(subject, id, KIND_SNAPSHOT, payload).await
    }

    async fn publish(
        &self,
        subject: String,
        id: String,
        kind: &'static str,
        payload: Vec<u8>,
    ) -> Result<Published> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(KIND_HEADER, kind);
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::LinkDown,
                format!("publishing {id} on {subject} failed: {e}"),
            )
        };
        let ack = self
            .jetstream
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        Ok(Published {
            stream_seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Publishes every event of `session` from now on, in `seq` order, each one
    /// acknowledged by the stream before the next, until the session's event stream
    /// ends or the returned handle is dropped. `epoch` tells this session's numbering
    /// from an earlier session of the same line: when the session started.
    ///
    /// # Behavior
    ///
    /// - A failed publish is logged and retried with the same `Nats-Msg-Id`, waiting as
    ///   the [`RetryPolicy`] says; it never panics.
    /// - Events that arrive meanwhile wait in the session's own bounded subscriber
    ///   buffer; nothing else is kept. If that overflows (the session reports `lagged`),
    ///   the skipped events are lost to the stream: the publisher logs it and publishes
    ///   the session's snapshot ([`KIND_SNAPSHOT`]) so that followers can start again
    ///   from it, then carries on with the events after it (those the snapshot already
    ///   includes are not published).
    pub fn follow<S>(&self, session: S, epoch: Timestamp) -> LineFeed
    where
        S: DesktopInterface + 'static,
    {
        let events = session.subscribe();
        let from = session.snapshot().seq;
        self.follow_events(session, events, from, epoch)
    }

    /// [`follow`](EventPublisher::follow) from `events`, a subscription taken earlier
    /// (`SessionBuilder::start_with_events`, to publish a session's events from its
    /// first); `from` is the `seq` of the last event before them.
    pub fn follow_events<S>(
        &self,
        session: S,
        events: opencti_core::EventStream,
        from: u64,
        epoch: Timestamp,
    ) -> LineFeed
    where
        S: DesktopInterface + 'static,
    {
        let snapshot = session.snapshot();
        let (published, watcher) = watch::channel(from);
        let publisher = self.clone();
        let line = (snapshot.agent, snapshot.device);
        let task = tokio::spawn(async move {
            publisher
                .run(Arc::new(session), events, epoch, line, published)
                .await;
        });
        LineFeed {
            task,
            published: watcher,
        }
    }

    async fn run(
        &self,
        session: Arc<dyn DesktopInterface>,
        mut events: opencti_core::EventStream,
        epoch: Timestamp,
        (agent, device): (AgentId, DeviceId),
        published: watch::Sender<u64>,
    ) {
        // After a snapshot: the events it already includes, still held in the
        // subscription after the lag, are not published again.
        let mut covered: u64 = 0;
        while let Some(next) = events.next().await {
            match next {
                Ok(envelope) if envelope.seq <= covered => {}
                Ok(envelope) => {
                    let seq = envelope.seq;
                    self.retrying(&format!("event {seq} of {agent} at {device}"), || {
                        self.publish_event(&envelope, epoch)
                    })
                    .await;
                    published.send_replace(seq);
                }
                Err(error) => {
                    let snapshot = session.snapshot();
                    tracing::warn!(
                        %agent, %device, %error, seq = snapshot.seq,
                        "the publisher fell behind the session; events were skipped, publishing the snapshot instead"
                    );
                    let seq = snapshot.seq;
                    covered = seq;
                    self.retrying(&format!("snapshot {seq} of {agent} at {device}"), || {
                        self.publish_snapshot(&snapshot, epoch)
                    })
                    .await;
                    published.send_replace(seq);
                }
            }
        }
    }

    /// Runs `attempt` until it succeeds, logging each failure and waiting longer each
    /// time.
    async fn retrying<F, Fut>(&self, what: &str, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Published>>,
    {
        let mut wait = self.retry.first;
        let mut failures = 0u32;
        loop {
            match attempt().await {
                Ok(done) => {
                    if failures > 0 {
                        tracing::info!(
                            what,
                            failures,
                            duplicate = done.duplicate,
                            "published after retrying"
                        );
                    }
                    return;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(what, failures, %error, "publish failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.max);
                }
            }
        }
    }
}

/// A running [`EventPublisher::follow`]: stops publishing when dropped.
#[must_use = "the publishing task stops when its LineFeed is dropped"]
#[derive(Debug)]
pub struct LineFeed {
    task: JoinHandle<()>,
    published: watch::Receiver<u64>,
}

impl LineFeed {
    /// The `seq` of the last event (or snapshot) the stream acknowledged; the session's
    /// `seq` when publishing started, before the first.
    pub fn last_published(&self) -> u64 {
        *self.published.borrow()
    }

    /// Waits until the stream has acknowledged `seq`, at most `timeout`; `false` if it
    /// did not in time or the feed ended before.
    pub async fn published(&self, seq: u64, timeout: Duration) -> bool {
        let mut watcher = self.published.clone();
        tokio::time::timeout(timeout, watcher.wait_for(|&done| done >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the feed has ended (its session's events ended).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for LineFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}
