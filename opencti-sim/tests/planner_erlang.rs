//! The planner's simulated figures against Erlang C (M/M/c) and Erlang A (M/M/c+M).
//!
//! # How the tolerance is chosen
//!
//! Each load point is simulated with `SEEDS` independent seeds. The figures of one run
//! are correlated from call to call (a busy spell lasts many calls), so instead of
//! guessing an effective sample size the test measures the spread: the standard error of
//! the mean over the seeds, `se = sd / sqrt(SEEDS)`. The simulated mean must lie within
//! `Z = 5` standard errors of the formula. With 10 seeds the ratio
//! `(mean − truth) / se` follows Student's t with 9 degrees of freedom, which exceeds 5
//! with probability 0.07 %: a correct simulator essentially never fails, and any bias
//! larger than about five standard errors is caught. So that the test keeps its teeth,
//! the standard error must also be small: at most `MAX_REL_SE` of the expected value
//! (a noisy or unstable simulator fails there).
//!
//! The seeds are fixed, so the outcome is deterministic.
//!
//! # Run lengths
//!
//! `cargo test` builds without optimisation (about 3 µs a simulated call here), so each
//! seed measures 20,000 to 40,000 calls after a two-hour warm-up, and the whole file
//! takes a few seconds. The tolerances are then loose where the figures are noisy: near
//! saturation (100 agents, 90 Erlangs) five standard errors are about ±20 % of the
//! probability of waiting and about ±50 % of the ASA, but ±1 % of the service level and
//! ±0.5 % of the occupancy; the standard error may be at most 20 % of the value. With
//! optimisation (`cargo test --release -p opencti-sim --test planner_erlang`) every run
//! is 20 times longer, standard errors shrink by √20 ≈ 4.5, and they may be at most 5 %.
//!
//! The ignored test `long_runs_agree_closely` measures 10 million calls per load point
//! (10 seeds × 1,000,000; about 30 s with `--release -- --ignored --nocapture`), with
//! standard errors of at most 3 % (most are far below 1 %; the ASA at 100 agents and 90
//! Erlangs is the exception, at about 2 %); its table is in PLANNER.md.

use opencti_sim::planner::erlang::{ErlangFigures, QueueModel};
use opencti_sim::planner::{run, CountingSink, PlannerConfig, PlannerReport, RunLength};

const SEEDS: u64 = 10;
const Z: f64 = 5.0;
const WARM_UP_SECS: f64 = 2.0 * 3_600.0;
const THRESHOLD_SECS: f64 = 20.0;

/// How long to run and how small the standard error must be.
#[derive(Clone, Copy)]
struct Length {
    /// Measured calls per seed, multiplied by the point's own factor.
    scale: u64,
    /// The largest standard error accepted, relative to the formula's value.
    max_rel_se: f64,
}

/// Longer runs when the test binary is optimised.
fn length() -> Length {
    if cfg!(debug_assertions) {
        Length {
            scale: 1,
            max_rel_se: 0.20,
        }
    } else {
        Length {
            scale: 20,
            max_rel_se: 0.05,
        }
    }
}

/// One figure: its name, how to read it from a report, and the formula's value.
struct Figure {
    name: &'static str,
    read: fn(&PlannerReport) -> f64,
    expected: fn(&ErlangFigures) -> f64,
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "probability of waiting",
        read: |r| r.overall.calls.prob_wait,
        expected: |f| f.prob_wait,
    },
    Figure {
        name: "probability of abandonment",
        read: |r| r.overall.calls.abandon_rate,
        expected: |f| f.prob_abandon,
    },
    Figure {
        name: "average speed of answer",
        read: |r| r.overall.calls.asa_secs,
        expected: |f| f.asa_secs,
    },
    Figure {
        name: "service level (20 s, of offered)",
        read: |r| r.overall.calls.service_level,
        expected: |f| f.service_level,
    },
    Figure {
        name: "service level (20 s, of answered)",
        read: |r| r.overall.calls.service_level_of_answered,
        expected: |f| f.service_level_of_answered,
    },
    Figure {
        name: "occupancy",
        read: |r| r.overall.occupancy,
        expected: |f| f.occupancy,
    },
];

/// Simulates `model` with `SEEDS` seeds (`first_seed` and the next ones) of `calls`
/// measured calls each and checks every figure against the formula.
///
/// Each test uses its own seeds: with shared seeds every load point would see the same
/// underlying random draws (scaled), and their errors would share a sign.
fn agrees(model: QueueModel, calls: u64, first_seed: u64) {
    agrees_for(model, calls, first_seed, length());
}

