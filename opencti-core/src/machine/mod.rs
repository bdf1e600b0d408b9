//! Pure state machines: (state, event) to new state, or a typed error. No I/O.
//!
//! [`Desk`] is the whole state of one agent at one device (the agent's state and the
//! device's calls); it composes the agent machine and one call machine per call, derives
//! the agent's `reserved`, `busy` and `wrap_up` states from the calls, and knows which
//! commands each state allows. The session runs every event through it; a replay runs a
//! recording through it; a connector's conformance test checks that everything the
//! connector emits is accepted by it.

mod agent;
mod call;
mod commands;
mod desk;

pub use commands::Expectation;
pub use desk::Desk;

/// What an accepted event did to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// The state changed: the event is news and goes to subscribers.
    Changed,
    /// The event restated the current state (a duplicate delivery, an echo): nothing
    /// changed, and it need not be delivered again.
    Duplicate,
}

/// The result of [`Desk::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Applied {
    /// Whether the event changed anything.
    pub step: Step,
    /// When the event changed the agent's derived state (a call began ringing, was
    /// answered, ended), the agent's new state: the session emits an
    /// `agent_state_changed` with it right after the event.
    pub derived: Option<crate::AgentState>,
}
