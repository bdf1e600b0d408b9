//! Bridges and hold: who talks to whom. A leg entering a bridge connects, retrieves,
//! starts a consultation or joins a conference; a party entering or leaving a bridge
//! with a leg joins or leaves its call; a leg leaving into the hold context holds it.

use opencti_core::{CallData, CallId, CallRole, CallState, Cause, Event, Party, PartyId};

use crate::tracker::state;

use super::{
    address, party, read_call, state_of, Consult, DeviceChannel, EventOut, Peer, Pending,
    Translator, CONFERENCE_BRIDGE,
};

/// What `leg_entered` reads of a leg as it was when the event came (the leg itself
/// changes as the event is translated): these fields only, not a copy of the whole leg.
struct EnteringLeg {
    primary: Option<CallId>,
    consult: Option<Consult>,
    pending: Pending,
    home_bridge: Option<Box<str>>,
    held_party: Option<Box<str>>,
    redirect_held: bool,
    outbound: bool,
}

impl EnteringLeg {
    fn of(leg: &DeviceChannel) -> Self {
        EnteringLeg {
            primary: leg.primary.clone(),
            consult: leg.consult.clone(),
            pending: leg.pending.clone(),
            home_bridge: leg.home_bridge.clone(),
            held_party: leg.held_party.clone(),
            redirect_held: leg.redirect_held,
            outbound: leg.outbound,
        }
    }
}

