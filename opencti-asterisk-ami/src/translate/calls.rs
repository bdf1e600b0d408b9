//! Calls: channels of the device appearing, dialling and being dialled, answering,
//! ringing, hanging up; DTMF and recording on them; an `Originate`'s answer.

use opencti_core::{
    Address, CallData, CallId, CallState, Cause, DtmfDigits, Error, ErrorKind, Event, PartyId,
};

use crate::message::Message;
use crate::tracker::{state, Channel};

use super::{address, party, read_call, state_of, EventOut, FollowUp, Pending, Translator};

/// Q.850 cause codes to canonical causes.
pub(super) fn cause_from_q850(code: u16) -> Cause {
    match code {
        16 | 0 => Cause::Normal,
        17 => Cause::Busy,
        18 | 19 => Cause::NoAnswer,
        21 => Cause::Rejected,
        1 | 22 | 28 => Cause::InvalidNumber,
        2 | 3 | 20 | 27 | 38 => Cause::Unreachable,
        34 | 41 | 42 | 44 => Cause::Congestion,
        _ => Cause::Other,
    }
}

/// `DialStatus` values to canonical causes.
pub(super) fn cause_from_dial_status(status: &str) -> Cause {
    match status {
        "BUSY" => Cause::Busy,
        "NOANSWER" => Cause::NoAnswer,
        "CANCEL" => Cause::Cancelled,
        "CONGESTION" => Cause::Congestion,
        "CHANUNAVAIL" => Cause::Unreachable,
        "DONTCALL" | "TORTURE" => Cause::Rejected,
        "INVALIDARGS" => Cause::InvalidNumber,
        _ => Cause::Other,
    }
}

