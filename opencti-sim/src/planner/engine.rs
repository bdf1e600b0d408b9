//! The discrete-event engine: arrivals, routing, calls and wrap-up, in simulated time.
//!
//! What it keeps is bounded by the centre, not by the day: per queue the callers waiting
//! and a list of idle agents, per agent its state and totals, and a calendar with one
//! pending arrival per queue and at most one pending end per agent. Finished calls leave
//! nothing behind.
//!
//! Routing: an arriving call goes to the longest-idle free agent who serves its queue; an
//! agent who becomes free takes the call that has waited longest among the queues it
//! serves. Each queue is FIFO.
//!
//! Abandonment is settled lazily: a waiting caller's deadline (arrival + patience) is
//! drawn on arrival, and when an agent looks at the head of a queue, callers whose
//! deadline has passed are counted as abandoned at their deadline. In a FIFO queue this
//! gives exactly the outcome of scheduling each abandonment, without a calendar entry per
//! caller or removals from the middle of the queue.

use std::collections::VecDeque;

use fastrand::Rng;
use opencti_core::{
    AgentState, CallData, CallId, Cause, ChosenState, Error, ErrorKind, Event, QueueId, Result,
};

use super::calendar::{Calendar, Due};
use super::config::{Plan, PlannerConfig, RunLength};
use super::progress::Progress;
use super::report::{ratio, AgentReport, EventCounts, OverallFigures, PlannerReport, QueueReport};
use super::sink::AgentEventSink;
use super::tally::{AgentTally, CallTally, Window};

/// A progress callback and how many arrivals apart to call it.
pub(super) struct ProgressHook<'a> {
    pub(super) every: u64,
    pub(super) callback: &'a mut dyn FnMut(&Progress),
    /// Arrivals left before the next call.
    pub(super) countdown: u64,
}

/// Runs the simulation of a validated configuration; everything but the wall time.
pub(super) fn simulate<'a, S: AgentEventSink + ?Sized>(
    config: &PlannerConfig,
    plan: Plan,
    sink: &'a mut S,
    progress: Option<ProgressHook<'a>>,
) -> Result<PlannerReport> {
    let mut engine = Engine::new(config, plan, sink, progress);
    engine.open()?;
    while let Some((at, due)) = engine.calendar.next() {
        engine.now = at;
        match due {
            Due::Arrival(q) => engine.arrival(q as usize)?,
            Due::Agent(a) => {
                // The agent's entry stays first in the calendar while it is handled, so
                // that going straight on reschedules it in place (see `schedule_end`).
                engine.current = Some(a);
                engine.agent_due(a as usize)?;
                if engine.current.take().is_some() && !engine.calendar.remove_first_agent(a) {
                    return Err(internal("the agent handled was not first in the calendar"));
                }
            }
        }
    }
    engine.close()?;
    Ok(engine.report())
}

/// A caller waiting in a queue.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    arrived: f64,
    /// When the caller hangs up if not answered (infinite for patient callers).
    deadline: f64,
    measured: bool,
}

/// An entry in a queue's list of idle agents; stale once the agent has taken a call
/// (through another queue) since, which `stamp` detects.
#[derive(Debug, Clone, Copy)]
struct IdleMark {
    agent: u32,
    stamp: u32,
}

struct QueueRun {
    id: QueueId,
    mean_gap: f64,
    handle_secs: f64,
    patience_secs: Option<f64>,
    wrap_up_secs: Option<f64>,
    waiting: VecDeque<Waiting>,
    /// Idle agents serving this queue, longest idle first (some entries may be stale).
    idle: VecDeque<IdleMark>,
    /// How many entries of `idle` are live.
    idle_live: usize,
    tally: CallTally,
}

impl QueueRun {
    /// Counts callers at the head whose patience ran out by `now` as abandoned.
    fn settle_abandoned(&mut self, now: f64) {
        while let Some(head) = self.waiting.front() {
            if head.deadline > now {
                break;
            }
            if head.measured {
                self.tally.abandoned(head.deadline - head.arrived);
            }
            self.waiting.pop_front();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Before the day opens.
    LoggedOut,
    Idle,
    Talking,
    WrappingUp,
}

struct AgentRun {
    status: Status,
    /// Bumped each time the agent becomes idle.
    stamp: u32,
    /// The call being handled.
    call: Option<CallId>,
    /// The queue of the call being handled or wrapped up.
    queue: u32,
    /// When the current talk or wrap-up began.
    since: f64,
    tally: AgentTally,
}

impl AgentRun {
    fn is_idle_with(&self, stamp: u32) -> bool {
        self.status == Status::Idle && self.stamp == stamp
    }
}

struct Engine<'a, S: ?Sized> {
    sink: &'a mut S,
    progress: Option<ProgressHook<'a>>,
    length: RunLength,
    threshold: f64,
    max_waiting: usize,
    seed: u64,
    calendar: Calendar,
    /// The agent whose calendar entry is being handled (still first in the calendar).
    current: Option<u32>,
    arrivals_rng: Rng,
    handle_rng: Rng,
    patience_rng: Rng,
    now: f64,
    /// Time of the last thing that happened to an agent or a call.
    last: f64,
    taking_calls: bool,
    window: Window,
    queues: Vec<QueueRun>,
    agents: Vec<AgentRun>,
    skills: Vec<Box<[u32]>>,
    plan: Plan,
    arrived: u64,
    measured: u64,
    next_call: u64,
    id_text: String,
    events: EventCounts,
}

/// An exponentially distributed time with the given mean.
#[inline]
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    // f64() is in [0, 1), so 1 − u is in (0, 1] and its logarithm is finite.
    -mean * (1.0 - rng.f64()).ln()
}

