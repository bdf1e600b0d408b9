//! Canonical events: what happened, in the past tense, in an envelope.

use serde::{Deserialize, Serialize};

use crate::agent::{AgentState, ChosenState};
use crate::call::{Cause, Party};
use crate::error::ErrorBody;
use crate::ids::{AgentId, CallId, CommandId, DeviceId, PartyId, QueueId};
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::values::{Address, CallData, DtmfDigits};

/// Something that happened at the switch, as the canonical model names it.
///
/// Connectors produce these; the session checks them against the state machines, stamps
/// them into an [`EventEnvelope`] and fans them out. On the wire the variant is the `type`
/// field: `{"type":"call_held","call":"c1"}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The link to the switch is up (again).
    LinkUp,
    /// The link to the switch is down; commands are refused until it is back.
    LinkDown {
        /// Why, for a person.
        reason: String,
    },
    /// After the link came back, the session rebuilt its state from the switch.
    Resynced {
        /// What changed, and the state now.
        changes: Box<ResyncChanges>,
    },
    /// The agent's state changed.
    AgentStateChanged {
        /// The new effective state.
        state: AgentState,
    },
    /// A state change was queued until the current call and wrap-up end.
    NextStateQueued {
        /// The state the agent will move to.
        next: ChosenState,
    },
    /// A call is ringing at the agent's device.
    CallOffered {
        /// The call.
        call: CallId,
        /// Who is calling, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Address>,
        /// The number that was called, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Address>,
        /// The ACD queue that delivered it, for an ACD call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<QueueId>,
        /// Data that came with the call.
        #[serde(default, skip_serializing_if = "CallData::is_empty")]
        data: CallData,
    },
    /// The agent's device started a call (dialling).
    CallInitiated {
        /// The new call.
        call: CallId,
        /// The number being called, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Address>,
        /// For a consultation call: the call it consults about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consult_of: Option<CallId>,
        /// Data attached to the call.
        #[serde(default, skip_serializing_if = "CallData::is_empty")]
        data: CallData,
    },
    /// The far end is alerting.
    CallRingback {
        /// The call.
        call: CallId,
    },
    /// The call is waiting in a queue.
    CallQueued {
        /// The call.
        call: CallId,
        /// The queue, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<QueueId>,
    },
    /// The call is connected (answered at either end).
    CallConnected {
        /// The call.
        call: CallId,
    },
    /// The call was put on hold at the agent's device.
    CallHeld {
        /// The call.
        call: CallId,
    },
    /// The call was taken off hold.
    CallRetrieved {
        /// The call.
        call: CallId,
    },
    /// The call was transferred; for the transferring device, `call_ended` follows.
    CallTransferred {
        /// The call.
        call: CallId,
        /// Where it went, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Address>,
    },
    /// The call became a conference.
    CallConferenced {
        /// The call that is now the conference.
        call: CallId,
        /// The consultation call merged into it, if any (`call_ended` with cause
        /// `merged` follows for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged: Option<CallId>,
    },
    /// The call was diverted away from the device before being answered; `call_ended`
    /// follows.
    CallDiverted {
        /// The call.
        call: CallId,
        /// Where it went, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Address>,
    },
    /// The call failed; it stays on the device until it ends.
    CallFailed {
        /// The call.
        call: CallId,
        /// Why.
        cause: Cause,
    },
    /// The call is over. Nothing follows for this call.
    CallEnded {
        /// The call.
        call: CallId,
        /// Why.
        cause: Cause,
    },
    /// A party joined the call.
    PartyJoined {
        /// The call.
        call: CallId,
        /// Who.
        party: Party,
    },
    /// A party left the call.
    PartyLeft {
        /// The call.
        call: CallId,
        /// Who.
        party: PartyId,
    },
    /// Data attached to the call changed.
    CallDataChanged {
        /// The call.
        call: CallId,
        /// The entries that were set.
        data: CallData,
    },
    /// The call's mute or recording flag changed.
    CallFlagsChanged {
        /// The call.
        call: CallId,
        /// Whether the agent is muted.
        muted: bool,
        /// Whether the call is recorded.
        recording: bool,
    },
    /// DTMF digits were sent on the call.
    DtmfSent {
        /// The call.
        call: CallId,
        /// The digits.
        digits: DtmfDigits,
    },
    /// A command failed after it was handed to the switch; the envelope names it.
    CommandFailed {
        /// Why.
        error: ErrorBody,
    },
}

