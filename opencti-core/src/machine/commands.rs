//! Which commands each state allows, and which event confirms each command.
//!
//! `allowed_commands` and `check` share one rule per command ([`Desk::permits`]), so a UI
//! that enables its buttons from `allowed_commands` never offers what `check` refuses.

use crate::agent::{AgentState, ChosenState};
use crate::call::{Call, CallRole, CallState};
use crate::command::{Command, CommandKind, CommandSet};
use crate::event::Event;
use crate::ids::CallId;
use crate::snapshot::LinkState;
use crate::{Error, ErrorKind, Result};

use super::Desk;

impl Desk {
    /// Whether the state allows a command of `kind` (on `call`, for call commands), and if
    /// not, why not.
    fn permits(&self, kind: CommandKind, call: Option<&Call>) -> Result<(), String> {
        use CallState::*;
        let agent = &self.agent;
        let state = call.map(|c| c.state);
        let ok = match kind {
            CommandKind::Login => !agent.is_logged_in(),
            CommandKind::Logout | CommandKind::SetAgentState => agent.is_logged_in(),
            CommandKind::CompleteWrapUp => matches!(agent, AgentState::WrapUp { .. }),
            CommandKind::MakeCall => {
                if self.calls.len() >= Self::MAX_CALLS {
                    return Err(format!("the device already has {} calls", self.calls.len()));
                }
                if let Some(busy) = self
                    .calls
                    .iter()
                    .find(|c| matches!(c.state, Connected | Initiated | Ringback | Queued))
                {
                    return Err(format!(
                        "call {} is {}: hold it first, or consult",
                        busy.id, busy.state
                    ));
                }
                true
            }
            CommandKind::Answer | CommandKind::Reject => state == Some(Offered),
            CommandKind::Hangup => matches!(
                state,
                Some(Initiated | Ringback | Queued | Connected | Held | Failed { .. })
            ),
            CommandKind::Hold | CommandKind::SendDtmf => state == Some(Connected),
            CommandKind::BlindTransfer => matches!(state, Some(Connected | Held)),
            CommandKind::SetCallData => state.is_some(),
            CommandKind::Retrieve => {
                if state != Some(Held) {
                    false
                } else if let Some(other) = self.other_connected(call) {
                    return Err(format!(
                        "call {} is connected: use alternate to swap",
                        other.id
                    ));
                } else {
                    true
                }
            }
            CommandKind::Alternate => state == Some(Held) && self.other_connected(call).is_some(),
            CommandKind::Consult => {
                if !matches!(state, Some(Connected | Held)) {
                    false
                } else if let Some(c) = call.and_then(|c| self.consult_of(&c.id)) {
                    return Err(format!("call {} is already a consultation about it", c.id));
                } else if self.calls.len() >= Self::MAX_CALLS {
                    return Err(format!("the device already has {} calls", self.calls.len()));
                } else if let Some(other) = self.other_connected(call) {
                    return Err(format!("call {} is connected: hold it first", other.id));
                } else {
                    true
                }
            }
            CommandKind::CompleteTransfer => {
                matches!(state, Some(Connected | Ringback | Held)) && self.has_primary(call)
            }
            CommandKind::CompleteConference => {
                matches!(state, Some(Connected | Held)) && self.has_primary(call)
            }
            CommandKind::DropParty => {
                matches!(state, Some(Connected | Held))
                    && call.is_some_and(|c| c.role == CallRole::Conference && !c.parties.is_empty())
            }
            // Kinds added later are allowed only once a rule exists for them.
            #[allow(unreachable_patterns)]
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(String::new())
        }
    }

    fn other_connected(&self, call: Option<&Call>) -> Option<&Call> {
        self.calls
            .iter()
            .find(|c| c.state == CallState::Connected && Some(&c.id) != call.map(|call| &call.id))
    }

    fn consult_of(&self, primary: &CallId) -> Option<&Call> {
        self.calls
            .iter()
            .find(|c| c.consult_of.as_ref() == Some(primary))
    }

    fn has_primary(&self, consult: Option<&Call>) -> bool {
        consult
            .and_then(|c| c.consult_of.as_ref())
            .and_then(|p| self.call(p))
            .is_some_and(|p| matches!(p.state, CallState::Held | CallState::Connected))
    }