impl<'a, S: AgentEventSink + ?Sized> Engine<'a, S> {
    fn new(
        config: &PlannerConfig,
        mut plan: Plan,
        sink: &'a mut S,
        progress: Option<ProgressHook<'a>>,
    ) -> Self {
        // Independent streams for arrivals, handling times and patience, so that changing
        // one (say, the patience) leaves the others' draws alone.
        let mut master = Rng::with_seed(config.seed);
        let arrivals_rng = Rng::with_seed(master.u64(..));
        let handle_rng = Rng::with_seed(master.u64(..));
        let patience_rng = Rng::with_seed(master.u64(..));
        let queues = config
            .queues
            .iter()
            .map(|q| QueueRun {
                id: q.id.clone(),
                mean_gap: 3600.0 / q.calls_per_hour,
                handle_secs: q.handle_secs,
                patience_secs: q.patience_secs,
                wrap_up_secs: q.wrap_up_secs,
                waiting: VecDeque::new(),
                idle: VecDeque::new(),
                idle_live: 0,
                tally: CallTally::default(),
            })
            .collect::<Vec<_>>();
        let agents = (0..plan.agent_ids.len())
            .map(|_| AgentRun {
                status: Status::LoggedOut,
                stamp: 0,
                call: None,
                queue: 0,
                since: 0.0,
                tally: AgentTally::default(),
            })
            .collect::<Vec<_>>();
        let to = match config.length {
            RunLength::Calls(_) => f64::INFINITY,
            RunLength::Secs(s) => s,
        };
        Engine {
            sink,
            progress,
            length: config.length,
            threshold: config.service_level_secs,
            max_waiting: config.max_waiting,
            seed: config.seed,
            calendar: Calendar::new(queues.len(), agents.len()),
            current: None,
            arrivals_rng,
            handle_rng,
            patience_rng,
            now: 0.0,
            last: 0.0,
            taking_calls: true,
            window: Window {
                from: config.warm_up_secs,
                to,
            },
            skills: std::mem::take(&mut plan.skills),
            queues,
            agents,
            plan,
            arrived: 0,
            measured: 0,
            next_call: 0,
            id_text: String::with_capacity(24),
            events: EventCounts::default(),
        }
    }

    #[inline]
    fn emit(&mut self, agent: usize, event: Event) -> Result<()> {
        self.agents[agent].tally.events += 1;
        self.events.total += 1;
        self.sink.event(agent, self.now, event)
    }

    #[inline]
    fn emit_state(&mut self, agent: usize, state: AgentState) -> Result<()> {
        self.events.agent_state_changed += 1;
        self.emit(agent, Event::AgentStateChanged { state })
    }

    /// The agents log in and become idle; the first calls are scheduled.
    fn open(&mut self) -> Result<()> {
        for a in 0..self.agents.len() {
            self.emit_state(a, AgentState::Ready)?;
            self.go_idle(a);
        }
        for q in 0..self.queues.len() {
            let gap = exponential(&mut self.arrivals_rng, self.queues[q].mean_gap);
            self.calendar.set_arrival(q, gap);
        }
        Ok(())
    }

    /// The day is over and drained: the agents log out.
    fn close(&mut self) -> Result<()> {
        self.now = self.last.max(self.window.to);
        for a in 0..self.agents.len() {
            self.emit_state(a, AgentState::LoggedOut)?;
        }
        if let Some(hook) = self.progress.as_mut() {
            (hook.callback)(&Progress {
                calls_arrived: self.arrived,
                calls_measured: self.measured,
                simulated_secs: self.now,
                fraction_done: 1.0,
            });
        }
        Ok(())
    }

