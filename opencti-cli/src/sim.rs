//! `opencti sim run`: a contact-centre day as fast as the machine allows, with the
//! figures a planner knows; the options `sim staffing` shares.

use std::io::{IsTerminal, Write};
use std::num::NonZeroU64;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use opencti_core::{Error, ErrorKind, Result};
use opencti_sim::planner::{
    erlang::QueueModel, run_with_progress, CountingSink, PlannerConfig, PlannerReport, Progress,
    RunLength,
};
use opencti_sim::scenario::Scenario;

use crate::staffing::StaffingArgs;

/// `opencti sim ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SimCommand {
    /// Simulate a day and print the planner's figures.
    Run(RunArgs),
    /// Simulate the same traffic with each of a range of agent counts: a table of the
    /// figures with Erlang C or A beside them, and an SVG chart of service level against
    /// agents.
    Staffing(StaffingArgs),
}

/// The planner's parameters: one queue served by identical agents, or a scenario file.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Agents logged in and ready.
    #[arg(long, default_value_t = 100)]
    agents: u32,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Take queues, agents and arrivals from a scenario file instead.
    #[arg(long, conflicts_with_all = ["agents", "calls_per_hour", "aht", "patience", "wrap_up"])]
    scenario: Option<PathBuf>,
    /// Print one JSON object instead of the human-readable figures.
    #[arg(long)]
    json: bool,
}

/// One queue's traffic and how long to simulate it: the options `sim run` and
/// `sim staffing` share.
#[derive(Debug, Args)]
pub(crate) struct TrafficArgs {
    /// Calls an hour (Poisson arrivals).
    #[arg(long, default_value_t = 1800.0)]
    calls_per_hour: f64,
    /// Average handling time in seconds (exponential).
    #[arg(long, default_value_t = 180.0)]
    aht: f64,
    /// Mean patience in seconds (exponential); callers who wait longer abandon.
    #[arg(long)]
    patience: Option<f64>,
    /// Wrap-up (after-call work) in seconds after each call.
    #[arg(long)]
    wrap_up: Option<f64>,
    /// Calls to simulate (after the warm-up).
    #[arg(long, conflicts_with = "hours")]
    calls: Option<u64>,
    /// Hours of arrivals to simulate instead of a number of calls.
    #[arg(long)]
    hours: Option<f64>,
    /// Seconds at the start whose calls are not counted.
    #[arg(long, default_value_t = 0.0)]
    warm_up: f64,
    /// Service-level threshold in seconds.
    #[arg(long, default_value_t = 20.0)]
    service_level: f64,
    /// Random seed: the same seed gives the same figures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl TrafficArgs {
    /// One queue with this traffic, served by `agents` agents.
    pub(crate) fn single_queue(&self, agents: u32) -> PlannerConfig {
        let mut config = PlannerConfig::single_queue(agents, self.calls_per_hour, self.aht);
        if let Some(p) = self.patience {
            config = config.with_patience(p);
        }
        if let Some(w) = self.wrap_up {
            config = config.with_wrap_up(w);
        }
        config
    }

    /// `config` with this length (or `default_length` when neither `--calls` nor
    /// `--hours` is given; `None` keeps the configuration's), warm-up, threshold and seed.
    pub(crate) fn measured(
        &self,
        config: PlannerConfig,
        default_length: Option<RunLength>,
    ) -> PlannerConfig {
        let length = if let Some(calls) = self.calls {
            Some(RunLength::Calls(calls))
        } else if let Some(hours) = self.hours {
            Some(self.hours_of_arrivals(hours))
        } else {
            default_length
        };
        let config = match length {
            Some(length) => config.with_length(length),
            None => config,
        };
        config
            .with_warm_up_secs(self.warm_up)
            .with_service_level_secs(self.service_level)
            .with_seed(self.seed)
    }

    /// A run taking calls for `hours` after the warm-up.
    pub(crate) fn hours_of_arrivals(&self, hours: f64) -> RunLength {
        RunLength::Secs(self.warm_up + hours * 3600.0)
    }
}

pub(crate) fn run(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::Run(args) => run_day(args),
        SimCommand::Staffing(args) => crate::staffing::run(args),
    }
}

fn config_from(args: &RunArgs) -> Result<PlannerConfig> {
    let (config, default_length) = match &args.scenario {
        Some(path) => (Scenario::from_path(path)?.planner_config()?, None),
        None => (
            args.traffic.single_queue(args.agents),
            Some(RunLength::Calls(100_000)),
        ),
    };
    let config = args.traffic.measured(config, default_length);
    config.validate()?;
    Ok(config)
}

