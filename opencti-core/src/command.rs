//! Commands: what the desktop asks the switch to do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agent::ChosenState;
use crate::ids::{CallId, PartyId};
use crate::values::{CallData, Dialable, DtmfDigits, ReasonCode};

/// A request from the desktop to the switch.
///
/// On the wire: `{"type":"hold","call":"c1"}`. Unknown fields are refused.
///
/// ```
/// use opencti_core::{Command, CallId};
/// let cmd: Command = serde_json::from_str(r#"{"type":"hold","call":"c1"}"#).unwrap();
/// assert_eq!(cmd, Command::Hold { call: CallId::new("c1").unwrap() });
/// assert!(serde_json::from_str::<Command>(r#"{"type":"hold","call":"c1","x":1}"#).is_err());
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Command {
    /// Log the agent in on the device (lands in `not_ready` unless the switch says
    /// otherwise).
    Login {},
    /// Log the agent out.
    Logout {
        /// Why, where the switch records reasons.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReasonCode>,
    },
    /// Become ready or not ready, now or after the current call.
    SetAgentState {
        /// `ready` or `not_ready` (use `logout` to log out).
        state: ChosenState,
        /// Queue the change until the current call (and wrap-up) ends.
        #[serde(default)]
        after_call: bool,
    },
    /// Place a call from the agent's device.
    MakeCall {
        /// Whom to call.
        to: Dialable,
        /// Data to attach to the new call.
        #[serde(default, skip_serializing_if = "CallData::is_empty")]
        data: CallData,
    },
    /// Answer a call offered to the device.
    Answer {
        /// The offered call.
        call: CallId,
    },
    /// Refuse a call offered to the device.
    Reject {
        /// The offered call.
        call: CallId,
    },
    /// Hang up (or cancel) a call.
    Hangup {
        /// The call.
        call: CallId,
    },
    /// Put a connected call on hold.
    Hold {
        /// The call.
        call: CallId,
    },
    /// Take a held call off hold.
    Retrieve {
        /// The call.
        call: CallId,
    },
    /// Swap: hold the connected call and retrieve this held one.
    Alternate {
        /// The held call to retrieve.
        call: CallId,
    },
    /// Hold a call and dial a consultation call about it.
    Consult {
        /// The call to consult about.
        call: CallId,
        /// Whom to consult.
        to: Dialable,
    },
    /// Join a consultation call with the call it consults about, and leave.
    CompleteTransfer {
        /// The consultation call.
        call: CallId,
    },
    /// Transfer a call to another destination without consulting.
    BlindTransfer {
        /// The call to transfer.
        call: CallId,
        /// Where to.
        to: Dialable,
    },
    /// Merge a consultation call and the call it consults about into a conference.
    CompleteConference {
        /// The consultation call.
        call: CallId,
    },
    /// Remove one party from a conference.
    DropParty {
        /// The conference call.
        call: CallId,
        /// The party to remove.
        party: PartyId,
    },
    /// Send DTMF digits on a connected call.
    SendDtmf {
        /// The call.
        call: CallId,
        /// The digits.
        digits: DtmfDigits,
    },
    /// Attach data to a call (merged with what it has).
    SetCallData {
        /// The call.
        call: CallId,
        /// The entries to set.
        data: CallData,
    },
    /// End after-call work.
    CompleteWrapUp {
        /// The disposition code for the call, where the desktop records one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disposition: Option<ReasonCode>,
    },
}

impl Command {
    /// The kind of the command.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Login {} => CommandKind::Login,
            Command::Logout { .. } => CommandKind::Logout,
            Command::SetAgentState { .. } => CommandKind::SetAgentState,
            Command::MakeCall { .. } => CommandKind::MakeCall,
            Command::Answer { .. } => CommandKind::Answer,
            Command::Reject { .. } => CommandKind::Reject,
            Command::Hangup { .. } => CommandKind::Hangup,
            Command::Hold { .. } => CommandKind::Hold,
            Command::Retrieve { .. } => CommandKind::Retrieve,
            Command::Alternate { .. } => CommandKind::Alternate,
            Command::Consult { .. } => CommandKind::Consult,
            Command::CompleteTransfer { .. } => CommandKind::CompleteTransfer,
            Command::BlindTransfer { .. } => CommandKind::BlindTransfer,
            Command::CompleteConference { .. } => CommandKind::CompleteConference,
            Command::DropParty { .. } => CommandKind::DropParty,
            Command::SendDtmf { .. } => CommandKind::SendDtmf,
            Command::SetCallData { .. } => CommandKind::SetCallData,
            Command::CompleteWrapUp { .. } => CommandKind::CompleteWrapUp,
        }
    }

    /// The call the command acts on, if it acts on one.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            Command::Answer { call }
            | Command::Reject { call }
            | Command::Hangup { call }
            | Command::Hold { call }
            | Command::Retrieve { call }
            | Command::Alternate { call }
            | Command::Consult { call, .. }
            | Command::CompleteTransfer { call }
            | Command::BlindTransfer { call, .. }
            | Command::CompleteConference { call }
            | Command::DropParty { call, .. }
            | Command::SendDtmf { call, .. }
            | Command::SetCallData { call, .. } => Some(call),
            Command::Login {}
            | Command::Logout { .. }
            | Command::SetAgentState { .. }
            | Command::MakeCall { .. }
            | Command::CompleteWrapUp { .. } => None,
        }
    }
}

