//! The one place queue figures are computed: every queue event applied in constant time
//! (independent of the number of agents, callers and queues), numbered into a gap-free
//! stream.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::agent::AgentState;
use crate::ids::{AgentId, CallId, QueueId};
use crate::snapshot::LinkState;
use crate::time::Timestamp;

use super::event::{QueueEnvelope, QueueEvent};
use super::figures::{AgentCounts, QueueFigures, QueueSnapshot};
use super::report::ReportedQueues;

/// The service-level threshold of a queue nobody configured: 20 seconds, the common
/// "80/20" target's.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(20);

/// How many of the last callers who left a queue it remembers, so that a second report of
/// their leaving counts once.
const REMEMBERED_LEAVERS: usize = 4096;

/// Live statistics of every queue of a switch, computed from [`QueueEvent`]s.
///
/// Each [`apply`](QueueStats::apply) updates the figures of the queues the event touches
/// and answers a [`QueueEnvelope`] with the next `seq` and those queues' figures. After
/// the link returns, [`restore`](QueueStats::restore) takes what the switch reports now
/// (its callers and members) and answers `resynced` with a whole snapshot.
///
/// Events that do not fit are taken as the switch meant them, so that the counts stay
/// whole: a caller the figures have not seen joined when it is first named; a second
/// `caller_joined` or `caller_answered` for the same caller changes nothing.
///
/// ```
/// use opencti_core::queue::{QueueEvent, QueueStats};
/// use opencti_core::{AgentId, CallId, QueueId, Timestamp};
///
/// let start = Timestamp::from_micros(1_000_000);
/// let mut stats = QueueStats::new(start);
/// let sales = QueueId::new("sales").unwrap();
/// let call = CallId::new("c1").unwrap();
/// stats.apply(start, QueueEvent::CallerJoined { queue: sales.clone(), call: call.clone() });
/// let answered = stats.apply(
///     Timestamp::from_micros(6_000_000),
///     QueueEvent::CallerAnswered { queue: sales, call, agent: AgentId::new("alice").unwrap() },
/// );
/// assert_eq!(answered.seq, 2);
/// let figures = &answered.queues[0];
/// assert_eq!((figures.offered, figures.answered, figures.waiting), (1, 1, 0));
/// assert_eq!(figures.average_speed_of_answer_ms, Some(5_000));
/// ```
#[derive(Debug, Clone)]
pub struct QueueStats {
    since: Timestamp,
    seq: u64,
    link: LinkState,
    default_threshold: Duration,
    queues: HashMap<QueueId, Queue>,
    agents: HashMap<AgentId, Agent>,
}

#[derive(Debug, Clone, Default)]
struct Queue {
    threshold_us: u64,
    /// Callers waiting or ringing.
    callers: HashMap<CallId, Caller>,
    /// Join order, for the longest wait. Entries of callers who left stay until they
    /// reach the front (or the deque is compacted), so that leaving costs O(1).
    order: VecDeque<(Timestamp, CallId)>,
    /// The last callers who left, to know a repeated leave from a caller never seen.
    left: HashSet<CallId>,
    left_order: VecDeque<CallId>,
    waiting: u32,
    ringing: u32,
    agents: AgentCounts,
    offered: u64,
    answered: u64,
    abandoned: u64,
    overflowed: u64,
    left_unseen: u64,
    answered_within: u64,
    speed_sum_us: u128,
    completed: u64,
    handle_sum_us: u128,
}

#[derive(Debug, Clone, Copy)]
struct Caller {
    joined: Timestamp,
    ringing: bool,
}

#[derive(Debug, Clone)]
struct Agent {
    state: AgentState,
    queues: Vec<QueueId>,
    /// The queue call the agent is talking on.
    talk: Option<Talk>,
    /// The queue whose call the agent completed, until its after-call work starts.
    completed_for: Option<QueueId>,
    /// After-call work running for a completed call of this queue, since then.
    wrapping: Option<(QueueId, Timestamp)>,
}

