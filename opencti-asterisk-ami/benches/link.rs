//! One `AmiLink` serving many lines, end to end over loopback TCP: a scripted AMI server
//! streams realistic call events for many devices, and the link translates them into
//! canonical events for every line's session (`SharedLink` sessions, as a contact centre
//! runs them).
//!
//! The stream: the 22 call events of the real capture `05_two_party_call` (about 430
//! bytes and 19 headers each), repeated with fresh ids, each call at one of `devices`
//! agent devices (`Local/<n>@agents`) in turn. A last call on a marker line ends the
//! run: one reader handles events in order, so its `call_ended` means every event before
//! it has been translated.
//!
//! The scripted server runs on a thread of its own (Asterisk is a process of its own);
//! each pass prints the CPU time of each thread (`ami-server`, the link's runtime
//! workers, among them the reader, and `ami-deliverer`), and each number of lines ends
//! with the median and fastest pass.
//!
//! Run: `cargo bench -p opencti-asterisk-ami --bench link` (optionally `-- LINES...`, the
//! numbers of lines to measure; default 1 20 200; `PASSES=N` for N passes, default 3).
//! The runtime has two workers, or `WORKERS=N`. To profile only the timed passes:
//! `mkfifo /tmp/ctl /tmp/ack`, then run the bench binary under `perf record -D -1
//! --control fifo:/tmp/ctl,/tmp/ack` with `PERF_CTL_FIFO=/tmp/ctl PERF_ACK_FIFO=/tmp/ack`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{call, EVENTS_A_CALL};
use futures::StreamExt;
use opencti_asterisk_ami::test_support::{Control, Script};
use opencti_asterisk_ami::{AmiConfig, AmiLink, Secret};
use opencti_core::{AgentId, DeviceId, SharedLink};

/// Calls in the stream: 9,091 calls of 22 events is 200,002 events.
const CALLS: usize = 9_091;
const DEVICES: usize = 2_000;

fn device(n: usize) -> String {
    format!("Local/{}@agents", 10_000 + n)
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds each thread of this process has run, by thread id and name (from
/// `/proc/self/task/*/`), to show which stage is busiest.
fn thread_cpu() -> std::collections::BTreeMap<(u32, String), u64> {
    let mut cpu = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().parse().unwrap_or(0);
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let ran = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        cpu.insert((tid, name.trim().to_owned()), ran);
    }
    cpu
}

/// Tells `perf record --control fifo:CTL,ACK -D -1` (when `PERF_CTL_FIFO` and
/// `PERF_ACK_FIFO` name its fifos) to sample only the timed passes, not the making of
/// the stream.
fn profiler(command: &str) {
    use std::io::{Read, Write};
    let (Ok(ctl), Ok(ack)) = (
        std::env::var("PERF_CTL_FIFO"),
        std::env::var("PERF_ACK_FIFO"),
    ) else {
        return;
    };
    let told = std::fs::OpenOptions::new()
        .write(true)
        .open(ctl)
        .and_then(|mut f| f.write_all(format!("{command}\n").as_bytes()));
    let mut answer = [0u8; 5];
    let acked = std::fs::File::open(ack).and_then(|mut f| f.read(&mut answer));
    if told.is_err() || acked.is_err() {
        eprintln!("could not reach perf's control fifos");
    }
}

/// Starts the scripted server on a thread and runtime of its own, as Asterisk is a
/// process of its own: it does not take turns with the link's tasks on the link's
/// runtime. The thread serves until the bench ends.
fn start_server() -> Control {
    let (started, control) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ami-server".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the server's runtime");
            runtime.block_on(async {
                let _ = started.send(Control::start(Script::default()).await);
                std::future::pending::<()>().await
            })
        })
        .expect("the server's thread");
    control.recv().expect("the server started")
}