impl Translator<'_> {
    pub(super) fn channel_created(&mut self, uniqueid: &str, out: &mut dyn EventOut) {
        if !self.is_leg(uniqueid) {
            return;
        }
        if self
            .book
            .legs
            .get(uniqueid)
            .is_some_and(|l| l.primary.is_some())
        {
            return;
        }
        let Some(channel_state) = self.tracker.channel(uniqueid).map(|c| c.state) else {
            return;
        };
        if let Some(i) = self
            .book
            .originates
            .iter()
            .position(|o| &*o.channel_id == uniqueid)
        {
            let Ok(call) = CallId::new(uniqueid) else {
                return;
            };
            let originate = &mut self.book.originates[i];
            originate.initiated = true;
            let (command, to, data) = (
                originate.command,
                originate.to.clone(),
                originate.data.clone(),
            );
            if let Some(leg) = self.book.legs.get_mut(uniqueid) {
                leg.outbound = true;
            }
            self.start_call(uniqueid, call.clone());
            self.emit(
                out,
                Event::CallInitiated {
                    call,
                    to: Some(to),
                    consult_of: None,
                    data,
                },
                Some(command),
            );
        } else if channel_state == state::RING {
            // The phone went off hook to dial (a desk phone placing a call itself).
            let to = self
                .tracker
                .channel(uniqueid)
                .and_then(|c| address(&c.exten));
            self.phone_dials(uniqueid, to, out);
        }
    }

    pub(super) fn phone_dials(
        &mut self,
        uniqueid: &str,
        to: Option<Address>,
        out: &mut dyn EventOut,
    ) {
        let Some(call) = self
            .tracker
            .channel(uniqueid)
            .and_then(|c| self.new_call_id(c))
        else {
            return;
        };
        if let Some(leg) = self.book.legs.get_mut(uniqueid) {
            leg.outbound = true;
        }
        self.start_call(uniqueid, call.clone());
        self.emit(
            out,
            Event::CallInitiated {
                call,
                to,
                consult_of: None,
                data: CallData::new(),
            },
            None,
        );
    }

    pub(super) fn state_changed(&mut self, uniqueid: &str, to: u8, out: &mut dyn EventOut) {
        if self.is_leg(uniqueid) {
            if to == state::UP {
                // Answered by a phone that another channel dials: connected once the two
                // are bridged (a `BridgeEnter` follows at once), so that a command sent
                // on `call_connected` finds the bridge. Without a dialling channel (an
                // `Originate` from elsewhere) there may be no bridge: connected now.
                let dialed = self
                    .tracker
                    .channel(uniqueid)
                    .is_some_and(|c| c.dialed_by.is_some());
                if let Some(call) = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone()) {
                    if !dialed && state_of(out, &call) == Some(CallState::Offered) {
                        self.emit(out, Event::CallConnected { call }, None);
                    }
                }
            } else if to == state::RING {
                let primary = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone());
                if primary.is_none() {
                    let to = self
                        .tracker
                        .channel(uniqueid)
                        .and_then(|c| address(&c.exten));
                    self.phone_dials(uniqueid, to, out);
                }
            }
            return;
        }
        // The channel a leg dials, or a consultation's target.
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return;
        };
        if to == state::RINGING {
            if let Some(dialer) = channel.dialed_by.clone() {
                self.ringback(&dialer, out);
            }
        }
        if to != state::RINGING && to != state::UP {
            return;
        }
        let consult = self.book.legs.values().find_map(|l| {
            l.consult
                .as_ref()
                .filter(|c| &*c.target == uniqueid)
                .map(|c| c.call.clone())
        });
        if let Some(call) = consult {
            match to {
                state::RINGING => self.emit(out, Event::CallRingback { call }, None),
                state::UP => self.emit(out, Event::CallConnected { call }, None),
                _ => {}
            }
        }
    }

    pub(super) fn ringback(&mut self, dialer: &str, out: &mut dyn EventOut) {
        let Some(call) = self.book.legs.get(dialer).and_then(|l| l.primary.clone()) else {
            return;
        };
        if state_of(out, &call) == Some(CallState::Initiated) {
            self.emit(out, Event::CallRingback { call }, None);
        }
    }

    pub(super) fn caller_id_changed(&mut self, uniqueid: &str, out: &mut dyn EventOut) {
        // A party's number or name changed (a transfer, a connected-line update).
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return;
        };
        let Some(bridge) = channel.bridge.clone() else {
            return;
        };
        let Some(updated) = party(channel) else {
            return;
        };
        let calls = self.calls_in_bridge(&bridge, uniqueid);
        for call in calls {
            let listed = read_call(out, &call, |c| c.parties.iter().any(|p| p.id == updated.id))
                .unwrap_or(false);
            if listed {
                self.emit(
                    out,
                    Event::PartyJoined {
                        call,
                        party: updated.clone(),
                    },
                    None,
                );
            }
        }
    }

    pub(super) fn dial_begin(
        &mut self,
        caller: Option<&str>,
        dest: &str,
        dial_string: &str,
        out: &mut dyn EventOut,
    ) {
        if let Some(caller) = caller {
            if self.is_leg(caller) {
                if let Some(leg) = self.book.legs.get_mut(caller) {
                    leg.dialed = Some(dest.into());
                }
                let primary = self.book.legs.get(caller).and_then(|l| l.primary.clone());
                if primary.is_none() {
                    self.phone_dials(caller, address(dial_string), out);
                }
            }
        }
        if !self.is_leg(dest)
            || self
                .book
                .legs
                .get(dest)
                .is_some_and(|l| l.primary.is_some())
        {
            return;
        }
        // Someone dials the device: a call is offered.
        if self.book.legs.get(dest).is_some_and(|l| l.outbound) {
            // Our own Originate whose Newchannel was not seen: still outbound.
            self.phone_dials(dest, None, out);
            return;
        }
        let Some(channel) = self.tracker.channel(dest) else {
            return;
        };
        let caller_channel = caller.and_then(|c| self.tracker.channel(c));
        let from = match caller_channel {
            Some(c) => address(&c.caller_num),
            None => address(&channel.connected_num).or_else(|| address(&channel.caller_num)),
        };
        let to = caller_channel.and_then(|c| address(&c.exten));
        let Some(call) = self.new_call_id(channel) else {
            return;
        };
        let queue = self.book.take_queue_of(dest);
        self.start_call(dest, call.clone());
        self.emit(
            out,
            Event::CallOffered {
                call,
                from,
                to,
                queue,
                data: CallData::new(),
            },
            None,
        );
    }

    pub(super) fn dial_end(
        &mut self,
        caller: Option<&str>,
        dest: &str,
        status: &str,
        out: &mut dyn EventOut,
    ) {
        if let Some(caller) = caller {
            if let Some(call) = self.book.legs.get(caller).and_then(|l| l.primary.clone()) {
                let setup = state_of(out, &call).is_some_and(|s| s.is_setup());
                if setup {
                    // ANSWER: connected when the bridge forms (the next events).
                    if status != "ANSWER" {
                        let cause = cause_from_dial_status(status);
                        if let Some(leg) = self.book.legs.get_mut(caller) {
                            leg.end_cause = Some(cause);
                        }
                        self.emit(out, Event::CallFailed { call, cause }, None);
                    }
                }
            }
        }
        if let Some(leg) = self.book.legs.get_mut(dest) {
            if status != "ANSWER" {
                leg.end_cause = Some(cause_from_dial_status(status));
            }
        }
    }

    pub(super) fn hungup(
        &mut self,
        channel: &Channel,
        bridge: Option<&str>,
        cause: u16,
        out: &mut dyn EventOut,
    ) {
        let uniqueid: &str = &channel.uniqueid;
        self.book.take_queue_of(uniqueid);
        if let Some(leg) = self.book.legs.remove(uniqueid) {
            let end = if leg.transferred {
                Cause::Transferred
            } else {
                leg.end_cause.unwrap_or_else(|| cause_from_q850(cause))
            };
            if let Some(consult) = leg.consult {
                self.book.calls.remove(&consult.call);
                self.emit(
                    out,
                    Event::CallEnded {
                        call: consult.call,
                        cause: end,
                    },
                    None,
                );
            }
            if let Some(call) = leg.primary {
                self.book.calls.remove(&call);
                self.emit(out, Event::CallEnded { call, cause: end }, None);
            }
            self.book.originates.retain(|o| &*o.channel_id != uniqueid);
            return;
        }
        // A consultation's target hung up: that call is over.
        let consult_of: Vec<Box<str>> = self
            .book
            .legs
            .iter()
            .filter(|(_, l)| l.consult.as_ref().is_some_and(|c| &*c.target == uniqueid))
            .map(|(k, _)| k.clone())
            .collect();
        for leg_id in consult_of {
            let consult = self
                .book
                .legs
                .get_mut(&leg_id)
                .and_then(|l| l.consult.take());
            if let Some(consult) = consult {
                self.book.calls.remove(&consult.call);
                self.emit(
                    out,
                    Event::CallEnded {
                        call: consult.call,
                        cause: cause_from_q850(cause),
                    },
                    None,
                );
            }
        }
        // A party of a call hung up while still in the call's bridge, or while held.
        let mut ended_primary = Vec::new();
        let affected: Vec<(Box<str>, CallId, bool)> = self
            .book
            .legs
            .iter()
            .filter_map(|(k, l)| {
                let held_here = l.held_party.as_deref() == Some(uniqueid);
                let in_home = bridge.is_some() && l.home_bridge.as_deref() == bridge;
                let in_consult = l
                    .consult
                    .as_ref()
                    .is_some_and(|c| Some(&*c.bridge) == bridge);
                if !(held_here || in_home || in_consult) {
                    return None;
                }
                let call = if in_consult {
                    l.consult.as_ref().map(|c| c.call.clone())?
                } else {
                    l.primary.clone()?
                };
                Some((k.clone(), call, held_here))
            })
            .collect();
        // Its id is made only for the calls it was in (most hangups concern none here).
        if affected.is_empty() {
            return;
        }
        let Ok(party) = PartyId::new(uniqueid) else {
            return;
        };
        for (leg_id, call, held_here) in affected {
            self.emit(
                out,
                Event::PartyLeft {
                    call: call.clone(),
                    party: party.clone(),
                },
                None,
            );
            let leg = self.book.legs.get(&leg_id);
            let lonely = read_call(out, &call, |c| c.parties.is_empty()).unwrap_or(false);
            if held_here && lonely {
                // The held party hung up: the agent's leg sits alone in the wait
                // extension; hang it up so that no phantom call stays on the panel.
                if let Some(name) = self.tracker.channel(&leg_id).map(|c| c.name.clone()) {
                    self.book
                        .follow_ups
                        .push(FollowUp::Hangup { channel: name });
                }
            } else if lonely
                && leg.is_some_and(|l| l.consult.is_some() && l.primary.as_ref() == Some(&call))
            {
                // The consulted-about party hung up during the consultation.
                ended_primary.push((leg_id, call));
            }
        }
        for (leg_id, call) in ended_primary {
            if let Some(l) = self.book.legs.get_mut(&leg_id) {
                l.primary = None;
                l.home_bridge = None;
            }
            self.book.calls.remove(&call);
            self.emit(
                out,
                Event::CallEnded {
                    call,
                    cause: cause_from_q850(cause),
                },
                None,
            );
        }
    }

    pub(super) fn dtmf(
        &mut self,
        uniqueid: &str,
        digit: &str,
        received: bool,
        out: &mut dyn EventOut,
    ) {
        if !received {
            return;
        }
        let Some(leg) = self.book.legs.get(uniqueid) else {
            return;
        };
        // Feature codes queued by Atxfer / CancelAtxfer are not the agent's digits.
        if leg.consult.is_some() || leg.pending != Pending::None {
            return;
        }
        let (Some(call), Ok(digits)) = (leg.primary.clone(), DtmfDigits::new(digit)) else {
            return;
        };
        if state_of(out, &call) == Some(CallState::Connected) {
            self.emit(out, Event::DtmfSent { call, digits }, None);
        }
    }

    pub(super) fn recording(&mut self, uniqueid: &str, on: bool, out: &mut dyn EventOut) {
        let Some(call) = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone()) else {
            return;
        };
        let muted = read_call(out, &call, |c| c.muted).unwrap_or(false);
        self.emit(
            out,
            Event::CallFlagsChanged {
                call,
                muted,
                recording: on,
            },
            None,
        );
    }

    pub(super) fn originate_response(&mut self, msg: &Message, out: &mut dyn EventOut) {
        let Some(id) = msg.action_id() else {
            return;
        };
        let Some(i) = self.book.originates.iter().position(|o| o.action_id == id) else {
            return;
        };
        let originate = self.book.originates.remove(i);
        if msg.response() == Some("Success") || originate.initiated {
            return;
        }
        let reason = msg.get("Reason").unwrap_or("?");
        let why = match reason {
            "0" => "the agent's device could not be reached",
            "1" => "the agent's device hung up",
            "3" => "the agent's device did not answer in time",
            "5" => "the agent's device is busy",
            "8" => "the agent's device is congested or unavailable",
            _ => "Asterisk gave no reason",
        };
        let error = Error::new(
            ErrorKind::Rejected,
            format!("make_call failed: Originate reported failure (Reason {reason}: {why})"),
        );
        self.emit(
            out,
            Event::CommandFailed {
                error: error.to_body(),
            },
            Some(originate.command),
        );
    }
}