#[derive(Debug, Clone)]
struct Talk {
    queue: QueueId,
    call: CallId,
    answered: Timestamp,
}

impl Agent {
    fn new() -> Self {
        Agent {
            state: AgentState::LoggedOut,
            queues: Vec::new(),
            talk: None,
            completed_for: None,
            wrapping: None,
        }
    }
}

impl QueueStats {
    /// Statistics whose counts begin at `since` (the day's start, or the link coming up).
    pub fn new(since: Timestamp) -> Self {
        QueueStats {
            since,
            seq: 0,
            link: LinkState::Up,
            default_threshold: DEFAULT_THRESHOLD,
            queues: HashMap::new(),
            agents: HashMap::new(),
        }
    }

    /// The same, with `threshold` for every queue not given one of its own.
    #[must_use]
    pub fn with_default_threshold(mut self, threshold: Duration) -> Self {
        self.default_threshold = threshold;
        for queue in self.queues.values_mut() {
            queue.threshold_us = micros(threshold);
        }
        self
    }

    /// The same, knowing `queue` from the start (so that it shows before its first
    /// caller), with its own service-level threshold.
    #[must_use]
    pub fn with_queue(mut self, queue: QueueId, threshold: Duration) -> Self {
        self.queue(&queue).threshold_us = micros(threshold);
        self
    }

    /// The `seq` of the last event applied (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The figures of one queue, if it is known.
    pub fn figures(&self, queue: &QueueId) -> Option<QueueFigures> {
        self.queues.get(queue).map(|q| q.figures(queue))
    }

    /// An agent's state as the figures count it (logged out for an agent never seen).
    pub fn agent_state(&self, agent: &AgentId) -> AgentState {
        self.agents
            .get(agent)
            .map(|a| a.state.clone())
            .unwrap_or(AgentState::LoggedOut)
    }

    /// The queues `agent` is a member of.
    pub fn queues_of(&self, agent: &AgentId) -> Vec<QueueId> {
        self.agents
            .get(agent)
            .map(|a| a.queues.clone())
            .unwrap_or_default()
    }

    /// Every queue's figures, by queue id, as of the last event.
    pub fn snapshot(&self, at: Timestamp) -> QueueSnapshot {
        let mut queues: Vec<QueueFigures> =
            self.queues.iter().map(|(id, q)| q.figures(id)).collect();
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        QueueSnapshot {
            seq: self.seq,
            at,
            link: self.link,
            since: self.since,
            queues,
        }
    }

