//! One call as the agent's device sees it: its state, flags, parties and data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{CallId, PartyId, QueueId};
use crate::time::Timestamp;
use crate::values::{Address, CallData, DisplayName};

/// Why a call failed or ended.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// Ordinary clearing: someone hung up.
    Normal,
    /// The far end was busy.
    Busy,
    /// Nobody answered in time (including ring-no-answer on an agent's device).
    NoAnswer,
    /// The called party or the agent rejected the call.
    Rejected,
    /// The destination could not be reached.
    Unreachable,
    /// The number is not valid.
    InvalidNumber,
    /// The network or switch was congested.
    Congestion,
    /// The caller gave up before the call was answered.
    Cancelled,
    /// The caller abandoned the call while queued.
    Abandoned,
    /// The call left this device by a transfer.
    Transferred,
    /// The call was diverted elsewhere before it was answered here.
    Diverted,
    /// The call was merged into another one (a conference).
    Merged,
    /// The switch no longer knows the call: it vanished while the link was down.
    Vanished,
    /// Any other cause.
    Other,
}

impl Cause {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Normal => "normal",
            Cause::Busy => "busy",
            Cause::NoAnswer => "no_answer",
            Cause::Rejected => "rejected",
            Cause::Unreachable => "unreachable",
            Cause::InvalidNumber => "invalid_number",
            Cause::Congestion => "congestion",
            Cause::Cancelled => "cancelled",
            Cause::Abandoned => "abandoned",
            Cause::Transferred => "transferred",
            Cause::Diverted => "diverted",
            Cause::Merged => "merged",
            Cause::Vanished => "vanished",
            Cause::Other => "other",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one call leg at the agent's device.
///
/// On the wire: `{"state":"connected"}`, `{"state":"ended","cause":"normal"}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum CallState {
    /// The device is dialling.
    Initiated,
    /// The far end is alerting.
    Ringback,
    /// The call is ringing at the agent's device.
    Offered,
    /// The call is waiting in a queue.
    Queued,
    /// Talking.
    Connected,
    /// The agent put the call on hold.
    Held,
    /// The call failed (busy, unreachable); it stays until cleared.
    Failed {
        /// Why.
        cause: Cause,
    },
    /// The call is over: nothing follows.
    Ended {
        /// Why.
        cause: Cause,
    },
}

impl CallState {
    /// The wire name.
    pub fn name(&self) -> &'static str {
        match self {
            CallState::Initiated => "initiated",
            CallState::Ringback => "ringback",
            CallState::Offered => "offered",
            CallState::Queued => "queued",
            CallState::Connected => "connected",
            CallState::Held => "held",
            CallState::Failed { .. } => "failed",
            CallState::Ended { .. } => "ended",
        }
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self, CallState::Ended { .. })
    }

    /// Whether the call is still being set up (dialling, alerting, offered or queued).
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            CallState::Initiated | CallState::Ringback | CallState::Offered | CallState::Queued
        )
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallState::Failed { cause } | CallState::Ended { cause } => {
                write!(f, "{} ({})", self.name(), cause)
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// Who placed the call, seen from the agent's device.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The call came to the device.
    Inbound,
    /// The device placed the call.
    Outbound,
}

/// What part the call plays on the desk.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRole {
    /// An ordinary call.
    #[default]
    Primary,
    /// A consultation call placed while another call is held (see `consult_of`).
    Consult,
    /// A conference of three or more parties.
    Conference,
}

/// Someone else on the call.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The connector's id for this party (a channel, a leg).
    pub id: PartyId,
    /// The party's number or URI, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// The party's display name, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
}

impl Party {
    /// A party known only by its id.
    pub fn new(id: PartyId) -> Self {
        Party {
            id,
            address: None,
            name: None,
        }
    }

    /// Sets the party's address.
    #[must_use]
    pub fn with_address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// Sets the party's display name.
    #[must_use]
    pub fn with_name(mut self, name: DisplayName) -> Self {
        self.name = Some(name);
        self
    }
}

/// One call on the agent's device: the model behind one row of a Call Control Panel.
///
/// On the wire the state is flattened in: `{"id":"c1","state":"held","direction":"inbound",...}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The call's id.
    pub id: CallId,
    /// Its state.
    #[serde(flatten)]
    pub state: CallState,
    /// Who placed it.
    pub direction: Direction,
    /// Primary, consult or conference.
    #[serde(default)]
    pub role: CallRole,
    /// The agent's microphone is muted on this call.
    #[serde(default)]
    pub muted: bool,
    /// The call is being recorded.
    #[serde(default)]
    pub recording: bool,
    /// For a consult call: the call it consults about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consult_of: Option<CallId>,
    /// For a call delivered by an ACD queue: that queue. Such a call is an ACD call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueId>,
    /// The calling address, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Address>,
    /// The called address, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Address>,
    /// The other parties on the call.
    #[serde(default)]
    pub parties: Vec<Party>,
    /// Data attached to the call.
    #[serde(default)]
    pub data: CallData,
    /// When the call entered its state, as the session saw it: the start of a call
    /// timer. Set by the session; a connector leaves it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<Timestamp>,
}

impl Call {
    /// The most parties one call may list.
    pub const MAX_PARTIES: usize = 32;

    /// A new call in `state` with nothing else known.
    pub fn new(id: CallId, state: CallState, direction: Direction) -> Self {
        Call {
            id,
            state,
            direction,
            role: CallRole::Primary,
            muted: false,
            recording: false,
            consult_of: None,
            queue: None,
            from: None,
            to: None,
            parties: Vec::new(),
            data: CallData::new(),
            state_since: None,
        }
    }

    /// Whether `other` is the same call in the same state with the same details, whatever
    /// the times the session noted.
    pub fn same_as(&self, other: &Call) -> bool {
        Call {
            state_since: None,
            ..self.clone()
        } == Call {
            state_since: None,
            ..other.clone()
        }
    }

    /// Whether an ACD queue delivered this call.
    pub fn is_acd(&self) -> bool {
        self.queue.is_some()
    }
}
