//! Agent state: what the agent chose, kept apart from what the system derived.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::ReasonCode;

/// A state the agent (or a supervisor, or the switch on their behalf) chooses.
///
/// On the wire: `{"state":"not_ready","reason":"lunch"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "wire::ChosenState"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ChosenState {
    /// Not logged in: receives no ACD calls.
    LoggedOut,
    /// Logged in but not taking ACD calls, with an optional reason code.
    NotReady {
        /// Why (`lunch`, `training`), where the desktop gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReasonCode>,
    },
    /// Logged in and available for ACD calls.
    Ready,
}

impl ChosenState {
    /// `not_ready` without a reason.
    pub const NOT_READY: ChosenState = ChosenState::NotReady { reason: None };

    /// The wire name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            ChosenState::LoggedOut => "logged_out",
            ChosenState::NotReady { .. } => "not_ready",
            ChosenState::Ready => "ready",
        }
    }

    /// The same state as an [`AgentState`].
    pub fn to_agent_state(&self) -> AgentState {
        match self {
            ChosenState::LoggedOut => AgentState::LoggedOut,
            ChosenState::NotReady { reason } => AgentState::NotReady {
                reason: reason.clone(),
            },
            ChosenState::Ready => AgentState::Ready,
        }
    }
}

/// The agent's effective state, as a Call Control Panel shows it.
///
/// `logged_out`, `not_ready` and `ready` are chosen. `reserved` (a call is being offered),
/// `busy` (on a call) and `wrap_up` (after-call work) are derived by the session from the
/// calls on the agent's device; each carries `next`, the chosen state the agent returns to
/// afterwards (a change requested "after this call" shows up there).
///
/// On the wire: `{"state":"busy","next":{"state":"ready"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "wire::AgentState"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Logged in, not taking ACD calls.
    NotReady {
        /// Why, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReasonCode>,
    },
    /// Available for ACD calls.
    Ready,
    /// A call is being offered to the agent's device (derived).
    Reserved {
        /// The chosen state to return to.
        next: ChosenState,
    },
    /// On a call (derived).
    Busy {
        /// The chosen state to return to.
        next: ChosenState,
    },
    /// After-call work (derived): the agent completes it, or the switch's timer does.
    WrapUp {
        /// Wrap-up reason, where the switch gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReasonCode>,
        /// The chosen state to return to.
        next: ChosenState,
    },
}

impl AgentState {
    /// The wire name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::NotReady { .. } => "not_ready",
            AgentState::Ready => "ready",
            AgentState::Reserved { .. } => "reserved",
            AgentState::Busy { .. } => "busy",
            AgentState::WrapUp { .. } => "wrap_up",
        }
    }

    /// Whether the system derived this state (reserved, busy, wrap-up).
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            AgentState::Reserved { .. } | AgentState::Busy { .. } | AgentState::WrapUp { .. }
        )
    }

    /// The chosen state: the state itself, or the one a derived state returns to.
    pub fn chosen(&self) -> ChosenState {
        match self {
            AgentState::LoggedOut => ChosenState::LoggedOut,
            AgentState::NotReady { reason } => ChosenState::NotReady {
                reason: reason.clone(),
            },
            AgentState::Ready => ChosenState::Ready,
            AgentState::Reserved { next }
            | AgentState::Busy { next }
            | AgentState::WrapUp { next, .. } => next.clone(),
        }
    }

    /// Whether the agent is logged in.
    pub fn is_logged_in(&self) -> bool {
        !matches!(self, AgentState::LoggedOut)
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::NotReady {
                reason: Some(reason),
            } => write!(f, "not_ready ({})", reason),
            AgentState::Reserved { next } | AgentState::Busy { next } => {
                write!(f, "{} (then {})", self.name(), next.name())
            }
            AgentState::WrapUp { next, .. } => write!(f, "wrap_up (then {})", next.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// Deserialisation mirrors: serde ignores unknown fields on the unit variants of an
/// internally tagged enum, so these spell them as empty structs, which refuse them.
mod wire {
    use serde::Deserialize;

    use crate::values::ReasonCode;

    #[derive(Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum ChosenState {
        LoggedOut {},
        NotReady {
            #[serde(default)]
            reason: Option<ReasonCode>,
        },
        Ready {},
    }

    impl From<ChosenState> for super::ChosenState {
        fn from(wire: ChosenState) -> Self {
            match wire {
                ChosenState::LoggedOut {} => super::ChosenState::LoggedOut,
                ChosenState::NotReady { reason } => super::ChosenState::NotReady { reason },
                ChosenState::Ready {} => super::ChosenState::Ready,
            }
        }
    }

    #[derive(Deserialize)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    #[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum AgentState {
        LoggedOut {},
        NotReady {
            #[serde(default)]
            reason: Option<ReasonCode>,
        },
        Ready {},
        Reserved {
            next: super::ChosenState,
        },
        Busy {
            next: super::ChosenState,
        },
        WrapUp {
            #[serde(default)]
            reason: Option<ReasonCode>,
            next: super::ChosenState,
        },
    }

    impl From<AgentState> for super::AgentState {
        fn from(wire: AgentState) -> Self {
            match wire {
                AgentState::LoggedOut {} => super::AgentState::LoggedOut,
                AgentState::NotReady { reason } => super::AgentState::NotReady { reason },
                AgentState::Ready {} => super::AgentState::Ready,
                AgentState::Reserved { next } => super::AgentState::Reserved { next },
                AgentState::Busy { next } => super::AgentState::Busy { next },
                AgentState::WrapUp { reason, next } => super::AgentState::WrapUp { reason, next },
            }
        }
    }
}
