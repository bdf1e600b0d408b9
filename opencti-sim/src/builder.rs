//! Builds a simulated centre in code.

use std::time::Duration;

use opencti_core::{AgentId, DeviceId, Dialable, Error, QueueId, Result};

use crate::config::{AgentConfig, CentreConfig, FarEnd, QueueConfig};
use crate::switch::SimSwitch;

/// Builds a [`SimSwitch`]. Ids are checked as they are given; the first bad one is the
/// error [`build`](CentreBuilder::build) returns.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> opencti_core::Result<()> {
/// use std::time::Duration;
/// use opencti_sim::SimSwitch;
/// let switch = SimSwitch::builder()
///     .queue("support")
///     .queue_number("support", "5000")
///     .wrap_up("support", Duration::from_secs(30))
///     .agent("alice", "1001", &["support"])
///     .agent("bob", "1002", &["support"])
///     .build()?;
/// # let _ = switch; Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until build()"]
pub struct CentreBuilder {
    config: CentreConfig,
    error: Option<Error>,
}

impl CentreBuilder {
    fn keep<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Adds an agent working at `device` and serving `skills` (queue ids).
    pub fn agent(mut self, id: &str, device: &str, skills: &[&str]) -> Self {
        let id = self.keep(AgentId::new(id));
        let device = self.keep(DeviceId::new(device));
        let skills: Option<Vec<QueueId>> = self.keep(skills.iter().map(QueueId::new).collect());
        if let (Some(id), Some(device), Some(skills)) = (id, device, skills) {
            self.config.agents.push(AgentConfig { id, device, skills });
        }
        self
    }

    /// Adds a queue with default settings.
    pub fn queue(mut self, id: &str) -> Self {
        if let Some(id) = self.keep(QueueId::new(id)) {
            self.config.queues.push(QueueConfig::new(id));
        }
        self
    }

    /// Adds a queue configured in full.
    pub fn queue_config(mut self, queue: QueueConfig) -> Self {
        self.config.queues.push(queue);
        self
    }

    fn with_queue(mut self, id: &str, f: impl FnOnce(&mut QueueConfig)) -> Self {
        match self.config.queues.iter_mut().find(|q| q.id.as_str() == id) {
            Some(q) => f(q),
            None => {
                self.error.get_or_insert(Error::new(
                    opencti_core::ErrorKind::Config,
                    format!("queue {} must be added before it is configured", id),
                ));
            }
        }
        self
    }

    /// Gives a queue a number that reaches it when dialled or transferred to.
    pub fn queue_number(mut self, id: &str, number: &str) -> Self {
        match self.keep(Dialable::new(number)) {
            Some(n) => self.with_queue(id, |q| q.number = Some(n)),
            None => self,
        }
    }

    /// Sets a queue's ring-no-answer timeout.
    pub fn ring_timeout(self, id: &str, timeout: Duration) -> Self {
        self.with_queue(id, |q| q.ring_timeout = timeout)
    }

    /// Sets a queue's wrap-up time.
    pub fn wrap_up(self, id: &str, wrap_up: Duration) -> Self {
        self.with_queue(id, |q| q.wrap_up = wrap_up)
    }

    /// Sets a queue's service-level threshold.
    pub fn service_level(self, id: &str, threshold: Duration) -> Self {
        self.with_queue(id, |q| q.service_level = threshold)
    }

    /// Sets a queue's priority (higher first).
    pub fn priority(self, id: &str, priority: u8) -> Self {
        self.with_queue(id, |q| q.priority = priority)
    }

    /// Adds an internal extension with no agent, answering as `behaviour` says.
    pub fn extension(mut self, device: &str, behaviour: FarEnd) -> Self {
        if let Some(device) = self.keep(DeviceId::new(device)) {
            self.config.extensions.push((device, behaviour));
        }
        self
    }

    /// Call ids start with `prefix` (`call` by default; see
    /// [`CentreConfig::unique_call_ids`] for a centre that keeps a call log across runs).
    pub fn call_ids(mut self, prefix: &str) -> Self {
        self.config.call_ids = prefix.to_owned();
        self
    }

    /// What outside numbers do when called (default: answer after 3 s).
    pub fn far_end(mut self, behaviour: FarEnd) -> Self {
        self.config.far_end = behaviour;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &CentreConfig {
        &self.config
    }

    /// Builds the switch. Must be called inside a tokio runtime.
    pub fn build(self) -> Result<SimSwitch> {
        if let Some(error) = self.error {
            return Err(error);
        }
        SimSwitch::new(self.config)
    }
}

impl SimSwitch {
    /// Starts building a simulated centre.
    pub fn builder() -> CentreBuilder {
        CentreBuilder::default()
    }
}
