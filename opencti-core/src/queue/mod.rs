//! Queues as a supervisor sees them: callers waiting and the longest wait, agents by
//! state, and since a chosen start the calls offered, answered, abandoned and answered
//! within the service level, with the average speed of answer and handle time.
//!
//! A backend (the simulator, a connector's link) turns what its switch reports into
//! [`QueueEvent`]s, and forwards every line's agent state; [`QueueStats`] is the one
//! place the figures are computed from them. Followers read a [`QueueSnapshot`], then the
//! [`QueueEnvelope`]s after its `seq`, as they do an agent's session.

mod board;
mod event;
mod figures;
mod mirror;
mod report;
mod stats;
#[cfg(test)]
mod tests;
mod view;

pub use board::{QueueBoard, QueueStream};
pub use event::{QueueEnvelope, QueueEvent};
pub use figures::{AgentCounts, QueueFigures, QueueSnapshot};
pub use mirror::{Mirrored, QueueMirror};
pub use report::{ReportedCaller, ReportedQueue, ReportedQueues};
pub use stats::{QueueStats, DEFAULT_THRESHOLD};
pub use view::QueueView;