fn agrees_for(model: QueueModel, calls: u64, first_seed: u64, length: Length) {
    let expected = model.figures(THRESHOLD_SECS).expect("the formulas apply");
    let calls = calls * length.scale;
    println!("{model:?}, {SEEDS} seeds × {calls} calls:");
    let reports: Vec<PlannerReport> = (0..SEEDS)
        .map(|n| {
            let seed = first_seed + n;
            let mut config =
                PlannerConfig::single_queue(model.agents, model.calls_per_hour, model.handle_secs)
                    .with_length(RunLength::Calls(calls))
                    .with_warm_up_secs(WARM_UP_SECS)
                    .with_service_level_secs(THRESHOLD_SECS)
                    .with_seed(seed);
            if let Some(patience) = model.patience_secs {
                config = config.with_patience(patience);
            }
            let report = run(&config, &mut CountingSink::new()).expect("the run succeeds");
            let c = report.overall.calls;
            assert_eq!(c.offered, calls);
            assert_eq!(c.answered + c.abandoned, c.offered);
            report
        })
        .collect();
    let mut failures = Vec::new();
    for figure in FIGURES {
        let values: Vec<f64> = reports.iter().map(figure.read).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        let truth = (figure.expected)(&expected);
        let tolerance = Z * se + 1e-12;
        println!(
            "{:>34}: formula {:>10.5}  simulated {:>10.5}  se {:>8.5}  z {:>6.2}",
            figure.name,
            truth,
            mean,
            se,
            (mean - truth) / se.max(1e-300)
        );
        if (mean - truth).abs() > tolerance {
            failures.push(format!(
                "{}: simulated {mean:.5}, formula {truth:.5}, beyond {Z} standard errors ({se:.5})",
                figure.name
            ));
        }
        if truth > 0.0 && se > length.max_rel_se * truth {
            failures.push(format!(
                "{}: standard error {se:.5} is more than {:.0} % of {truth:.5}; the test would have no teeth",
                figure.name,
                length.max_rel_se * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{model:?}:\n{}", failures.join("\n"));
}

fn model(agents: u32, calls_per_hour: f64, patience_secs: Option<f64>) -> QueueModel {
    QueueModel {
        agents,
        calls_per_hour,
        handle_secs: 180.0,
        patience_secs,
    }
}

#[test]
fn erlang_c_10_agents_8_erlangs() {
    // P(wait) = 0.4092: the textbook value.
    agrees(model(10, 160.0, None), 20_000, 1_000);
}

#[test]
fn erlang_c_50_agents_45_erlangs() {
    agrees(model(50, 900.0, None), 30_000, 2_000);
}

#[test]
fn erlang_c_100_agents_90_erlangs() {
    // 1,800 calls an hour of 180 s: the benchmark day.
    agrees(model(100, 1_800.0, None), 40_000, 3_000);
}

#[test]
fn erlang_a_10_agents_8_erlangs_patience_120_s() {
    agrees(model(10, 160.0, Some(120.0)), 20_000, 4_000);
}

#[test]
fn erlang_a_50_agents_45_erlangs_patience_300_s() {
    agrees(model(50, 900.0, Some(300.0)), 30_000, 5_000);
}

#[test]
fn erlang_a_100_agents_90_erlangs_patience_180_s() {
    agrees(model(100, 1_800.0, Some(180.0)), 40_000, 6_000);
}

#[test]
fn erlang_a_100_agents_overloaded_120_erlangs_patience_90_s() {
    // A third more work than agents: only abandonment keeps the queue finite.
    agrees(model(100, 2_400.0, Some(90.0)), 40_000, 7_000);
}

#[test]
#[ignore = "about 30 s with --release: 70 million calls"]
fn long_runs_agree_closely() {
    let long = Length {
        scale: 1,
        // The ASA near saturation is the noisiest figure: 2 % at 10 million calls.
        max_rel_se: 0.03,
    };
    let points = [
        (model(10, 160.0, None), 11_000),
        (model(50, 900.0, None), 12_000),
        (model(100, 1_800.0, None), 13_000),
        (model(10, 160.0, Some(120.0)), 14_000),
        (model(50, 900.0, Some(300.0)), 15_000),
        (model(100, 1_800.0, Some(180.0)), 16_000),
        (model(100, 2_400.0, Some(90.0)), 17_000),
    ];
    for (point, first_seed) in points {
        agrees_for(point, 1_000_000, first_seed, long);
    }
}
