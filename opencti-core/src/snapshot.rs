//! The state of a desk at one moment: the model of a Call Control Panel.

use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::call::Call;
use crate::ids::{AgentId, CallId, DeviceId};

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
}
