//! Where the planner's canonical events go: a trait, and a sink that only counts them.

use opencti_core::{Event, Result};

use super::report::EventCounts;

/// Receives every canonical event the planner produces, in simulated-time order.
///
/// `agent` is the agent's index in [`PlannerConfig::agent_ids`](super::PlannerConfig::agent_ids)
/// (and in [`PlannerReport::agents`](super::PlannerReport::agents)); `at_secs` is the
/// simulated time in seconds from the start of the day. Each agent's events form the
/// stream its desk would see: log in (`agent_state_changed` ready), then per call
/// `call_offered` (with the queue), `agent_state_changed` reserved, `call_connected`,
/// `agent_state_changed` busy, `call_ended` (normal), then `agent_state_changed` wrap-up
/// and later ready, or ready at once, and finally `agent_state_changed` logged out. A
/// call is offered, connected and the agent busy at the same instant: the planner models
/// no ringing time.
///
/// # Behavior
///
/// Returning an error stops the run at once; [`run`](super::run) returns that error.
///
/// Closures `FnMut(usize, f64, Event) -> Result<()>` are sinks:
///
/// ```
/// use opencti_sim::planner::{run, PlannerConfig, RunLength};
/// let config = PlannerConfig::single_queue(2, 60.0, 60.0).with_length(RunLength::Calls(20));
/// let mut offered = 0;
/// let report = run(&config, &mut |_agent: usize, _at: f64, event: opencti_core::Event| {
///     offered += usize::from(event.name() == "call_offered");
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(offered as u64, report.events.call_offered);
/// ```
pub trait AgentEventSink {
    /// Takes one event for agent number `agent` at simulated time `at_secs`.
    fn event(&mut self, agent: usize, at_secs: f64, event: Event) -> Result<()>;
}

impl<F> AgentEventSink for F
where
    F: FnMut(usize, f64, Event) -> Result<()>,
{
    fn event(&mut self, agent: usize, at_secs: f64, event: Event) -> Result<()> {
        self(agent, at_secs, event)
    }
}

/// A sink that counts events by type and drops them: what the benchmark uses, so that
/// every event is built and handed over but nothing else is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountingSink {
    counts: EventCounts,
    other: u64,
}

impl CountingSink {
    /// A sink that has counted nothing yet.
    pub fn new() -> Self {
        CountingSink::default()
    }

    /// What it has counted.
    pub fn counts(&self) -> EventCounts {
        self.counts
    }

    /// Events of types the planner never produces (always 0 unless something is wrong).
    pub fn unexpected(&self) -> u64 {
        self.other
    }
}

impl AgentEventSink for CountingSink {
    #[inline]
    fn event(&mut self, _agent: usize, _at_secs: f64, event: Event) -> Result<()> {
        self.counts.total += 1;
        match event {
            Event::AgentStateChanged { .. } => self.counts.agent_state_changed += 1,
            Event::CallOffered { .. } => self.counts.call_offered += 1,
            Event::CallConnected { .. } => self.counts.call_connected += 1,
            Event::CallEnded { .. } => self.counts.call_ended += 1,
            _ => self.other += 1,
        }
        Ok(())
    }
}
