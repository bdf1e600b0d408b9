//! The planner keeps no per-call history: a day twenty times longer needs no more memory.
//!
//! Alone in its own test binary, so that no other test's allocations move the process's
//! peak resident memory (`VmHWM` in `/proc/self/status`, Linux only; elsewhere the test
//! only runs the days).

use opencti_sim::planner::{run, CountingSink, PlannerConfig, RunLength};

fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn day(calls: u64) {
    // The benchmark's centre, with abandonment and wrap-up so that every structure is used.
    let config = PlannerConfig::default()
        .with_patience(180.0)
        .with_wrap_up(10.0)
        .with_length(RunLength::Calls(calls))
        .with_seed(calls);
    let report = run(&config, &mut CountingSink::new()).expect("run");
    assert_eq!(report.overall.calls.offered, calls);
}

#[test]
fn a_day_twenty_times_longer_needs_no_more_memory() {
    let short = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    day(short);
    let before = peak_resident_kib();
    day(20 * short);
    let after = peak_resident_kib();
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "peak resident memory: {before} KiB after {short} calls, {after} KiB after {} more",
            20 * short
        );
        // Queues and idle lists may grow a little (a longer day sees a longer worst
        // queue), but nothing in proportion to the calls: 400,000 calls of history would
        // be tens of megabytes.
        assert!(after <= before + 1_024, "{before} KiB -> {after} KiB");
    }
}
