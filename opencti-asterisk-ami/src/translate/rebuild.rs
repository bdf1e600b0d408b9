//! Rebuilding a line after a (re)connect from what Asterisk lists.

use opencti_core::{Call, CallId, CallRole, CallState, Direction, ReasonCode, SwitchState};
use std::collections::HashMap;

use crate::message::Message;
use crate::tracker::{known, state, Channel};

use super::{address, party, DeviceChannel, EventOut, Membership, Pending, Translator};

impl Translator<'_> {
    /// Rebuilds the line from the tracker (just rebuilt from `CoreShowChannels` and
    /// `BridgeList`) and the `QueueMember` items, keeping what it knew about legs that
    /// still exist (call ids, consultations, holds), and returns the switch's state
    /// for the session. `session` is the state the line's events built so far.
    pub(crate) fn rebuild(
        &mut self,
        queue_members: &[Message],
        session: &dyn EventOut,
    ) -> SwitchState {
        // Queue memberships.
        let mut members = vec![Membership::default(); self.book.config.queues.len()];
        for item in queue_members {
            let interface = item.get("Location").or_else(|| item.get("Interface"));
            if !interface.is_some_and(|i| self.book.config.device.is_interface(i)) {
                continue;
            }
            let Some(i) = item
                .get("Queue")
                .and_then(|q| self.book.config.queues.iter().position(|c| c == q))
            else {
                continue;
            };
            let paused = item.get("Paused") == Some("1");
            members[i] = Membership {
                member: true,
                fixed: item
                    .get("Membership")
                    .filter(|m| !m.eq_ignore_ascii_case("dynamic"))
                    .map(str::to_owned),
                paused,
                reason: item
                    .get("PausedReason")
                    .and_then(known)
                    .and_then(|r| ReasonCode::new(r).ok())
                    .filter(|_| paused),
            };
        }
        self.book.members = members;
        // Legs: keep the ones still alive, add the new ones.
        let old_legs = std::mem::take(&mut self.book.legs);
        let old_legs: HashMap<Box<str>, DeviceChannel> = old_legs.into_iter().collect();
        // What the session knew of the calls (their parties, data, direction).
        let mut old_calls: HashMap<CallId, Call> = HashMap::new();
        session.view(&mut |desk| {
            old_calls = desk
                .calls()
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect();
        });
        self.book.calls.clear();
        let device_channels: Vec<Channel> = self
            .tracker
            .channels()
            .filter(|c| c.owner == Some(self.line))
            .cloned()
            .collect();
        let mut calls = Vec::new();
        for channel in device_channels {
            let mut leg = old_legs
                .get(channel.uniqueid.as_str())
                .cloned()
                .unwrap_or_default();
            if channel
                .uniqueid
                .starts_with(self.book.config.originate_prefix.as_str())
            {
                leg.outbound = true;
            }
            leg.pending = Pending::None;
            let peers: Vec<Channel> = self.tracker.peers(&channel.uniqueid).cloned().collect();
            // A consultation survives only if its target is still with the leg.
            if let Some(c) = &leg.consult {
                let still = channel.bridge.as_deref() == Some(&*c.bridge)
                    && peers.iter().any(|p| *p.uniqueid == *c.target);
                if !still {
                    leg.consult = None;
                }
            }
            let id = match leg.primary.clone() {
                Some(id) => id,
                None => match self.new_call_id(&channel) {
                    Some(id) => id,
                    None => continue,
                },
            };
            let hold_context = self
                .book
                .config
                .hold
                .as_ref()
                .is_some_and(|h| h.context == channel.context);
            let dialing = channel.application.eq_ignore_ascii_case("Dial");
            let state = if leg.consult.is_some() {
                CallState::Held
            } else if !peers.is_empty() {
                CallState::Connected
            } else if channel.state == state::UP && (hold_context || leg.redirect_held) {
                CallState::Held
            } else if channel.state == state::UP && dialing {
                let ringing = self.tracker.channels().any(|c| {
                    c.dialed_by.as_deref() == Some(&*channel.uniqueid)
                        || (c.linkedid == channel.linkedid
                            && c.uniqueid != channel.uniqueid
                            && c.state == state::RINGING)
                });
                if ringing {
                    CallState::Ringback
                } else {
                    CallState::Initiated
                }
            } else if channel.state == state::UP {
                CallState::Connected
            } else if channel.state == state::RING || leg.outbound {
                CallState::Initiated
            } else {
                CallState::Offered
            };
            if state == CallState::Held && !leg.redirect_held && leg.consult.is_none() {
                leg.redirect_held = hold_context;
            }
            let direction = if state == CallState::Offered {
                Direction::Inbound
            } else if leg.outbound || channel.state == state::RING {
                Direction::Outbound
            } else if let Some(old) = old_calls.get(&id) {
                old.direction
            } else {
                Direction::Inbound
            };
            let mut call = match old_calls.get(&id) {
                Some(old) => {
                    let mut c = old.clone();
                    c.state = state;
                    c
                }
                None => {
                    let mut c = Call::new(id.clone(), state, direction);
                    if direction == Direction::Inbound {
                        c.from = address(&channel.connected_num);
                    } else {
                        c.to = address(&channel.connected_num);
                    }
                    c
                }
            };
            if leg.consult.is_none() || state != CallState::Held {
                call.parties = peers.iter().filter_map(party).collect();
            }
            if !peers.is_empty() && leg.consult.is_none() {
                leg.home_bridge = channel.bridge.clone();
                leg.entered_context = channel.context.clone();
            }
            self.book
                .calls
                .insert(id.clone(), channel.uniqueid.as_str().into());
            leg.primary = Some(id);
            calls.push(call);
            if let Some(c) = &leg.consult {
                let mut consult = match old_calls.get(&c.call) {
                    Some(old) => old.clone(),
                    None => {
                        let mut n =
                            Call::new(c.call.clone(), CallState::Connected, Direction::Outbound);
                        n.role = CallRole::Consult;
                        n
                    }
                };
                let target_up = peers
                    .iter()
                    .any(|p| *p.uniqueid == *c.target && p.state == state::UP);
                consult.state = if target_up {
                    CallState::Connected
                } else {
                    CallState::Ringback
                };
                consult.consult_of = leg.primary.clone();
                consult.role = CallRole::Consult;
                consult.parties = peers.iter().filter_map(party).collect();
                self.book
                    .calls
                    .insert(c.call.clone(), channel.uniqueid.as_str().into());
                calls.push(consult);
            }
            if let Some(held) = &leg.held_party {
                self.tracker.set_held_by(held, Some(self.line));
            }
            self.book.legs.insert(channel.uniqueid.as_str().into(), leg);
        }
        SwitchState {
            agent: self.book.agent_state().to_agent_state(),
            calls,
            withheld: self.book.withheld(),
        }
    }
}
