//! The conformance kit: one set of behaviour cases that every connector runs.
//!
//! A case drives a connector through the core traits (a [`Session`](opencti_core::Session) over it, used as a
//! `&dyn DesktopInterface`) and makes the far end act through a [`Stimulus`] that each
//! backend provides: the simulator's control handle here, an AMI Originate or a SIP peer
//! elsewhere. Cases are gated by the connector's capabilities: what it cannot do is
//! skipped, and must then be refused as `unsupported`.
//!
//! Every case checks, besides its own steps, that each command is confirmed by the right
//! event, that refusals are typed, and that every event the connector emitted was accepted
//! by the core state machines (the session's `rejected` counter stays at zero).
//!
//! A vendor runs it from their own crate's tests in a few lines, with their own
//! [`Backend`] where this runs the simulator's (`examples/vendor_connector.rs` in the
//! repository is a complete vendor backend):
//!
//! ```
//! use opencti_sim::conformance::{Kit, SimBackend};
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! Kit::new().run(&SimBackend::default()).await.assert_passed();
//! # }
//! ```

mod cases;
mod links;
mod sim;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, Connector, DeviceId, Dialable, Result};
use serde::Serialize;

pub use links::{LinkBackend, LinkFixture, LinkStimulus};
pub use sim::{SimBackend, SimLinkBackend};

/// Makes the far end act, for the cases.
#[async_trait]
pub trait Stimulus: Send + Sync {
    /// An outside party calls `device` directly (not through a queue); the call must be
    /// offered to the device soon after.
    async fn call_device(&self, device: &DeviceId) -> Result<()>;

    /// The far end of `call` at `device` hangs up.
    async fn far_end_hangs_up(&self, device: &DeviceId, call: &CallId) -> Result<()>;

    /// A number that, when dialled, rings and is answered within a few seconds.
    fn answering_number(&self) -> Dialable;

    /// Another such number (a consultation or transfer target).
    fn second_number(&self) -> Dialable;
}

/// One connector ready for a case, with the far end that goes with it.
pub struct Fixture {
    /// The connector under test, for a session to start.
    pub connector: Arc<dyn Connector>,
    /// The agent the session serves.
    pub agent: AgentId,
    /// The agent's device.
    pub device: DeviceId,
    /// Makes the far end act.
    pub stimulus: Arc<dyn Stimulus>,
}

/// Gives each case a fresh fixture.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A fresh connector and far end, with the agent logged out and no calls.
    async fn fixture(&self) -> Result<Fixture>;
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step and check passed.
    Passed,
    /// A step or check failed.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// The connector lacks a capability the case needs.
    Skipped {
        /// Which.
        reason: String,
    },
}

/// A case's name and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// The case.
    pub name: &'static str,
    /// How it went.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use = "a report should be checked, e.g. with assert_passed()"]
pub struct Report {
    /// Every case, in order.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
    }

    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .count()
    }

    /// How many cases were skipped.
    pub fn skipped(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped { .. }))
            .count()
    }

    /// Panics with every failure listed, unless all cases passed or were skipped.
    #[track_caller]
    pub fn assert_passed(&self) {
        let failures: Vec<String> = self
            .failures()
            .map(|c| match &c.outcome {
                Outcome::Failed { reason } => format!("  {}: {}", c.name, reason),
                _ => String::new(),
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} conformance cases failed:\n{}",
            failures.len(),
            self.cases.len(),
            failures.join("\n")
        );
    }
}

/// One line per case (`name: passed`, `name: skipped (why)`, `name: FAILED (why)`), then
/// the totals.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for case in &self.cases {
            match &case.outcome {
                Outcome::Passed => writeln!(f, "{}: passed", case.name)?,
                Outcome::Skipped { reason } => writeln!(f, "{}: skipped ({})", case.name, reason)?,
                Outcome::Failed { reason } => writeln!(f, "{}: FAILED ({})", case.name, reason)?,
            }
        }
        write!(
            f,
            "{} of {} cases passed ({} skipped, {} failed)",
            self.passed(),
            self.cases.len(),
            self.skipped(),
            self.failures().count()
        )
    }
}

type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A case: its name, the capabilities it needs, and its steps.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) needs: &'static [opencti_core::CommandKind],
    pub(crate) run: for<'a> fn(&'a cases::Ctx) -> CaseFuture<'a>,
}

/// Runs the cases.
#[derive(Debug, Clone)]
pub struct Kit {
    wait: Duration,
    only: Option<Vec<&'static str>>,
}

impl Default for Kit {
    fn default() -> Self {
        Self::new()
    }
}

impl Kit {
    /// Every case, waiting up to 30 s for each expected event.
    pub fn new() -> Self {
        Kit {
            wait: Duration::from_secs(30),
            only: None,
        }
    }

    /// How long to wait for each expected event.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Runs only the named cases.
    pub fn only(mut self, names: &[&'static str]) -> Self {
        self.only = Some(names.to_vec());
        self
    }

    /// The names of every case.
    pub fn case_names() -> Vec<&'static str> {
        cases::all().iter().map(|c| c.name).collect()
    }

    /// Runs the link cases (two agents on one shared link: a call between them, a
    /// transfer from one to the other, the link dropping while both are busy) on fresh
    /// fixtures from `backend`.
    pub async fn run_links(&self, backend: &dyn LinkBackend) -> Report {
        links::run(backend, self.wait).await
    }

    /// Runs every case on a fresh fixture from `backend`.
    pub async fn run(&self, backend: &dyn Backend) -> Report {
        let mut results = Vec::new();
        for case in cases::all() {
            if let Some(only) = &self.only {
                if !only.contains(&case.name) {
                    continue;
                }
            }
            let outcome = self.run_case(backend, &case).await;
            results.push(CaseResult {
                name: case.name,
                outcome,
            });
        }
        Report { cases: results }
    }

    async fn run_case(&self, backend: &dyn Backend, case: &Case) -> Outcome {
        let fixture = match backend.fixture().await {
            Ok(f) => f,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("the backend gave no fixture: {}", e),
                }
            }
        };
        let ctx = match cases::Ctx::start(fixture, self.wait).await {
            Ok(ctx) => ctx,
            Err(e) => return Outcome::Failed { reason: e },
        };
        // What the session offers: the connector's capabilities less what the switch
        // withholds on this line.
        if let Some(missing) = case.needs.iter().find(|k| !ctx.supports(**k)) {
            let _ = ctx.stop().await;
            return Outcome::Skipped {
                reason: format!("the connector does not support {} here", missing),
            };
        }
        let result = (case.run)(&ctx).await;
        let result = result.and_then(|()| ctx.finish());
        let _ = ctx.stop().await;
        match result {
            Ok(()) => Outcome::Passed,
            Err(reason) => Outcome::Failed { reason },
        }
    }
}
