//! What the switch tells about its queues: queue events for a
//! [`QueueBoard`](opencti_core::queue::QueueBoard), and its own counts to check the
//! board's figures against.

use std::collections::BTreeMap;

use opencti_core::queue::{AgentCounts, QueueEvent};
use opencti_core::Timestamp;
use tokio::sync::broadcast;

use super::*;

/// A queue event and when it happened, by the switch's clock.
pub(crate) type Stamped = (Timestamp, QueueEvent);

/// Queue events a follower may fall behind before it misses some.
pub(super) const QUEUE_EVENT_BUFFER: usize = 65_536;

/// One queue as the simulated switch counts it itself, independently of any board.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct QueueCounts {
    /// Callers that joined.
    pub offered: u64,
    /// Of them, answered by an agent.
    pub answered: u64,
    /// Of them, gone unanswered.
    pub abandoned: u64,
    /// Answered within the queue's service-level threshold.
    pub answered_within: u64,
    /// The waits of the answered callers, added up.
    pub wait_sum: std::time::Duration,
    /// Answered calls whose talk is over.
    pub completed: u64,
    /// Their talk, plus the after-call work that followed and has ended, added up.
    pub handle_sum: std::time::Duration,
    /// Waiting for an agent now.
    pub waiting: u64,
    /// Ringing at an agent now.
    pub ringing: u64,
    /// The queue's agents by state, as the switch sees their devices.
    pub agents: AgentCounts,
}

/// The id a queue caller has in queue events: its conversation's.
pub(super) fn caller_id(conv: ConvId) -> CallId {
    CallId::new(format!("caller-{}", conv)).unwrap_or_else(|_| unreachable_call())
}

impl World {
    /// The switch's clock at `instant`.
    fn timestamp(&self, instant: Instant) -> Timestamp {
        let (wall, at) = self.epoch;
        wall.saturating_add(instant.saturating_duration_since(at))
    }

    /// The switch's clock now.
    pub(crate) fn now(&self) -> Timestamp {
        self.timestamp(Instant::now())
    }

    pub(super) fn announce(&self, event: QueueEvent) {
        // Nobody following is fine: the switch's own counts go on.
        let _ = self
            .queue_events
            .send((self.timestamp(Instant::now()), event));
    }

    /// The events that describe the queues now (every member, every caller waiting or
    /// ringing, each when it happened), and a receiver for every event after them.
    pub(crate) fn follow_queues(&self) -> (Vec<Stamped>, broadcast::Receiver<Stamped>) {
        let at = self.timestamp(Instant::now());
        let mut now = Vec::new();
        for agent in &self.agents {
            for &q in &agent.skills {
                now.push((
                    at,
                    QueueEvent::AgentJoined {
                        queue: self.queues[q].id.clone(),
                        agent: agent.id.clone(),
                    },
                ));
            }
        }
        for (&conv_id, conv) in &self.convs {
            let Some(q) = conv.queue else { continue };
            if conv.enqueued_at.is_none() || conv.answered {
                continue;
            }
            let queue = self.queues[q].id.clone();
            let call = caller_id(conv_id);
            let joined = conv.enqueued_at.map_or(at, |j| self.timestamp(j));
            now.push((
                joined,
                QueueEvent::CallerJoined {
                    queue: queue.clone(),
                    call: call.clone(),
                },
            ));
            if !conv.waiting {
                if let Some(agent) = self.ringing_agent(conv) {
                    now.push((at, QueueEvent::CallerOffered { queue, call, agent }));
                }
            }
        }
        (now, self.queue_events.subscribe())
    }

    fn ringing_agent(&self, conv: &Conv) -> Option<AgentId> {
        conv.legs
            .iter()
            .filter_map(|l| self.legs.get(l))
            .find_map(|l| match &l.who {
                Who::Device(d) if l.state == CallState::Offered => {
                    self.agent_of(d).map(|a| self.agents[a].id.clone())
                }
                _ => None,
            })
    }

    /// The switch's own counts for queue `q`.
    pub(crate) fn queue_counts(&self, q: usize) -> Option<QueueCounts> {
        let queue = self.queues.get(q)?;
        let ringing = self
            .convs
            .values()
            .filter(|c| c.queue == Some(q) && c.enqueued_at.is_some() && !c.answered && !c.waiting)
            .count();
        let mut agents = AgentCounts::default();
        let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
        for agent in self.agents.iter().filter(|a| a.skills.contains(&q)) {
            if agent.chosen == ChosenState::LoggedOut {
                continue;
            }
            agents.logged_in += 1;
            let mut legs = self.device_legs(&agent.device).peekable();
            let busy = self
                .device_legs(&agent.device)
                .any(|l| l.state != CallState::Offered);
            if busy {
                agents.busy += 1;
            } else if legs.peek().is_some() {
                agents.reserved += 1;
            } else if agent.in_wrap_up.is_some() {
                agents.wrap_up += 1;
            } else {
                match &agent.chosen {
                    ChosenState::Ready => agents.ready += 1,
                    ChosenState::NotReady { reason } => {
                        agents.not_ready += 1;
                        let key = reason.as_ref().map(|r| r.as_str()).unwrap_or("");
                        *reasons.entry(key.to_string()).or_insert(0) += 1;
                    }
                    ChosenState::LoggedOut => {}
                }
            }
        }
        agents.not_ready_reasons = reasons;
        Some(QueueCounts {
            offered: queue.offered,
            answered: queue.answered,
            abandoned: queue.abandoned,
            answered_within: queue.answered_within,
            wait_sum: queue.wait_sum,
            completed: queue.completed,
            handle_sum: queue.handle_sum,
            waiting: queue.waiting.len() as u64,
            ringing: ringing as u64,
            agents,
        })
    }
}
