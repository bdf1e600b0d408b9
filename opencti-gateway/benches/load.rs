//! Load harness: 1,000 (or `LOAD_AGENTS`) concurrent WebSocket agent sessions on one gateway, each taking
//! simulated calls, on loopback. Reports event delivery latency (p50, p99, max) and the
//! gateway's memory per session. Bounded: a fixed number of calls, then it stops.
//!
//! Run: `cargo bench -p opencti-gateway --bench load`
//! (`LOAD_AGENTS`, `LOAD_CALLS_PER_SEC` and `LOAD_SECS` change the defaults 1000, 100, 20).
//!
//! The gateway runs in a child process (this same binary in server mode), so that its
//! memory is measured on its own; the parent holds the 1,000 browser-side connections.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod harness;

use harness::env_or;

fn main() {
    if std::env::var("OPENCTI_LOAD_SERVER").is_ok() {
        server();
    } else if std::env::args().any(|a| a == "--bench") || std::env::var("LOAD_RUN").is_ok() {
        clients();
    }
    // `cargo test` runs benches with no `--bench`: nothing to do then.
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", pid))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Server mode: a simulated centre with `LOAD_AGENTS` agents behind the gateway. Prints
/// the address and one token per line, then places calls at the asked rate when told
/// `GO`, and stops at end of input.
fn server() {
    let agents = env_or("LOAD_AGENTS", 1000) as usize;
    let rate = env_or("LOAD_CALLS_PER_SEC", 100);
    let secs = env_or("LOAD_SECS", 20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut builder = opencti_sim::SimSwitch::builder()
            .queue("support")
            .ring_timeout("support", Duration::from_secs(30));
        let names: Vec<(String, String)> = (1..=agents)
            .map(|i| (format!("agent{:04}", i), format!("{}", 10000 + i)))
            .collect();
        for (agent, device) in &names {
            builder = builder.agent(agent, device, &["support"]);
        }
        let switch = builder.build().unwrap();
        let tokens = opencti_gateway::TokenTable::new();
        let mut out = String::new();
        for (agent, device) in &names {
            let token = tokens
                .issue(
                    opencti_core::AgentId::new(agent).unwrap(),
                    opencti_core::DeviceId::new(device).unwrap(),
                )
                .unwrap();
            out.push_str(token.expose());
            out.push('\n');
        }
        let gateway = opencti_gateway::Gateway::with_limits(
            Arc::new(tokens),
            Arc::new(opencti_gateway::SimSessions::new(switch.clone())),
            // Every agent's connection, and room for a few more.
            opencti_gateway::Limits::default().with_max_connections(agents + 64),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { gateway.serve(listener).await });
        print!("{}\n{}READY\n", address, out);
        std::io::stdout().flush().unwrap();
        let control = switch.control();
        let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                let _ = go_tx.send(line);
            }
        });
        while let Some(line) = go_rx.recv().await {
            if line == "GO" {
                let total = rate * secs;
                let gap = Duration::from_secs_f64(1.0 / rate as f64);
                let mut next = tokio::time::Instant::now();
                for i in 0..total {
                    next += gap;
                    tokio::time::sleep_until(next).await;
                    let _ = control
                        .customer_calls("support", &format!("+4416329{:05}", i % 100_000))
                        .talk_for(Duration::from_secs(2))
                        .call();
                }
                println!("PLACED {}", total);
                std::io::stdout().flush().unwrap();
            }
        }
    });
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn clients() {
    let agents = env_or("LOAD_AGENTS", 1000);
    let secs = env_or("LOAD_SECS", 20);
    let rate = env_or("LOAD_CALLS_PER_SEC", 100);
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(exe)
        .env("OPENCTI_LOAD_SERVER", "1")
        .env("LOAD_AGENTS", agents.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let address = lines.next().unwrap().unwrap();
    let mut tokens = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        tokens.push(line);
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = rss_kib(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://{}/ws", address);
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for token in tokens {
            let url = url.clone();
            let lat_tx = lat_tx.clone();
            let ready_tx = ready_tx.clone();
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
                    .await
                    .unwrap();
                let send = |v: Value| Message::Text(v.to_string().into());
                ws.send(send(json!({"auth": {"token": token}}))).await.unwrap();
                ws.send(send(json!({"id": "login", "command": {"type": "login"}}))).await.unwrap();
                let mut ready_sent = false;
                let mut n = 0u64;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let received = now_micros();
                    let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                    if let Some(reply) = value.get("reply") {
                        if reply["id"] == "login" && !ready_sent {
                            ready_sent = true;
                            ws.send(send(json!({"id": "ready", "command": {"type": "set_agent_state", "state": {"state": "ready"}}}))).await.unwrap();
                        } else if reply["id"] == "ready" {
                            let _ = ready_tx.send(());
                        }
                    } else if let Some(event) = value.get("event") {
                        if let Some(at) = event["at"].as_u64() {
                            let _ = lat_tx.send(received.saturating_sub(at));
                        }
                        if event["type"] == "call_offered" {
                            n += 1;
                            let call = event["call"].clone();
                            ws.send(send(json!({"id": format!("a{}", n), "command": {"type": "answer", "call": call}}))).await.unwrap();
                        }
                    }
                }
            });
        }
        drop(ready_tx);
        for _ in 0..agents {
            ready_rx.recv().await.unwrap();
        }
    });
    let connect_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let sessions_rss = rss_kib(pid);
    // Latencies of logging in are not the measure: drain them.
    while lat_rx.try_recv().is_ok() {}

    let mut stdin = server.stdin.take().unwrap();
    writeln!(stdin, "GO").unwrap();
    let run_started = std::time::Instant::now();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("PLACED") {
            break;
        }
    }
    // Let the last calls finish (2 s of talk), then stop.
    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(4)).await });
    let busy_rss = rss_kib(pid);
    let run_secs = run_started.elapsed().as_secs_f64();
    drop(stdin);
    let _ = server.kill();
    let _ = server.wait();
    let mut latencies = Vec::new();
    while let Ok(l) = lat_rx.try_recv() {
        latencies.push(l);
    }
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!("gateway load: {} agents over WebSocket on loopback", agents);
    println!(
        "  {} sessions authenticated, logged in and ready in {:.2} s",
        agents, connect_secs
    );
    println!(
        "  {} calls placed at {} a second over {:.1} s; {} events delivered to browsers",
        rate * secs,
        rate,
        run_secs,
        latencies.len()
    );
    println!(
        "  event delivery latency (server stamp to client receipt): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pick(0.50),
        pick(0.99),
        pick(1.0)
    );
    println!(
        "  gateway memory: {} KiB idle, {} KiB with {} sessions ({:.1} KiB a session), {} KiB after the calls",
        idle_rss,
        sessions_rss,
        agents,
        (sessions_rss.saturating_sub(idle_rss)) as f64 / agents as f64,
        busy_rss
    );
}
