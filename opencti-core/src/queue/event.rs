//! Queue events: what happened at an ACD queue, in the past tense, in an envelope.

use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::ids::{AgentId, CallId, QueueId};
use crate::time::Timestamp;

use super::figures::{QueueFigures, QueueSnapshot};

/// Something that happened at a queue, as a switch reports it.
///
/// A caller is named by the call as the switch knows it in its queues (the caller's own
/// channel or conversation), not by the call id an agent's device sees. Agent states are
/// the ones the agents' sessions derive ([`AgentState`]); a backend forwards each
/// `agent_state_changed` of every line.
///
/// On the wire the variant is the `type` field: `{"type":"caller_joined","queue":"sales",
/// "call":"c7"}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueueEvent {
    /// A caller entered the queue and waits.
    CallerJoined {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
    },
    /// The queue offered a waiting caller to an agent: it rings there.
    CallerOffered {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
        /// The agent it rings at.
        agent: AgentId,
    },
    /// The offer ended unanswered; the caller waits again, still counted from when they
    /// joined.
    CallerReturned {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
    },
    /// An agent answered the caller.
    CallerAnswered {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
        /// The agent who answered.
        agent: AgentId,
    },
    /// The caller hung up before an agent answered.
    CallerAbandoned {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
    },
    /// The switch took the caller out of the queue unanswered (a timeout, a full queue,
    /// no agents): the call went elsewhere.
    CallerOverflowed {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
    },
    /// The agent's talk with an answered caller is over (after-call work may follow).
    CallerCompleted {
        /// The queue.
        queue: QueueId,
        /// The caller's call.
        call: CallId,
        /// The agent who had the call.
        agent: AgentId,
    },
    /// An agent became a member of the queue.
    AgentJoined {
        /// The queue.
        queue: QueueId,
        /// The agent.
        agent: AgentId,
    },
    /// An agent stopped being a member of the queue.
    AgentLeft {
        /// The queue.
        queue: QueueId,
        /// The agent.
        agent: AgentId,
    },
    /// An agent's state changed (as the agent's session derives it).
    AgentStateChanged {
        /// The agent.
        agent: AgentId,
        /// The new state.
        state: AgentState,
    },
    /// The link to the switch is down: the figures stop following the switch until it is
    /// back.
    LinkDown {
        /// Why, for a person.
        reason: String,
    },
    /// After the link came back, the figures were rebuilt from what the switch reports.
    Resynced {
        /// Everything, as rebuilt.
        snapshot: Box<QueueSnapshot>,
    },
}

impl QueueEvent {
    /// The wire name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            QueueEvent::CallerJoined { .. } => "caller_joined",
            QueueEvent::CallerOffered { .. } => "caller_offered",
            QueueEvent::CallerReturned { .. } => "caller_returned",
            QueueEvent::CallerAnswered { .. } => "caller_answered",
            QueueEvent::CallerAbandoned { .. } => "caller_abandoned",
            QueueEvent::CallerOverflowed { .. } => "caller_overflowed",
            QueueEvent::CallerCompleted { .. } => "caller_completed",
            QueueEvent::AgentJoined { .. } => "agent_joined",
            QueueEvent::AgentLeft { .. } => "agent_left",
            QueueEvent::AgentStateChanged { .. } => "agent_state_changed",
            QueueEvent::LinkDown { .. } => "link_down",
            QueueEvent::Resynced { .. } => "resynced",
        }
    }
}

/// A queue event as [`QueueStats`](super::QueueStats) publishes it: numbered, stamped,
/// with the figures of every queue it changed.
///
/// `seq` starts at 1 and has no gaps, as an agent's [`EventEnvelope`](crate::EventEnvelope)
/// does: a follower that sees a gap takes a fresh [`QueueSnapshot`].
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEnvelope {
    /// Position in the stream: starts at 1, no gaps.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: QueueEvent,
    /// The figures of the queues the event changed, as they are now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueFigures>,
}
