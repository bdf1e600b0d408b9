//! Legs and conversations: creating, changing and ending legs, and telling devices who
//! they talk to.

use super::*;

impl World {
    // ----- legs and conversations -----

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_leg(
        &mut self,
        conv: ConvId,
        who: Who,
        state: CallState,
        direction: Direction,
        from: Option<Address>,
        to: Option<Address>,
        queue: Option<QueueId>,
        data: CallData,
    ) -> LegId {
        let id = self.fresh();
        let view = CallId::new(format!("{}-{}", self.config.call_ids, id))
            .unwrap_or_else(|_| unreachable_call());
        self.legs.insert(
            id,
            Leg {
                id,
                conv,
                who,
                view,
                state,
                direction,
                role: CallRole::Primary,
                consult_of: None,
                queue,
                data,
                from,
                to,
                told: Vec::new(),
                gen: 0,
                talk: None,
            },
        );
        if let Some(c) = self.convs.get_mut(&conv) {
            c.legs.push(id);
        }
        id
    }

    pub(super) fn new_conv(&mut self) -> ConvId {
        let id = self.fresh();
        self.convs.insert(id, Conv::default());
        id
    }

    /// Moves a leg to `state` and tells its device.
    pub(super) fn set_state(&mut self, leg_id: LegId, state: CallState) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let old = leg.state;
        if old == state {
            return;
        }
        leg.state = state;
        leg.gen += 1;
        let call = leg.view.clone();
        let Who::Device(device) = leg.who.clone() else {
            return;
        };
        let event = match state {
            CallState::Ringback => Event::CallRingback { call },
            CallState::Queued => Event::CallQueued {
                call,
                queue: leg.queue.clone(),
            },
            CallState::Connected if old == CallState::Held => Event::CallRetrieved { call },
            CallState::Connected => Event::CallConnected { call },
            CallState::Held => Event::CallHeld { call },
            CallState::Failed { cause } => Event::CallFailed { call, cause },
            CallState::Ended { cause } => Event::CallEnded { call, cause },
            // Initiated and offered are announced when the leg is created.
            _ => return,
        };
        self.tell(&device, event);
    }

    /// Ends a leg and takes it out of its conversation; the others are told it left.
    pub(super) fn end_leg(&mut self, leg_id: LegId, cause: Cause) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let conv = leg.conv;
        let device = match &leg.who {
            Who::Device(d) => Some(d.clone()),
            Who::Outside(_) => None,
        };
        self.set_state(leg_id, CallState::Ended { cause });
        self.legs.remove(&leg_id);
        if let Some(c) = self.convs.get_mut(&conv) {
            c.legs.retain(|l| *l != leg_id);
        }
        self.reconcile_parties(conv);
        if let Some(device) = device {
            self.device_leg_gone(&device);
        }
    }

    /// Ends what is left of a conversation that no longer holds a call together.
    pub(super) fn settle(&mut self, conv_id: ConvId, cause: Cause) {
        let Some(conv) = self.convs.get(&conv_id) else {
            return;
        };
        if conv.waiting {
            return;
        }
        let legs = conv.legs.clone();
        if legs.len() >= 2 {
            return;
        }
        for leg in legs {
            self.end_leg(leg, cause);
        }
        self.remove_conv(conv_id);
    }

    pub(super) fn remove_conv(&mut self, conv_id: ConvId) {
        if let Some(conv) = self.convs.remove(&conv_id) {
            if let Some(q) = conv.queue {
                self.queues[q].waiting.retain(|c| *c != conv_id);
                // A caller who joined the queue and goes unanswered gave up.
                if conv.enqueued_at.is_some() && !conv.answered {
                    self.queues[q].abandoned += 1;
                    self.announce(opencti_core::queue::QueueEvent::CallerAbandoned {
                        queue: self.queues[q].id.clone(),
                        call: super::queues::caller_id(conv_id),
                    });
                }
            }
        }
    }

    /// Tells every device leg about the connected parties it talks to, and about those
    /// who left.
    pub(super) fn reconcile_parties(&mut self, conv_id: ConvId) {
        let Some(conv) = self.convs.get(&conv_id) else {
            return;
        };
        let members = conv.legs.clone();
        let talking: Vec<LegId> = members
            .iter()
            .copied()
            .filter(|l| {
                self.legs
                    .get(l)
                    .is_some_and(|l| matches!(l.state, CallState::Connected | CallState::Held))
            })
            .collect();
        for &leg_id in &members {
            let Some(leg) = self.legs.get(&leg_id) else {
                continue;
            };
            let Who::Device(device) = leg.who.clone() else {
                continue;
            };
            let call = leg.view.clone();
            let connected = matches!(leg.state, CallState::Connected | CallState::Held);
            let told = leg.told.clone();
            let left: Vec<LegId> = told
                .iter()
                .copied()
                .filter(|t| !members.contains(t))
                .collect();
            let joined: Vec<LegId> = if connected {
                talking
                    .iter()
                    .copied()
                    .filter(|t| *t != leg_id && !told.contains(t))
                    .collect()
            } else {
                Vec::new()
            };
            for gone in &left {
                let party =
                    PartyId::new(format!("leg-{}", gone)).unwrap_or_else(|_| unreachable_id());
                self.tell(
                    &device,
                    Event::PartyLeft {
                        call: call.clone(),
                        party,
                    },
                );
            }
            for new in &joined {
                let party = match self.legs.get(new) {
                    Some(other) => self.party(other),
                    None => continue,
                };
                self.tell(
                    &device,
                    Event::PartyJoined {
                        call: call.clone(),
                        party,
                    },
                );
            }
            if let Some(leg) = self.legs.get_mut(&leg_id) {
                leg.told.retain(|t| !left.contains(t));
                leg.told.extend(joined);
            }
        }
    }
}
