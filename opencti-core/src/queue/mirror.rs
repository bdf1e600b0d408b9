//! The queues' figures copied from a board that runs in another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::ids::{AgentId, QueueId};
use crate::snapshot::LinkState;

use super::board::QueueStream;
use super::event::{QueueEnvelope, QueueEvent};
use super::figures::{QueueFigures, QueueSnapshot};

/// How many queue events a reader may fall behind before it gets `Lagged`.
const READER_BUFFER: usize = 4096;

/// A copy of a [`QueueBoard`](super::QueueBoard)'s figures where the board does not run
/// (a gateway whose link service runs elsewhere): taken from the board's snapshot, then
/// kept by the board's events, each of which carries the figures of every queue it
/// changed. The copy computes nothing: the board stays the one place the figures come
/// from.
///
/// An event that skips a `seq` says the copy can no longer be trusted: the transport
/// takes the board's figures again and [`reseed`](QueueMirror::reseed)s; readers get
/// `Lagged` and read the snapshot again.
#[derive(Clone)]
pub struct QueueMirror {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<QueueEnvelope>>,
    /// Tells readers to read the snapshot again after a reseed.
    reseeded: broadcast::Sender<()>,
}

struct State {
    snapshot: QueueSnapshot,
    members: HashMap<AgentId, Vec<QueueId>>,
}

impl std::fmt::Debug for QueueMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueMirror")
            .field("seq", &self.state().snapshot.seq)
            .finish_non_exhaustive()
    }
}

/// What [`QueueMirror::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mirrored {
    /// The event was the next one: its figures copied, the event handed to readers.
    Applied,
    /// The copy already holds it: dropped.
    Old,
    /// It skips a `seq`: nothing changed; take the board's figures again.
    Gap,
}

