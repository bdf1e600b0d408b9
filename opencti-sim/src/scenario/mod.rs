//! Scenarios: a contact centre and what happens in it, as a file a tester writes or as
//! Rust.
//!
//! A scenario names the agents, queues and extensions ([`CentreConfig`]), random
//! arrivals ([`Arrivals`]: Poisson calls with exponential talk time and patience), and
//! scripted calls ([`ScriptedCall`]) with their timing and behaviour. [`Scenario::play`]
//! runs it on a [`SimSwitch`]: under a paused clock, the same seed gives the same calls.
//! The file format is TOML; see `scenarios/` in the repository and [`mod@file`] for the
//! fields.

pub mod file;
mod planning;
mod play;

use std::time::Duration;

use opencti_core::{Address, CallData, Error, ErrorKind, QueueId, Result};
use serde::Serialize;

use crate::builder::CentreBuilder;
use crate::config::CentreConfig;
use crate::switch::SimSwitch;

/// Random calls into a queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arrivals {
    /// The queue the calls go to.
    pub queue: QueueId,
    /// Mean arrival rate (Poisson).
    pub calls_per_hour: f64,
    /// Mean talk time once answered (exponential).
    pub talk: Duration,
    /// Mean patience before abandoning (exponential); `None` waits for ever.
    pub patience: Option<Duration>,
    /// When arrivals start.
    pub start: Duration,
    /// How long arrivals go on.
    pub duration: Duration,
}

/// One call at a set time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptedCall {
    /// When, from the start of the scenario.
    pub at: Duration,
    /// A queue id, a queue's number, or an agent's device.
    pub to: String,
    /// The caller's number.
    pub from: Address,
    /// Talk time once answered; `None` talks until someone hangs up.
    pub talk: Option<Duration>,
    /// Patience before abandoning; `None` waits for ever.
    pub patience: Option<Duration>,
    /// Data that comes with the call.
    pub data: CallData,
}

/// A contact centre and what happens in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// A name for people.
    pub name: String,
    /// Seed for the random arrivals.
    pub seed: u64,
    /// The centre.
    pub centre: CentreConfig,
    /// Random arrivals.
    pub arrivals: Vec<Arrivals>,
    /// Scripted calls.
    pub calls: Vec<ScriptedCall>,
}

impl Scenario {
    /// Starts a scenario in code: the centre from a [`CentreBuilder`], then arrivals and
    /// calls.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> opencti_core::Result<()> {
    /// use std::time::Duration;
    /// use opencti_sim::{scenario::Scenario, SimSwitch};
    /// let scenario = Scenario::builder(
    ///     "morning",
    ///     SimSwitch::builder().queue("support").agent("alice", "1001", &["support"]),
    /// )
    /// .seed(7)
    /// .arrivals("support", 120.0, Duration::from_secs(180), Some(Duration::from_secs(60)))
    /// .call_at(Duration::from_secs(5), "support", "+441632960001")
    /// .build()?;
    /// assert_eq!(scenario.calls.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn builder(name: &str, centre: CentreBuilder) -> ScenarioBuilder {
        ScenarioBuilder {
            name: name.to_string(),
            seed: 0,
            centre,
            arrivals: Vec::new(),
            calls: Vec::new(),
            error: None,
        }
    }

    /// Reads a scenario file. Errors name the file, the line and what was expected.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Scenario> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("{}: cannot read the scenario: {}", path.display(), e),
            )
        })?;
        file::parse(&text, &path.display().to_string())
    }

    /// Reads a scenario from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario> {
        file::parse(text, origin)
    }

    /// Builds the simulated switch for this scenario's centre.
    pub fn switch(&self) -> Result<SimSwitch> {
        SimSwitch::new(self.centre.clone())
    }

    /// Plays the calls on `switch`, from now: spawns a task that places each scripted and
    /// random call at its time. The returned handle ends when the last call is placed.
    pub fn play(&self, switch: &SimSwitch) -> tokio::task::JoinHandle<()> {
        play::spawn(self.clone(), switch.control())
    }

    fn validate(&self) -> Result<()> {
        self.centre.validate()?;
        for a in &self.arrivals {
            check_rate(a.calls_per_hour)?;
            if !self.centre.queues.iter().any(|q| q.id == a.queue) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("arrivals go to queue {}, which is not defined", a.queue),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn check_rate(calls_per_hour: f64) -> Result<()> {
    if calls_per_hour.is_finite() && calls_per_hour > 0.0 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "calls_per_hour must be a positive number, not {}",
                calls_per_hour
            ),
        ))
    }
}

/// Builds a [`Scenario`] in code.
#[derive(Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct ScenarioBuilder {
    name: String,
    seed: u64,
    centre: CentreBuilder,
    arrivals: Vec<Arrivals>,
    calls: Vec<ScriptedCall>,
    error: Option<Error>,
}

impl ScenarioBuilder {
    /// The seed for random arrivals.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Random calls into `queue` for an hour from the start.
    pub fn arrivals(
        mut self,
        queue: &str,
        calls_per_hour: f64,
        talk: Duration,
        patience: Option<Duration>,
    ) -> Self {
        match QueueId::new(queue) {
            Ok(queue) => self.arrivals.push(Arrivals {
                queue,
                calls_per_hour,
                talk,
                patience,
                start: Duration::ZERO,
                duration: Duration::from_secs(3600),
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Random arrivals configured in full.
    pub fn arrivals_config(mut self, arrivals: Arrivals) -> Self {
        self.arrivals.push(arrivals);
        self
    }

    /// A call from `from` to `to` at `at`, talking until someone hangs up.
    pub fn call_at(self, at: Duration, to: &str, from: &str) -> Self {
        self.call_with(at, to, from, None, None, CallData::new())
    }

    /// A call configured in full.
    pub fn call_with(
        mut self,
        at: Duration,
        to: &str,
        from: &str,
        talk: Option<Duration>,
        patience: Option<Duration>,
        data: CallData,
    ) -> Self {
        match Address::new(from) {
            Ok(from) => self.calls.push(ScriptedCall {
                at,
                to: to.to_string(),
                from,
                talk,
                patience,
                data,
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Checks and builds the scenario.
    pub fn build(self) -> Result<Scenario> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let scenario = Scenario {
            name: self.name,
            seed: self.seed,
            centre: self.centre.config().clone(),
            arrivals: self.arrivals,
            calls: self.calls,
        };
        scenario.validate()?;
        Ok(scenario)
    }
}