    /// The commands allowed now: for the agent and device (`call` = `None`: login, logout,
    /// set_agent_state, make_call, complete_wrap_up) or for one call. Only commands the
    /// connector supports are listed, and none while the link is down.
    ///
    /// ```
    /// use opencti_core::machine::Desk;
    /// use opencti_core::{AgentId, Capabilities, CommandKind, DeviceId, Event};
    /// let mut desk = Desk::new(AgentId::new("a").unwrap(), DeviceId::new("d").unwrap(), Capabilities::all());
    /// desk.apply(&mut Event::LinkUp).unwrap();
    /// let allowed = desk.allowed_commands(None);
    /// assert!(allowed.contains(CommandKind::Login));
    /// assert!(!allowed.contains(CommandKind::Logout));
    /// ```
    pub fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet {
        if self.link == LinkState::Down {
            return CommandSet::EMPTY;
        }
        let call = match call {
            Some(id) => match self.call(id) {
                Some(call) => Some(call),
                None => return CommandSet::EMPTY,
            },
            None => None,
        };
        CommandKind::ALL
            .into_iter()
            .filter(|k| k.takes_call() == call.is_some())
            .filter(|k| self.capabilities.supports(*k))
            .filter(|k| self.permits(*k, call).is_ok())
            .collect()
    }

