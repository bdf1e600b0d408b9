//! The state of a desk at one moment: the model of a Call Control Panel.

use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::call::Call;
use crate::command::CommandKind;
use crate::ids::{AgentId, CallId, DeviceId};
use crate::time::Timestamp;

/// Whether the connector's link to the switch is up.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connected to the switch.
    Up,
    /// Not connected: commands are refused; the state shown may be stale.
    Down,
}

/// The session's view of the agent and its calls, consistent as of event `seq`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last event applied (0 before the first).
    pub seq: u64,
    /// The agent.
    pub agent: AgentId,
    /// The agent's device.
    pub device: DeviceId,
    /// The link to the switch.
    pub link: LinkState,
    /// The agent's effective state.
    pub agent_state: AgentState,
    /// When the agent entered that state, as the session saw it (none before the first
    /// change): the start of a time-in-state clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_state_since: Option<Timestamp>,
    /// The calls on the device that have not ended, oldest first.
    pub calls: Vec<Call>,
}

impl Snapshot {
    /// The call with this id.
    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.iter().find(|c| &c.id == id)
    }
}

/// What a connector reports of the switch's current state, for resynchronisation.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchState {
    /// The agent's state at the switch. Derived states (busy, reserved) are recomputed by
    /// the session from `calls`; a wrap-up is kept when no call is active.
    pub agent: AgentState,
    /// The calls on the agent's device.
    pub calls: Vec<Call>,
    /// Commands the connector supports in general that the switch does not allow on
    /// this line, with why (an Asterisk agent whose queue membership is written in the
    /// switch's configuration cannot log in or out). The session refuses them as
    /// `unsupported` with that reason and leaves them out of the capabilities and
    /// `allowed_commands` until a later resynchronisation reports otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Withheld>,
}

impl SwitchState {
    /// The switch's state with nothing withheld.
    pub fn new(agent: AgentState, calls: Vec<Call>) -> Self {
        SwitchState {
            agent,
            calls,
            withheld: Vec::new(),
        }
    }
}

/// A command the switch does not allow on one line, and why.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    /// The command.
    pub command: CommandKind,
    /// Why, and what to do instead, for a person.
    pub reason: String,
}
