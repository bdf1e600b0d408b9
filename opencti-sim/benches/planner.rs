//! The planner's headline figure: an M/M/c day of 1,000,000 calls (100 agents, 1,800
//! calls an hour, 180 s handling time, 90 Erlangs) with every canonical event produced
//! and handed to a counting sink, on one core.
//!
//! `cargo bench -p opencti-sim --bench planner`; the figure is recorded in PLANNER.md.

use divan::Bencher;
use opencti_sim::planner::{
    run, AgentEventSink, CountingSink, DeskCheckSink, PlannerConfig, PlannerReport, RunLength,
};

fn main() {
    divan::main();
}

fn day(calls: u64) -> PlannerConfig {
    PlannerConfig::single_queue(100, 1_800.0, 180.0)
        .with_length(RunLength::Calls(calls))
        .with_seed(2_024)
}

fn simulate<S: AgentEventSink>(config: &PlannerConfig, sink: &mut S) -> PlannerReport {
    match run(config, sink) {
        Ok(report) => report,
        Err(e) => panic!("the benchmark day must run: {e}"),
    }
}

/// The bar: 1,000,000 calls, about 6,000,000 canonical events, well under a second.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn million_calls_100_agents(bencher: Bencher<'_, '_>) {
    let config = day(1_000_000);
    bencher.bench_local(|| {
        let mut sink = CountingSink::new();
        let report = simulate(&config, &mut sink);
        assert_eq!(sink.counts().total, report.events.total);
        report
    });
}

/// The same day with abandonment (mean patience 180 s) and 30 s of wrap-up: one more
/// event per call and the lazy abandonment bookkeeping.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn million_calls_with_patience_and_wrap_up(bencher: Bencher<'_, '_>) {
    let config = day(1_000_000).with_patience(180.0).with_wrap_up(30.0);
    bencher.bench_local(|| simulate(&config, &mut CountingSink::new()));
}

/// For scale: the same centre with every event run through the core's `Desk` state
/// machines (the test sink), for a tenth of the calls.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn hundred_thousand_calls_desk_checked(bencher: Bencher<'_, '_>) {
    let config = day(100_000);
    bencher.bench_local(|| {
        let mut desks = match DeskCheckSink::new(&config) {
            Ok(desks) => desks,
            Err(e) => panic!("desks: {e}"),
        };
        simulate(&config, &mut desks)
    });
}