/// The kinds of [`Command`], without their arguments: what a UI enables buttons from.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
pub enum CommandKind {
    /// [`Command::Login`]
    Login,
    /// [`Command::Logout`]
    Logout,
    /// [`Command::SetAgentState`]
    SetAgentState,
    /// [`Command::MakeCall`]
    MakeCall,
    /// [`Command::Answer`]
    Answer,
    /// [`Command::Reject`]
    Reject,
    /// [`Command::Hangup`]
    Hangup,
    /// [`Command::Hold`]
    Hold,
    /// [`Command::Retrieve`]
    Retrieve,
    /// [`Command::Alternate`]
    Alternate,
    /// [`Command::Consult`]
    Consult,
    /// [`Command::CompleteTransfer`]
    CompleteTransfer,
    /// [`Command::BlindTransfer`]
    BlindTransfer,
    /// [`Command::CompleteConference`]
    CompleteConference,
    /// [`Command::DropParty`]
    DropParty,
    /// [`Command::SendDtmf`]
    SendDtmf,
    /// [`Command::SetCallData`]
    SetCallData,
    /// [`Command::CompleteWrapUp`]
    CompleteWrapUp,
}

impl CommandKind {
    /// Every kind, in declaration order.
    pub const ALL: [CommandKind; 18] = [
        CommandKind::Login,
        CommandKind::Logout,
        CommandKind::SetAgentState,
        CommandKind::MakeCall,
        CommandKind::Answer,
        CommandKind::Reject,
        CommandKind::Hangup,
        CommandKind::Hold,
        CommandKind::Retrieve,
        CommandKind::Alternate,
        CommandKind::Consult,
        CommandKind::CompleteTransfer,
        CommandKind::BlindTransfer,
        CommandKind::CompleteConference,
        CommandKind::DropParty,
        CommandKind::SendDtmf,
        CommandKind::SetCallData,
        CommandKind::CompleteWrapUp,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Login => "login",
            CommandKind::Logout => "logout",
            CommandKind::SetAgentState => "set_agent_state",
            CommandKind::MakeCall => "make_call",
            CommandKind::Answer => "answer",
            CommandKind::Reject => "reject",
            CommandKind::Hangup => "hangup",
            CommandKind::Hold => "hold",
            CommandKind::Retrieve => "retrieve",
            CommandKind::Alternate => "alternate",
            CommandKind::Consult => "consult",
            CommandKind::CompleteTransfer => "complete_transfer",
            CommandKind::BlindTransfer => "blind_transfer",
            CommandKind::CompleteConference => "complete_conference",
            CommandKind::DropParty => "drop_party",
            CommandKind::SendDtmf => "send_dtmf",
            CommandKind::SetCallData => "set_call_data",
            CommandKind::CompleteWrapUp => "complete_wrap_up",
        }
    }

    /// Whether the command acts on one call.
    pub fn takes_call(self) -> bool {
        !matches!(
            self,
            CommandKind::Login
                | CommandKind::Logout
                | CommandKind::SetAgentState
                | CommandKind::MakeCall
                | CommandKind::CompleteWrapUp
        )
    }

    fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`CommandKind`]s, such as the commands allowed now. On the wire, a list of
/// names.
///
/// ```
/// use opencti_core::{CommandKind, CommandSet};
/// let set = CommandSet::EMPTY.with(CommandKind::Hold).with(CommandKind::Hangup);
/// assert!(set.contains(CommandKind::Hold));
/// assert_eq!(serde_json::to_string(&set).unwrap(), r#"["hangup","hold"]"#);
/// assert_eq!(set.to_string(), "hangup, hold");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommandSet(u32);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for CommandSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CommandSet".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kind = generator.subschema_for::<CommandKind>();
        schemars::json_schema!({ "type": "array", "items": kind, "uniqueItems": true })
    }
}

impl CommandSet {
    /// No commands.
    pub const EMPTY: CommandSet = CommandSet(0);

    /// Every command.
    pub fn all() -> Self {
        CommandKind::ALL.iter().fold(Self::EMPTY, |s, k| s.with(*k))
    }

    /// This set plus `kind`.
    #[must_use]
    pub fn with(self, kind: CommandKind) -> Self {
        CommandSet(self.0 | kind.bit())
    }

    /// This set without `kind`.
    #[must_use]
    pub fn without(self, kind: CommandKind) -> Self {
        CommandSet(self.0 & !kind.bit())
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: CommandKind) {
        self.0 |= kind.bit();
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: CommandKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Commands in both sets.
    #[must_use]
    pub fn intersection(self, other: CommandSet) -> Self {
        CommandSet(self.0 & other.0)
    }

    /// Commands in either set.
    #[must_use]
    pub fn union(self, other: CommandSet) -> Self {
        CommandSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = CommandKind> {
        CommandKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl FromIterator<CommandKind> for CommandSet {
    fn from_iter<I: IntoIterator<Item = CommandKind>>(iter: I) -> Self {
        iter.into_iter().fold(CommandSet::EMPTY, |s, k| s.with(k))
    }
}

impl fmt::Debug for CommandSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for CommandSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut names: Vec<&str> = self.iter().map(CommandKind::as_str).collect();
        names.sort_unstable();
        f.write_str(&names.join(", "))
    }
}

impl Serialize for CommandSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&str> = self.iter().map(CommandKind::as_str).collect();
        names.sort_unstable();
        s.collect_seq(names)
    }
}

impl<'de> Deserialize<'de> for CommandSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kinds = Vec::<CommandKind>::deserialize(d)?;
        Ok(kinds.into_iter().collect())
    }
}
