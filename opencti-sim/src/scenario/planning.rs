//! A scenario as the headless planner sees it.

use opencti_core::{Error, ErrorKind, QueueId, Result};

use super::Scenario;
use crate::planner::{AgentGroup, PlannerConfig, PlannerQueue, RunLength};

impl Scenario {
    /// The planner's view of this scenario: its random arrivals per queue, its agents
    /// with their skills, and the queues' wrap-up, over the arrivals' span. Scripted
    /// single calls are left out. Fails when there are no arrivals.
    pub fn planner_config(&self) -> Result<PlannerConfig> {
        let scenario = self;
        if scenario.arrivals.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "scenario {} has no [[arrivals]]: the planner needs arrival rates",
                    scenario.name
                ),
            ));
        }
        let queues: Vec<PlannerQueue> = scenario
            .arrivals
            .iter()
            .map(|a| {
                let mut queue =
                    PlannerQueue::new(a.queue.clone(), a.calls_per_hour, a.talk.as_secs_f64());
                if let Some(p) = a.patience {
                    queue = queue.with_patience(p.as_secs_f64());
                }
                let wrap = scenario
                    .centre
                    .queues
                    .iter()
                    .find(|q| q.id == a.queue)
                    .map(|q| q.wrap_up.as_secs_f64())
                    .unwrap_or(0.0);
                if wrap > 0.0 {
                    queue = queue.with_wrap_up(wrap);
                }
                queue
            })
            .collect();
        let served: Vec<QueueId> = queues.iter().map(|q| q.id.clone()).collect();
        let agents = scenario
            .centre
            .agents
            .iter()
            .map(|a| {
                let skills = a
                    .skills
                    .iter()
                    .filter(|s| served.contains(s))
                    .cloned()
                    .collect();
                AgentGroup::new(a.id.as_str(), 1).serving(skills)
            })
            .collect();
        let end = scenario
            .arrivals
            .iter()
            .map(|a| (a.start + a.duration).as_secs_f64())
            .fold(0.0, f64::max);
        Ok(PlannerConfig {
            queues,
            agents,
            ..PlannerConfig::default()
        }
        .with_length(RunLength::Secs(end))
        .with_seed(scenario.seed))
    }
}
