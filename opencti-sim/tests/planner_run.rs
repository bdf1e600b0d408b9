//! The planner's runs: the canonical events each agent's desk sees, determinism, routing
//! over several queues, progress, errors, and the bookkeeping identities of the report.

use std::num::NonZeroU64;

use opencti_core::{AgentState, CallId, Cause, ChosenState, Error, ErrorKind, Event, QueueId};
use opencti_sim::planner::erlang::QueueModel;
use opencti_sim::planner::{
    run, run_with_progress, AgentGroup, CountingSink, DeskCheckSink, PlannerConfig, PlannerQueue,
    PlannerReport, RunLength,
};

fn queue_id(name: &str) -> QueueId {
    QueueId::new(name).expect("valid queue id")
}

/// Two queues, one with wrap-up and one without, both with impatient callers; agents
/// dedicated to each and some serving both. Busy enough that callers wait and abandon.
fn two_queues() -> PlannerConfig {
    let mut config = PlannerConfig::single_queue(1, 1.0, 1.0);
    config.queues = vec![
        PlannerQueue::new(queue_id("sales"), 150.0, 180.0)
            .with_patience(60.0)
            .with_wrap_up(20.0),
        PlannerQueue::new(queue_id("support"), 100.0, 240.0).with_patience(90.0),
    ];
    config.agents = vec![
        AgentGroup::new("s", 5).serving(vec![queue_id("sales")]),
        AgentGroup::new("t", 4).serving(vec![queue_id("support")]),
        AgentGroup::new("u", 3),
    ];
    config.length = RunLength::Calls(5_000);
    config
}

fn without_wall_time(mut report: PlannerReport) -> PlannerReport {
    report.wall_secs = 0.0;
    report
}

#[test]
fn every_event_is_accepted_by_the_desk_state_machines_with_wrap_up_and_abandonment() {
    let single = PlannerConfig::single_queue(8, 200.0, 150.0)
        .with_patience(45.0)
        .with_wrap_up(15.0)
        .with_length(RunLength::Calls(5_000))
        .with_warm_up_secs(600.0)
        .with_seed(11);
    for config in [single, two_queues().with_seed(12)] {
        let mut desks = DeskCheckSink::new(&config).expect("desks");
        let report = run(&config, &mut desks).expect("every event is accepted");
        assert_eq!(desks.accepted(), report.events.total);
        assert!(report.overall.calls.abandoned > 100, "{:?}", report.overall);
        assert!(report.overall.calls.waited > 500, "{:?}", report.overall);
        for desk in desks.desks() {
            assert_eq!(desk.agent(), &AgentState::LoggedOut);
            assert!(desk.calls().is_empty());
        }
    }
}

#[test]
fn each_agent_sees_login_then_the_canonical_call_cycle_then_logout() {
    let config = PlannerConfig::single_queue(3, 60.0, 120.0)
        .with_wrap_up(30.0)
        .with_length(RunLength::Calls(300))
        .with_seed(5);
    let mut streams: Vec<Vec<(f64, Event)>> = vec![Vec::new(); 3];
    let report = run(&config, &mut |agent: usize, at: f64, event: Event| {
        streams[agent].push((at, event));
        Ok(())
    })
    .expect("run");
    let queue = queue_id("queue");
    let ready = |e: &Event| {
        e == &Event::AgentStateChanged {
            state: AgentState::Ready,
        }
    };
    let mut calls = std::collections::HashSet::new();
    for (agent, stream) in streams.iter().enumerate() {
        assert!(ready(&stream[0].1), "agent {agent} logs in first");
        assert_eq!(
            stream.last().map(|(_, e)| e),
            Some(&Event::AgentStateChanged {
                state: AgentState::LoggedOut
            })
        );
        let cycles = &stream[1..stream.len() - 1];
        assert_eq!(cycles.len() % 7, 0, "agent {agent}: whole cycles only");
        assert_eq!(cycles.len() as u64 / 7, report.agents[agent].handled);
        assert_eq!(report.agents[agent].events, stream.len() as u64);
        let mut last = 0.0;
        for cycle in cycles.chunks(7) {
            let Event::CallOffered {
                call,
                queue: Some(q),
                ..
            } = &cycle[0].1
            else {
                panic!("agent {agent}: a cycle starts with call_offered from a queue: {cycle:?}");
            };
            assert_eq!(q, &queue);
            assert!(calls.insert(call.clone()), "call ids are unique: {call}");
            let busy = |next| AgentState::Busy { next };
            let expected: [Event; 7] = [
                cycle[0].1.clone(),
                Event::AgentStateChanged {
                    state: AgentState::Reserved {
                        next: ChosenState::Ready,
                    },
                },
                Event::CallConnected { call: call.clone() },
                Event::AgentStateChanged {
                    state: busy(ChosenState::Ready),
                },
                Event::CallEnded {
                    call: call.clone(),
                    cause: Cause::Normal,
                },
                Event::AgentStateChanged {
                    state: AgentState::WrapUp {
                        reason: None,
                        next: ChosenState::Ready,
                    },
                },
                Event::AgentStateChanged {
                    state: AgentState::Ready,
                },
            ];
            let got: Vec<Event> = cycle.iter().map(|(_, e)| e.clone()).collect();
            assert_eq!(got, expected);
            // Offered, reserved, connected and busy at once; ended after the call;
            // ready exactly 30 s of wrap-up later.
            let times: Vec<f64> = cycle.iter().map(|(t, _)| *t).collect();
            assert!(times[0] >= last);
            assert!(times[0] == times[3] && times[3] < times[4] && times[4] == times[5]);
            assert!((times[6] - times[5] - 30.0).abs() < 1e-9);
            last = times[6];
            assert!(CallId::new(call.as_str()).is_ok());
        }
    }
    assert_eq!(calls.len() as u64, report.events.call_offered);
}

