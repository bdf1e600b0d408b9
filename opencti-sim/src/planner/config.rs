//! What the planner simulates: the queues and their traffic, the agents and their skills,
//! how long to run, and what to measure.

use opencti_core::{AgentId, Error, ErrorKind, QueueId, Result};
use serde::{Deserialize, Serialize};

/// One ACD queue and the traffic offered to it.
///
/// Calls arrive as a Poisson process; handling (talk) times are exponential; callers who
/// wait have exponential patience and hang up when it runs out; after each call the agent
/// spends a fixed wrap-up time unavailable. With no patience and no wrap-up the queue is
/// the textbook M/M/c of Erlang C; with patience it is the M/M/c+M of Erlang A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerQueue {
    /// The queue's id, carried by every `call_offered` it delivers.
    pub id: QueueId,
    /// Mean arrival rate, in calls per hour (> 0).
    pub calls_per_hour: f64,
    /// Mean handling (talk) time in seconds (> 0); exponentially distributed.
    pub handle_secs: f64,
    /// Mean patience of a waiting caller in seconds (> 0), exponentially distributed;
    /// `None`: callers wait as long as it takes.
    pub patience_secs: Option<f64>,
    /// Fixed after-call work in seconds (> 0) during which the agent is in `wrap_up` and
    /// takes no call; `None`: the agent is ready again as soon as the call ends.
    pub wrap_up_secs: Option<f64>,
}

impl PlannerQueue {
    /// A queue with infinitely patient callers and no wrap-up.
    pub fn new(id: QueueId, calls_per_hour: f64, handle_secs: f64) -> Self {
        PlannerQueue {
            id,
            calls_per_hour,
            handle_secs,
            patience_secs: None,
            wrap_up_secs: None,
        }
    }

    /// Sets the callers' mean patience in seconds.
    #[must_use]
    pub fn with_patience(mut self, mean_secs: f64) -> Self {
        self.patience_secs = Some(mean_secs);
        self
    }

    /// Sets the fixed wrap-up time in seconds.
    #[must_use]
    pub fn with_wrap_up(mut self, secs: f64) -> Self {
        self.wrap_up_secs = Some(secs);
        self
    }

    /// The work offered, in Erlangs: arrival rate times (handling + wrap-up) time.
    pub fn load_erlangs(&self) -> f64 {
        self.calls_per_hour / 3600.0 * (self.handle_secs + self.wrap_up_secs.unwrap_or(0.0))
    }
}

/// Which queues the agents of a group serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skills {
    /// Every queue of the configuration.
    All,
    /// These queues only.
    Queues(Vec<QueueId>),
}

/// A number of identical agents.
///
/// Their ids are `{name}-1`, `{name}-2`, ...; they are logged in and ready for the whole
/// run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGroup {
    /// The prefix of the agents' ids.
    pub name: String,
    /// How many agents (> 0).
    pub count: u32,
    /// The queues they serve.
    pub skills: Skills,
}

impl AgentGroup {
    /// `count` agents named `{name}-n` serving every queue.
    pub fn new(name: impl Into<String>, count: u32) -> Self {
        AgentGroup {
            name: name.into(),
            count,
            skills: Skills::All,
        }
    }

    /// Restricts the group to these queues.
    #[must_use]
    pub fn serving(mut self, queues: Vec<QueueId>) -> Self {
        self.skills = Skills::Queues(queues);
        self
    }
}

/// When the simulated day stops taking calls.
///
/// Either way the run then drains: calls still waiting are answered or abandoned, calls in
/// progress end, wrap-up completes, and only then do the agents log out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunLength {
    /// Stop after this many calls have arrived after the warm-up (the calls measured);
    /// calls that arrive during the warm-up come on top.
    Calls(u64),
    /// Stop taking calls at this simulated time, in seconds from the start (warm-up
    /// included).
    Secs(f64),
}

