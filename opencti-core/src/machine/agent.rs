//! The agent state machine: chosen states from the switch, derived states from the calls.
//!
//! Pure: no I/O, no clock.

use crate::agent::{AgentState, ChosenState};
use crate::{Error, ErrorKind, Result};

/// What the calls on the device amount to, for deriving the agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activity {
    /// No call, or only ended ones.
    Idle,
    /// A call is ringing at the device, and no other call is in progress.
    Reserved,
    /// A call is in progress (dialling, talking, held, failed but not cleared).
    Busy,
}

/// The agent's effective state after the calls' activity changed.
///
/// `wrap_up_due` says the busy period that just ended included an ACD call and the switch
/// imposes after-call work.
pub(super) fn derive(current: &AgentState, activity: Activity, wrap_up_due: bool) -> AgentState {
    if !current.is_logged_in() {
        return AgentState::LoggedOut;
    }
    let next = current.chosen();
    match activity {
        Activity::Busy => AgentState::Busy { next },
        Activity::Reserved => AgentState::Reserved { next },
        Activity::Idle => match current {
            AgentState::Busy { .. } if wrap_up_due => AgentState::WrapUp { reason: None, next },
            AgentState::WrapUp { .. } => current.clone(),
            _ => next.to_agent_state(),
        },
    }
}

/// The agent's state after the switch reported `reported`, given the calls' `activity`.
///
/// A chosen state reported while a derived state holds becomes the state to return to
/// (the agent stays busy); a chosen state ends wrap-up. A derived state is accepted only
/// where it agrees with the calls.
pub(super) fn on_reported(
    current: &AgentState,
    reported: &AgentState,
    activity: Activity,
) -> Result<AgentState> {
    let chosen = reported.chosen();
    match reported {
        AgentState::LoggedOut => Ok(AgentState::LoggedOut),
        AgentState::NotReady { .. } | AgentState::Ready => Ok(match activity {
            Activity::Busy => AgentState::Busy { next: chosen },
            Activity::Reserved => AgentState::Reserved { next: chosen },
            Activity::Idle => chosen.to_agent_state(),
        }),
        AgentState::Reserved { .. } | AgentState::Busy { .. } => {
            let agrees = match activity {
                Activity::Busy => matches!(reported, AgentState::Busy { .. }),
                Activity::Reserved => matches!(reported, AgentState::Reserved { .. }),
                Activity::Idle => false,
            };
            if agrees && current.is_logged_in() {
                Ok(reported.clone())
            } else {
                Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "agent reported {} while the device's calls make it {}",
                        reported.name(),
                        derive(current, activity, false).name()
                    ),
                ))
            }
        }
        AgentState::WrapUp { .. } => {
            if activity == Activity::Idle && current.is_logged_in() {
                Ok(reported.clone())
            } else if !current.is_logged_in() {
                Err(Error::new(
                    ErrorKind::InvalidState,
                    "agent reported wrap_up while logged out",
                ))
            } else {
                Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "agent reported wrap_up while a call is still {}",
                        if activity == Activity::Busy {
                            "in progress"
                        } else {
                            "ringing"
                        }
                    ),
                ))
            }
        }
    }
}

/// The agent's state after the switch queued `next` for after the current call.
pub(super) fn on_next_queued(current: &AgentState, next: &ChosenState) -> Result<AgentState> {
    match current {
        AgentState::Reserved { .. } => Ok(AgentState::Reserved { next: next.clone() }),
        AgentState::Busy { .. } => Ok(AgentState::Busy { next: next.clone() }),
        AgentState::WrapUp { reason, .. } => Ok(AgentState::WrapUp {
            reason: reason.clone(),
            next: next.clone(),
        }),
        _ => Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "next_state_queued while the agent is {}; a state can only be queued during a call or wrap-up",
                current.name()
            ),
        )),
    }
}
