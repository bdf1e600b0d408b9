//! Wallboard harness: what 50 open wallboards cost the gateway at 100 calls a second.
//!
//! The gateway runs in a child process (this binary in server mode) with a simulated
//! centre (`WALL_AGENTS` agents, default 400, answering in process; calls arriving at
//! `WALL_CALLS_PER_SEC`, default 100, each talking 3 s) and a queue board. The parent
//! reads the child's CPU time from `/proc`: for `WALL_SECS` (default 20) with no
//! wallboard open, then for as long again with `WALL_PAGES` (default 50) supervisor
//! connections reading every update. The difference is the wallboards' cost, as a share
//! of one core. Bounded: the child stops at the end of its input.
//!
//! Run: `cargo bench -p opencti-gateway --bench wallboard`

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{DesktopInterface, DesktopInterfaceExt, Event};
use tokio_tungstenite::tungstenite::Message;

mod harness;

use harness::env_or;

fn main() {
    if std::env::var("OPENCTI_WALL_SERVER").is_ok() {
        server();
    } else if std::env::args().any(|a| a == "--bench") || std::env::var("WALL_RUN").is_ok() {
        pages();
    }
    // `cargo test` runs benches with no `--bench`: nothing to do then.
}

/// The child's CPU time so far (user and system), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Server mode: the centre behind the gateway, a supervisor's token and the address on
/// stdout; calls start at `GO` and go on until the end of input.
fn server() {
    let agents = env_or("WALL_AGENTS", 400) as usize;
    let rate = env_or("WALL_CALLS_PER_SEC", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut builder = opencti_sim::SimSwitch::builder()
            .queue("sales")
            .queue("support");
        let names: Vec<(String, String)> = (1..=agents)
            .map(|i| (format!("agent{i:04}"), format!("{}", 10000 + i)))
            .collect();
        for (n, (agent, device)) in names.iter().enumerate() {
            let queues: &[&str] = if n % 2 == 0 { &["sales"] } else { &["support"] };
            builder = builder.agent(agent, device, queues);
        }
        let switch = builder.build().unwrap();
        let start = switch.now();
        let board = opencti_core::queue::QueueBoard::new(
            opencti_core::queue::QueueStats::new(start),
            start,
        );
        board.feed_stamped(switch.queue_events());
        let tokens = opencti_gateway::TokenTable::new();
        let gateway = opencti_gateway::Gateway::with_limits(
            Arc::new(tokens.clone()),
            Arc::new(opencti_gateway::SimSessions::new(switch.clone())),
            opencti_gateway::Limits::default().with_max_connections(256),
        )
        .with_queue_board(board);
        for (agent, device) in &names {
            let session = gateway
                .session(&opencti_gateway::Grant::agent(
                    opencti_core::AgentId::new(agent).unwrap(),
                    opencti_core::DeviceId::new(device).unwrap(),
                ))
                .await
                .unwrap();
            session.login().await.unwrap();
            session.ready().await.unwrap();
            // The agent answers every call at once.
            let mut events = session.subscribe();
            tokio::spawn(async move {
                while let Some(Ok(envelope)) = events.next().await {
                    if let Event::CallOffered { call, .. } = &envelope.event {
                        let _ = session.answer(call.clone()).await;
                    }
                }
            });
        }
        let token = tokens
            .issue_grant(
                opencti_gateway::Grant::supervisor(
                    opencti_core::AgentId::new("sam").unwrap(),
                    opencti_core::DeviceId::new("9999").unwrap(),
                ),
                None,
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { gateway.serve(listener).await });
        println!("{address}\n{}\nREADY", token.expose());
        std::io::stdout().flush().unwrap();
        let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                let _ = go_tx.send(line);
            }
        });
        let control = switch.control();
        if go_rx.recv().await.as_deref() != Some("GO") {
            return;
        }
        let calls = tokio::spawn(async move {
            let gap = Duration::from_secs_f64(1.0 / rate as f64);
            let mut next = tokio::time::Instant::now();
            for i in 0u64.. {
                next += gap;
                tokio::time::sleep_until(next).await;
                let queue = if i % 2 == 0 { "sales" } else { "support" };
                let _ = control
                    .customer_calls(queue, &format!("+4416329{:05}", i % 100_000))
                    .talk_for(Duration::from_secs(3))
                    .call();
            }
        });
        // The end of input ends the run.
        while go_rx.recv().await.is_some() {}
        calls.abort();
    });
}

fn pages() {
    let secs = env_or("WALL_SECS", 20);
    let pages = env_or("WALL_PAGES", 50);
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(exe)
        .env("OPENCTI_WALL_SERVER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let address = lines.next().unwrap().unwrap();
    let token = lines.next().unwrap().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let mut input = server.stdin.take().unwrap();
    writeln!(input, "GO").unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // Warm up: the centre fills with calls in progress.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = cpu_secs(pid);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let without = (cpu_secs(pid) - before) / secs as f64;

        let updates = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for _ in 0..pages {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
                .await
                .unwrap();
            let hello = serde_json::json!({"auth": {"token": token}}).to_string();
            ws.send(Message::Text(hello.into())).await.unwrap();
            let (updates, bytes) = (updates.clone(), bytes.clone());
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        if text.starts_with("{\"update\"") {
                            updates.fetch_add(1, Ordering::Relaxed);
                        }
                        bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (counted, sent) = (
            updates.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
        );
        let before = cpu_secs(pid);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let with = (cpu_secs(pid) - before) / secs as f64;
        let per_page =
            (updates.load(Ordering::Relaxed) - counted) as f64 / pages as f64 / secs as f64;
        let kib =
            (bytes.load(Ordering::Relaxed) - sent) as f64 / pages as f64 / secs as f64 / 1024.0;
        println!(
            "gateway CPU, no wallboard:      {:.1} % of one core",
            without * 100.0
        );
        println!(
            "gateway CPU, {pages} wallboards:   {:.1} % of one core",
            with * 100.0
        );
        println!(
            "the wallboards' cost:           {:.1} % of one core",
            (with - without) * 100.0
        );
        println!("each wallboard: {per_page:.1} updates/s, {kib:.1} KiB/s");
        for reader in readers {
            reader.abort();
        }
    });
    drop(input);
    let _ = server.wait();
}
