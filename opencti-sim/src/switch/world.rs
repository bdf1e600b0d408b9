//! The simulated switch's state and every operation on it, synchronous and deterministic.
//!
//! A call is modelled the way switches model it: each party is a **leg** (an agent's
//! device, or an outside party), and legs that talk to each other share a
//! **conversation**. A device sees each of its legs as one call with its own id; a
//! transfer or a conference moves legs between conversations, so every device keeps its
//! call id. Timers are not run here: operations ask for them ([`Timer`]) and the switch
//! wrapper runs them on tokio's clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use opencti_core::{
    Address, AgentId, AgentState, Call, CallData, CallId, CallRole, CallState, Cause, ChosenState,
    Command, DeviceId, Dialable, Direction, DtmfDigits, Error, ErrorKind, Event, Party, PartyId,
    QueueId, ReasonCode, Result, SwitchState,
};
use tokio::time::Instant;

use super::line::Line;
use crate::config::{CentreConfig, FarEnd};

pub(crate) type LegId = u64;
type ConvId = u64;

/// Something the world wants to happen later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// An offered ACD leg rings too long.
    RingTimeout { leg: LegId, gen: u64 },
    /// A waiting caller gives up.
    Patience { conv: ConvId },
    /// Wrap-up ends.
    WrapUpEnd { agent: usize, gen: u64 },
    /// An outside party answers.
    FarEndAnswers { leg: LegId, gen: u64 },
    /// An outside caller hangs up after talking.
    CallerHangsUp { leg: LegId, gen: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Device(DeviceId),
    Outside(Address),
}

#[derive(Debug, Clone)]
struct Leg {
    id: LegId,
    conv: ConvId,
    who: Who,
    view: CallId,
    state: CallState,
    direction: Direction,
    role: CallRole,
    consult_of: Option<LegId>,
    queue: Option<QueueId>,
    data: CallData,
    from: Option<Address>,
    to: Option<Address>,
    /// Parties this leg's device has been told about.
    told: Vec<LegId>,
    /// Bumped on every change, so that stale timers do nothing.
    gen: u64,
    /// For an outside caller: hang up after talking this long.
    talk: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
struct Conv {
    legs: Vec<LegId>,
    queue: Option<usize>,
    waiting: bool,
    enqueued_at: Option<Instant>,
    answered: bool,
}

#[derive(Debug)]
struct AgentRec {
    id: AgentId,
    device: DeviceId,
    skills: Vec<usize>,
    chosen: ChosenState,
    pending: Option<ChosenState>,
    in_wrap_up: Option<u64>,
    wrap_gen: u64,
    acd_queue: Option<usize>,
    idle_since: Instant,
}

#[derive(Debug)]
struct QueueRec {
    id: QueueId,
    number: Option<Dialable>,
    priority: u8,
    ring_timeout: Duration,
    wrap_up: Duration,
    waiting: VecDeque<ConvId>,
}

/// Counters a test or a demo can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SwitchStats {
    /// Calls that entered a queue.
    pub queued: u64,
    /// Queued calls an agent answered.
    pub answered: u64,
    /// Queued calls whose caller gave up.
    pub abandoned: u64,
    /// Offers that rang out at an agent.
    pub ring_no_answer: u64,
}

/// Where a dialled number leads.
enum Target {
    Device(DeviceId),
    Queue(usize),
    FarEnd(FarEnd),
}

pub(crate) struct World {
    config: CentreConfig,
    next_id: u64,
    pub(crate) lines: HashMap<DeviceId, Line>,
    agents: Vec<AgentRec>,
    queues: Vec<QueueRec>,
    legs: BTreeMap<LegId, Leg>,
    convs: BTreeMap<ConvId, Conv>,
    far_ends: HashMap<String, FarEnd>,
    pub(crate) timers: Vec<(Duration, Timer)>,
    pub(crate) stats: SwitchStats,
}

impl World {
    pub(crate) fn new(config: CentreConfig) -> Result<Self> {
        config.validate()?;
        let now = Instant::now();
        let queues: Vec<QueueRec> = config
            .queues
            .iter()
            .map(|q| QueueRec {
                id: q.id.clone(),
                number: q.number.clone(),
                priority: q.priority,
                ring_timeout: q.ring_timeout,
                wrap_up: q.wrap_up,
                waiting: VecDeque::new(),
            })
            .collect();
        let agents = config
            .agents
            .iter()
            .map(|a| AgentRec {
                id: a.id.clone(),
                device: a.device.clone(),
                skills: a
                    .skills
                    .iter()
                    .filter_map(|s| queues.iter().position(|q| &q.id == s))
                    .collect(),
                chosen: ChosenState::LoggedOut,
                pending: None,
                in_wrap_up: None,
                wrap_gen: 0,
                acd_queue: None,
                idle_since: now,
            })
            .collect();
        let far_ends = config
            .extensions
            .iter()
            .map(|(d, f)| (d.as_str().to_string(), *f))
            .collect();
        Ok(World {
            config,
            next_id: 0,
            lines: HashMap::new(),
            agents,
            queues,
            legs: BTreeMap::new(),
            convs: BTreeMap::new(),
            far_ends,
            timers: Vec::new(),
            stats: SwitchStats::default(),
        })
    }

