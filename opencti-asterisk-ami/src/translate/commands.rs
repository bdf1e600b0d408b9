//! What the line's commands register and ask: the `Originate`s in flight, the channels
//! a command acts on, the hold about to happen, confirmations the connector produces.

use opencti_core::{Address, CallData, CallId, CommandId, Event, PartyId};

use super::{CallTarget, EventOut, Originate, Pending, Translator};

impl Translator<'_> {
    /// Registers an `Originate` about to be sent for `make_call`, so that its channel
    /// (`channel_id`) is recognised as the new call.
    pub(crate) fn expect_originate(
        &mut self,
        action_id: String,
        channel_id: &str,
        command: CommandId,
        to: Address,
        data: CallData,
    ) {
        if self.book.originates.len() >= 64 {
            self.book.originates.remove(0);
        }
        self.book.originates.push(Originate {
            action_id,
            channel_id: channel_id.into(),
            command,
            to,
            data,
            initiated: false,
        });
    }

    /// Forgets an `Originate` that Asterisk refused.
    pub(crate) fn forget_originate(&mut self, action_id: &str) {
        self.book.originates.retain(|o| o.action_id != action_id);
    }

    /// What the connector needs to act on `call`.
    pub(crate) fn target(&self, call: &CallId) -> Option<CallTarget> {
        let uniqueid = self.book.calls.get(call)?;
        let leg = self.book.legs.get(uniqueid)?;
        let channel = self.tracker.channel(uniqueid)?;
        let is_consult = leg.consult.as_ref().is_some_and(|c| &c.call == call);
        Some(CallTarget {
            device_channel: channel.name.clone(),
            device_uniqueid: uniqueid.to_string(),
            is_consult,
            has_consult: !is_consult && leg.consult.is_some(),
            peers: self
                .tracker
                .peers(uniqueid)
                .map(|c| c.name.clone())
                .collect(),
            primary_peers: leg
                .home_bridge
                .as_deref()
                .and_then(|b| self.tracker.bridge(b))
                .map(|b| {
                    b.members
                        .iter()
                        .filter(|m| **m != *uniqueid)
                        .filter_map(|m| self.tracker.channel(m))
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default(),
            held_party: leg
                .held_party
                .as_deref()
                .and_then(|h| self.tracker.channel(h))
                .map(|c| c.name.clone()),
            redirect_held: leg.redirect_held,
            bridged: channel.bridge.is_some(),
        })
    }

    /// The `Uniqueid` of the channel named `name`, if tracked.
    pub(crate) fn uniqueid_of(&self, name: &str) -> Option<String> {
        self.tracker
            .channels()
            .find(|c| c.name == name)
            .map(|c| c.uniqueid.to_string())
    }

    /// The connector sent a `Redirect` to hold `call`, moving `party` to music on hold.
    pub(crate) fn expect_hold(&mut self, call: &CallId, party: &str) {
        let party_id = self.uniqueid_of(party);
        if let Some(held) = &party_id {
            // Its hangup, out of every bridge on music on hold, must still reach us.
            self.tracker.set_held_by(held, Some(self.line));
        }
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Hold;
            leg.held_party = party_id.map(Into::into);
        }
    }

    /// The channel (name) of `party` if it is in a bridge with `call`'s leg now.
    pub(crate) fn party_channel(&self, call: &CallId, party: &PartyId) -> Option<String> {
        let uniqueid = self.book.calls.get(call)?;
        self.tracker
            .peers(uniqueid)
            .find(|c| &*c.uniqueid == party.as_str())
            .map(|c| c.name.clone())
    }

    /// An action for `call` failed: forget what it was expected to do.
    pub(crate) fn clear_pending(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            if leg.pending == Pending::Hold {
                leg.held_party = None;
            }
            leg.pending = Pending::None;
        }
    }

    /// Emits an event the connector produced itself (a confirmation after a response),
    /// through the same shadow state machine.
    pub(crate) fn emit_confirmation(
        &mut self,
        event: Event,
        command: CommandId,
        out: &mut dyn EventOut,
    ) {
        self.emit(out, event, Some(command));
    }
}