/// Passes of the stream for each number of lines: `PASSES` from the environment, or 3.
fn passes() -> usize {
    std::env::var("PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3)
}

async fn measure(lines: usize) {
    let control = start_server();
    let mut config = AmiConfig::new(control.address(), "opencti", Secret::new("opencti-secret"));
    config.limits.max_channels = 1_000_000;
    let link = SharedLink::start(Arc::new(AmiLink::new(config).expect("config")))
        .await
        .expect("link");
    let mut sessions = Vec::new();
    for n in 0..lines {
        sessions.push(
            link.session(
                AgentId::new(format!("agent-{n}")).expect("id"),
                DeviceId::new(device(n)).expect("id"),
            )
            .start()
            .await
            .expect("session"),
        );
    }
    let marker = link
        .session(
            AgentId::new("marker").expect("id"),
            DeviceId::new("Local/99999@agents").expect("id"),
        )
        .start()
        .await
        .expect("marker session");
    let mut marker_events = opencti_core::DesktopInterface::subscribe(&marker);

    let events = (CALLS + 1) * EVENTS_A_CALL;
    // Three passes of the stream, each with calls of its own: the first warms the maps
    // up, the others show whether memory stays flat.
    let mut rates = Vec::new();
    for pass in 1..=passes() {
        let first = (pass - 1) * (CALLS + 1);
        let mut stream = Vec::new();
        for i in 0..CALLS {
            stream.extend_from_slice(call(first + i, &device(i % DEVICES)).as_bytes());
        }
        stream.extend_from_slice(call(first + CALLS, "Local/99999@agents").as_bytes());
        let bytes = stream.len();
        // Made before the clock starts and handed over without a copy: the timing is
        // the link's, not the making of the stream.
        let stream = bytes::Bytes::from(stream);
        // Kept until memory is read after the pass, so that both readings include it.
        let kept = stream.clone();
        let rss_before = resident_kib();
        profiler("enable");
        let cpu_before = thread_cpu();
        let started = Instant::now();
        control.send_shared(stream);
        loop {
            match tokio::time::timeout(Duration::from_secs(120), marker_events.next()).await {
                Ok(Some(Ok(e))) if e.event.name() == "call_ended" => break,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the marker session closed"),
                Err(_) => {
                    println!("{lines:>5} lines: the marker call did not end within 120 s (the link fell behind; see the log)");
                    let _ = link.stop().await;
                    return;
                }
            }
        }
        let elapsed = started.elapsed();
        profiler("disable");
        let busy: Vec<String> = thread_cpu()
            .into_iter()
            .map(|(thread, ran)| {
                let ran = ran.saturating_sub(cpu_before.get(&thread).copied().unwrap_or(0));
                (thread.1, ran as f64 / 1e9)
            })
            .filter(|(_, seconds)| *seconds > 0.001)
            .map(|(name, seconds)| format!("{name} {seconds:.3}"))
            .collect();
        let delivered: u64 = sessions.iter().map(|s| s.stats().received).sum();
        // Nothing lost: no session refused an event, and every call ended on its line.
        let rejected: u64 = sessions.iter().map(|s| s.stats().rejected).sum();
        let calls_left: usize = sessions
            .iter()
            .map(|s| opencti_core::DesktopInterface::snapshot(s).calls.len())
            .sum();
        println!(
            "{lines:>5} lines, pass {pass}: {events} AMI events ({:.1} MB, {DEVICES} devices) in {:.3} s = {:.0} events/s; {delivered} canonical events so far to the lines' sessions ({rejected} refused, {calls_left} calls left open); resident memory {} -> {} KiB; CPU seconds by thread: {}",
            bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64(),
            rss_before,
            resident_kib(),
            busy.join(", ")
        );
        drop(kept);
        assert_eq!((rejected, calls_left), (0, 0), "events lost or misread");
        rates.push(events as f64 / elapsed.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    if let (Some(slowest), Some(fastest)) = (rates.first(), rates.last()) {
        println!(
            "{lines:>5} lines over {} passes: median {:.0}, fastest {fastest:.0}, slowest {slowest:.0} events/s",
            rates.len(),
            rates[rates.len() / 2],
        );
    }
    let _ = link.stop().await;
}

fn main() {
    let lines: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let lines = if lines.is_empty() {
        vec![1, 20, 200]
    } else {
        lines
    };
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    for n in lines {
        runtime.block_on(measure(n));
    }
}
