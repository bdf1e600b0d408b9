//! The calendar of things due: the next arrival at each queue and the end of each
//! agent's current call or wrap-up.
//!
//! Each queue has exactly one arrival pending and each agent at most one end pending, so
//! the calendar never holds more than queues + agents entries, however long the run.
//!
//! What dominates a run is this calendar, so it is shaped for the pattern of a contact
//! centre: arrivals are kept apart, one slot per queue (the next arrival of the only
//! queue needs no heap at all), and the agents' ends live in a binary heap whose entry
//! is *rescheduled in place* when the agent goes straight on (a call ends and wrap-up
//! starts, or wrap-up ends and the next waiting call is answered): one sift instead of a
//! pop and a push.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// The next call arrives at this queue.
    Arrival(u32),
    /// This agent's call or wrap-up ends.
    Agent(u32),
}

/// The next arrival per queue and the agents' ends, with a deterministic order for equal
/// times (arrivals first, lower queue first; then agents, lower index first), so that a
/// run is reproducible bit for bit.
#[derive(Debug)]
pub(super) struct Calendar {
    /// Next arrival time per queue; infinite once the queue takes no more calls.
    arrivals: Vec<f64>,
    /// The queue with the earliest next arrival.
    soonest: usize,
    agents: BinaryHeap<AgentEnd>,
}

impl Calendar {
    /// A calendar with no arrival scheduled for `queues` queues and room for `agents`.
    pub(super) fn new(queues: usize, agents: usize) -> Self {
        Calendar {
            arrivals: vec![f64::INFINITY; queues],
            soonest: 0,
            agents: BinaryHeap::with_capacity(agents),
        }
    }

    /// What falls due next (it stays in the calendar until rescheduled or removed).
    #[inline]
    pub(super) fn next(&self) -> Option<(f64, Due)> {
        let arrival = self.arrivals.get(self.soonest).copied();
        match (arrival, self.agents.peek()) {
            (Some(at), Some(end)) if at <= end.at && at.is_finite() => {
                Some((at, Due::Arrival(self.soonest as u32)))
            }
            (_, Some(end)) => Some((end.at, Due::Agent(end.agent))),
            (Some(at), None) if at.is_finite() => Some((at, Due::Arrival(self.soonest as u32))),
            _ => None,
        }
    }

    /// Sets queue `q`'s next arrival (infinite: none).
    #[inline]
    pub(super) fn set_arrival(&mut self, q: usize, at: f64) {
        self.arrivals[q] = at;
        if self.arrivals.len() > 1 {
            // Few queues: a scan is cheaper than a heap. `min_by` keeps the first of
            // equals, so ties go to the lower queue.
            self.soonest = self
                .arrivals
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
        }
    }

    /// No queue takes more calls.
    pub(super) fn close_arrivals(&mut self) {
        self.arrivals.fill(f64::INFINITY);
    }

    /// Schedules the end of agent `agent`'s call or wrap-up.
    #[inline]
    pub(super) fn push_agent(&mut self, at: f64, agent: u32) {
        self.agents.push(AgentEnd { at, agent });
    }

    /// Moves the earliest agent end, which must be `agent`'s, to `at`. Returns false
    /// (and changes nothing) if the earliest end is not `agent`'s.
    #[inline]
    pub(super) fn reschedule_first_agent(&mut self, agent: u32, at: f64) -> bool {
        match self.agents.peek_mut() {
            Some(mut first) if first.agent == agent => {
                first.at = at;
                true
            }
            _ => false,
        }
    }

    /// Removes the earliest agent end, which must be `agent`'s; returns false (and
    /// changes nothing) if it is not.
    #[inline]
    pub(super) fn remove_first_agent(&mut self, agent: u32) -> bool {
        if self.agents.peek().is_some_and(|first| first.agent == agent) {
            self.agents.pop();
            true
        } else {
            false
        }
    }
}

/// The end of an agent's call or wrap-up.
#[derive(Debug, Clone, Copy)]
struct AgentEnd {
    at: f64,
    agent: u32,
}

impl PartialEq for AgentEnd {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for AgentEnd {}

impl PartialOrd for AgentEnd {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AgentEnd {
    /// Greater means sooner: `BinaryHeap` is a max-heap.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.agent.cmp(&self.agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(calendar: &mut Calendar) -> Vec<(f64, Due)> {
        let mut order = Vec::new();
        while let Some((at, due)) = calendar.next() {
            order.push((at, due));
            match due {
                Due::Arrival(q) => calendar.set_arrival(q as usize, f64::INFINITY),
                Due::Agent(a) => assert!(calendar.remove_first_agent(a)),
            }
        }
        order
    }

    #[test]
    fn due_in_time_order_with_arrivals_first_on_ties() {
        let mut calendar = Calendar::new(3, 4);
        calendar.push_agent(3.0, 1);
        calendar.push_agent(1.0, 7);
        calendar.set_arrival(2, 1.0);
        calendar.push_agent(1.0, 3);
        calendar.set_arrival(0, 0.5);
        calendar.set_arrival(1, 1.0);
        assert_eq!(
            drain(&mut calendar),
            vec![
                (0.5, Due::Arrival(0)),
                (1.0, Due::Arrival(1)),
                (1.0, Due::Arrival(2)),
                (1.0, Due::Agent(3)),
                (1.0, Due::Agent(7)),
                (3.0, Due::Agent(1)),
            ]
        );
    }

    #[test]
    fn the_first_agent_end_is_rescheduled_in_place() {
        let mut calendar = Calendar::new(1, 3);
        calendar.set_arrival(0, 10.0);
        calendar.push_agent(1.0, 0);
        calendar.push_agent(2.0, 1);
        assert!(!calendar.reschedule_first_agent(1, 5.0));
        assert!(calendar.reschedule_first_agent(0, 12.0));
        assert!(!calendar.remove_first_agent(0));
        calendar.close_arrivals();
        assert_eq!(
            drain(&mut calendar),
            vec![(2.0, Due::Agent(1)), (12.0, Due::Agent(0))]
        );
    }
}
