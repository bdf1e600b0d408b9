//! The headless planner: a contact-centre day simulated as fast as the machine allows,
//! reporting the figures a planner knows.
//!
//! A [`PlannerConfig`] describes ACD queues (Poisson arrivals, exponential handling
//! times, optional exponential patience, optional fixed wrap-up) and groups of agents
//! with skills; [`run`] simulates it as a discrete-event simulation in virtual time and
//! returns a [`PlannerReport`]: service level, average speed of answer, probability of
//! waiting, abandonment and occupancy, per queue, per agent and overall (the report's
//! documentation states exactly how each is defined). The [`erlang`] module has the
//! formulas (Erlang B, C and A) the figures agree with on the textbook queues.
//!
//! Every call answered produces the canonical events a real desk would see for its
//! agent, as [`opencti_core::Event`] values handed to an [`AgentEventSink`]:
//! [`CountingSink`] only counts them (the benchmark), [`DeskCheckSink`] runs them through
//! the core's [`Desk`](opencti_core::machine::Desk) state machine (the tests). Callers who
//! abandon never reach an agent and produce no event; they are counted.
//!
//! [`sweep`] runs one queue's traffic with each of a range of agent counts (a
//! [`Staffing`] table, the formula's figures beside each), and [`StaffingChart`] draws
//! its service levels as a self-contained SVG picture.
//!
//! The run is pure, synchronous and single-threaded; the same configuration and seed give
//! the same report bit for bit (apart from the wall time).
//!
//! ```
//! use opencti_sim::planner::{erlang::QueueModel, run, CountingSink, PlannerConfig, RunLength};
//!
//! // 10 agents, 160 calls an hour, 3 minutes each: 8 Erlangs.
//! let config = PlannerConfig::single_queue(10, 160.0, 180.0)
//!     .with_length(RunLength::Calls(100_000))
//!     .with_warm_up_secs(3_600.0)
//!     .with_seed(1);
//! let mut sink = CountingSink::new();
//! let report = run(&config, &mut sink)?;
//! let expected = QueueModel { agents: 10, calls_per_hour: 160.0, handle_secs: 180.0, patience_secs: None }
//!     .figures(20.0)?;
//! // One run of 100,000 calls: P(wait) has a standard error of about 0.013 here.
//! assert!((report.overall.calls.prob_wait - expected.prob_wait).abs() < 0.05);
//! assert_eq!(sink.counts(), report.events);
//! # Ok::<(), opencti_core::Error>(())
//! ```

mod calendar;
mod chart;
mod config;
mod desk_check;
mod engine;
pub mod erlang;
mod progress;
mod report;
mod sink;
mod staffing;
mod tally;

use std::num::NonZeroU64;
use std::time::Instant;

use opencti_core::Result;

pub use chart::{ChartPoint, StaffingChart};
pub use config::{AgentGroup, PlannerConfig, PlannerQueue, RunLength, Skills};
pub use desk_check::DeskCheckSink;
pub use progress::Progress;
pub use report::{
    AgentReport, CallFigures, EventCounts, OverallFigures, PlannerReport, QueueReport,
};
pub use sink::{AgentEventSink, CountingSink};
pub use staffing::{sweep, Formula, Staffing, StaffingPoint};

/// Simulates the day `config` describes, handing every canonical event to `sink`.
///
/// Fails with a `config` error if the configuration is invalid (see
/// [`PlannerConfig::validate`]) or a queue reaches `max_waiting`, and with the sink's
/// error if the sink refuses an event.
pub fn run<S: AgentEventSink + ?Sized>(
    config: &PlannerConfig,
    sink: &mut S,
) -> Result<PlannerReport> {
    timed(config, sink, None)
}

/// Like [`run`], calling `progress` every `every` arrivals and once at the end, so that a
/// command line can draw a progress bar.
///
/// ```
/// use std::num::NonZeroU64;
/// use opencti_sim::planner::{run_with_progress, CountingSink, PlannerConfig, RunLength};
/// let config = PlannerConfig::default().with_length(RunLength::Calls(5_000));
/// let mut seen = Vec::new();
/// let every = NonZeroU64::new(1_000).unwrap();
/// run_with_progress(&config, &mut CountingSink::new(), every, |p| seen.push(p.fraction_done)).unwrap();
/// assert_eq!(seen, vec![0.2, 0.4, 0.6, 0.8, 1.0, 1.0]);
/// ```
pub fn run_with_progress<S, P>(
    config: &PlannerConfig,
    sink: &mut S,
    every: NonZeroU64,
    mut progress: P,
) -> Result<PlannerReport>
where
    S: AgentEventSink + ?Sized,
    P: FnMut(&Progress),
{
    let hook = engine::ProgressHook {
        every: every.get(),
        callback: &mut progress,
        countdown: every.get(),
    };
    timed(config, sink, Some(hook))
}

fn timed<'a, S: AgentEventSink + ?Sized>(
    config: &PlannerConfig,
    sink: &'a mut S,
    progress: Option<engine::ProgressHook<'a>>,
) -> Result<PlannerReport> {
    let started = Instant::now();
    let plan = config.plan()?;
    let mut report = engine::simulate(config, plan, sink, progress)?;
    report.wall_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