impl QueueMirror {
    /// A copy holding `snapshot`, with the queues each agent belongs to as far as the
    /// caller knows (the board's snapshot carries counts, not members); `AgentJoined` and
    /// `AgentLeft` events keep it up to date from there.
    pub fn new(snapshot: QueueSnapshot, members: HashMap<AgentId, Vec<QueueId>>) -> Self {
        QueueMirror {
            shared: Arc::new(Shared {
                state: Mutex::new(State { snapshot, members }),
                events: broadcast::channel(READER_BUFFER).0,
                reseeded: broadcast::channel(16).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies the board's next event.
    pub fn offer(&self, envelope: QueueEnvelope) -> Mirrored {
        let mut state = self.state();
        let seq = state.snapshot.seq;
        if envelope.seq <= seq {
            return Mirrored::Old;
        }
        if envelope.seq != seq + 1 {
            return Mirrored::Gap;
        }
        let snapshot = &mut state.snapshot;
        snapshot.seq = envelope.seq;
        snapshot.at = envelope.at;
        match &envelope.event {
            QueueEvent::LinkDown { .. } => snapshot.link = LinkState::Down,
            QueueEvent::Resynced { snapshot: whole } => {
                snapshot.link = whole.link;
                snapshot.queues = whole.queues.clone();
            }
            _ => {}
        }
        for figures in &envelope.queues {
            match snapshot
                .queues
                .iter_mut()
                .find(|q| q.queue == figures.queue)
            {
                Some(known) => *known = figures.clone(),
                None => snapshot.queues.push(figures.clone()),
            }
        }
        match &envelope.event {
            QueueEvent::AgentJoined { queue, agent } => {
                let queues = state.members.entry(agent.clone()).or_default();
                if !queues.contains(queue) {
                    queues.push(queue.clone());
                }
            }
            QueueEvent::AgentLeft { queue, agent } => {
                if let Some(queues) = state.members.get_mut(agent) {
                    queues.retain(|q| q != queue);
                }
            }
            _ => {}
        }
        let _ = self.shared.events.send(Arc::new(envelope));
        Mirrored::Applied
    }

    /// Replaces the copy with the board's `snapshot`; readers are told to read it again.
    pub fn reseed(&self, snapshot: QueueSnapshot) {
        self.state().snapshot = snapshot;
        let _ = self.shared.reseeded.send(());
    }

    /// The `seq` of the last event the copy holds.
    pub fn seq(&self) -> u64 {
        self.state().snapshot.seq
    }

    /// Every queue's figures, as copied.
    pub fn snapshot(&self) -> QueueSnapshot {
        self.state().snapshot.clone()
    }

    /// The figures and every event after them; `Lagged` when a reader falls behind or
    /// the copy is taken again.
    pub fn snapshot_and_subscribe(&self) -> (QueueSnapshot, QueueStream) {
        let state = self.state();
        let events = self.shared.events.subscribe();
        let reseeded = self.shared.reseeded.subscribe();
        (
            state.snapshot.clone(),
            QueueStream::mirrored(events, reseeded),
        )
    }

    /// One queue's figures, if the copy has the queue.
    pub fn figures(&self, queue: &QueueId) -> Option<QueueFigures> {
        self.state()
            .snapshot
            .queues
            .iter()
            .find(|q| &q.queue == queue)
            .cloned()
    }

    /// The queues `agent` is a member of, as far as the copy knows.
    pub fn queues_of(&self, agent: &AgentId) -> Vec<QueueId> {
        self.state().members.get(agent).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;
    use crate::queue::{QueueBoard, QueueStats};
    use crate::{AgentState, CallId, ErrorKind, Timestamp};

    fn id(text: &str) -> QueueId {
        QueueId::new(text).expect("id")
    }

    #[tokio::test]
    async fn a_mirror_fed_the_board_s_events_has_the_board_s_figures() {
        let start = Timestamp::from_micros(1_800_000_000_000_000);
        let board = QueueBoard::new(
            QueueStats::new(start)
                .with_queue(id("sales"), Duration::from_secs(20))
                .with_queue(id("support"), Duration::from_secs(20)),
            start,
        );
        let (first, mut events) = board.snapshot_and_subscribe();
        let mirror = QueueMirror::new(first, HashMap::new());
        let (_, mut readers) = mirror.snapshot_and_subscribe();
        let alice = AgentId::new("alice").expect("id");
        let call = CallId::new("call-1").expect("id");
        board.apply(QueueEvent::AgentJoined {
            queue: id("sales"),
            agent: alice.clone(),
        });
        board.apply(QueueEvent::AgentStateChanged {
            agent: alice.clone(),
            state: AgentState::Ready,
        });
        board.apply(QueueEvent::CallerJoined {
            queue: id("sales"),
            call: call.clone(),
        });
        board.apply(QueueEvent::CallerAnswered {
            queue: id("sales"),
            call,
            agent: alice.clone(),
        });
        let mut skipped = None;
        for n in 0..4 {
            let envelope = events.next().await.expect("event").expect("no lag");
            if n == 2 {
                // One lost on the way: the copy refuses what follows it.
                skipped = Some(envelope);
                continue;
            }
            let expected = if n == 3 {
                Mirrored::Gap
            } else {
                Mirrored::Applied
            };
            assert_eq!(mirror.offer((*envelope).clone()), expected, "event {n}");
        }
        let skipped = skipped.expect("the third event");
        assert_eq!(mirror.offer((*skipped).clone()), Mirrored::Applied);
        assert_eq!(mirror.offer((*skipped).clone()), Mirrored::Old);
        assert!(readers.next().await.expect("an event").is_ok());
        assert_eq!(mirror.queues_of(&alice), vec![id("sales")]);

        // Taken again from the board: the same figures, and readers told so.
        mirror.reseed(board.snapshot());
        let mut ours = mirror.snapshot();
        let mut theirs = board.snapshot();
        ours.at = theirs.at;
        ours.queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        theirs.queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        assert_eq!(ours, theirs);
        assert_eq!(mirror.figures(&id("sales")).expect("sales").answered, 1);
        loop {
            match readers.next().await.expect("an item") {
                Ok(_) => continue,
                Err(error) => {
                    assert_eq!(error.kind(), ErrorKind::Lagged);
                    break;
                }
            }
        }
    }
}
