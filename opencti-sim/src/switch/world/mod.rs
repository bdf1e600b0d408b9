//! The simulated switch's state and every operation on it, synchronous and deterministic.
//!
//! A call is modelled the way switches model it: each party is a **leg** (an agent's
//! device, or an outside party), and legs that talk to each other share a
//! **conversation**. A device sees each of its legs as one call with its own id; a
//! transfer or a conference moves legs between conversations, so every device keeps its
//! call id. Timers are not run here: operations ask for them ([`Timer`]) and the switch
//! wrapper runs them on tokio's clock.
//!
//! The operations are split by idea: `legs` (legs and conversations), `acd` (agents and
//! routing), `calls` (commands from a device), `outside` (the outside world and timers).

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
    /// The queue call the agent answered and when, until the device is idle again.
    acd_call: Option<(ConvId, Instant)>,
    /// The queue whose call the agent's after-call work follows, and since when.
    wrapping_for: Option<(usize, Instant)>,
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
    service_level: Duration,
    /// The switch's own counts, for checking a queue board against.
    offered: u64,
    answered: u64,
    abandoned: u64,
    answered_within: u64,
    wait_sum: Duration,
    completed: u64,
    handle_sum: Duration,
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
    queue_events:
        tokio::sync::broadcast::Sender<(opencti_core::Timestamp, opencti_core::queue::QueueEvent)>,
    /// The switch's clock: this wall time at this instant of tokio's clock.
    epoch: (opencti_core::Timestamp, Instant),
}

mod acd;
mod calls;
mod legs;
mod outside;
mod queues;

pub use queues::QueueCounts;

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
                service_level: q.service_level,
                offered: 0,
                answered: 0,
                abandoned: 0,
                answered_within: 0,
                wait_sum: Duration::ZERO,
                completed: 0,
                handle_sum: Duration::ZERO,
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
                acd_call: None,
                wrapping_for: None,
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
            queue_events: tokio::sync::broadcast::channel(queues::QUEUE_EVENT_BUFFER).0,
            epoch: (opencti_core::Timestamp::now(), now),
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

    fn device_legs<'a>(&'a self, device: &'a DeviceId) -> impl Iterator<Item = &'a Leg> + 'a {
        self.legs
            .values()
            .filter(move |l| matches!(&l.who, Who::Device(d) if d == device))
    }

    fn device_busy(&self, device: &DeviceId) -> bool {
        self.device_legs(device).next().is_some()
    }

    /// Every device with a leg now (one pass over the legs, for the ACD's choice).
    fn busy_devices(&self) -> std::collections::HashSet<DeviceId> {
        self.legs
            .values()
            .filter_map(|l| match &l.who {
                Who::Device(d) => Some(d.clone()),
                Who::Outside(_) => None,
            })
            .collect()
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
        SwitchState {
            agent,
            calls,
            withheld: Vec::new(),
        }
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
