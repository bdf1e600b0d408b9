//! The live queue figures a switch's followers share: [`QueueStats`] behind a lock, fed
//! by the switch's queue events and by the agents' sessions, fanned out in `seq` order.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::desktop::DesktopInterface;
use crate::event::Event;
use crate::time::Timestamp;
use crate::Result;

use super::event::{QueueEnvelope, QueueEvent};
use super::figures::QueueSnapshot;
use super::report::ReportedQueues;
use super::stats::QueueStats;

/// How many queue events a follower may fall behind before it gets `Lagged`.
const FOLLOWER_BUFFER: usize = 4096;

/// Live queue figures for wallboards and supervisors: one per switch.
///
/// [`apply`](QueueBoard::apply) takes the switch's queue events (a backend calls it, or
/// [`feed`](QueueBoard::feed) pumps a stream of them; [`apply_at`](QueueBoard::apply_at)
/// and [`feed_stamped`](QueueBoard::feed_stamped) take the switch's own times); [`follow`](QueueBoard::follow)
/// forwards an agent's state from their session. Every event is stamped with the board's
/// clock (tokio's, so a test in paused time runs in virtual time), applied to the
/// [`QueueStats`] and sent to every follower in `seq` order.
#[derive(Clone)]
pub struct QueueBoard {
    shared: Arc<Shared>,
}

struct Shared {
    stats: Mutex<QueueStats>,
    events: broadcast::Sender<Arc<QueueEnvelope>>,
    start: Timestamp,
    started: tokio::time::Instant,
}

impl std::fmt::Debug for QueueBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBoard")
            .field("seq", &self.stats().seq())
            .finish_non_exhaustive()
    }
}

impl QueueBoard {
    /// A board over `stats`, whose clock reads `start` now (usually the time `stats`
    /// counts from).
    pub fn new(stats: QueueStats, start: Timestamp) -> Self {
        let (events, _) = broadcast::channel(FOLLOWER_BUFFER);
        QueueBoard {
            shared: Arc::new(Shared {
                stats: Mutex::new(stats),
                events,
                start,
                started: tokio::time::Instant::now(),
            }),
        }
    }

    /// The board's clock now.
    pub fn now(&self) -> Timestamp {
        self.shared
            .start
            .saturating_add(self.shared.started.elapsed())
    }

    fn stats(&self) -> MutexGuard<'_, QueueStats> {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an event that happens now, and sends it to every follower.
    pub fn apply(&self, event: QueueEvent) -> Arc<QueueEnvelope> {
        self.apply_at(self.now(), event)
    }

    /// Applies an event that happened `at` by the switch's clock (so that waits are the
    /// switch's, not the time its report took to arrive), and sends it to every follower.
    pub fn apply_at(&self, at: Timestamp, event: QueueEvent) -> Arc<QueueEnvelope> {
        let mut stats = self.stats();
        let envelope = Arc::new(stats.apply(at, event));
        // Sent under the lock, so that followers see the events in `seq` order.
        let _ = self.shared.events.send(envelope.clone());
        envelope
    }

    /// Rebuilds callers and members from what the switch reports after a reconnect (see
    /// [`QueueStats::restore`]), and sends `resynced`.
    pub fn restore(&self, report: ReportedQueues) -> Arc<QueueEnvelope> {
        let mut stats = self.stats();
        let envelope = Arc::new(stats.restore(self.now(), report));
        let _ = self.shared.events.send(envelope.clone());
        envelope
    }

    /// The queues `agent` is a member of now.
    pub fn queues_of(&self, agent: &crate::ids::AgentId) -> Vec<crate::ids::QueueId> {
        self.stats().queues_of(agent)
    }

    /// One queue's figures now, if the board knows the queue.
    pub fn figures(&self, queue: &crate::ids::QueueId) -> Option<super::QueueFigures> {
        self.stats().figures(queue)
    }

    /// Every queue's figures now.
    pub fn snapshot(&self) -> QueueSnapshot {
        self.stats().snapshot(self.now())
    }

    /// The figures now and every event after them, with nothing in between lost.
    pub fn snapshot_and_subscribe(&self) -> (QueueSnapshot, QueueStream) {
        let stats = self.stats();
        let receiver = self.shared.events.subscribe();
        (
            stats.snapshot(self.now()),
            QueueStream {
                inner: crate::session::stream::following(receiver),
            },
        )
    }

    /// Applies every event of `events` as it comes, until the stream ends.
    pub fn feed(&self, events: impl Stream<Item = QueueEvent> + Send + 'static) -> JoinHandle<()> {
        let board = self.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                board.apply(event);
            }
        })
    }

    /// Applies every event of `events`, each stamped by the switch, as it comes, until
    /// the stream ends.
    pub fn feed_stamped(
        &self,
        events: impl Stream<Item = (Timestamp, QueueEvent)> + Send + 'static,
    ) -> JoinHandle<()> {
        let board = self.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some((at, event)) = events.next().await {
                board.apply_at(at, event);
            }
        })
    }

    /// Forwards the state of a session's agent, now and at every change, until the
    /// session ends. A follower that falls behind the session reads its snapshot again.
    pub fn follow(&self, session: impl DesktopInterface + 'static) -> JoinHandle<()> {
        // Subscribed first: a change between the two is seen twice, which changes nothing.
        let mut events = session.subscribe();
        let snapshot = session.snapshot();
        let agent = snapshot.agent.clone();
        let board = self.clone();
        board.apply(QueueEvent::AgentStateChanged {
            agent: agent.clone(),
            state: snapshot.agent_state,
        });
        tokio::spawn(async move {
            while let Some(item) = events.next().await {
                let state = match item {
                    Ok(envelope) => match &envelope.event {
                        Event::AgentStateChanged { state } => state.clone(),
                        Event::Resynced { changes } => changes.snapshot.agent_state.clone(),
                        _ => continue,
                    },
                    // Changes were skipped: the session's state now is what counts.
                    Err(_) => session.snapshot().agent_state,
                };
                board.apply(QueueEvent::AgentStateChanged {
                    agent: agent.clone(),
                    state,
                });
            }
        })
    }
}

/// A board's queue events from the moment of subscribing, in `seq` order.
///
/// Items are `Ok(event)`, or one `Err` of kind [`Lagged`](crate::ErrorKind::Lagged) when
/// the follower fell so far behind that events were skipped: re-read the snapshot then.
#[must_use = "streams do nothing unless polled"]
pub struct QueueStream {
    inner: BoxStream<'static, Result<Arc<QueueEnvelope>>>,
}

impl QueueStream {
    /// A [`QueueMirror`](super::QueueMirror)'s events, with `Lagged` whenever the copy is
    /// taken again.
    pub(super) fn mirrored(
        events: broadcast::Receiver<Arc<QueueEnvelope>>,
        reseeded: broadcast::Receiver<()>,
    ) -> Self {
        let retaken = futures::stream::unfold(reseeded, |mut reseeded| async move {
            match reseeded.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some((
                    Err(crate::Error::new(
                        crate::ErrorKind::Lagged,
                        "the queues' figures were taken again: re-read the snapshot",
                    )),
                    reseeded,
                )),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        QueueStream {
            inner: futures::stream::select(crate::session::stream::following(events), retaken)
                .boxed(),
        }
    }
}

impl Stream for QueueStream {
    type Item = Result<Arc<QueueEnvelope>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for QueueStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStream").finish_non_exhaustive()
    }
}
