//! The outside world: callers, far ends that answer or hang up, and timers firing.

use super::*;

impl World {
    // ----- stimuli from the outside world -----

    /// An outside caller dials `to` (a queue number, an agent's device, or a queue id).
    pub(crate) fn outside_call(
        &mut self,
        from: Address,
        to: &str,
        data: CallData,
        patience: Option<Duration>,
        talk: Option<Duration>,
    ) -> Result<()> {
        let target = match self.queues.iter().position(|q| q.id.as_str() == to) {
            Some(q) => Target::Queue(q),
            None => self.resolve(to),
        };
        let conv = self.new_conv();
        let caller = self.new_leg(
            conv,
            Who::Outside(from.clone()),
            CallState::Initiated,
            Direction::Outbound,
            Some(from.clone()),
            Address::new(to).ok(),
            None,
            data.clone(),
        );
        if let Some(leg) = self.legs.get_mut(&caller) {
            leg.talk = talk;
        }
        match target {
            Target::Queue(q) => {
                self.enqueue(conv, q, false);
                if let Some(p) = patience {
                    self.later(p, Timer::Patience { conv });
                }
                self.route();
            }
            Target::Device(device) => {
                let leg = self.new_leg(
                    conv,
                    Who::Device(device.clone()),
                    CallState::Offered,
                    Direction::Inbound,
                    Some(from.clone()),
                    Address::new(to).ok(),
                    None,
                    data.clone(),
                );
                let call = self.legs[&leg].view.clone();
                self.tell(
                    &device,
                    Event::CallOffered {
                        call,
                        from: Some(from),
                        to: Address::new(to).ok(),
                        queue: None,
                        data,
                    },
                );
            }
            Target::FarEnd(_) => {
                self.remove_conv(conv);
                self.legs.remove(&caller);
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{} is neither a queue nor an agent's device", to),
                ));
            }
        }
        Ok(())
    }

    /// The other side of a device's call hangs up (every outside party on it).
    pub(crate) fn far_end_hangs_up(&mut self, device: &DeviceId, call: &CallId) -> Result<()> {
        let leg = self.leg_of(device, call)?;
        let conv = self.legs[&leg].conv;
        let others: Vec<LegId> = self.convs[&conv]
            .legs
            .iter()
            .copied()
            .filter(|l| *l != leg)
            .collect();
        if others.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("call {} has no far end", call),
            ));
        }
        for other in others {
            self.end_leg(other, Cause::Normal);
        }
        self.settle(conv, Cause::Normal);
        Ok(())
    }

    /// The outside party a device is calling answers.
    pub(crate) fn far_end_answers(&mut self, device: &DeviceId, call: &CallId) -> Result<()> {
        let leg = self.leg_of(device, call)?;
        let conv = self.legs[&leg].conv;
        let ringing: Vec<LegId> = self.convs[&conv]
            .legs
            .iter()
            .copied()
            .filter(|l| {
                self.legs.get(l).is_some_and(|l| {
                    matches!(l.who, Who::Outside(_)) && l.state == CallState::Offered
                })
            })
            .collect();
        let Some(far) = ringing.first().copied() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("nobody is ringing on call {}", call),
            ));
        };
        self.answer_leg(far);
        Ok(())
    }

    pub(crate) fn set_far_end(&mut self, number: &str, behaviour: FarEnd) {
        self.far_ends.insert(number.to_string(), behaviour);
    }

    // ----- timers -----

    pub(crate) fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::RingTimeout { leg, gen } => {
                let Some(l) = self.legs.get(&leg) else {
                    return;
                };
                if l.gen != gen || l.state != CallState::Offered {
                    return;
                }
                let conv = l.conv;
                let call = l.view.clone();
                let Who::Device(device) = l.who.clone() else {
                    return;
                };
                self.stats.ring_no_answer += 1;
                self.tell(&device, Event::CallDiverted { call, to: None });
                self.end_leg(leg, Cause::NoAnswer);
                if let Some(a) = self.agent_of(&device) {
                    let reason = ReasonCode::new("no_answer").ok();
                    self.agents[a].chosen = ChosenState::NotReady { reason };
                    let state = self.agents[a].chosen.to_agent_state();
                    self.tell(&device, Event::AgentStateChanged { state });
                }
                if let Some(q) = self.convs.get(&conv).and_then(|c| c.queue) {
                    self.enqueue(conv, q, true);
                }
                self.route();
            }
            Timer::Patience { conv } => {
                let Some(c) = self.convs.get(&conv) else {
                    return;
                };
                if c.answered {
                    return;
                }
                self.stats.abandoned += 1;
                let legs = c.legs.clone();
                if let Some(q) = c.queue {
                    self.queues[q].waiting.retain(|w| *w != conv);
                }
                if let Some(c) = self.convs.get_mut(&conv) {
                    c.waiting = false;
                }
                for leg in legs {
                    self.end_leg(leg, Cause::Abandoned);
                }
                self.remove_conv(conv);
            }
            Timer::WrapUpEnd { agent, gen } => {
                if self.agents.get(agent).and_then(|a| a.in_wrap_up) == Some(gen) {
                    self.end_wrap_up(agent);
                }
            }
            Timer::FarEndAnswers { leg, gen } => {
                if self
                    .legs
                    .get(&leg)
                    .is_some_and(|l| l.gen == gen && l.state == CallState::Offered)
                {
                    self.answer_leg(leg);
                }
            }
            Timer::CallerHangsUp { leg, gen } => {
                let Some(l) = self.legs.get(&leg) else {
                    return;
                };
                if l.gen != gen {
                    return;
                }
                let conv = l.conv;
                self.end_leg(leg, Cause::Normal);
                self.settle(conv, Cause::Normal);
            }
        }
    }
}
