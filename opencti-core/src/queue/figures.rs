//! The figures of a queue, as a wallboard shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::QueueId;
use crate::snapshot::LinkState;
use crate::time::Timestamp;

/// The agents of one queue by state, as their sessions derive it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Members that are logged in (every state below).
    pub logged_in: u32,
    /// Ready for the next call.
    pub ready: u32,
    /// A call is ringing at their device.
    pub reserved: u32,
    /// On a call.
    pub busy: u32,
    /// In after-call work.
    pub wrap_up: u32,
    /// Not ready, whatever the reason.
    pub not_ready: u32,
    /// The not-ready agents by reason code (`""` for none given).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_ready_reasons: BTreeMap<String, u32>,
}

/// One queue now, and since the figures' start.
///
/// Every caller that joined is in exactly one place: `offered = answered + abandoned +
/// overflowed + left_unseen + waiting + ringing`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueFigures {
    /// The queue.
    pub queue: QueueId,
    /// Callers waiting for an agent (not ringing anyone).
    pub waiting: u32,
    /// Callers ringing at an agent, not yet answered.
    pub ringing: u32,
    /// When the caller who has waited longest (waiting or ringing) joined; none while
    /// nobody waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_since: Option<Timestamp>,
    /// The members by state.
    pub agents: AgentCounts,
    /// Callers that joined since the start.
    pub offered: u64,
    /// Of them, answered by an agent.
    pub answered: u64,
    /// Of them, hung up before an answer.
    pub abandoned: u64,
    /// Of them, taken out of the queue unanswered by the switch.
    pub overflowed: u64,
    /// Of them, gone when the link came back, their outcome unknown.
    pub left_unseen: u64,
    /// Answered within the service-level threshold.
    pub answered_within: u64,
    /// The service-level threshold, in milliseconds.
    pub threshold_ms: u64,
    /// Answered within the threshold, over the callers whose outcome is known (answered,
    /// abandoned or overflowed); none before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<f64>,
    /// Average speed of answer: the mean wait of answered callers, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_speed_of_answer_ms: Option<u64>,
    /// Answered calls whose talk is over.
    pub completed: u64,
    /// Average handle time of the completed calls: talk plus the after-call work that
    /// followed it, in milliseconds. After-call work still running is not in it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_handle_ms: Option<u64>,
}

impl QueueFigures {
    /// How long the longest waiting caller has waited at `now`, in milliseconds (0 while
    /// nobody waits).
    pub fn longest_wait_ms(&self, now: Timestamp) -> u64 {
        self.oldest_since
            .map(|since| now.as_micros().saturating_sub(since.as_micros()) / 1000)
            .unwrap_or(0)
    }
}

/// Every queue's figures at one moment: what a wallboard or a supervisor starts from.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// The `seq` of the last event these figures include; the stream goes on from
    /// `seq + 1`.
    pub seq: u64,
    /// When the snapshot was taken.
    pub at: Timestamp,
    /// Whether the figures follow the switch now.
    pub link: LinkState,
    /// Where the counts since the start begin (the day, or the link coming up).
    pub since: Timestamp,
    /// Every queue, by id.
    pub queues: Vec<QueueFigures>,
}