    /// Applies one event that happened `at`, and answers it numbered, with the figures of
    /// the queues it changed.
    pub fn apply(&mut self, at: Timestamp, event: QueueEvent) -> QueueEnvelope {
        let mut touched: Vec<QueueId> = Vec::new();
        match &event {
            QueueEvent::CallerJoined { queue, call } => {
                self.join(queue, call, at);
                touched.push(queue.clone());
            }
            QueueEvent::CallerOffered { queue, call, .. } => {
                self.join(queue, call, at);
                self.queue(queue).set_ringing(call, true);
                touched.push(queue.clone());
            }
            QueueEvent::CallerReturned { queue, call } => {
                self.join(queue, call, at);
                self.queue(queue).set_ringing(call, false);
                touched.push(queue.clone());
            }
            QueueEvent::CallerAnswered { queue, call, agent } => {
                if let Some(caller) = self.leave(queue, call, at) {
                    let q = self.queue(queue);
                    let wait = at.as_micros().saturating_sub(caller.joined.as_micros());
                    q.answered += 1;
                    q.speed_sum_us += u128::from(wait);
                    if wait <= q.threshold_us {
                        q.answered_within += 1;
                    }
                    self.agent(agent).talk = Some(Talk {
                        queue: queue.clone(),
                        call: call.clone(),
                        answered: at,
                    });
                }
                touched.push(queue.clone());
            }
            QueueEvent::CallerAbandoned { queue, call } => {
                if self.leave(queue, call, at).is_some() {
                    self.queue(queue).abandoned += 1;
                }
                touched.push(queue.clone());
            }
            QueueEvent::CallerOverflowed { queue, call } => {
                if self.leave(queue, call, at).is_some() {
                    self.queue(queue).overflowed += 1;
                }
                touched.push(queue.clone());
            }
            QueueEvent::CallerCompleted { queue, call, agent } => {
                self.complete(queue, call, agent, at);
                touched.push(queue.clone());
            }
            QueueEvent::AgentJoined { queue, agent } => {
                let state = {
                    let a = self.agent(agent);
                    if a.queues.contains(queue) {
                        None
                    } else {
                        a.queues.push(queue.clone());
                        Some(a.state.clone())
                    }
                };
                if let Some(state) = state {
                    self.queue(queue).agents.count(&state, true);
                }
                touched.push(queue.clone());
            }
            QueueEvent::AgentLeft { queue, agent } => {
                let state = self.agents.get_mut(agent).and_then(|a| {
                    let i = a.queues.iter().position(|q| q == queue)?;
                    a.queues.swap_remove(i);
                    Some(a.state.clone())
                });
                if let Some(state) = state {
                    self.queue(queue).agents.count(&state, false);
                }
                touched.push(queue.clone());
            }
            QueueEvent::AgentStateChanged { agent, state } => {
                touched = self.agent_state_changed(agent, state, at);
            }
            QueueEvent::LinkDown { .. } => self.link = LinkState::Down,
            // Only `restore` builds a resync: one applied from outside changes nothing.
            QueueEvent::Resynced { .. } => {}
        }
        self.seq += 1;
        let queues = touched
            .iter()
            .filter_map(|id| self.queues.get(id).map(|q| q.figures(id)))
            .collect();
        QueueEnvelope {
            seq: self.seq,
            at,
            event,
            queues,
        }
    }

    /// After the link returned: the callers and members each reported queue has now, as
    /// the switch tells them. Callers the figures knew that are gone count as
    /// `left_unseen`, and a later report of their leaving (an event the switch sent
    /// before its report but that arrives after it) changes nothing; callers they did
    /// not know joined while the link was down. The counts since the start are kept.
    /// Answers `resynced`, with every queue.
    pub fn restore(&mut self, at: Timestamp, report: ReportedQueues) -> QueueEnvelope {
        for reported in report.queues {
            let id = reported.queue;
            let q = self.queue(&id);
            let mut now: HashMap<CallId, Caller> = HashMap::with_capacity(reported.callers.len());
            for caller in reported.callers {
                let known = q.callers.get(&caller.call).map(|c| c.joined);
                if known.is_none() {
                    q.offered += 1;
                }
                now.insert(
                    caller.call,
                    Caller {
                        joined: known.unwrap_or(caller.joined),
                        ringing: caller.ringing,
                    },
                );
            }
            // Callers gone meanwhile are remembered as leavers: a report of their leaving
            // that arrives after the switch's (events held while it was read) counts once.
            let gone: Vec<CallId> = q
                .callers
                .keys()
                .filter(|c| !now.contains_key(*c))
                .cloned()
                .collect();
            q.left_unseen += gone.len() as u64;
            for call in gone {
                q.remember_leaver(call);
            }
            let mut order: Vec<(Timestamp, CallId)> =
                now.iter().map(|(c, v)| (v.joined, c.clone())).collect();
            order.sort();
            q.order = order.into();
            q.waiting = now.values().filter(|c| !c.ringing).count() as u32;
            q.ringing = now.values().filter(|c| c.ringing).count() as u32;
            q.callers = now;
            if let Some(members) = reported.members {
                self.set_members(&id, members);
            }
        }
        self.link = LinkState::Up;
        self.seq += 1;
        let snapshot = self.snapshot(at);
        QueueEnvelope {
            seq: self.seq,
            at,
            event: QueueEvent::Resynced {
                snapshot: Box::new(snapshot),
            },
            queues: Vec::new(),
        }
    }

