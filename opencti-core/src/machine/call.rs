//! The call state machine: how one call's state moves on each call event.
//!
//! Pure: no I/O, no clock. The desk ([`super::Desk`]) creates calls and removes ended
//! ones; this file says what an event does to a call that exists.

use crate::call::{Call, CallRole, CallState};
use crate::event::Event;
use crate::{Error, ErrorKind, Result};

use super::Step;

/// Applies `event` (about `call`) to the call. `call` is not ended: the desk removes calls
/// when they end.
pub(super) fn apply(call: &mut Call, event: &Event) -> Result<Step> {
    use CallState::*;
    let state = call.state;
    let next = match event {
        Event::CallOffered { .. } => return duplicate_if(state == Offered, call, event),
        Event::CallInitiated { .. } => return duplicate_if(state == Initiated, call, event),
        Event::CallRingback { .. } => match state {
            Initiated | Queued => Ringback,
            Ringback => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "initiated or queued"),
        },
        Event::CallQueued { queue, .. } => match state {
            Initiated | Ringback => {
                if queue.is_some() {
                    call.queue = queue.clone();
                }
                Queued
            }
            Queued => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "initiated or ringback"),
        },
        Event::CallConnected { .. } => match state {
            Initiated | Ringback | Queued | Offered => Connected,
            Connected => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "initiated, ringback, queued or offered"),
        },
        Event::CallHeld { .. } => match state {
            Connected => Held,
            Held => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "connected"),
        },
        Event::CallRetrieved { .. } => match state {
            Held => Connected,
            Connected => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "held"),
        },
        Event::CallTransferred { .. } => state,
        Event::CallConferenced { .. } => match state {
            Connected | Held => {
                call.role = CallRole::Conference;
                Connected
            }
            _ => return refuse(call, event, "connected or held"),
        },
        Event::CallDiverted { .. } => match state {
            Offered | Queued | Initiated | Ringback => state,
            _ => return refuse(call, event, "offered, queued, initiated or ringback"),
        },
        Event::CallFailed { cause, .. } => match state {
            Initiated | Ringback | Queued | Offered => Failed { cause: *cause },
            Failed { .. } => return Ok(Step::Duplicate),
            _ => return refuse(call, event, "initiated, ringback, queued or offered"),
        },
        Event::CallEnded { cause, .. } => Ended { cause: *cause },
        Event::PartyJoined { party, .. } => {
            if let Some(known) = call.parties.iter_mut().find(|p| p.id == party.id) {
                if known == party {
                    return Ok(Step::Duplicate);
                }
                *known = party.clone();
            } else if call.parties.len() >= Call::MAX_PARTIES {
                return Err(Error::new(
                    ErrorKind::BadInput,
                    format!(
                        "call {} already lists {} parties; at most {} are kept",
                        call.id,
                        call.parties.len(),
                        Call::MAX_PARTIES
                    ),
                ));
            } else {
                call.parties.push(party.clone());
            }
            state
        }
        Event::PartyLeft { party, .. } => {
            let before = call.parties.len();
            call.parties.retain(|p| &p.id != party);
            if call.parties.len() == before {
                return Ok(Step::Duplicate);
            }
            state
        }
        Event::CallDataChanged { data, .. } => {
            call.data.merge(data)?;
            state
        }
        Event::CallFlagsChanged {
            muted, recording, ..
        } => {
            if call.muted == *muted && call.recording == *recording {
                return Ok(Step::Duplicate);
            }
            call.muted = *muted;
            call.recording = *recording;
            state
        }
        Event::DtmfSent { .. } => match state {
            Connected => state,
            _ => return refuse(call, event, "connected"),
        },
        _ => {
            return Err(Error::new(
                ErrorKind::Other,
                format!("{} is not a call event", event.name()),
            ))
        }
    };
    call.state = next;
    Ok(Step::Changed)
}

fn duplicate_if(same: bool, call: &Call, event: &Event) -> Result<Step> {
    if same {
        Ok(Step::Duplicate)
    } else {
        Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "{} for call {}, which already exists in state {}",
                event.name(),
                call.id,
                call.state
            ),
        ))
    }
}

fn refuse(call: &Call, event: &Event, expected: &str) -> Result<Step> {
    Err(Error::new(
        ErrorKind::InvalidState,
        format!(
            "{} for call {} in state {}; it may only follow {}",
            event.name(),
            call.id,
            call.state,
            expected
        ),
    ))
}
