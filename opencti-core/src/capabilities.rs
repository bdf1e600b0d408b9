//! What a connector (and the switch behind it) can do.

use serde::{Deserialize, Serialize};

use crate::command::{CommandKind, CommandSet};

/// What a connector can do. A command it cannot do fails with
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) before it reaches the switch,
/// and never appears in `allowed_commands`.
///
/// ```
/// use opencti_core::{Capabilities, CommandKind};
/// let caps = Capabilities::none()
///     .with(CommandKind::MakeCall)
///     .with(CommandKind::Hangup);
/// assert!(caps.supports(CommandKind::Hangup));
/// assert!(!caps.supports(CommandKind::Answer));
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The commands the connector carries out.
    pub commands: CommandSet,
    /// `set_agent_state` with `after_call` is supported.
    pub next_state_after_call: bool,
    /// The switch imposes after-call work on ACD calls: when the last call of a busy
    /// period that included an ACD call ends, the agent enters `wrap_up` until the agent
    /// completes it or the switch ends it with a chosen state.
    pub wrap_up: bool,
}

impl Capabilities {
    /// Nothing supported.
    pub fn none() -> Self {
        Capabilities::default()
    }

    /// Everything supported, including after-call work.
    pub fn all() -> Self {
        Capabilities {
            commands: CommandSet::all(),
            next_state_after_call: true,
            wrap_up: true,
        }
    }

    /// These capabilities plus `kind`.
    #[must_use]
    pub fn with(mut self, kind: CommandKind) -> Self {
        self.commands.insert(kind);
        self
    }

    /// These capabilities without `kind`.
    #[must_use]
    pub fn without(mut self, kind: CommandKind) -> Self {
        self.commands = self.commands.without(kind);
        self
    }

    /// Sets whether `after_call` agent-state changes are supported.
    #[must_use]
    pub fn with_next_state_after_call(mut self, yes: bool) -> Self {
        self.next_state_after_call = yes;
        self
    }

    /// Sets whether the switch imposes after-call work on ACD calls.
    #[must_use]
    pub fn with_wrap_up(mut self, yes: bool) -> Self {
        self.wrap_up = yes;
        self
    }

    /// Whether the connector carries out commands of `kind`.
    pub fn supports(&self, kind: CommandKind) -> bool {
        self.commands.contains(kind)
    }
}