    /// Per queue: the join order's length and how many leavers are remembered.
    #[cfg(test)]
    pub(super) fn queues_for_tests(&self) -> HashMap<QueueId, (usize, usize)> {
        self.queues
            .iter()
            .map(|(id, q)| (id.clone(), (q.order.len(), q.left.len())))
            .collect()
    }

    fn set_members(&mut self, queue: &QueueId, members: Vec<AgentId>) {
        let leaving: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(id, a)| a.queues.contains(queue) && !members.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        for agent in leaving {
            if let Some(a) = self.agents.get_mut(&agent) {
                a.queues.retain(|q| q != queue);
                let state = a.state.clone();
                self.queue(queue).agents.count(&state, false);
            }
        }
        for agent in members {
            let a = self.agent(&agent);
            if !a.queues.contains(queue) {
                a.queues.push(queue.clone());
                let state = a.state.clone();
                self.queue(queue).agents.count(&state, true);
            }
        }
    }

    fn queue(&mut self, id: &QueueId) -> &mut Queue {
        let threshold = micros(self.default_threshold);
        self.queues.entry(id.clone()).or_insert_with(|| Queue {
            threshold_us: threshold,
            ..Queue::default()
        })
    }

    fn agent(&mut self, id: &AgentId) -> &mut Agent {
        self.agents.entry(id.clone()).or_insert_with(Agent::new)
    }

    /// A caller joins, unless already there.
    fn join(&mut self, queue: &QueueId, call: &CallId, at: Timestamp) {
        let q = self.queue(queue);
        if q.callers.contains_key(call) {
            return;
        }
        q.offered += 1;
        q.waiting += 1;
        q.callers.insert(
            call.clone(),
            Caller {
                joined: at,
                ringing: false,
            },
        );
        q.order.push_back((at, call.clone()));
    }

    /// A caller leaves the queue: the caller as it was, or none if it had already left
    /// (a caller never seen joins first, so that it leaves from somewhere).
    fn leave(&mut self, queue: &QueueId, call: &CallId, at: Timestamp) -> Option<Caller> {
        let q = self.queue(queue);
        if !q.callers.contains_key(call) {
            // Told twice that a caller left: the second time changes nothing.
            if q.left.contains(call) {
                return None;
            }
            self.join(queue, call, at);
        }
        let q = self.queue(queue);
        let caller = q.callers.remove(call)?;
        q.remember_leaver(call.clone());
        if caller.ringing {
            q.ringing -= 1;
        } else {
            q.waiting -= 1;
        }
        q.tidy_order();
        Some(caller)
    }

    fn complete(&mut self, queue: &QueueId, call: &CallId, agent: &AgentId, at: Timestamp) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        let Some(talk) = a.talk.take_if(|t| &t.queue == queue && &t.call == call) else {
            return;
        };
        let in_wrap_up = matches!(a.state, AgentState::WrapUp { .. });
        if in_wrap_up {
            a.wrapping = Some((queue.clone(), at));
        } else {
            a.completed_for = Some(queue.clone());
        }
        let talked = at.as_micros().saturating_sub(talk.answered.as_micros());
        let q = self.queue(queue);
        q.completed += 1;
        q.handle_sum_us += u128::from(talked);
    }

    fn agent_state_changed(
        &mut self,
        agent: &AgentId,
        state: &AgentState,
        at: Timestamp,
    ) -> Vec<QueueId> {
        let a = self.agent(agent);
        let old = std::mem::replace(&mut a.state, state.clone());
        let queues = a.queues.clone();
        let now_wrapping = matches!(state, AgentState::WrapUp { .. });
        // After-call work that ended adds to the handle time of its call's queue.
        let mut wrapped: Option<(QueueId, u64)> = None;
        if !now_wrapping {
            if let Some((queue, start)) = a.wrapping.take() {
                wrapped = Some((queue, at.as_micros().saturating_sub(start.as_micros())));
            }
        }
        if now_wrapping && a.wrapping.is_none() {
            if let Some(queue) = a.completed_for.take() {
                a.wrapping = Some((queue, at));
            }
        } else if !now_wrapping {
            a.completed_for = None;
        }
        let mut touched = queues.clone();
        if let Some((queue, spent)) = wrapped {
            self.queue(&queue).handle_sum_us += u128::from(spent);
            if !touched.contains(&queue) {
                touched.push(queue);
            }
        }
        for queue in &queues {
            let q = self.queue(queue);
            q.agents.count(&old, false);
            q.agents.count(state, true);
        }
        touched
    }
}