/// Everything the planner needs for one run.
///
/// `PlannerConfig::default()` is the benchmark's centre (one queue, 100 agents, 1,800
/// calls an hour, 180 s handling time: 90 Erlangs, patient callers, no wrap-up) for an
/// eight-hour day with no warm-up, a 20 s service-level threshold and seed 0.
///
/// ```
/// use opencti_sim::planner::{PlannerConfig, RunLength};
/// let config = PlannerConfig::single_queue(10, 480.0, 60.0)
///     .with_patience(120.0)
///     .with_length(RunLength::Calls(10_000))
///     .with_warm_up_secs(3_600.0)
///     .with_seed(7);
/// assert!(config.validate().is_ok());
/// assert!(PlannerConfig::single_queue(0, 480.0, 60.0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerConfig {
    /// The queues (at least one).
    pub queues: Vec<PlannerQueue>,
    /// The agents (at least one), in groups.
    pub agents: Vec<AgentGroup>,
    /// When to stop taking calls.
    pub length: RunLength,
    /// Simulated seconds at the start whose calls are handled (and produce events) but
    /// are left out of the figures, so that they describe the steady state rather than a
    /// centre that opened empty.
    pub warm_up_secs: f64,
    /// The service-level threshold in seconds: a call answered after waiting at most this
    /// long counts as answered within the service level.
    pub service_level_secs: f64,
    /// The seed: the same configuration and seed give the same figures, bit for bit.
    pub seed: u64,
    /// A safety limit on the calls waiting in one queue (callers who have hung up but are
    /// not yet at the head of the queue still count). Reaching it stops the run with a
    /// `config` error (the agents cannot keep up), so memory stays bounded.
    pub max_waiting: usize,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig::single_queue(100, 1_800.0, 180.0)
    }
}

impl PlannerConfig {
    /// The default limit on calls waiting in one queue.
    pub const DEFAULT_MAX_WAITING: usize = 1_000_000;

    /// One queue named `queue`, served by `agents` agents named `agent-n`, with patient
    /// callers and no wrap-up; eight hours, no warm-up, 20 s threshold, seed 0.
    pub fn single_queue(agents: u32, calls_per_hour: f64, handle_secs: f64) -> Self {
        PlannerConfig {
            queues: vec![PlannerQueue::new(
                // A constant, valid id: this cannot fail.
                QueueId::new("queue").expect("\"queue\" is a valid queue id"),
                calls_per_hour,
                handle_secs,
            )],
            agents: vec![AgentGroup::new("agent", agents)],
            length: RunLength::Secs(8.0 * 3_600.0),
            warm_up_secs: 0.0,
            service_level_secs: 20.0,
            seed: 0,
            max_waiting: Self::DEFAULT_MAX_WAITING,
        }
    }

    /// Gives every queue this mean patience, in seconds.
    #[must_use]
    pub fn with_patience(mut self, mean_secs: f64) -> Self {
        for queue in &mut self.queues {
            queue.patience_secs = Some(mean_secs);
        }
        self
    }

    /// Gives every queue this fixed wrap-up time, in seconds.
    #[must_use]
    pub fn with_wrap_up(mut self, secs: f64) -> Self {
        for queue in &mut self.queues {
            queue.wrap_up_secs = Some(secs);
        }
        self
    }

    /// Sets when the run stops taking calls.
    #[must_use]
    pub fn with_length(mut self, length: RunLength) -> Self {
        self.length = length;
        self
    }

    /// Sets the warm-up, in simulated seconds.
    #[must_use]
    pub fn with_warm_up_secs(mut self, secs: f64) -> Self {
        self.warm_up_secs = secs;
        self
    }

