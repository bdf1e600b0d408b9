//! Agents and the ACD: wrap-up, availability, and routing waiting calls to the
//! longest-idle agent.

use super::queues::caller_id;
use super::*;
use opencti_core::queue::QueueEvent;

impl World {
    /// After one of a device's legs ended: once the device is idle, wrap-up starts (after
    /// an ACD call) or a queued state takes effect, and the agent may get the next call.
    pub(super) fn device_leg_gone(&mut self, device: &DeviceId) {
        let Some(a) = self.agent_of(device) else {
            return;
        };
        if self.device_busy(device) {
            return;
        }
        if let Some(q) = self.agents[a].acd_queue.take() {
            if let Some((conv, answered)) = self.agents[a].acd_call.take() {
                let now = Instant::now();
                let queue = &mut self.queues[q];
                queue.completed += 1;
                queue.handle_sum += now.duration_since(answered);
                self.agents[a].wrapping_for = Some((q, now));
                let agent = self.agents[a].id.clone();
                self.announce(QueueEvent::CallerCompleted {
                    queue: self.queues[q].id.clone(),
                    call: caller_id(conv),
                    agent,
                });
            }
            let wrap = self.queues[q].wrap_up;
            if wrap.is_zero() {
                self.end_wrap_up(a);
            } else {
                let agent = &mut self.agents[a];
                agent.wrap_gen += 1;
                agent.in_wrap_up = Some(agent.wrap_gen);
                let gen = agent.wrap_gen;
                self.later(wrap, Timer::WrapUpEnd { agent: a, gen });
            }
            return;
        }
        if let Some(next) = self.agents[a].pending.take() {
            self.agents[a].chosen = next.clone();
            let device = self.agents[a].device.clone();
            self.tell(
                &device,
                Event::AgentStateChanged {
                    state: next.to_agent_state(),
                },
            );
        }
        self.agents[a].idle_since = Instant::now();
        self.route();
    }

    pub(super) fn end_wrap_up(&mut self, a: usize) {
        if let Some((q, since)) = self.agents[a].wrapping_for.take() {
            self.queues[q].handle_sum += Instant::now().duration_since(since);
        }
        let agent = &mut self.agents[a];
        agent.in_wrap_up = None;
        if let Some(next) = agent.pending.take() {
            agent.chosen = next;
        }
        agent.idle_since = Instant::now();
        let state = agent.chosen.to_agent_state();
        let device = agent.device.clone();
        self.tell(&device, Event::AgentStateChanged { state });
        self.route();
    }

    // ----- the ACD -----

    /// Offers waiting calls to available agents: highest priority queue first, then the
    /// longest-waiting call, to the longest-idle agent with the skill.
    pub(crate) fn route(&mut self) {
        loop {
            let mut best: Option<(usize, usize)> = None;
            let mut order: Vec<usize> = (0..self.queues.len())
                .filter(|q| !self.queues[*q].waiting.is_empty())
                .collect();
            order.sort_by_key(|q| {
                let head = self.queues[*q].waiting.front().copied();
                let since = head
                    .and_then(|c| self.convs.get(&c))
                    .and_then(|c| c.enqueued_at);
                (std::cmp::Reverse(self.queues[*q].priority), since)
            });
            // Which devices are busy, found once rather than once per agent: with
            // thousands of agents and hundreds of calls, that is what routing costs.
            let busy = self.busy_devices();
            for q in order {
                let agent = (0..self.agents.len())
                    .filter(|a| {
                        let agent = &self.agents[*a];
                        agent.skills.contains(&q)
                            && agent.chosen == ChosenState::Ready
                            && agent.in_wrap_up.is_none()
                            && !busy.contains(&agent.device)
                    })
                    .min_by_key(|a| self.agents[*a].idle_since);
                if let Some(a) = agent {
                    best = Some((q, a));
                    break;
                }
            }
            let Some((q, a)) = best else {
                return;
            };
            let Some(conv_id) = self.queues[q].waiting.pop_front() else {
                return;
            };
            self.offer(conv_id, q, a);
        }
    }

    pub(super) fn offer(&mut self, conv_id: ConvId, q: usize, a: usize) {
        let (from, data) = self.caller_of(conv_id);
        let device = self.agents[a].device.clone();
        let queue_id = self.queues[q].id.clone();
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            conv.waiting = false;
        }
        self.announce(QueueEvent::CallerOffered {
            queue: queue_id.clone(),
            call: caller_id(conv_id),
            agent: self.agents[a].id.clone(),
        });
        let to = self.queues[q]
            .number
            .as_ref()
            .and_then(|n| Address::new(n.as_str()).ok());
        let leg = self.new_leg(
            conv_id,
            Who::Device(device.clone()),
            CallState::Offered,
            Direction::Inbound,
            from.clone(),
            to.clone(),
            Some(queue_id.clone()),
            data.clone(),
        );
        let call = self.legs[&leg].view.clone();
        self.tell(
            &device,
            Event::CallOffered {
                call,
                from,
                to,
                queue: Some(queue_id),
                data,
            },
        );
        // An internal caller that was queued now hears ringing.
        let queued: Vec<LegId> = self.convs[&conv_id]
            .legs
            .iter()
            .copied()
            .filter(|l| {
                self.legs
                    .get(l)
                    .is_some_and(|l| l.state == CallState::Queued)
            })
            .collect();
        for l in queued {
            self.set_state(l, CallState::Ringback);
        }
        let ring = self.queues[q].ring_timeout;
        self.later(ring, Timer::RingTimeout { leg, gen: 0 });
    }

    /// The caller's address and data, for offering a conversation to someone new.
    pub(super) fn caller_of(&self, conv_id: ConvId) -> (Option<Address>, CallData) {
        let Some(conv) = self.convs.get(&conv_id) else {
            return (None, CallData::new());
        };
        let mut data = CallData::new();
        let mut from = None;
        for leg in conv.legs.iter().filter_map(|l| self.legs.get(l)) {
            let _ = data.merge(&leg.data);
            if from.is_none() {
                from = Some(self.leg_address(leg));
            }
        }
        (from, data)
    }

    pub(super) fn enqueue(&mut self, conv_id: ConvId, q: usize, front: bool) {
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            conv.queue = Some(q);
            conv.waiting = true;
            let joined = conv.enqueued_at.is_none();
            let answered = conv.answered;
            if joined {
                conv.enqueued_at = Some(Instant::now());
                self.stats.queued += 1;
                self.queues[q].offered += 1;
            }
            let queue = self.queues[q].id.clone();
            let call = caller_id(conv_id);
            if joined {
                self.announce(QueueEvent::CallerJoined { queue, call });
            } else if !answered {
                self.announce(QueueEvent::CallerReturned { queue, call });
            }
        }
        if front {
            self.queues[q].waiting.push_front(conv_id);
        } else {
            self.queues[q].waiting.push_back(conv_id);
        }
    }
}