    fn fresh(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn tell(&mut self, device: &DeviceId, event: Event) {
        if let Some(line) = self.lines.get_mut(device) {
            line.deliver(event);
        }
    }

    fn later(&mut self, after: Duration, timer: Timer) {
        self.timers.push((after, timer));
    }

    // ----- lookups -----

    pub(crate) fn agent_of(&self, device: &DeviceId) -> Option<usize> {
        self.agents.iter().position(|a| &a.device == device)
    }

    pub(crate) fn agent_by_id(&self, agent: &AgentId) -> Option<usize> {
        self.agents.iter().position(|a| &a.id == agent)
    }

    pub(crate) fn queue_by_id(&self, queue: &QueueId) -> Option<usize> {
        self.queues.iter().position(|q| &q.id == queue)
    }

    fn leg_of(&self, device: &DeviceId, call: &CallId) -> Result<LegId> {
        self.legs
            .values()
            .find(|l| l.who == Who::Device(device.clone()) && &l.view == call)
            .map(|l| l.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("device {} has no call {}", device, call),
                )
            })
    }

    fn device_legs(&self, device: &DeviceId) -> impl Iterator<Item = &Leg> {
        let who = Who::Device(device.clone());
        self.legs.values().filter(move |l| l.who == who)
    }

    fn device_busy(&self, device: &DeviceId) -> bool {
        self.device_legs(device).next().is_some()
    }

    fn resolve(&self, to: &str) -> Target {
        if let Some(a) = self.agents.iter().find(|a| a.device.as_str() == to) {
            return Target::Device(a.device.clone());
        }
        if let Some(q) = self
            .queues
            .iter()
            .position(|q| q.number.as_ref().is_some_and(|n| n.as_str() == to))
        {
            return Target::Queue(q);
        }
        Target::FarEnd(
            self.far_ends
                .get(to)
                .copied()
                .unwrap_or(self.config.far_end),
        )
    }

    fn leg_address(&self, leg: &Leg) -> Address {
        match &leg.who {
            Who::Device(d) => Address::new(d.as_str()).unwrap_or_else(|_| unknown_address()),
            Who::Outside(a) => a.clone(),
        }
    }

    fn party(&self, leg: &Leg) -> Party {
        let id = PartyId::new(format!("leg-{}", leg.id)).unwrap_or_else(|_| unreachable_id());
        Party::new(id).with_address(self.leg_address(leg))
    }

    // ----- legs and conversations -----

    #[allow(clippy::too_many_arguments)]
    fn new_leg(
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
        let view = CallId::new(format!("call-{}", id)).unwrap_or_else(|_| unreachable_call());
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

    fn new_conv(&mut self) -> ConvId {
        let id = self.fresh();
        self.convs.insert(id, Conv::default());
        id
    }

    /// Moves a leg to `state` and tells its device.
    fn set_state(&mut self, leg_id: LegId, state: CallState) {
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
    fn end_leg(&mut self, leg_id: LegId, cause: Cause) {
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
    fn settle(&mut self, conv_id: ConvId, cause: Cause) {
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

    fn remove_conv(&mut self, conv_id: ConvId) {
        if let Some(conv) = self.convs.remove(&conv_id) {
            if let Some(q) = conv.queue {
                self.queues[q].waiting.retain(|c| *c != conv_id);
            }
        }
    }

    /// Tells every device leg about the connected parties it talks to, and about those
    /// who left.
    fn reconcile_parties(&mut self, conv_id: ConvId) {
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

    /// After one of a device's legs ended: once the device is idle, wrap-up starts (after
    /// an ACD call) or a queued state takes effect, and the agent may get the next call.
    fn device_leg_gone(&mut self, device: &DeviceId) {
        let Some(a) = self.agent_of(device) else {
            return;
        };
        if self.device_busy(device) {
            return;
        }
        if let Some(q) = self.agents[a].acd_queue.take() {
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

    fn end_wrap_up(&mut self, a: usize) {
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

    fn available(&self, a: usize) -> bool {
        let agent = &self.agents[a];
        agent.chosen == ChosenState::Ready
            && agent.in_wrap_up.is_none()
            && !self.device_busy(&agent.device)
    }

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
            for q in order {
                let agent = (0..self.agents.len())
                    .filter(|a| self.agents[*a].skills.contains(&q) && self.available(*a))
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

    fn offer(&mut self, conv_id: ConvId, q: usize, a: usize) {
        let (from, data) = self.caller_of(conv_id);
        let device = self.agents[a].device.clone();
        let queue_id = self.queues[q].id.clone();
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            conv.waiting = false;
        }
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
    fn caller_of(&self, conv_id: ConvId) -> (Option<Address>, CallData) {
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

    fn enqueue(&mut self, conv_id: ConvId, q: usize, front: bool) {
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            conv.queue = Some(q);
            conv.waiting = true;
            if conv.enqueued_at.is_none() {
                conv.enqueued_at = Some(Instant::now());
                self.stats.queued += 1;
            }
        }
        if front {
            self.queues[q].waiting.push_front(conv_id);
        } else {
            self.queues[q].waiting.push_back(conv_id);
        }
    }

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

    fn need_agent(&self, device: &DeviceId) -> Result<usize> {
        self.agent_of(device).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no agent works at device {}", device),
            )
        })
    }

    fn make_call(
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
    fn dial(&mut self, conv: ConvId, caller: LegId, to: &str) {
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
    fn answer_leg(&mut self, leg: LegId) {
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
        if let Some(conv) = self.convs.get_mut(&conv_id) {
            if queue.is_some() && !conv.answered {
                conv.answered = true;
                self.stats.answered += 1;
            }
        }
        if let (Some(q), Some(Who::Device(device))) =
            (queue, self.legs.get(&leg).map(|l| l.who.clone()))
        {
            if let Some(a) = self.agent_of(&device) {
                self.agents[a].acd_queue = Some(q);
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

    fn blind_transfer(&mut self, leg: LegId, to: &Dialable) {
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

    fn complete_transfer(&mut self, consult: LegId) -> Result<()> {
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

    fn complete_conference(&mut self, consult: LegId) -> Result<()> {
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

    fn move_legs(&mut self, legs: &[LegId], from: ConvId, to: ConvId) {
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

    fn primary_of(&self, consult: LegId) -> Result<LegId> {
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

    fn device_of(&self, leg: LegId) -> Result<DeviceId> {
        match self.legs.get(&leg).map(|l| &l.who) {
            Some(Who::Device(d)) => Ok(d.clone()),
            _ => Err(Error::new(ErrorKind::Other, "not a device leg")),
        }
    }

    fn send_dtmf(&mut self, device: &DeviceId, leg: LegId, digits: &DtmfDigits) {
        let call = self.legs[&leg].view.clone();
        self.tell(
            device,
            Event::DtmfSent {
                call,
                digits: digits.clone(),
            },
        );
    }

    // ----- state for resynchronisation -----

    pub(crate) fn switch_state(&self, device: &DeviceId) -> SwitchState {
        let agent = match self.agent_of(device) {
            None => AgentState::LoggedOut,
            Some(a) => {
                let rec = &self.agents[a];
                let next = rec.pending.clone().unwrap_or_else(|| rec.chosen.clone());
                if rec.chosen == ChosenState::LoggedOut {
                    AgentState::LoggedOut
                } else if rec.in_wrap_up.is_some() {
                    AgentState::WrapUp { reason: None, next }
                } else if self.device_busy(device) {
                    AgentState::Busy { next }
                } else {
                    rec.chosen.to_agent_state()
                }
            }
        };
        let calls = self
            .device_legs(device)
            .map(|leg| {
                let mut call = Call::new(leg.view.clone(), leg.state, leg.direction);
                call.role = leg.role;
                call.consult_of = leg
                    .consult_of
                    .and_then(|p| self.legs.get(&p))
                    .map(|p| p.view.clone());
                call.queue = leg.queue.clone();
                call.from = leg.from.clone();
                call.to = leg.to.clone();
                call.data = leg.data.clone();
                call.parties = leg
                    .told
                    .iter()
                    .filter_map(|t| self.legs.get(t))
                    .map(|t| self.party(t))
                    .collect();
                call
            })
            .collect();
        SwitchState { agent, calls }
    }

    /// The calls on a device, for a control handle that wants to act on one.
    pub(crate) fn calls_at(&self, device: &DeviceId) -> Vec<(CallId, CallState)> {
        self.device_legs(device)
            .map(|l| (l.view.clone(), l.state))
            .collect()
    }

    pub(crate) fn waiting(&self, queue: usize) -> usize {
        self.queues.get(queue).map_or(0, |q| q.waiting.len())
    }
}

// These ids are built from numbers and known-good text, so they cannot fail; the
// fallbacks exist only so that no panic path is left.
fn unreachable_call() -> CallId {
    CallId::new("call-invalid").unwrap_or_else(|_| unreachable!("a constant id is valid"))
}

fn unreachable_id() -> PartyId {
    PartyId::new("leg-invalid").unwrap_or_else(|_| unreachable!("a constant id is valid"))
}

fn unknown_address() -> Address {
    Address::new("unknown").unwrap_or_else(|_| unreachable!("a constant address is valid"))
}