impl Event {
    /// The wire name of the event (`call_held`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::LinkUp => "link_up",
            Event::LinkDown { .. } => "link_down",
            Event::Resynced { .. } => "resynced",
            Event::AgentStateChanged { .. } => "agent_state_changed",
            Event::NextStateQueued { .. } => "next_state_queued",
            Event::CallOffered { .. } => "call_offered",
            Event::CallInitiated { .. } => "call_initiated",
            Event::CallRingback { .. } => "call_ringback",
            Event::CallQueued { .. } => "call_queued",
            Event::CallConnected { .. } => "call_connected",
            Event::CallHeld { .. } => "call_held",
            Event::CallRetrieved { .. } => "call_retrieved",
            Event::CallTransferred { .. } => "call_transferred",
            Event::CallConferenced { .. } => "call_conferenced",
            Event::CallDiverted { .. } => "call_diverted",
            Event::CallFailed { .. } => "call_failed",
            Event::CallEnded { .. } => "call_ended",
            Event::PartyJoined { .. } => "party_joined",
            Event::PartyLeft { .. } => "party_left",
            Event::CallDataChanged { .. } => "call_data_changed",
            Event::CallFlagsChanged { .. } => "call_flags_changed",
            Event::DtmfSent { .. } => "dtmf_sent",
            Event::CommandFailed { .. } => "command_failed",
        }
    }

    /// The call this event is about, if any.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            Event::CallOffered { call, .. }
            | Event::CallInitiated { call, .. }
            | Event::CallRingback { call }
            | Event::CallQueued { call, .. }
            | Event::CallConnected { call }
            | Event::CallHeld { call }
            | Event::CallRetrieved { call }
            | Event::CallTransferred { call, .. }
            | Event::CallConferenced { call, .. }
            | Event::CallDiverted { call, .. }
            | Event::CallFailed { call, .. }
            | Event::CallEnded { call, .. }
            | Event::PartyJoined { call, .. }
            | Event::PartyLeft { call, .. }
            | Event::CallDataChanged { call, .. }
            | Event::CallFlagsChanged { call, .. }
            | Event::DtmfSent { call, .. } => Some(call),
            Event::LinkUp
            | Event::LinkDown { .. }
            | Event::Resynced { .. }
            | Event::AgentStateChanged { .. }
            | Event::NextStateQueued { .. }
            | Event::CommandFailed { .. } => None,
        }
    }
}

/// What a resynchronisation changed, and the state it arrived at.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncChanges {
    /// Calls the switch reported that the session did not know.
    pub added: Vec<CallId>,
    /// Calls the session knew that the switch no longer has: removed from the panel.
    pub removed: Vec<CallId>,
    /// Calls whose state or details differed.
    pub changed: Vec<CallId>,
    /// Whether the agent's state differed.
    pub agent_changed: bool,
    /// Whether the commands the switch withholds on this line differed: read the
    /// session's capabilities again.
    #[serde(default)]
    pub capabilities_changed: bool,
    /// The whole state after the resynchronisation.
    pub snapshot: Snapshot,
}

/// An [`Event`] as the session delivers it: numbered, timed, attributed.
///
/// On the wire the event's own fields are inlined next to the envelope's:
/// `{"seq":7,"at":1795238123000000,"agent":"a1","device":"1001","command":3,"type":"call_held","call":"c1"}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Position in the session's stream: starts at 1, no gaps.
    pub seq: u64,
    /// When the session received it.
    pub at: Timestamp,
    /// The agent of the session.
    pub agent: AgentId,
    /// The device of the session.
    pub device: DeviceId,
    /// The command this event confirms or fails, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandId>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl EventEnvelope {
    /// The call the event is about, if any.
    pub fn call(&self) -> Option<&CallId> {
        self.event.call()
    }
}