impl Queue {
    /// Remembers that `call` left, so that a second report of it changes nothing.
    fn remember_leaver(&mut self, call: CallId) {
        if !self.left.insert(call.clone()) {
            return;
        }
        self.left_order.push_back(call);
        if self.left_order.len() > REMEMBERED_LEAVERS {
            if let Some(oldest) = self.left_order.pop_front() {
                self.left.remove(&oldest);
            }
        }
    }

    fn set_ringing(&mut self, call: &CallId, ringing: bool) {
        let Some(caller) = self.callers.get_mut(call) else {
            return;
        };
        if caller.ringing == ringing {
            return;
        }
        caller.ringing = ringing;
        if ringing {
            self.waiting -= 1;
            self.ringing += 1;
        } else {
            self.ringing -= 1;
            self.waiting += 1;
        }
    }

    /// Drops the entries of callers who left from the front of the join order, and
    /// compacts it when they pile up behind a caller who stays.
    fn tidy_order(&mut self) {
        while let Some((joined, call)) = self.order.front() {
            match self.callers.get(call) {
                Some(caller) if caller.joined == *joined => break,
                _ => {
                    self.order.pop_front();
                }
            }
        }
        if self.order.len() > 2 * self.callers.len() + 64 {
            let callers = &self.callers;
            self.order
                .retain(|(joined, call)| callers.get(call).is_some_and(|c| c.joined == *joined));
        }
    }

    fn figures(&self, id: &QueueId) -> QueueFigures {
        let known = self.answered + self.abandoned + self.overflowed;
        QueueFigures {
            queue: id.clone(),
            waiting: self.waiting,
            ringing: self.ringing,
            oldest_since: self.order.front().map(|(joined, _)| *joined),
            agents: self.agents.clone(),
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            overflowed: self.overflowed,
            left_unseen: self.left_unseen,
            answered_within: self.answered_within,
            threshold_ms: self.threshold_us / 1000,
            service_level: (known > 0).then(|| self.answered_within as f64 / known as f64),
            average_speed_of_answer_ms: mean_ms(self.speed_sum_us, self.answered),
            completed: self.completed,
            average_handle_ms: mean_ms(self.handle_sum_us, self.completed),
        }
    }
}

impl AgentCounts {
    /// Counts an agent in `state` in (`add`) or out.
    fn count(&mut self, state: &AgentState, add: bool) {
        let step = |n: &mut u32| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        let slot = match state {
            AgentState::LoggedOut => return,
            AgentState::NotReady { reason } => {
                let key = reason.as_ref().map(|r| r.as_str()).unwrap_or("");
                if add {
                    *self.not_ready_reasons.entry(key.to_string()).or_insert(0) += 1;
                } else if let Some(n) = self.not_ready_reasons.get_mut(key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.not_ready_reasons.remove(key);
                    }
                }
                &mut self.not_ready
            }
            AgentState::Ready => &mut self.ready,
            AgentState::Reserved { .. } => &mut self.reserved,
            AgentState::Busy { .. } => &mut self.busy,
            AgentState::WrapUp { .. } => &mut self.wrap_up,
        };
        step(slot);
        step(&mut self.logged_in);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn mean_ms(sum_us: u128, count: u64) -> Option<u64> {
    (count > 0).then(|| u64::try_from(sum_us / u128::from(count) / 1000).unwrap_or(u64::MAX))
}