    /// Sets the service-level threshold, in seconds.
    #[must_use]
    pub fn with_service_level_secs(mut self, secs: f64) -> Self {
        self.service_level_secs = secs;
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the configuration; the error (kind `config`) says what is wrong.
    ///
    /// Beyond the ranges of each field, a queue must be served by at least one agent,
    /// and queues whose callers never give up must not be offered more work than their
    /// agents can do (otherwise the queue grows without bound and the figures describe
    /// nothing): for each such queue, and for all of them together, the load in Erlangs
    /// must be below the number of agents serving them. With several skills that is a
    /// necessary condition, not a sufficient one; `max_waiting` catches the rest.
    pub fn validate(&self) -> Result<()> {
        self.plan().map(|_| ())
    }

    /// The agents' ids, in the order the planner numbers them (the `agent` index passed
    /// to an [`AgentEventSink`](super::AgentEventSink)).
    pub fn agent_ids(&self) -> Result<Vec<AgentId>> {
        let mut ids = Vec::new();
        for group in &self.agents {
            for n in 1..=group.count {
                let id = AgentId::new(format!("{}-{}", group.name, n)).map_err(|e| {
                    config(format!(
                        "agent group {:?} gives invalid agent ids: {}",
                        group.name,
                        e.message()
                    ))
                })?;
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Whether any queue imposes wrap-up.
    pub fn has_wrap_up(&self) -> bool {
        self.queues.iter().any(|q| q.wrap_up_secs.is_some())
    }

    /// Validates and resolves names into indices.
    pub(super) fn plan(&self) -> Result<Plan> {
        if self.queues.is_empty() {
            return Err(config("the planner needs at least one queue"));
        }
        if self.queues.len() > u32::MAX as usize / 2 {
            return Err(config("too many queues"));
        }
        for (i, queue) in self.queues.iter().enumerate() {
            let id = &queue.id;
            positive(queue.calls_per_hour, || {
                format!("queue {id}: calls_per_hour")
            })?;
            positive(queue.handle_secs, || format!("queue {id}: handle_secs"))?;
            if let Some(p) = queue.patience_secs {
                positive(p, || {
                    format!("queue {id}: patience_secs (use None for callers who never give up)")
                })?;
            }
            if let Some(w) = queue.wrap_up_secs {
                positive(w, || {
                    format!("queue {id}: wrap_up_secs (use None for no wrap-up)")
                })?;
            }
            if self.queues[..i].iter().any(|q| &q.id == id) {
                return Err(config(format!("queue {id} is configured twice")));
            }
        }
        if self.agents.iter().any(|g| g.count == 0) {
            return Err(config(
                "an agent group has no agents (count must be at least 1)",
            ));
        }
        let total: u64 = self.agents.iter().map(|g| u64::from(g.count)).sum();
        if total == 0 {
            return Err(config("the planner needs at least one agent"));
        }
        if total > u64::from(u32::MAX / 2) {
            return Err(config(format!("{total} agents are too many")));
        }
        let agent_ids = self.agent_ids()?;
        for (i, id) in agent_ids.iter().enumerate() {
            // Ids come from group names, so a clash can only come from two groups.
            if agent_ids[..i].contains(id) {
                return Err(config(format!(
                    "agent id {id} is produced by two agent groups; give them different names"
                )));
            }
        }
        let mut skills = Vec::with_capacity(agent_ids.len());
        for group in &self.agents {
            let indices: Vec<u32> = match &group.skills {
                Skills::All => (0..self.queues.len() as u32).collect(),
                Skills::Queues(names) => {
                    if names.is_empty() {
                        return Err(config(format!(
                            "agent group {:?} serves no queue",
                            group.name
                        )));
                    }
                    let mut indices = Vec::with_capacity(names.len());
                    for name in names {
                        let Some(q) = self.queues.iter().position(|q| &q.id == name) else {
                            return Err(config(format!(
                                "agent group {:?} serves queue {name}, which is not configured",
                                group.name
                            )));
                        };
                        if !indices.contains(&(q as u32)) {
                            indices.push(q as u32);
                        }
                    }
                    indices
                }
            };
            for _ in 0..group.count {
                skills.push(indices.clone().into_boxed_slice());
            }
        }
        let mut servers = vec![0u32; self.queues.len()];
        for agent in &skills {
            for &q in agent.iter() {
                servers[q as usize] += 1;
            }
        }
        let mut patient_load = 0.0;
        let mut patient_servers = vec![false; skills.len()];
        for (q, queue) in self.queues.iter().enumerate() {
            if servers[q] == 0 {
                return Err(config(format!("no agent serves queue {}", queue.id)));
            }
            if queue.patience_secs.is_none() {
                let load = queue.load_erlangs();
                if load >= f64::from(servers[q]) {
                    return Err(config(format!(
                        "queue {} is offered {:.2} Erlangs but has {} agents, and its callers never give up: the queue would grow without bound; add agents or set patience_secs",
                        queue.id, load, servers[q]
                    )));
                }
                patient_load += load;
                for (a, agent) in skills.iter().enumerate() {
                    if agent.contains(&(q as u32)) {
                        patient_servers[a] = true;
                    }
                }
            }
        }
        let serving_patient = patient_servers.iter().filter(|s| **s).count();
        if patient_load > 0.0 && patient_load >= serving_patient as f64 {
            return Err(config(format!(
                "the queues whose callers never give up are offered {patient_load:.2} Erlangs in all, but only {serving_patient} agents serve them: the queues would grow without bound"
            )));
        }
        match self.length {
            RunLength::Calls(0) => {
                return Err(config("length: the run must measure at least one call"))
            }
            RunLength::Calls(_) => {}
            RunLength::Secs(s) => positive(s, || "length in seconds".to_string())?,
        }
        if !(self.warm_up_secs.is_finite() && self.warm_up_secs >= 0.0) {
            return Err(config(format!(
                "warm_up_secs must be zero or more; got {}",
                self.warm_up_secs
            )));
        }
        if let RunLength::Secs(s) = self.length {
            if self.warm_up_secs >= s {
                return Err(config(format!(
                    "the warm-up ({} s) must end before the run stops taking calls ({} s)",
                    self.warm_up_secs, s
                )));
            }
        }
        if !(self.service_level_secs.is_finite() && self.service_level_secs >= 0.0) {
            return Err(config(format!(
                "service_level_secs must be zero or more; got {}",
                self.service_level_secs
            )));
        }
        if self.max_waiting == 0 {
            return Err(config("max_waiting must be at least 1"));
        }
        Ok(Plan {
            agent_ids,
            skills,
            servers,
        })
    }
}

/// A validated configuration with names resolved to indices.
pub(super) struct Plan {
    /// The agents' ids, by index.
    pub(super) agent_ids: Vec<AgentId>,
    /// The queues each agent serves, by index.
    pub(super) skills: Vec<Box<[u32]>>,
    /// How many agents serve each queue.
    pub(super) servers: Vec<u32>,
}

fn config(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn positive(value: f64, what: impl FnOnce() -> String) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(config(format!(
            "{} must be a positive number; got {}",
            what(),
            value
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(id: &str, cph: f64) -> PlannerQueue {
        PlannerQueue::new(QueueId::new(id).expect("valid id"), cph, 180.0)
    }

    fn refused(config: &PlannerConfig, needle: &str) {
        let err = config
            .validate()
            .expect_err("the configuration must be refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.message().contains(needle), "{err}");
    }

    #[test]
    fn default_is_the_benchmark_day_and_valid() {
        let config = PlannerConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.queues[0].load_erlangs(), 90.0);
        assert_eq!(config.agent_ids().expect("ids").len(), 100);
    }

    #[test]
    fn bad_numbers_are_refused_with_the_field_named() {
        refused(&PlannerConfig::single_queue(0, 100.0, 60.0), "no agents");
        refused(
            &PlannerConfig::single_queue(5, -1.0, 60.0),
            "calls_per_hour",
        );
        refused(&PlannerConfig::single_queue(5, 0.0, 60.0), "calls_per_hour");
        refused(
            &PlannerConfig::single_queue(5, 60.0, f64::NAN),
            "handle_secs",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_patience(0.0),
            "patience_secs",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_wrap_up(-3.0),
            "wrap_up_secs",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_length(RunLength::Calls(0)),
            "at least one call",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_length(RunLength::Secs(0.0)),
            "length",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_warm_up_secs(-1.0),
            "warm_up_secs",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0)
                .with_length(RunLength::Secs(100.0))
                .with_warm_up_secs(100.0),
            "warm-up",
        );
        refused(
            &PlannerConfig::single_queue(5, 60.0, 60.0).with_service_level_secs(-1.0),
            "service_level_secs",
        );
    }

    #[test]
    fn an_overloaded_queue_of_patient_callers_is_refused_but_impatient_ones_are_fine() {
        // 20 calls/h of 1 h each is 20 Erlangs on 20 agents: never catches up.
        refused(
            &PlannerConfig::single_queue(20, 20.0, 3_600.0),
            "grow without bound",
        );
        // Wrap-up counts as work.
        refused(
            &PlannerConfig::single_queue(10, 3_600.0, 5.0).with_wrap_up(5.0),
            "grow without bound",
        );
        assert!(PlannerConfig::single_queue(20, 20.0, 3_600.0)
            .with_patience(60.0)
            .validate()
            .is_ok());
    }

    #[test]
    fn skills_must_name_configured_queues_and_every_queue_needs_an_agent() {
        let mut config = PlannerConfig::single_queue(5, 60.0, 60.0);
        config.queues.push(queue("billing", 10.0));
        config.agents = vec![AgentGroup::new("a", 5).serving(vec![config.queues[0].id.clone()])];
        refused(&config, "no agent serves queue billing");
        config
            .agents
            .push(AgentGroup::new("b", 2).serving(vec![QueueId::new("nope").expect("valid id")]));
        refused(&config, "nope");
        config.agents[1] = AgentGroup::new("a", 2);
        refused(&config, "two agent groups");
        config.agents[1] = AgentGroup::new("b bad", 2);
        refused(&config, "invalid agent ids");
        config.agents[1] = AgentGroup::new("b", 2).serving(vec![]);
        refused(&config, "serves no queue");
        config.agents[1] = AgentGroup::new("b", 2);
        config.queues.push(queue("billing", 10.0));
        refused(&config, "configured twice");
        config.queues.pop();
        let plan = config.plan().expect("valid");
        assert_eq!(plan.servers, vec![7, 2]);
        assert_eq!(&*plan.skills[6], &[0, 1]);
    }
}