    fn arrival(&mut self, q: usize) -> Result<()> {
        let now = self.now;
        if !self.taking_calls {
            // The calendar holds no arrival once the day is closed; nothing to do anyway.
            return Ok(());
        }
        if let RunLength::Secs(end) = self.length {
            if now >= end {
                self.taking_calls = false;
                self.calendar.close_arrivals();
                return Ok(());
            }
        }
        self.last = now;
        self.arrived += 1;
        let measured = self.window.contains(now);
        if measured {
            self.measured += 1;
            if let RunLength::Calls(n) = self.length {
                if self.measured >= n {
                    self.taking_calls = false;
                    self.window.to = now;
                    self.calendar.close_arrivals();
                }
            }
        }
        let queue = &mut self.queues[q];
        if self.taking_calls {
            let gap = exponential(&mut self.arrivals_rng, queue.mean_gap);
            self.calendar.set_arrival(q, now + gap);
        }
        let deadline = match queue.patience_secs {
            Some(mean) => now + exponential(&mut self.patience_rng, mean),
            None => f64::INFINITY,
        };
        if measured {
            queue.tally.offered += 1;
        }
        if let Some(a) = self.take_idle(q) {
            self.answer(a, q, now, measured)?;
        } else {
            let queue = &mut self.queues[q];
            if queue.waiting.len() >= self.max_waiting {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "queue {} has {} callers waiting at {:.0} s: the agents cannot keep up with the calls offered (raise max_waiting only if that is expected)",
                        queue.id,
                        queue.waiting.len(),
                        now
                    ),
                ));
            }
            if measured {
                queue.tally.waited += 1;
            }
            queue.waiting.push_back(Waiting {
                arrived: now,
                deadline,
                measured,
            });
        }
        if let Some(hook) = self.progress.as_mut() {
            hook.countdown -= 1;
            if hook.countdown == 0 {
                hook.countdown = hook.every;
                let fraction_done = match self.length {
                    RunLength::Calls(n) => self.measured as f64 / n as f64,
                    RunLength::Secs(s) => now / s,
                };
                (hook.callback)(&Progress {
                    calls_arrived: self.arrived,
                    calls_measured: self.measured,
                    simulated_secs: now,
                    fraction_done: fraction_done.clamp(0.0, 1.0),
                });
            }
        }
        Ok(())
    }

    /// The longest-idle agent serving queue `q`, taken out of every idle list.
    fn take_idle(&mut self, q: usize) -> Option<usize> {
        while let Some(mark) = self.queues[q].idle.pop_front() {
            let a = mark.agent as usize;
            if self.agents[a].is_idle_with(mark.stamp) {
                for &s in self.skills[a].iter() {
                    self.queues[s as usize].idle_live -= 1;
                }
                return Some(a);
            }
        }
        None
    }

    fn go_idle(&mut self, a: usize) {
        let agent = &mut self.agents[a];
        agent.status = Status::Idle;
        agent.stamp = agent.stamp.wrapping_add(1);
        let mark = IdleMark {
            agent: a as u32,
            stamp: agent.stamp,
        };
        let agents = &self.agents;
        for &q in self.skills[a].iter() {
            let queue = &mut self.queues[q as usize];
            queue.idle.push_back(mark);
            queue.idle_live += 1;
            // Agents with several skills leave stale marks behind; keep them few.
            if queue.idle.len() > 2 * queue.idle_live + 64 {
                queue
                    .idle
                    .retain(|m| agents[m.agent as usize].is_idle_with(m.stamp));
            }
        }
    }

    /// Agent `a` answers a call of queue `q` that arrived at `arrived`.
    fn answer(&mut self, a: usize, q: usize, arrived: f64, measured: bool) -> Result<()> {
        let now = self.now;
        let call = self.new_call_id()?;
        let queue_id = self.queues[q].id.clone();
        self.events.call_offered += 1;
        self.emit(
            a,
            Event::CallOffered {
                call: call.clone(),
                from: None,
                to: None,
                queue: Some(queue_id),
                data: CallData::new(),
            },
        )?;
        self.emit_state(
            a,
            AgentState::Reserved {
                next: ChosenState::Ready,
            },
        )?;
        self.events.call_connected += 1;
        self.emit(a, Event::CallConnected { call: call.clone() })?;
        self.emit_state(
            a,
            AgentState::Busy {
                next: ChosenState::Ready,
            },
        )?;
        let queue = &mut self.queues[q];
        let talk = exponential(&mut self.handle_rng, queue.handle_secs);
        let agent = &mut self.agents[a];
        if measured {
            queue.tally.answered(now - arrived, self.threshold);
            queue.tally.handle_sum += talk;
            agent.tally.handled += 1;
        }
        agent.status = Status::Talking;
        agent.call = Some(call);
        agent.queue = q as u32;
        agent.since = now;
        self.schedule_end(a, now + talk)
    }

    /// Schedules the end of agent `a`'s call or wrap-up: in place if `a` is the agent
    /// being handled (its entry is still first), otherwise as a new entry.
    #[inline]
    fn schedule_end(&mut self, a: usize, at: f64) -> Result<()> {
        let agent = a as u32;
        if self.current == Some(agent) {
            self.current = None;
            if !self.calendar.reschedule_first_agent(agent, at) {
                return Err(internal("the agent handled was not first in the calendar"));
            }
            Ok(())
        } else {
            self.calendar.push_agent(at, agent);
            Ok(())
        }
    }

    /// A fresh call id, `c<n>`, written without going through the formatter.
    fn new_call_id(&mut self) -> Result<CallId> {
        self.next_call += 1;
        let mut digits = [0u8; 20];
        let mut n = self.next_call;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.id_text.clear();
        self.id_text.push('c');
        self.id_text
            .extend(digits[i..].iter().map(|&d| char::from(d)));
        CallId::new(&self.id_text)
    }

    fn agent_due(&mut self, a: usize) -> Result<()> {
        let now = self.now;
        self.last = now;
        match self.agents[a].status {
            Status::Talking => {
                let agent = &mut self.agents[a];
                agent.tally.talk_secs += self.window.overlap(agent.since, now);
                let Some(call) = agent.call.take() else {
                    return Err(internal("an agent finished talking without a call"));
                };
                let q = agent.queue as usize;
                self.events.call_ended += 1;
                self.emit(
                    a,
                    Event::CallEnded {
                        call,
                        cause: Cause::Normal,
                    },
                )?;
                if let Some(wrap) = self.queues[q].wrap_up_secs {
                    self.emit_state(
                        a,
                        AgentState::WrapUp {
                            reason: None,
                            next: ChosenState::Ready,
                        },
                    )?;
                    let agent = &mut self.agents[a];
                    agent.status = Status::WrappingUp;
                    agent.since = now;
                    self.schedule_end(a, now + wrap)
                } else {
                    self.emit_state(a, AgentState::Ready)?;
                    self.free(a)
                }
            }
            Status::WrappingUp => {
                let agent = &mut self.agents[a];
                agent.tally.wrap_secs += self.window.overlap(agent.since, now);
                self.emit_state(a, AgentState::Ready)?;
                self.free(a)
            }
            Status::Idle | Status::LoggedOut => Err(internal("an idle agent had something due")),
        }
    }

    /// Agent `a` is ready: it takes the longest-waiting call among its queues, or idles.
    fn free(&mut self, a: usize) -> Result<()> {
        let now = self.now;
        let mut best: Option<(usize, f64)> = None;
        for &q in self.skills[a].iter() {
            let queue = &mut self.queues[q as usize];
            queue.settle_abandoned(now);
            if let Some(head) = queue.waiting.front() {
                if best.is_none_or(|(_, arrived)| head.arrived < arrived) {
                    best = Some((q as usize, head.arrived));
                }
            }
        }
        match best {
            Some((q, _)) => {
                let Some(caller) = self.queues[q].waiting.pop_front() else {
                    return Err(internal("the chosen queue was empty"));
                };
                self.answer(a, q, caller.arrived, caller.measured)
            }
            None => {
                self.go_idle(a);
                Ok(())
            }
        }
    }

    fn report(&self) -> PlannerReport {
        let window = self.window.length();
        let mut overall = CallTally::default();
        let queues = self
            .queues
            .iter()
            .enumerate()
            .map(|(q, run)| {
                overall.add(&run.tally);
                QueueReport {
                    queue: run.id.clone(),
                    load_erlangs: (run.handle_secs + run.wrap_up_secs.unwrap_or(0.0))
                        / run.mean_gap,
                    agents: self.plan.servers[q],
                    calls: run.tally.figures(),
                }
            })
            .collect();
        let mut busy = 0.0;
        let mut talk = 0.0;
        let agents = self
            .agents
            .iter()
            .zip(&self.plan.agent_ids)
            .map(|(run, id)| {
                busy += run.tally.talk_secs + run.tally.wrap_secs;
                talk += run.tally.talk_secs;
                AgentReport {
                    agent: id.clone(),
                    handled: run.tally.handled,
                    occupancy: ratio(run.tally.talk_secs + run.tally.wrap_secs, window),
                    talk_occupancy: ratio(run.tally.talk_secs, window),
                    events: run.tally.events,
                }
            })
            .collect();
        let staffed = window * self.agents.len() as f64;
        PlannerReport {
            seed: self.seed,
            service_level_secs: self.threshold,
            measured_from_secs: self.window.from,
            measured_to_secs: self.window.to,
            simulated_secs: self.now,
            wall_secs: 0.0,
            calls_arrived: self.arrived,
            overall: OverallFigures {
                calls: overall.figures(),
                agents: self.agents.len() as u32,
                occupancy: ratio(busy, staffed),
                talk_occupancy: ratio(talk, staffed),
            },
            queues,
            agents,
            events: self.events,
        }
    }
}

fn internal(what: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!("planner bug: {what}; please report it with the configuration"),
    )
}
