//! The figures a planner reads: per queue, per agent and overall (definitions on
//! [`PlannerReport`]).

use opencti_core::{AgentId, QueueId};
use serde::{Deserialize, Serialize};

/// Everything one run measured.
///
/// All fields but `wall_secs` are a function of the configuration and seed alone.
///
/// # Definitions
///
/// - Only calls that **arrive in the measured window** (after the warm-up, before the run
///   stops taking calls) are counted; they are followed to the end, however long they
///   wait. Agent time is measured over the same window.
/// - **Service level** = calls answered within the threshold / calls offered. Abandoned
///   calls stay in the denominator (an abandoned call missed the target), which is what
///   Erlang A's "answered within T" means. [`CallFigures::service_level_of_answered`]
///   gives the variant over answered calls only.
/// - **ASA** (average speed of answer) is the mean wait of *answered* calls; abandoned
///   calls' waits are reported apart.
/// - **Probability of waiting**: the fraction of offered calls that found no agent free
///   and queued (waited more than zero).
/// - **Occupancy** is the fraction of the agents' logged-in time in the window spent on
///   calls *including wrap-up* (the time they were unavailable because of a call);
///   `talk_occupancy` leaves wrap-up out. Agents are logged in for the whole run.
/// - A ratio over an empty set (no call offered, none answered) is reported as 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerReport {
    /// The seed the run used.
    pub seed: u64,
    /// The service-level threshold, seconds.
    pub service_level_secs: f64,
    /// Start of the measured window (end of the warm-up), simulated seconds.
    pub measured_from_secs: f64,
    /// End of the measured window (when the run stopped taking calls), simulated seconds.
    pub measured_to_secs: f64,
    /// Simulated time at which the last call and wrap-up ended, seconds.
    pub simulated_secs: f64,
    /// Wall-clock time the run took, seconds (the only field that varies between runs).
    pub wall_secs: f64,
    /// Calls that arrived in the whole run, warm-up included.
    pub calls_arrived: u64,
    /// All queues together.
    pub overall: OverallFigures,
    /// Each queue, in configuration order.
    pub queues: Vec<QueueReport>,
    /// Each agent, in the order of `PlannerConfig::agent_ids`.
    pub agents: Vec<AgentReport>,
    /// The canonical events the run produced, for the whole run (warm-up and drain
    /// included).
    pub events: EventCounts,
}

/// What happened to the calls of one queue, or of all queues.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CallFigures {
    /// Calls offered (arrived in the measured window).
    pub offered: u64,
    /// Of those, answered by an agent.
    pub answered: u64,
    /// Of those, abandoned while waiting.
    pub abandoned: u64,
    /// Of those, calls that found no agent free and queued.
    pub waited: u64,
    /// Answered calls that waited at most the threshold.
    pub answered_within_threshold: u64,
    /// `answered_within_threshold / offered` (abandoned calls count against it).
    pub service_level: f64,
    /// `answered_within_threshold / answered`.
    pub service_level_of_answered: f64,
    /// Average speed of answer: mean wait of answered calls, seconds.
    pub asa_secs: f64,
    /// Longest wait of an answered call, seconds.
    pub max_answer_wait_secs: f64,
    /// `waited / offered`.
    pub prob_wait: f64,
    /// `abandoned / offered`.
    pub abandon_rate: f64,
    /// Mean time abandoned callers waited before hanging up, seconds.
    pub mean_abandon_wait_secs: f64,
    /// Mean handling (talk) time of answered calls, seconds.
    pub mean_handle_secs: f64,
}

/// The figures of all queues together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverallFigures {
    /// All calls.
    pub calls: CallFigures,
    /// Number of agents.
    pub agents: u32,
    /// Mean occupancy of all agents, wrap-up included.
    pub occupancy: f64,
    /// Mean occupancy of all agents, talk time only.
    pub talk_occupancy: f64,
}

/// The figures of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueReport {
    /// The queue.
    pub queue: QueueId,
    /// The work it was configured to receive, Erlangs (handling plus wrap-up).
    pub load_erlangs: f64,
    /// Agents who serve it (some may serve other queues too).
    pub agents: u32,
    /// Its calls.
    pub calls: CallFigures,
}

/// The figures of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The agent.
    pub agent: AgentId,
    /// Measured calls (arrived in the window) this agent answered.
    pub handled: u64,
    /// Fraction of the window spent on calls, wrap-up included.
    pub occupancy: f64,
    /// Fraction of the window spent talking.
    pub talk_occupancy: f64,
    /// Canonical events produced for this agent in the whole run.
    pub events: u64,
}

/// How many canonical events a run produced, by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventCounts {
    /// All events.
    pub total: u64,
    /// `call_offered`.
    pub call_offered: u64,
    /// `call_connected`.
    pub call_connected: u64,
    /// `call_ended`.
    pub call_ended: u64,
    /// `agent_state_changed` (log in, reserved, busy, wrap-up, ready, log out).
    pub agent_state_changed: u64,
}

/// `numerator / denominator`, or 0 over an empty set.
pub(super) fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}
