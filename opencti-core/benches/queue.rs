//! Queue statistics: the cost of one queue event, with 1,000 agents in 10 queues and with
//! 10,000 agents in 100 queues. Each event costs the same whatever the size of the
//! centre: the two sizes must give the same figures.
//!
//! Run: `cargo bench -p opencti-core --bench queue`

use divan::counter::ItemsCount;
use divan::Bencher;
use opencti_core::queue::{QueueEvent, QueueStats};
use opencti_core::{AgentId, AgentState, CallId, ChosenState, QueueId, Timestamp};

fn main() {
    divan::main();
}

/// Calls run through the queues in one benchmark iteration.
const CALLS: usize = 10_000;

/// Events a call makes: joined, offered, answered, the agent busy, completed, the agent
/// in wrap-up, the agent ready again.
const EVENTS_A_CALL: usize = 7;

struct Centre {
    stats: QueueStats,
    queues: Vec<QueueId>,
    agents: Vec<AgentId>,
    calls: Vec<CallId>,
    now: u64,
}

/// `agents` agents, each a member of three of `queues` queues and ready, with ten
/// callers waiting in every queue.
fn centre(agents: usize, queues: usize) -> Centre {
    let queue_ids: Vec<QueueId> = (0..queues)
        .map(|q| QueueId::new(format!("queue{q}")).unwrap())
        .collect();
    let agent_ids: Vec<AgentId> = (0..agents)
        .map(|a| AgentId::new(format!("agent{a}")).unwrap())
        .collect();
    let mut stats = QueueStats::new(Timestamp::from_micros(0));
    for (a, agent) in agent_ids.iter().enumerate() {
        for k in 0..3 {
            let queue = queue_ids[(a + k) % queues].clone();
            stats.apply(
                Timestamp::from_micros(0),
                QueueEvent::AgentJoined {
                    queue,
                    agent: agent.clone(),
                },
            );
        }
        stats.apply(
            Timestamp::from_micros(0),
            QueueEvent::AgentStateChanged {
                agent: agent.clone(),
                state: AgentState::Ready,
            },
        );
    }
    for (q, queue) in queue_ids.iter().enumerate() {
        for n in 0..10 {
            stats.apply(
                Timestamp::from_micros(0),
                QueueEvent::CallerJoined {
                    queue: queue.clone(),
                    call: CallId::new(format!("waiting-{q}-{n}")).unwrap(),
                },
            );
        }
    }
    Centre {
        stats,
        queues: queue_ids,
        agents: agent_ids,
        calls: (0..CALLS)
            .map(|c| CallId::new(format!("call-{c}")).unwrap())
            .collect(),
        now: 1,
    }
}

fn busy() -> AgentState {
    AgentState::Busy {
        next: ChosenState::Ready,
    }
}

fn wrap_up() -> AgentState {
    AgentState::WrapUp {
        reason: None,
        next: ChosenState::Ready,
    }
}

impl Centre {
    /// `CALLS` calls, each through its queue to an agent and back to ready.
    fn run_calls(&mut self) {
        for (c, call) in self.calls.iter().enumerate() {
            let queue = &self.queues[c % self.queues.len()];
            let agent = &self.agents[(c * 7) % self.agents.len()];
            let mut step = |event: QueueEvent| {
                self.now += 1_000_000;
                self.stats.apply(Timestamp::from_micros(self.now), event);
            };
            step(QueueEvent::CallerJoined {
                queue: queue.clone(),
                call: call.clone(),
            });
            step(QueueEvent::CallerOffered {
                queue: queue.clone(),
                call: call.clone(),
                agent: agent.clone(),
            });
            step(QueueEvent::CallerAnswered {
                queue: queue.clone(),
                call: call.clone(),
                agent: agent.clone(),
            });
            step(QueueEvent::AgentStateChanged {
                agent: agent.clone(),
                state: busy(),
            });
            step(QueueEvent::CallerCompleted {
                queue: queue.clone(),
                call: call.clone(),
                agent: agent.clone(),
            });
            step(QueueEvent::AgentStateChanged {
                agent: agent.clone(),
                state: wrap_up(),
            });
            step(QueueEvent::AgentStateChanged {
                agent: agent.clone(),
                state: AgentState::Ready,
            });
        }
    }
}

#[divan::bench(args = [(1_000, 10), (10_000, 100)], sample_count = 20)]
fn queue_events(bencher: Bencher<'_, '_>, (agents, queues): (usize, usize)) {
    let mut centre = centre(agents, queues);
    bencher
        .counter(ItemsCount::new(CALLS * EVENTS_A_CALL))
        .bench_local(|| centre.run_calls());
}