fn run_day(args: RunArgs) -> Result<()> {
    let mut config = config_from(&args)?;
    if args.scenario.is_some() && args.traffic.seed != 0 {
        config = config.with_seed(args.traffic.seed);
    }
    let show_progress = std::io::stderr().is_terminal();
    let every = NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN);
    let mut sink = CountingSink::new();
    let report = run_with_progress(&config, &mut sink, every, |p: &Progress| {
        if show_progress {
            draw(p);
        }
    })?;
    if show_progress {
        eprint!("\r{:60}\r", "");
    }
    if args.json {
        let text = serde_json::to_string(&report)
            .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
        println!("{}", text);
    } else {
        print_report(&config, &report);
    }
    Ok(())
}

fn draw(p: &Progress) {
    let width = 40;
    let done = ((p.fraction_done.clamp(0.0, 1.0)) * width as f64) as usize;
    eprint!(
        "\r[{}{}] {:5.1}%  {} calls",
        "#".repeat(done),
        ".".repeat(width - done),
        p.fraction_done * 100.0,
        p.calls_arrived
    );
    let _ = std::io::stderr().flush();
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn print_report(config: &PlannerConfig, report: &PlannerReport) {
    let o = &report.overall;
    println!(
        "Simulated {:.1} h of contact centre: {} agents, {} queue(s), seed {}",
        report.simulated_secs / 3600.0,
        o.agents,
        report.queues.len(),
        report.seed
    );
    println!();
    println!("  offered             {:>10}", o.calls.offered);
    println!("  answered            {:>10}", o.calls.answered);
    println!(
        "  abandoned           {:>10}  ({})",
        o.calls.abandoned,
        pct(o.calls.abandon_rate)
    );
    println!(
        "  service level       {:>10}  (answered within {} s, of offered)",
        pct(o.calls.service_level),
        report.service_level_secs
    );
    println!("  average speed of answer {:>6.1} s", o.calls.asa_secs);
    println!("  probability of waiting {:>7}", pct(o.calls.prob_wait));
    println!(
        "  occupancy           {:>10}  (talk only {})",
        pct(o.occupancy),
        pct(o.talk_occupancy)
    );
    if report.queues.len() > 1 {
        println!();
        println!("  per queue: offered, answered, abandoned, service level, ASA");
        for q in &report.queues {
            println!(
                "    {:<16} {:>8} {:>8} {:>8} {:>8} {:>7.1} s",
                q.queue.as_str(),
                q.calls.offered,
                q.calls.answered,
                q.calls.abandoned,
                pct(q.calls.service_level),
                q.calls.asa_secs
            );
        }
    }
    if !report.agents.is_empty() {
        let handled: Vec<u64> = report.agents.iter().map(|a| a.handled).collect();
        let occupancy: Vec<f64> = report.agents.iter().map(|a| a.occupancy).collect();
        let (min_h, max_h) = (
            handled.iter().min().copied().unwrap_or(0),
            handled.iter().max().copied().unwrap_or(0),
        );
        let mean_occ = occupancy.iter().sum::<f64>() / occupancy.len() as f64;
        println!();
        println!(
            "  per agent: handled {}..{} calls, occupancy {} on average ({} agents; --json lists each)",
            min_h,
            max_h,
            pct(mean_occ),
            report.agents.len()
        );
    }
    // For one queue with identical agents the textbook formula is the yardstick.
    if let ([queue], [group]) = (config.queues.as_slice(), config.agents.as_slice()) {
        if queue.wrap_up_secs.is_none() {
            let model = QueueModel {
                agents: group.count,
                calls_per_hour: queue.calls_per_hour,
                handle_secs: queue.handle_secs,
                patience_secs: queue.patience_secs,
            };
            if let Ok(f) = model.figures(report.service_level_secs) {
                let name = if queue.patience_secs.is_some() {
                    "Erlang A"
                } else {
                    "Erlang C"
                };
                println!();
                println!(
                    "  {} for the same queue: service level {}, ASA {:.1} s, P(wait) {}, abandonment {}",
                    name,
                    pct(f.service_level),
                    f.asa_secs,
                    pct(f.prob_wait),
                    pct(f.prob_abandon)
                );
            }
        }
    }
    println!();
    println!(
        "  {} canonical events produced in {:.3} s of wall time",
        report.events.total, report.wall_secs
    );
}
