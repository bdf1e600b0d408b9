//! Load: sipp calls this connector's extension through kamailio at a fixed rate; the
//! desk answers every call and hangs it up. Every call must succeed at sipp (200,
//! ACK, our BYE answered) and on the panel (`call_offered`, `call_connected`,
//! `call_ended normal`, never `call_failed`).
//!
//! Bounded: `SIP_LOAD_CALLS` calls (default 150) at `SIP_LOAD_RATE` calls per second
//! (default 50; a debug build on a shared 2-core CI machine), all on 127.0.0.1, and sipp is killed after a time limit. The figures in
//! `BENCHMARKS.md` come from
//! `SIP_LOAD_CALLS=6000 SIP_LOAD_RATE=300 cargo test --release -p opencti-sip --test load -- --nocapture`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use opencti_core::{DesktopInterface, DesktopInterfaceExt, Event};
use support::{expect, require, Kamailio, RunDir};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_calls_per_second_through_kamailio_are_answered_and_hung_up() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let calls = env("SIP_LOAD_CALLS", 150).clamp(1, 100_000);
    let rate = env("SIP_LOAD_RATE", 50).clamp(1, 2_000);
    let run = RunDir::new("load");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH", "QUIET"]);
    let mut config = support::config(&kamailio, "1001");
    config.timeouts.keepalive = None;
    let (session, mut events, _) = support::session(config).await;
    session.login().await.unwrap_or_else(|e| panic!("{e}"));
    session.ready().await.unwrap_or_else(|e| panic!("{e}"));
    let _ = expect(&mut events, "agent_state_changed").await;

    let failed = Arc::new(AtomicU64::new(0));
    let ended_normal = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let desk = session.clone();
    let (f, n, errs) = (failed.clone(), ended_normal.clone(), errors.clone());
    let driver = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    errs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(e.to_string());
                    continue;
                }
            };
            match &event.event {
                Event::CallOffered { call, .. } => {
                    let (desk, call, errs) = (desk.clone(), call.clone(), errs.clone());
                    tokio::spawn(async move {
                        let done = async {
                            desk.answer(call.clone()).await?;
                            desk.hangup(call).await
                        };
                        if let Err(e) = done.await {
                            errs.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(e.to_string());
                        }
                    });
                }
                Event::CallFailed { .. } => {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                Event::CallEnded { cause, .. } if *cause == opencti_core::Cause::Normal => {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                Event::CallEnded { cause, call } => {
                    f.fetch_add(1, Ordering::Relaxed);
                    errs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{call} ended {cause}"));
                }
                _ => {}
            }
        }
    });

    let port = support::free_port();
    let limit = Duration::from_secs(calls / rate + 60);
    let args: Vec<String> = [
        "-sf",
        &support::scenario("uac_ua_hangs_up.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-s",
        "1001",
        &format!("127.0.0.1:{}", kamailio.port),
        "-m",
        &calls.to_string(),
        "-r",
        &rate.to_string(),
        "-l",
        "200",
        "-timeout",
        &format!("{}s", limit.as_secs()),
        "-timeout_error",
        "-nostdin",
        "-trace_err",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let begun = Instant::now();
    let (ok, output) = support::sipp(&args, &run.0, limit + Duration::from_secs(10)).await;
    let elapsed = begun.elapsed();
    // Let the last call_ended events arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ended_normal.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < calls
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
    // sipp's final screen: "  Successful call | <periodic> | <cumulative>".
    let cumulative = |name: &str| -> String {
        output
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.rsplit('|').next())
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let successful = cumulative("Successful call");
    let sipp_failed = cumulative("Failed call");
    let last = format!("successful {successful}, failed {sipp_failed}");
    println!(
        "load: {calls} calls at {rate}/s: sipp successful {successful}, failed {sipp_failed}; \
         panel ended normal {}, failed {}; {:.1} s, {:.0} calls/s achieved; session stats {:?}",
        ended_normal.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        session.stats(),
    );
    let errors = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(ok, "sipp reported failures:\n{output}");
    assert_eq!(successful, calls.to_string(), "sipp: {last}");
    assert_eq!(sipp_failed, "0", "sipp: {last}");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{errors:?}");
    assert_eq!(ended_normal.load(Ordering::Relaxed), calls, "{errors:?}");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(session.stats().rejected, 0);
    assert!(session.snapshot().calls.is_empty());
}