#[test]
fn the_report_adds_up() {
    for (config, wrap) in [
        (
            PlannerConfig::single_queue(20, 500.0, 120.0)
                .with_patience(30.0)
                .with_length(RunLength::Calls(20_000))
                .with_seed(3),
            false,
        ),
        (two_queues().with_seed(4), true),
    ] {
        let mut sink = CountingSink::new();
        let report = run(&config, &mut sink).expect("run");
        let all = report.overall.calls;
        // No warm-up: every call that arrived is measured.
        assert_eq!(report.calls_arrived, all.offered);
        assert_eq!(all.answered + all.abandoned, all.offered);
        assert!(all.waited >= all.abandoned);
        assert!(all.answered_within_threshold <= all.answered);
        let e = report.events;
        assert_eq!(sink.counts(), e);
        assert_eq!(sink.unexpected(), 0);
        assert_eq!(e.call_offered, all.answered);
        assert_eq!(e.call_connected, all.answered);
        assert_eq!(e.call_ended, all.answered);
        let agents = report.agents.len() as u64;
        if wrap {
            // Wrap-up only after sales calls: one more state change for each.
            let sales = report.queues[0].calls.answered;
            assert_eq!(e.agent_state_changed, 2 * agents + 3 * all.answered + sales);
        } else {
            assert_eq!(e.agent_state_changed, 2 * agents + 3 * all.answered);
        }
        assert_eq!(
            e.total,
            e.call_offered + e.call_connected + e.call_ended + e.agent_state_changed
        );
        assert_eq!(report.agents.iter().map(|a| a.events).sum::<u64>(), e.total);
        assert_eq!(
            report.agents.iter().map(|a| a.handled).sum::<u64>(),
            all.answered
        );
        let per_queue: u64 = report.queues.iter().map(|q| q.calls.offered).sum();
        assert_eq!(per_queue, all.offered);
        let mean_occupancy = report.agents.iter().map(|a| a.occupancy).sum::<f64>() / agents as f64;
        assert!((mean_occupancy - report.overall.occupancy).abs() < 1e-12);
        assert!(report.overall.talk_occupancy <= report.overall.occupancy);
        assert!(report.simulated_secs >= report.measured_to_secs);
        assert!(report.wall_secs > 0.0);
        // The report is serialisable and comes back the same (to the last bit or two:
        // serde_json parses floats with a fast, not always correctly rounded, algorithm
        // unless its `float_roundtrip` feature is on).
        let json = serde_json::to_string(&report).expect("serialise");
        let back: PlannerReport = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back.events, report.events);
        assert_eq!(back.overall.calls.offered, report.overall.calls.offered);
        assert_eq!(back.queues[0].queue, report.queues[0].queue);
        assert_eq!(back.agents[0].agent, report.agents[0].agent);
        assert!((back.overall.calls.asa_secs / report.overall.calls.asa_secs - 1.0).abs() < 1e-14);
    }
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let config = two_queues().with_seed(99);
    let first = without_wall_time(run(&config, &mut CountingSink::new()).expect("run"));
    let second = without_wall_time(run(&config, &mut CountingSink::new()).expect("run"));
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first).expect("json"),
        serde_json::to_string(&second).expect("json"),
        "bit for bit"
    );
    let other = without_wall_time(
        run(&config.clone().with_seed(100), &mut CountingSink::new()).expect("run"),
    );
    assert_ne!(first, other);
    assert_ne!(first.overall.calls.asa_secs, other.overall.calls.asa_secs);
}

