//! `opencti sim staffing`: the planner over a range of agent counts, as a table and an
//! SVG chart of service level against agents.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;
use opencti_core::{Error, ErrorKind, Result};
use opencti_sim::planner::{sweep, RunLength, Staffing, StaffingPoint};

use crate::sim::TrafficArgs;

/// How long each agent count runs when neither `--calls` nor `--hours` is given.
const DEFAULT_HOURS: f64 = 8.0;

/// The agent counts to try and where the chart goes; the traffic as for `sim run`.
#[derive(Debug, Args)]
pub(crate) struct StaffingArgs {
    /// The agent counts to try, both ends included (e.g. 10..=30).
    #[arg(long, value_name = "FROM..=TO")]
    agents: AgentRange,
    /// Try every STEP-th count from FROM (TO is tried when a step lands on it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    step: u32,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Target service level in percent: a dashed line on the chart, and the fewest
    /// agents that meet it.
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    target: Option<f64>,
    /// Where to write the chart (an SVG file).
    #[arg(long, value_name = "PATH", default_value = "staffing.svg")]
    chart: PathBuf,
}

/// `FROM..=TO`: agent counts, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AgentRange {
    from: u32,
    to: u32,
}

impl FromStr for AgentRange {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let Some((from, to)) = text.split_once("..=") else {
            return Err(if text.contains("..") {
                format!(
                    "write {} to include both ends",
                    text.replacen("..", "..=", 1)
                )
            } else {
                "expected FROM..=TO, for example 10..=30".to_owned()
            });
        };
        let count = |n: &str| {
            n.trim()
                .parse::<u32>()
                .map_err(|_| format!("{n:?} is not a number of agents"))
        };
        let (from, to) = (count(from)?, count(to)?);
        if from == 0 {
            return Err("the range must start at 1 agent or more".to_owned());
        }
        if to < from {
            return Err(format!(
                "{to} is below {from}: write the smaller count first"
            ));
        }
        Ok(AgentRange { from, to })
    }
}

/// A percentage from 0 to 100.
fn percent(text: &str) -> std::result::Result<f64, String> {
    match text.trim().trim_end_matches('%').trim().parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a percentage from 0 to 100, not {text:?}")),
    }
}

pub(crate) fn run(args: StaffingArgs) -> Result<()> {
    let traffic = &args.traffic;
    let config = traffic.measured(
        traffic.single_queue(args.agents.from),
        Some(traffic.hours_of_arrivals(DEFAULT_HOURS)),
    );
    let counts: Vec<u32> = (args.agents.from..=args.agents.to)
        .step_by(args.step as usize)
        .collect();
    let show_progress = std::io::stderr().is_terminal();
    let mut done = 0;
    let staffing = sweep(&config, counts.iter().copied(), |point| {
        done += 1;
        if show_progress {
            eprint!(
                "\r  {} agents ({} of {})   ",
                point.agents,
                done,
                counts.len()
            );
            let _ = std::io::stderr().flush();
        }
    })?;
    if show_progress {
        eprint!("\r{:40}\r", "");
    }
    let target = args.target.map(|p| p / 100.0);
    let svg = staffing.chart(target).to_svg();
    std::fs::write(&args.chart, svg).map_err(|e| {
        Error::new(
            ErrorKind::Other,
            format!("cannot write the chart to {}: {e}", args.chart.display()),
        )
        .with_source(e)
    })?;
    let length = match config.length {
        RunLength::Calls(n) => format!("{n} calls"),
        RunLength::Secs(s) => format!("{} h of arrivals", (s - config.warm_up_secs) / 3600.0),
    };
    println!("{}", staffing.title());
    println!(
        "{:.2} Erlangs offered; each count simulated for {length}, seed {}",
        staffing.queue.load_erlangs(),
        config.seed
    );
    println!();
    print_table(&staffing);
    if let Some(target) = target {
        println!();
        print_target(&staffing, target);
    }
    println!();
    println!("chart: {}", args.chart.display());
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// One row per agent count: the simulated figures, the formula's service level beside
/// the simulated one.
fn print_table(staffing: &Staffing) {
    let formula = staffing.formula.map_or("formula", |f| f.name());
    println!(
        "{:>6}  {:>13}  {:>9}  {:>8}  {:>9}  {:>9}",
        "agents", "service level", formula, "ASA", "abandoned", "occupancy"
    );
    let dash = "—";
    for StaffingPoint {
        agents,
        simulated,
        analytic,
    } in &staffing.points
    {
        let analytic = analytic.map_or(dash.to_owned(), |a| pct(a.service_level));
        match simulated {
            Some(s) => println!(
                "{:>6}  {:>13}  {:>9}  {:>8}  {:>9}  {:>9}",
                agents,
                pct(s.calls.service_level),
                analytic,
                format!("{:.1} s", s.calls.asa_secs),
                pct(s.calls.abandon_rate),
                pct(s.occupancy)
            ),
            None => println!(
                "{:>6}  {:>13}  {:>9}  {:>8}  {:>9}  {:>9}",
                agents, dash, analytic, dash, dash, dash
            ),
        }
    }
    println!();
    println!(
        "service level: answered within {} s, of calls offered; ASA, abandoned and occupancy simulated",
        staffing.service_level_secs
    );
    if staffing.points.iter().any(|p| p.simulated.is_none()) {
        println!(
            "{dash}: callers who never give up and {:.2} Erlangs offered: that few agents cannot keep up (the queue grows without bound)",
            staffing.queue.load_erlangs()
        );
    }
    if staffing.formula.is_none() {
        println!("no formula: Erlang C and Erlang A do not model wrap-up");
    }
}

/// The fewest agents that meet the target, by the simulation and by the formula.
fn print_target(staffing: &Staffing, target: f64) {
    let said = |agents: Option<u32>| match agents {
        Some(n) => format!("{n} agents"),
        None => "no count swept".to_owned(),
    };
    let mut line = format!(
        "target {}: {} by the simulation",
        pct(target),
        said(staffing.fewest_simulated_meeting(target))
    );
    if let Some(formula) = staffing.formula {
        line.push_str(&format!(
            ", {} by {}",
            said(staffing.fewest_analytic_meeting(target)),
            formula.name()
        ));
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ranges_include_both_ends_and_say_what_is_wrong() {
        assert_eq!(
            "10..=30".parse::<AgentRange>(),
            Ok(AgentRange { from: 10, to: 30 })
        );
        assert_eq!(
            "5..=5".parse::<AgentRange>(),
            Ok(AgentRange { from: 5, to: 5 })
        );
        let err = |text: &str| text.parse::<AgentRange>().expect_err(text);
        assert!(err("10..30").contains("10..=30"), "{}", err("10..30"));
        assert!(err("10").contains("FROM..=TO"));
        assert!(err("0..=3").contains("1 agent"));
        assert!(err("30..=10").contains("smaller count first"));
        assert!(err("a..=3").contains("not a number"));
    }

    #[test]
    fn targets_are_percentages() {
        assert_eq!(percent("80"), Ok(80.0));
        assert_eq!(percent("80 %"), Ok(80.0));
        assert!(percent("120").is_err());
        assert!(percent("-1").is_err());
        assert!(percent("NaN").is_err());
    }
}