impl Translator<'_> {
    /// The calls whose conversation is in `bridge`, except `other`'s own.
    pub(super) fn calls_in_bridge(&self, bridge: &str, other: &str) -> Vec<CallId> {
        let Some(b) = self.tracker.bridge(bridge) else {
            return Vec::new();
        };
        b.members
            .iter()
            .filter(|m| &***m != other)
            .filter_map(|m| self.book.legs.get(m))
            .filter_map(|leg| match &leg.consult {
                Some(c) if &*c.bridge == bridge => Some(c.call.clone()),
                _ => leg.primary.clone(),
            })
            .collect()
    }

    pub(super) fn bridge_entered(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        if self.is_leg(uniqueid) {
            self.leg_entered(bridge, uniqueid, out);
            return;
        }
        // Another channel joined a bridge with a leg in it.
        let members: Vec<Box<str>> = self
            .tracker
            .bridge(bridge)
            .map(|b| {
                b.members
                    .iter()
                    .filter(|m| &***m != uniqueid && self.book.legs.contains_key(*m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for member in &members {
            let Some(leg) = self.book.legs.get(member) else {
                continue;
            };
            let in_consult = leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge);
            let call = if in_consult {
                leg.consult.as_ref().map(|c| c.call.clone())
            } else {
                leg.primary.clone()
            };
            let Some(call) = call else {
                continue;
            };
            let retrieving = !in_consult
                && leg.redirect_held
                && leg.held_party.as_deref().is_none_or(|h| h == uniqueid);
            let member = member.clone();
            match state_of(out, &call) {
                Some(CallState::Held) if retrieving => {
                    if let Some(leg) = self.book.legs.get_mut(&member) {
                        leg.redirect_held = false;
                        leg.held_party = None;
                        leg.pending = Pending::None;
                        leg.home_bridge = Some(bridge.into());
                    }
                    self.emit(out, Event::CallRetrieved { call: call.clone() }, None);
                }
                Some(s) if s.is_setup() && !in_consult => {
                    self.emit(out, Event::CallConnected { call: call.clone() }, None);
                }
                _ => {}
            }
            if let Some(p) = self.tracker.channel(uniqueid).and_then(party) {
                self.emit(out, Event::PartyJoined { call, party: p }, None);
            }
        }
    }

    pub(super) fn leg_entered(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        let peers: Vec<Peer> = self
            .tracker
            .peers(uniqueid)
            .map(|c| Peer {
                uniqueid: c.uniqueid.as_str().into(),
                state: c.state,
                party: party(c),
            })
            .collect();
        let Some(leg) = self.book.legs.get(uniqueid).map(EnteringLeg::of) else {
            return;
        };
        if leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge) {
            return;
        }
        let primary = leg.primary.clone();
        let primary_state = primary.as_ref().and_then(|c| state_of(out, c));
        let leaving_home = leg.home_bridge.as_deref().is_some_and(|h| h != bridge);
        let consult_starts = primary.is_some()
            && (matches!(leg.pending, Pending::Consult { .. })
                || (primary_state == Some(CallState::Held) && leaving_home && !leg.redirect_held));
        if consult_starts && leg.consult.is_none() {
            let Some(primary) = primary else { return };
            if primary_state == Some(CallState::Connected) {
                self.emit(
                    out,
                    Event::CallHeld {
                        call: primary.clone(),
                    },
                    None,
                );
            }
            let target = peers.first();
            let id = target
                .map(|t| t.uniqueid.to_string())
                .unwrap_or_else(|| format!("{uniqueid}-consult"));
            let Ok(call) = CallId::new(id) else { return };
            let to = match &leg.pending {
                Pending::Consult { to } => to.clone(),
                _ => None,
            }
            .or_else(|| {
                target
                    .and_then(|t| self.tracker.channel(&t.uniqueid))
                    .and_then(|c| address(&c.exten))
            });
            self.book.calls.insert(call.clone(), uniqueid.into());
            if let Some(leg) = self.book.legs.get_mut(uniqueid) {
                leg.pending = Pending::None;
                leg.consult = Some(Consult {
                    call: call.clone(),
                    target: target.map(|t| t.uniqueid.clone()).unwrap_or_default(),
                    bridge: bridge.into(),
                    to: to.clone(),
                });
            }
            self.emit(
                out,
                Event::CallInitiated {
                    call: call.clone(),
                    to,
                    consult_of: Some(primary),
                    data: CallData::new(),
                },
                None,
            );
            if let Some(t) = target {
                match t.state {
                    state::RINGING => {
                        self.emit(out, Event::CallRingback { call: call.clone() }, None)
                    }
                    state::UP => self.emit(out, Event::CallConnected { call: call.clone() }, None),
                    _ => {}
                }
                if let Some(p) = t.party.clone() {
                    self.emit(out, Event::PartyJoined { call, party: p }, None);
                }
            }
            return;
        }
        let conference = self.is_conference_bridge(bridge);
        if let (true, Some(consult), Some(call)) = (
            conference || leg.pending == Pending::Conference,
            leg.consult.clone(),
            primary.clone(),
        ) {
            // The consultation merged into the primary call in a ConfBridge room.
            if let Some(l) = self.book.legs.get_mut(uniqueid) {
                l.consult = None;
                l.pending = Pending::None;
                l.redirect_held = false;
                l.held_party = None;
            }
            self.book.calls.remove(&consult.call);
            self.emit(
                out,
                Event::CallConferenced {
                    call: call.clone(),
                    merged: Some(consult.call.clone()),
                },
                None,
            );
            self.emit(
                out,
                Event::CallEnded {
                    call: consult.call,
                    cause: Cause::Merged,
                },
                None,
            );
            self.home(uniqueid, bridge);
            self.join_peers(out, &call, &peers);
            return;
        }
        // Back in the primary call's bridge, or a (new) bridge for it.
        if let Some(consult) = leg.consult.clone() {
            // Returning from a consultation (CancelAtxfer, or the target hung up).
            if let Some(l) = self.book.legs.get_mut(uniqueid) {
                l.consult = None;
                l.pending = Pending::None;
            }
            self.book.calls.remove(&consult.call);
            self.emit(
                out,
                Event::CallEnded {
                    call: consult.call,
                    cause: Cause::Normal,
                },
                None,
            );
        }
        let Some(call) = primary else {
            // A device channel in a bridge with no call known (joined mid-call).
            if peers.is_empty() {
                return;
            }
            let Some(channel) = self.tracker.channel(uniqueid).cloned() else {
                return;
            };
            let Some(call) = self.new_call_id(&channel) else {
                return;
            };
            self.start_call(uniqueid, call.clone());
            let first = if leg.outbound {
                Event::CallInitiated {
                    call: call.clone(),
                    to: None,
                    consult_of: None,
                    data: CallData::new(),
                }
            } else {
                Event::CallOffered {
                    call: call.clone(),
                    from: peers
                        .first()
                        .and_then(|p| p.party.as_ref())
                        .and_then(|p| p.address.clone()),
                    to: None,
                    queue: None,
                    data: CallData::new(),
                }
            };
            self.emit(out, first, None);
            self.emit(out, Event::CallConnected { call: call.clone() }, None);
            self.home(uniqueid, bridge);
            self.join_peers(out, &call, &peers);
            return;
        };
        let held_party_here = leg
            .held_party
            .as_deref()
            .is_some_and(|h| peers.iter().any(|p| &*p.uniqueid == h));
        match state_of(out, &call) {
            Some(CallState::Held)
                if !peers.is_empty() && (!leg.redirect_held || held_party_here) =>
            {
                if let Some(l) = self.book.legs.get_mut(uniqueid) {
                    l.redirect_held = false;
                    l.held_party = None;
                    l.pending = Pending::None;
                }
                self.emit(out, Event::CallRetrieved { call: call.clone() }, None);
            }
            Some(s) if s.is_setup() && !peers.is_empty() => {
                self.emit(out, Event::CallConnected { call: call.clone() }, None);
            }
            _ => {}
        }
        if conference
            && read_call(out, &call, |c| {
                c.state == CallState::Connected && c.role != CallRole::Conference
            })
            .unwrap_or(false)
        {
            // The device joined a ConfBridge room (dialled it, or was sent there).
            self.emit(
                out,
                Event::CallConferenced {
                    call: call.clone(),
                    merged: None,
                },
                None,
            );
        }
        if leaving_home && !conference {
            self.leave_stale_parties(out, &call, &peers);
        }
        self.home(uniqueid, bridge);
        self.join_peers(out, &call, &peers);
    }

    /// The device's leg moved to another bridge (a transfer swapped it in beside the
    /// customer): whoever it talked to in the bridge it left is no longer in the call,
    /// whatever order Asterisk reports their leaving in.
    fn leave_stale_parties(&mut self, out: &mut dyn EventOut, call: &CallId, peers: &[Peer]) {
        let stale: Vec<PartyId> = read_call(out, call, |c| {
            c.parties
                .iter()
                .filter(|p| !peers.iter().any(|peer| *peer.uniqueid == *p.id.as_str()))
                .map(|p| p.id.clone())
                .collect()
        })
        .unwrap_or_default();
        for party in stale {
            self.emit(
                out,
                Event::PartyLeft {
                    call: call.clone(),
                    party,
                },
                None,
            );
        }
    }

    pub(super) fn is_conference_bridge(&self, bridge: &str) -> bool {
        self.tracker
            .bridge(bridge)
            .is_some_and(|b| b.kind == CONFERENCE_BRIDGE)
    }

    /// Tells the device that everyone already in the bridge joined `call`.
    pub(super) fn join_peers(&mut self, out: &mut dyn EventOut, call: &CallId, peers: &[Peer]) {
        for party in peers.iter().filter_map(|p| p.party.clone()) {
            self.emit(
                out,
                Event::PartyJoined {
                    call: call.clone(),
                    party,
                },
                None,
            );
        }
    }

    pub(super) fn home(&mut self, uniqueid: &str, bridge: &str) {
        let context = self
            .tracker
            .channel(uniqueid)
            .map(|c| c.context.clone())
            .unwrap_or_default();
        if let Some(l) = self.book.legs.get_mut(uniqueid) {
            l.home_bridge = Some(bridge.into());
            l.entered_context = context;
        }
    }

    pub(super) fn bridge_left(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        if let Some(leg) = self.book.legs.get(uniqueid) {
            let Some(call) = leg.primary.clone() else {
                return;
            };
            if leg.home_bridge.as_deref() != Some(bridge) {
                return;
            }
            let to_hold_context = match (&self.book.config.hold, self.tracker.channel(uniqueid)) {
                (Some(hold), Some(channel)) => {
                    channel.context == hold.context && leg.entered_context != hold.context
                }
                _ => false,
            };
            // Read before the leg changes below.
            let held_by_us = leg.pending == Pending::Hold;
            let consulting = matches!(leg.pending, Pending::Consult { .. });
            if held_by_us {
                if let Some(l) = self.book.legs.get_mut(uniqueid) {
                    l.redirect_held = true;
                    l.pending = Pending::None;
                }
                self.emit(out, Event::CallHeld { call }, None);
            } else if consulting {
                self.emit(out, Event::CallHeld { call }, None);
            } else if to_hold_context {
                if let Some(l) = self.book.legs.get_mut(uniqueid) {
                    l.redirect_held = true;
                }
                self.emit(out, Event::CallHeld { call }, None);
            }
            return;
        }
        // Another channel left: a party left the calls in that bridge, unless it is the
        // party our hold just moved to music on hold.
        let holders: Vec<(Box<str>, CallId)> = self
            .tracker
            .bridge(bridge)
            .map(|b| b.members.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let leg = self.book.legs.get(&m)?;
                if leg.held_party.as_deref() == Some(uniqueid) {
                    return None;
                }
                if leg.pending == Pending::Conference
                    && leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge)
                {
                    // The target is on its way into the conference, not leaving.
                    return None;
                }
                let call = match &leg.consult {
                    Some(c) if &*c.bridge == bridge => c.call.clone(),
                    _ => leg.primary.clone()?,
                };
                Some((m, call))
            })
            .collect();
        // Its id is made only for the calls it was in.
        if holders.is_empty() {
            return;
        }
        let Ok(party) = PartyId::new(uniqueid) else {
            return;
        };
        for (_, call) in holders {
            self.emit(
                out,
                Event::PartyLeft {
                    call,
                    party: party.clone(),
                },
                None,
            );
        }
    }

    pub(super) fn bridge_merged(&mut self, to: &str, out: &mut dyn EventOut) {
        let members: Vec<Box<str>> = self
            .tracker
            .bridge(to)
            .map(|b| b.members.clone())
            .unwrap_or_default();
        for member in &members {
            if !self.book.legs.contains_key(member) {
                continue;
            }
            let Some(call) = self.book.legs.get(member).and_then(|l| l.primary.clone()) else {
                continue;
            };
            let peers: Vec<Party> = self.tracker.peers(member).filter_map(party).collect();
            for p in peers {
                self.emit(
                    out,
                    Event::PartyJoined {
                        call: call.clone(),
                        party: p,
                    },
                    None,
                );
            }
        }
    }

    pub(super) fn hold_event(&mut self, uniqueid: &str, on: bool, out: &mut dyn EventOut) {
        let Some(leg) = self.book.legs.get(uniqueid) else {
            return;
        };
        let Some(call) = leg.primary.clone() else {
            return;
        };
        if leg.consult.is_some() {
            return;
        }
        match (on, state_of(out, &call)) {
            (true, Some(CallState::Connected)) => self.emit(out, Event::CallHeld { call }, None),
            (false, Some(CallState::Held)) if !leg.redirect_held => {
                self.emit(out, Event::CallRetrieved { call }, None)
            }
            _ => {}
        }
    }
}
