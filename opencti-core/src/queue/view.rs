//! What a wallboard reads of a site's queues, wherever their figures are computed.

use crate::ids::{AgentId, QueueId};
use crate::time::Timestamp;

use super::board::{QueueBoard, QueueStream};
use super::figures::{QueueFigures, QueueSnapshot};
use super::mirror::QueueMirror;

/// The queues' figures as their readers (a wallboard, an agent's "waiting in my queues")
/// see them: a [`QueueBoard`] that computes them in this process, or a [`QueueMirror`]
/// of a board that runs in another.
pub trait QueueView: Send + Sync + std::fmt::Debug {
    /// The time by the figures' clock (a board's own, which a test may pause; the wall
    /// clock for a copy).
    fn now(&self) -> Timestamp;

    /// Every queue's figures now.
    fn snapshot(&self) -> QueueSnapshot;

    /// The figures now and every event after them, with nothing in between lost.
    fn snapshot_and_subscribe(&self) -> (QueueSnapshot, QueueStream);

    /// One queue's figures now, if the view knows the queue.
    fn figures(&self, queue: &QueueId) -> Option<QueueFigures>;

    /// The queues `agent` is a member of now.
    fn queues_of(&self, agent: &AgentId) -> Vec<QueueId>;
}

impl QueueView for QueueBoard {
    fn now(&self) -> Timestamp {
        QueueBoard::now(self)
    }

    fn snapshot(&self) -> QueueSnapshot {
        QueueBoard::snapshot(self)
    }

    fn snapshot_and_subscribe(&self) -> (QueueSnapshot, QueueStream) {
        QueueBoard::snapshot_and_subscribe(self)
    }

    fn figures(&self, queue: &QueueId) -> Option<QueueFigures> {
        QueueBoard::figures(self, queue)
    }

    fn queues_of(&self, agent: &AgentId) -> Vec<QueueId> {
        QueueBoard::queues_of(self, agent)
    }
}

impl QueueView for QueueMirror {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn snapshot(&self) -> QueueSnapshot {
        QueueMirror::snapshot(self)
    }

    fn snapshot_and_subscribe(&self) -> (QueueSnapshot, QueueStream) {
        QueueMirror::snapshot_and_subscribe(self)
    }

    fn figures(&self, queue: &QueueId) -> Option<QueueFigures> {
        QueueMirror::figures(self, queue)
    }

    fn queues_of(&self, agent: &AgentId) -> Vec<QueueId> {
        QueueMirror::queues_of(self, agent)
    }
}