#[test]
fn arriving_calls_go_to_the_longest_idle_agent_with_the_skill() {
    let config = two_queues()
        .with_length(RunLength::Calls(3_000))
        .with_seed(8);
    // Skills by agent index: s-1..s-5 sales, t-1..t-4 support, u-1..u-3 both.
    let serves = |agent: usize, queue: &QueueId| match agent {
        0..=4 => queue.as_str() == "sales",
        5..=8 => queue.as_str() == "support",
        _ => true,
    };
    let mut idle_since: Vec<Option<f64>> = vec![None; 12];
    let mut checked = 0u64;
    let mut skill_violation = None;
    let mut order_violation = None;
    run(&config, &mut |agent: usize, at: f64, event: Event| {
        match &event {
            Event::AgentStateChanged {
                state: AgentState::Ready,
            } => idle_since[agent] = Some(at),
            Event::CallOffered {
                queue: Some(queue), ..
            } => {
                if !serves(agent, queue) {
                    skill_violation = Some((agent, queue.clone()));
                }
                let mine = idle_since[agent].ok_or_else(|| {
                    Error::new(ErrorKind::InvalidState, "offered to a busy agent")
                })?;
                for (other, since) in idle_since.iter().enumerate() {
                    if let Some(since) = since {
                        if other != agent && serves(other, queue) && *since < mine {
                            order_violation = Some((at, agent, other));
                        }
                    }
                }
                idle_since[agent] = None;
                checked += 1;
            }
            _ => {}
        }
        Ok(())
    })
    .expect("run");
    assert!(checked > 2_000);
    assert_eq!(skill_violation, None);
    assert_eq!(order_violation, None, "(time, chosen, idle for longer)");
}

