//! Commands from a device: the Desktop Interface carried out on the switch's legs.

use super::*;

impl World {
    // ----- commands from a device -----

    /// Carries out a command for the agent at `device`. Errors are the switch refusing it.
    pub(crate) fn command(&mut self, device: &DeviceId, command: &Command) -> Result<()> {
        match command {
            Command::Login {} => {
                let a = self.need_agent(device)?;
                let agent = &mut self.agents[a];
                agent.chosen = ChosenState::NotReady { reason: None };
                agent.idle_since = Instant::now();
                self.tell(
                    device,
                    Event::AgentStateChanged {
                        state: AgentState::NotReady { reason: None },
                    },
                );
            }
            Command::Logout { .. } => {
                let a = self.need_agent(device)?;
                let agent = &mut self.agents[a];
                agent.chosen = ChosenState::LoggedOut;
                agent.pending = None;
                agent.in_wrap_up = None;
                agent.acd_queue = None;
                self.tell(
                    device,
                    Event::AgentStateChanged {
                        state: AgentState::LoggedOut,
                    },
                );
            }
            Command::SetAgentState { state, after_call } => {
                let a = self.need_agent(device)?;
                let occupied = self.device_busy(device) || self.agents[a].in_wrap_up.is_some();
                if *after_call && occupied {
                    self.agents[a].pending = Some(state.clone());
                    self.tell(
                        device,
                        Event::NextStateQueued {
                            next: state.clone(),
                        },
                    );
                } else if self.agents[a].in_wrap_up.is_some() {
                    self.agents[a].pending = Some(state.clone());
                    self.end_wrap_up(a);
                } else {
                    let agent = &mut self.agents[a];
                    agent.chosen = state.clone();
                    agent.pending = None;
                    agent.idle_since = Instant::now();
                    self.tell(
                        device,
                        Event::AgentStateChanged {
                            state: state.to_agent_state(),
                        },
                    );
                    self.route();
                }
            }
            Command::CompleteWrapUp { .. } => {
                let a = self.need_agent(device)?;
                if self.agents[a].in_wrap_up.is_none() {
                    return Err(Error::new(
                        ErrorKind::Rejected,
                        format!("agent {} is not in wrap-up", self.agents[a].id),
                    ));
                }
                self.end_wrap_up(a);
            }
            Command::MakeCall { to, data } => self.make_call(device, to, data.clone(), None),
            Command::Consult { call, to } => {
                let primary = self.leg_of(device, call)?;
                if self.legs[&primary].state == CallState::Connected {
                    self.set_state(primary, CallState::Held);
                }
                self.make_call(device, to, CallData::new(), Some(primary));
            }
            Command::Answer { call } => {
                let leg = self.leg_of(device, call)?;
                self.answer_leg(leg);
            }
            Command::Reject { call } => {
                let leg = self.leg_of(device, call)?;
                let conv = self.legs[&leg].conv;
                self.end_leg(leg, Cause::Rejected);
                match self.convs.get(&conv).and_then(|c| c.queue) {
                    Some(q) => {
                        self.enqueue(conv, q, true);
                        self.route();
                    }
                    None => self.settle(conv, Cause::Rejected),
                }
            }
            Command::Hangup { call } => {
                let leg = self.leg_of(device, call)?;
                let conv = self.legs[&leg].conv;
                self.end_leg(leg, Cause::Normal);
                self.settle(conv, Cause::Normal);
            }
            Command::Hold { call } => {
                let leg = self.leg_of(device, call)?;
                self.set_state(leg, CallState::Held);
            }
            Command::Retrieve { call } => {
                let leg = self.leg_of(device, call)?;
                self.set_state(leg, CallState::Connected);
            }
            Command::Alternate { call } => {
                let leg = self.leg_of(device, call)?;
                let active: Vec<LegId> = self
                    .device_legs(device)
                    .filter(|l| l.state == CallState::Connected && l.id != leg)
                    .map(|l| l.id)
                    .collect();
                for other in active {
                    self.set_state(other, CallState::Held);
                }
                self.set_state(leg, CallState::Connected);
            }
            Command::BlindTransfer { call, to } => {
                let leg = self.leg_of(device, call)?;
                self.blind_transfer(leg, to);
            }
            Command::CompleteTransfer { call } => {
                let consult = self.leg_of(device, call)?;
                self.complete_transfer(consult)?;
            }
            Command::CompleteConference { call } => {
                let consult = self.leg_of(device, call)?;
                self.complete_conference(consult)?;
            }
            Command::DropParty { call, party } => {
                let leg = self.leg_of(device, call)?;
                let conv = self.legs[&leg].conv;
                let target = party
                    .as_str()
                    .strip_prefix("leg-")
                    .and_then(|n| n.parse::<LegId>().ok())
                    .filter(|t| self.convs[&conv].legs.contains(t) && *t != leg)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::NotFound,
                            format!("call {} has no party {}", call, party),
                        )
                    })?;
                self.end_leg(target, Cause::Normal);
                self.settle(conv, Cause::Normal);
            }
            Command::SendDtmf { call, digits } => {
                let leg = self.leg_of(device, call)?;
                self.send_dtmf(device, leg, digits);
            }
            Command::SetCallData { call, data } => {
                let leg = self.leg_of(device, call)?;
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.data.merge(data)?;
                }
                self.tell(
                    device,
                    Event::CallDataChanged {
                        call: call.clone(),
                        data: data.clone(),
                    },
                );
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("the simulator does not know {}", other.kind()),
                ))
            }
        }
        Ok(())
    }

    pub(super) fn need_agent(&self, device: &DeviceId) -> Result<usize> {
        self.agent_of(device).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no agent works at device {}", device),
            )
        })
    }

    pub(super) fn make_call(
        &mut self,
        device: &DeviceId,
        to: &Dialable,
        data: CallData,
        consult_of: Option<LegId>,
    ) {
        let conv = self.new_conv();
        let to_address = Address::new(to.as_str()).ok();
        let from = Address::new(device.as_str()).ok();
        let leg = self.new_leg(
            conv,
            Who::Device(device.clone()),
            CallState::Initiated,
            Direction::Outbound,
            from,
            to_address.clone(),
            None,
            data.clone(),
        );
        let consult_view = consult_of
            .and_then(|p| self.legs.get(&p))
            .map(|p| p.view.clone());
        if let Some(l) = self.legs.get_mut(&leg) {
            l.consult_of = consult_of;
            if consult_of.is_some() {
                l.role = CallRole::Consult;
            }
        }
        let call = self.legs[&leg].view.clone();
        self.tell(
            device,
            Event::CallInitiated {
                call,
                to: to_address,
                consult_of: consult_view,
                data,
            },
        );
        self.dial(conv, leg, to.as_str());
    }

    /// Adds the party `to` to a conversation, on behalf of `caller` (a device leg that
    /// hears ringback), or of whoever is left on it (a transfer).
    pub(super) fn dial(&mut self, conv: ConvId, caller: LegId, to: &str) {
        let (from, data) = self.caller_of(conv);
        match self.resolve(to) {
            Target::Device(target) => {
                let leg = self.new_leg(
                    conv,
                    Who::Device(target.clone()),
                    CallState::Offered,
                    Direction::Inbound,
                    from.clone(),
                    Address::new(to).ok(),
                    None,
                    data.clone(),
                );
                let call = self.legs[&leg].view.clone();
                self.tell(
                    &target,
                    Event::CallOffered {
                        call,
                        from,
                        to: Address::new(to).ok(),
                        queue: None,
                        data,
                    },
                );
                self.set_state(caller, CallState::Ringback);
            }
            Target::Queue(q) => {
                if let Some(l) = self.legs.get_mut(&caller) {
                    l.queue = Some(self.queues[q].id.clone());
                }
                self.set_state(caller, CallState::Queued);
                self.enqueue(conv, q, false);
                self.route();
            }
            Target::FarEnd(behaviour) => {
                let address = Address::new(to).unwrap_or_else(|_| unknown_address());
                match behaviour {
                    FarEnd::Busy => {
                        self.set_state(caller, CallState::Failed { cause: Cause::Busy })
                    }
                    FarEnd::Unreachable => self.set_state(
                        caller,
                        CallState::Failed {
                            cause: Cause::Unreachable,
                        },
                    ),
                    FarEnd::Answer { .. } | FarEnd::NoAnswer => {
                        let leg = self.new_leg(
                            conv,
                            Who::Outside(address.clone()),
                            CallState::Offered,
                            Direction::Inbound,
                            from,
                            Some(address),
                            None,
                            CallData::new(),
                        );
                        self.set_state(caller, CallState::Ringback);
                        if let FarEnd::Answer { after } = behaviour {
                            self.later(after, Timer::FarEndAnswers { leg, gen: 0 });
                        }
                    }
                }
            }
        }
    }

    /// A ringing leg answers: it and whoever waits on the conversation are connected.
    pub(super) fn answer_leg(&mut self, leg: LegId) {
        let Some(conv_id) = self.legs.get(&leg).map(|l| l.conv) else {
            return;
        };
        self.set_state(leg, CallState::Connected);
        let members = self.convs[&conv_id].legs.clone();
        for other in members {
            let waiting = self.legs.get(&other).is_some_and(|l| {
                matches!(
                    l.state,
                    CallState::Initiated | CallState::Ringback | CallState::Queued
                )
            });
            if waiting {
                self.set_state(other, CallState::Connected);
            }
        }
        let queue = self.convs.get(&conv_id).and_then(|c| c.queue);
        let mut first_answer = false;
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            if queue.is_some() && !conv.answered {
                conv.answered = true;
                first_answer = true;
                self.stats.answered += 1;
            }
        }
        if let (Some(q), Some(Who::Device(device))) =
            (queue, self.legs.get(&leg).map(|l| l.who.clone()))
        {
            if let Some(a) = self.agent_of(&device) {
                self.agents[a].acd_queue = Some(q);
                if first_answer {
                    let now = Instant::now();
                    self.agents[a].acd_call = Some((conv_id, now));
                    let joined = self.convs.get(&conv_id).and_then(|c| c.enqueued_at);
                    let wait = joined.map_or(Duration::ZERO, |j| now.duration_since(j));
                    let queue = &mut self.queues[q];
                    queue.answered += 1;
                    queue.wait_sum += wait;
                    if wait <= queue.service_level {
                        queue.answered_within += 1;
                    }
                    self.announce(opencti_core::queue::QueueEvent::CallerAnswered {
                        queue: self.queues[q].id.clone(),
                        call: super::queues::caller_id(conv_id),
                        agent: self.agents[a].id.clone(),
                    });
                }
            }
        }
        // Outside callers who talk for a set time hang up afterwards.
        let talkers: Vec<(LegId, Duration, u64)> = self.convs[&conv_id]
            .legs
            .iter()
            .filter_map(|l| self.legs.get(l))
            .filter_map(|l| l.talk.map(|t| (l.id, t, l.gen)))
            .collect();
        for (l, t, gen) in talkers {
            self.later(t, Timer::CallerHangsUp { leg: l, gen });
        }
        self.reconcile_parties(conv_id);
    }

    pub(super) fn blind_transfer(&mut self, leg: LegId, to: &Dialable) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let conv = l.conv;
        let call = l.view.clone();
        let data = l.data.clone();
        let Who::Device(device) = l.who.clone() else {
            return;
        };
        // The call data travels with the call.
        let others: Vec<LegId> = self.convs[&conv]
            .legs
            .iter()
            .copied()
            .filter(|o| *o != leg)
            .collect();
        if let Some(first) = others.first().and_then(|o| self.legs.get_mut(o)) {
            let _ = first.data.merge(&data);
        }
        self.tell(
            &device,
            Event::CallTransferred {
                call,
                to: Address::new(to.as_str()).ok(),
            },
        );
        self.end_leg(leg, Cause::Transferred);
        if let Some(c) = self.convs.get_mut(&conv) {
            c.queue = None;
            c.answered = false;
            c.enqueued_at = None;
        }
        let Some(caller) = others.first().copied() else {
            self.settle(conv, Cause::Normal);
            return;
        };
        self.dial(conv, caller, to.as_str());
    }

    pub(super) fn complete_transfer(&mut self, consult: LegId) -> Result<()> {
        let primary = self.primary_of(consult)?;
        let device = self.device_of(consult)?;
        let (pconv, cconv) = (self.legs[&primary].conv, self.legs[&consult].conv);
        let pview = self.legs[&primary].view.clone();
        let cview = self.legs[&consult].view.clone();
        let target = self.legs[&consult].to.clone();
        // Everyone else on the primary joins the consultation's conversation.
        let moving: Vec<LegId> = self.convs[&pconv]
            .legs
            .iter()
            .copied()
            .filter(|l| *l != primary)
            .collect();
        self.tell(
            &device,
            Event::CallTransferred {
                call: pview,
                to: target.clone(),
            },
        );
        self.tell(
            &device,
            Event::CallTransferred {
                call: cview,
                to: target,
            },
        );
        self.end_leg(primary, Cause::Transferred);
        self.move_legs(&moving, pconv, cconv);
        self.remove_conv(pconv);
        self.end_leg(consult, Cause::Transferred);
        let remaining: Vec<LegId> = self
            .convs
            .get(&cconv)
            .map(|c| c.legs.clone())
            .unwrap_or_default();
        for leg in remaining {
            let Some(l) = self.legs.get(&leg) else {
                continue;
            };
            if let Who::Device(d) = l.who.clone() {
                let call = l.view.clone();
                self.tell(&d, Event::CallTransferred { call, to: None });
            }
        }
        self.reconcile_parties(cconv);
        self.settle(cconv, Cause::Normal);
        Ok(())
    }

    pub(super) fn complete_conference(&mut self, consult: LegId) -> Result<()> {
        let primary = self.primary_of(consult)?;
        let device = self.device_of(consult)?;
        let (pconv, cconv) = (self.legs[&primary].conv, self.legs[&consult].conv);
        let pview = self.legs[&primary].view.clone();
        let cview = self.legs[&consult].view.clone();
        let moving: Vec<LegId> = self.convs[&cconv]
            .legs
            .iter()
            .copied()
            .filter(|l| *l != consult)
            .collect();
        self.move_legs(&moving, cconv, pconv);
        if let Some(p) = self.legs.get_mut(&primary) {
            p.state = CallState::Connected;
            p.role = CallRole::Conference;
            p.gen += 1;
        }
        self.tell(
            &device,
            Event::CallConferenced {
                call: pview,
                merged: Some(cview),
            },
        );
        self.end_leg(consult, Cause::Merged);
        self.remove_conv(cconv);
        for leg in moving {
            if let Some(l) = self.legs.get_mut(&leg) {
                l.role = CallRole::Conference;
                if let Who::Device(d) = l.who.clone() {
                    let call = l.view.clone();
                    if matches!(l.state, CallState::Connected | CallState::Held) {
                        self.tell(&d, Event::CallConferenced { call, merged: None });
                    }
                }
            }
        }
        self.reconcile_parties(pconv);
        Ok(())
    }

    pub(super) fn move_legs(&mut self, legs: &[LegId], from: ConvId, to: ConvId) {
        if let Some(c) = self.convs.get_mut(&from) {
            c.legs.retain(|l| !legs.contains(l));
        }
        for leg in legs {
            if let Some(l) = self.legs.get_mut(leg) {
                l.conv = to;
            }
            if let Some(c) = self.convs.get_mut(&to) {
                c.legs.push(*leg);
            }
        }
        self.reconcile_parties(from);
    }

    pub(super) fn primary_of(&self, consult: LegId) -> Result<LegId> {
        self.legs
            .get(&consult)
            .and_then(|l| l.consult_of)
            .filter(|p| self.legs.contains_key(p))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidState,
                    "this call is not a consultation about a call that still exists",
                )
            })
    }

    pub(super) fn device_of(&self, leg: LegId) -> Result<DeviceId> {
        match self.legs.get(&leg).map(|l| &l.who) {
            Some(Who::Device(d)) => Ok(d.clone()),
            _ => Err(Error::new(ErrorKind::Other, "not a device leg")),
        }
    }

    pub(super) fn send_dtmf(&mut self, device: &DeviceId, leg: LegId, digits: &DtmfDigits) {
        let call = self.legs[&leg].view.clone();
        self.tell(
            device,
            Event::DtmfSent {
                call,
                digits: digits.clone(),
            },
        );
    }
}
