//! A sink that runs each agent's events through the core's desk state machine, to prove
//! that what the planner produces is what a real desk accepts.

use opencti_core::machine::Desk;
use opencti_core::{AgentState, Capabilities, DeviceId, Error, ErrorKind, Event, Result};

use super::config::PlannerConfig;
use super::sink::AgentEventSink;

/// Applies every event to its agent's [`Desk`] and stops the run at the first event a
/// desk refuses.
///
/// It is stricter than the session: when the planner reports a derived agent state
/// (reserved, busy, wrap-up), the desk must already have derived that very state from the
/// call event before it, so the planner and the core agree on what each call event means.
/// Slower than [`CountingSink`](super::CountingSink) (a desk per agent, ids compared per
/// event); meant for tests.
///
/// ```
/// use opencti_sim::planner::{run, DeskCheckSink, PlannerConfig, RunLength};
/// let config = PlannerConfig::single_queue(3, 120.0, 60.0)
///     .with_patience(30.0)
///     .with_wrap_up(10.0)
///     .with_length(RunLength::Calls(200));
/// let mut desks = DeskCheckSink::new(&config).unwrap();
/// let report = run(&config, &mut desks).unwrap();
/// assert_eq!(desks.accepted(), report.events.total);
/// assert!(desks.desks().iter().all(|d| d.calls().is_empty()));
/// ```
#[derive(Debug, Clone)]
pub struct DeskCheckSink {
    desks: Vec<Desk>,
    accepted: u64,
}

impl DeskCheckSink {
    /// One desk per agent of `config`, each at a device named after its agent, with the
    /// after-call-work capability when any queue imposes wrap-up.
    pub fn new(config: &PlannerConfig) -> Result<Self> {
        let capabilities = Capabilities::all().with_wrap_up(config.has_wrap_up());
        let desks = config
            .agent_ids()?
            .into_iter()
            .map(|agent| {
                let device = DeviceId::new(agent.as_str())?;
                Ok(Desk::new(agent, device, capabilities))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DeskCheckSink { desks, accepted: 0 })
    }

    /// The desks, by agent index.
    pub fn desks(&self) -> &[Desk] {
        &self.desks
    }

    /// How many events the desks accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

impl AgentEventSink for DeskCheckSink {
    fn event(&mut self, agent: usize, at_secs: f64, mut event: Event) -> Result<()> {
        let Some(desk) = self.desks.get_mut(agent) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "event {} for agent #{agent}, who does not exist",
                    event.name()
                ),
            ));
        };
        if let Event::AgentStateChanged { state } = &event {
            if state.is_derived() && desk.agent() != state {
                return Err(refused(
                    desk,
                    at_secs,
                    &event,
                    &format!(
                        "the planner reports {state} but the desk derived {}",
                        desk.agent()
                    ),
                ));
            }
        }
        if let Err(e) = desk.apply(&mut event) {
            return Err(refused(desk, at_secs, &event, e.message()));
        }
        self.accepted += 1;
        Ok(())
    }
}

fn refused(desk: &Desk, at_secs: f64, event: &Event, why: &str) -> Error {
    let state: &AgentState = desk.agent();
    Error::new(
        ErrorKind::InvalidState,
        format!(
            "desk of agent {} (state {state}) refused {} at {at_secs:.3} s: {why}",
            desk.agent_id(),
            event.name()
        ),
    )
}