/// Mean and standard error over seeds of a figure of the report.
fn over_seeds(
    config: &PlannerConfig,
    seeds: u64,
    figure: impl Fn(&PlannerReport) -> f64,
) -> (f64, f64) {
    let values: Vec<f64> = (0..seeds)
        .map(|s| {
            let report =
                run(&config.clone().with_seed(s + 1), &mut CountingSink::new()).expect("run");
            figure(&report)
        })
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn one_pool_serving_two_queues_is_one_erlang_c_queue() {
    // Oldest call first across the queues is FIFO over all calls, and Poisson streams
    // add up: two queues of 100 and 200 calls/h of 180 s on one pool of 20 agents is an
    // M/M/20 offered 15 Erlangs. Tolerance: 5 standard errors over 10 seeds, as in
    // planner_erlang.rs.
    let mut config = PlannerConfig::single_queue(20, 1.0, 180.0)
        .with_length(RunLength::Calls(20_000))
        .with_warm_up_secs(7_200.0);
    config.queues = vec![
        PlannerQueue::new(queue_id("a"), 100.0, 180.0),
        PlannerQueue::new(queue_id("b"), 200.0, 180.0),
    ];
    let expected = QueueModel {
        agents: 20,
        calls_per_hour: 300.0,
        handle_secs: 180.0,
        patience_secs: None,
    }
    .figures(20.0)
    .expect("erlang c");
    let (mean, se) = over_seeds(&config, 10, |r| r.overall.calls.prob_wait);
    assert!(
        (mean - expected.prob_wait).abs() <= 5.0 * se,
        "P(wait) {mean} ± {se} vs {}",
        expected.prob_wait
    );
    assert!(se < 0.2 * expected.prob_wait);
    // Both queues see the same waiting: neither is favoured.
    let (a, se_a) = over_seeds(&config, 10, |r| r.queues[0].calls.prob_wait);
    let (b, se_b) = over_seeds(&config, 10, |r| r.queues[1].calls.prob_wait);
    assert!((a - b).abs() <= 5.0 * (se_a.powi(2) + se_b.powi(2)).sqrt());
}

#[test]
fn dedicated_pools_are_independent_erlang_c_queues() {
    let mut config = PlannerConfig::single_queue(1, 1.0, 180.0)
        .with_length(RunLength::Calls(30_000))
        .with_warm_up_secs(7_200.0);
    config.queues = vec![
        PlannerQueue::new(queue_id("a"), 160.0, 180.0),
        PlannerQueue::new(queue_id("b"), 60.0, 240.0),
    ];
    config.agents = vec![
        AgentGroup::new("a", 10).serving(vec![queue_id("a")]),
        AgentGroup::new("b", 5).serving(vec![queue_id("b")]),
    ];
    for (q, agents, cph, aht) in [(0, 10, 160.0, 180.0), (1, 5, 60.0, 240.0)] {
        let expected = QueueModel {
            agents,
            calls_per_hour: cph,
            handle_secs: aht,
            patience_secs: None,
        }
        .figures(20.0)
        .expect("erlang c");
        let (mean, se) = over_seeds(&config, 10, |r| r.queues[q].calls.prob_wait);
        assert!(
            (mean - expected.prob_wait).abs() <= 5.0 * se,
            "queue {q}: P(wait) {mean} ± {se} vs {}",
            expected.prob_wait
        );
        assert!(se < 0.2 * expected.prob_wait);
    }
}

#[test]
fn abandoned_calls_produce_no_events_but_are_counted() {
    // Two agents, 4 Erlangs, callers who give up after 10 s on average.
    let config = PlannerConfig::single_queue(2, 120.0, 120.0)
        .with_patience(10.0)
        .with_length(RunLength::Calls(2_000))
        .with_seed(1);
    let mut sink = CountingSink::new();
    let report = run(&config, &mut sink).expect("run");
    let calls = report.overall.calls;
    assert!(calls.abandoned > calls.answered / 2, "{calls:?}");
    assert_eq!(sink.counts().call_offered, calls.answered);
    assert!(calls.mean_abandon_wait_secs > 0.0 && calls.mean_abandon_wait_secs < 10.0);
    assert!((calls.abandon_rate - calls.abandoned as f64 / 2_000.0).abs() < 1e-15);
}

#[test]
fn a_day_of_fixed_length_measures_after_the_warm_up() {
    let config = PlannerConfig::single_queue(10, 160.0, 180.0)
        .with_length(RunLength::Secs(8.0 * 3_600.0))
        .with_warm_up_secs(3_600.0)
        .with_seed(2);
    let report = run(&config, &mut CountingSink::new()).expect("run");
    assert_eq!(report.measured_from_secs, 3_600.0);
    assert_eq!(report.measured_to_secs, 28_800.0);
    assert!(report.simulated_secs >= 28_800.0);
    // Poisson: 7 h × 160/h = 1,120 calls expected, standard deviation 33.5.
    let offered = report.overall.calls.offered as f64;
    assert!(
        (offered - 1_120.0).abs() < 5.0 * 1_120f64.sqrt(),
        "{offered}"
    );
    assert!(report.calls_arrived > report.overall.calls.offered);
}

#[test]
fn progress_is_reported_for_a_progress_bar() {
    let config = PlannerConfig::default().with_length(RunLength::Calls(10_000));
    let mut seen = Vec::new();
    let every = NonZeroU64::new(2_500).expect("non-zero");
    let report = run_with_progress(&config, &mut CountingSink::new(), every, |p| seen.push(*p))
        .expect("run");
    let fractions: Vec<f64> = seen.iter().map(|p| p.fraction_done).collect();
    assert_eq!(fractions, vec![0.25, 0.5, 0.75, 1.0, 1.0]);
    assert!(seen
        .windows(2)
        .all(|w| w[0].simulated_secs <= w[1].simulated_secs));
    let last = seen.last().expect("a final call");
    assert_eq!(last.calls_arrived, report.calls_arrived);
    assert_eq!(last.simulated_secs, report.simulated_secs);
}

#[test]
fn a_sink_error_stops_the_run_with_that_error() {
    let config = PlannerConfig::default().with_length(RunLength::Calls(10_000));
    let mut events = 0;
    let err = run(&config, &mut |_: usize, _: f64, _: Event| {
        events += 1;
        if events == 1_000 {
            Err(Error::new(ErrorKind::Closed, "the consumer went away"))
        } else {
            Ok(())
        }
    })
    .expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(events, 1_000);
}

#[test]
fn invalid_configurations_are_refused_before_anything_runs() {
    let mut events = 0;
    let mut sink = |_: usize, _: f64, _: Event| {
        events += 1;
        Ok(())
    };
    for config in [
        PlannerConfig::single_queue(0, 100.0, 60.0),
        PlannerConfig::single_queue(5, -100.0, 60.0),
        PlannerConfig::single_queue(5, 100.0, 0.0),
        PlannerConfig::single_queue(5, 100.0, 60.0).with_patience(-1.0),
        PlannerConfig::single_queue(5, 600.0, 60.0),
    ] {
        let err = run(&config, &mut sink).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
    assert_eq!(events, 0);
}

#[test]
fn a_queue_that_outgrows_max_waiting_stops_the_run() {
    // 95 % load on 5 agents queues up now and then; allow only 3 waiting callers.
    let mut config = PlannerConfig::single_queue(5, 285.0, 60.0)
        .with_length(RunLength::Calls(100_000))
        .with_seed(1);
    config.max_waiting = 3;
    let err = run(&config, &mut CountingSink::new()).expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("cannot keep up"), "{err}");
}