    /// Checks `command` against the state and the capabilities before it reaches the
    /// switch. A refusal names the current state and the commands allowed instead.
    pub fn check(&self, command: &Command) -> Result<()> {
        let kind = command.kind();
        if !self.capabilities.supports(kind) {
            let why = match self.withheld.iter().find(|w| w.command == kind) {
                Some(withheld) => format!("{} refused: {}", kind, withheld.reason),
                None => format!("this connector does not support {}", kind),
            };
            return Err(Error::new(ErrorKind::Unsupported, why));
        }
        if self.link == LinkState::Down {
            return Err(Error::new(
                ErrorKind::LinkDown,
                format!("{} refused: the link to the switch is down", kind),
            ));
        }
        let call = match command.call() {
            Some(id) => match self.call(id) {
                Some(call) => Some(call),
                None => {
                    let why = if self.has_ended(id) {
                        "it has ended"
                    } else {
                        "there is no such call on this device"
                    };
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("{} refused for call {}: {}", kind, id, why),
                    ));
                }
            },
            None => None,
        };
        if let Err(why) = self.permits(kind, call) {
            let (what, allowed) = match call {
                Some(c) => (
                    format!("call {} is {}", c.id, c.state),
                    self.allowed_commands(Some(&c.id)),
                ),
                None => (
                    format!("the agent is {}", self.agent),
                    self.allowed_commands(None),
                ),
            };
            let because = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why)
            };
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "{} refused: {}{}; allowed now: {}",
                    kind, what, because, allowed
                ),
            )
            .with_allowed(allowed));
        }
        self.check_arguments(command, call)
    }

    fn check_arguments(&self, command: &Command, call: Option<&Call>) -> Result<()> {
        match command {
            Command::SetAgentState { state, after_call } => {
                if *state == ChosenState::LoggedOut {
                    return Err(Error::new(
                        ErrorKind::BadInput,
                        "set_agent_state takes ready or not_ready; use logout to log out",
                    ));
                }
                if *after_call && !self.capabilities.next_state_after_call {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "this connector cannot queue a state change until after the call",
                    ));
                }
            }
            Command::DropParty { party, .. } => {
                if let Some(call) = call {
                    if !call.parties.iter().any(|p| &p.id == party) {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "drop_party refused: call {} has no party {}",
                                call.id, party
                            ),
                        ));
                    }
                }
            }
            Command::SetCallData { data, .. } => {
                if let Some(call) = call {
                    call.data.clone().merge(data)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// What confirms `command`, resolved against the current state (for a transfer or
    /// conference, the consult call and the call it consults about).
    pub fn expectation(&self, command: &Command) -> Expectation {
        let primary = |call: &CallId| {
            self.call(call)
                .and_then(|c| c.consult_of.clone())
                .unwrap_or_else(|| call.clone())
        };
        match command {
            Command::Login {} => Expectation::LoggedIn,
            Command::Logout { .. } => Expectation::LoggedOut,
            Command::SetAgentState { state, .. } => Expectation::Chosen(state.name()),
            Command::MakeCall { .. } => Expectation::NewCall { consult_of: None },
            Command::Consult { call, .. } => Expectation::NewCall {
                consult_of: Some(call.clone()),
            },
            Command::Answer { call } => Expectation::on(CommandKind::Answer, call, call),
            Command::Reject { call } => Expectation::on(CommandKind::Reject, call, call),
            Command::Hangup { call } => Expectation::on(CommandKind::Hangup, call, call),
            Command::Hold { call } => Expectation::on(CommandKind::Hold, call, call),
            Command::Retrieve { call } => Expectation::on(CommandKind::Retrieve, call, call),
            Command::Alternate { call } => Expectation::on(CommandKind::Alternate, call, call),
            Command::BlindTransfer { call, .. } => {
                Expectation::on(CommandKind::BlindTransfer, call, call)
            }
            Command::CompleteTransfer { call } => {
                Expectation::on(CommandKind::CompleteTransfer, call, &primary(call))
            }
            Command::CompleteConference { call } => {
                Expectation::on(CommandKind::CompleteConference, call, &primary(call))
            }
            Command::DropParty { call, party } => Expectation::PartyLeft {
                call: call.clone(),
                party: party.clone(),
            },
            Command::SendDtmf { call, .. } => Expectation::on(CommandKind::SendDtmf, call, call),
            Command::SetCallData { call, .. } => {
                Expectation::on(CommandKind::SetCallData, call, call)
            }
            Command::CompleteWrapUp { .. } => Expectation::WrapUpDone,
        }
    }
}

/// The event that confirms a command: computed when the command is submitted, matched
/// against each event until one fits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expectation {
    /// `agent_state_changed` to a logged-in state.
    LoggedIn,
    /// `agent_state_changed` to `logged_out`.
    LoggedOut,
    /// `agent_state_changed` whose chosen state has this name, or `next_state_queued`.
    Chosen(&'static str),
    /// `agent_state_changed` out of wrap-up.
    WrapUpDone,
    /// `call_initiated` for a new call (a consultation about `consult_of`, if set).
    NewCall {
        /// The call a consultation is about.
        consult_of: Option<crate::CallId>,
    },
    /// `party_left` for that party.
    PartyLeft {
        /// The call.
        call: crate::CallId,
        /// The party.
        party: crate::PartyId,
    },
    /// The call event that confirms a call command, on `call` or on `other` (the call a
    /// consultation is about).
    OnCall {
        /// What the command was.
        kind: CommandKind,
        /// The call it acts on.
        call: crate::CallId,
        /// The other call whose event also confirms it (the same call for most commands).
        other: crate::CallId,
    },
}

impl Expectation {
    fn on(kind: CommandKind, call: &CallId, other: &CallId) -> Self {
        Expectation::OnCall {
            kind,
            call: call.clone(),
            other: other.clone(),
        }
    }

    /// Whether `event` confirms the command.
    pub fn is_confirmed_by(&self, event: &Event) -> bool {
        match (self, event) {
            (Expectation::LoggedIn, Event::AgentStateChanged { state }) => state.is_logged_in(),
            (Expectation::LoggedOut, Event::AgentStateChanged { state }) => !state.is_logged_in(),
            (Expectation::Chosen(name), Event::AgentStateChanged { state }) => {
                state.chosen().name() == *name
            }
            (Expectation::Chosen(name), Event::NextStateQueued { next }) => next.name() == *name,
            (Expectation::WrapUpDone, Event::AgentStateChanged { state }) => {
                !matches!(state, AgentState::WrapUp { .. })
            }
            (Expectation::NewCall { consult_of }, Event::CallInitiated { consult_of: c, .. }) => {
                consult_of == c
            }
            (Expectation::PartyLeft { call, party }, Event::PartyLeft { call: c, party: p }) => {
                call == c && party == p
            }
            (Expectation::OnCall { kind, call, other }, event) => {
                let Some(c) = event.call() else {
                    return false;
                };
                let on_call = c == call;
                let on_either = on_call || c == other;
                match (kind, event) {
                    (CommandKind::Answer, Event::CallConnected { .. }) => on_call,
                    (CommandKind::Reject, Event::CallEnded { .. } | Event::CallDiverted { .. }) => {
                        on_call
                    }
                    (CommandKind::Hangup, Event::CallEnded { .. }) => on_call,
                    (CommandKind::Hold, Event::CallHeld { .. }) => on_call,
                    (
                        CommandKind::Retrieve | CommandKind::Alternate,
                        Event::CallRetrieved { .. },
                    ) => on_call,
                    (CommandKind::BlindTransfer, Event::CallTransferred { .. }) => on_call,
                    (CommandKind::CompleteTransfer, Event::CallTransferred { .. }) => on_either,
                    (CommandKind::CompleteConference, Event::CallConferenced { .. }) => on_either,
                    (CommandKind::SendDtmf, Event::DtmfSent { .. }) => on_call,
                    (CommandKind::SetCallData, Event::CallDataChanged { .. }) => on_call,
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// Whether `event` makes the command impossible (its call ended first), with the
    /// reason.
    pub fn is_defeated_by(&self, event: &Event) -> Option<String> {
        let Event::CallEnded { call: ended, cause } = event else {
            return None;
        };
        let (kind, call, other) = match self {
            Expectation::OnCall { kind, call, other } => (kind.as_str(), call, other),
            Expectation::PartyLeft { call, .. } => ("drop_party", call, call),
            Expectation::NewCall {
                consult_of: Some(call),
            } => ("consult", call, call),
            _ => return None,
        };
        (ended == call || ended == other).then(|| {
            format!(
                "call {} ended ({}) before {} took effect",
                ended, cause, kind
            )
        })
    }
}
