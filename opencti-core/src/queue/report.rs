//! What a switch reports about its queues after a reconnect (Asterisk's `QueueStatus`,
//! for one), to rebuild the figures from.

use crate::ids::{AgentId, CallId, QueueId};
use crate::time::Timestamp;

/// Every queue the switch reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedQueues {
    /// The queues.
    pub queues: Vec<ReportedQueue>,
}

/// One queue as the switch reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedQueue {
    /// The queue.
    pub queue: QueueId,
    /// The callers in it, waiting or ringing.
    pub callers: Vec<ReportedCaller>,
    /// Its members, where the switch reports them (`None` keeps the members known).
    pub members: Option<Vec<AgentId>>,
}

/// A caller in a queue, as the switch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCaller {
    /// The caller's call.
    pub call: CallId,
    /// When the caller joined (the switch's wait, counted back from now).
    pub joined: Timestamp,
    /// Whether it rings at an agent now.
    pub ringing: bool,
}
