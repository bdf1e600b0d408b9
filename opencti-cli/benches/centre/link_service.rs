//! The link service, a child process of the harness: every agent's session on the
//! simulator, served on NATS.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opencti_core::{AgentId, DeviceId, Session, Timestamp};
use opencti_nats::async_nats;
use opencti_nats::{LineService, Site};

use super::{agent_name, device_name, now_micros, queue_name, runtime, Settings, SITE};

/// One event as a local subscriber of the link service saw it.
pub(super) struct LocalSample {
    agent: u32,
    seq: u64,
    at: u64,
    latency: u64,
}

/// The link service: every agent's session on the simulator, served on NATS; a local
/// subscriber on each; the traffic when told `GO <micros>`; the samples into
/// `CENTRE_LOCAL_FILE` when told `STOP`.
pub(super) fn link_service() {
    let settings = Settings::from_env();
    let url = std::env::var("CENTRE_NATS").expect("CENTRE_NATS: the NATS URL");
    let out = PathBuf::from(std::env::var("CENTRE_LOCAL_FILE").expect("CENTRE_LOCAL_FILE"));
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    runtime(settings.threads).block_on(async move {
        let mut builder = opencti_sim::SimSwitch::builder();
        for q in 0..settings.queues {
            builder = builder.queue(&queue_name(q));
        }
        for i in 0..settings.agents {
            builder = builder.agent(
                &agent_name(i),
                &device_name(i),
                &[&queue_name(i % settings.queues)],
            );
        }
        let switch = builder.build().expect("the simulated centre");
        let client = async_nats::connect(&url).await.expect("NATS reachable");
        let site = Site::new(SITE).expect("a site name");
        let service = LineService::new(client, site);
        let samples: Arc<Mutex<Vec<LocalSample>>> = Arc::default();
        // No event is noted until the traffic starts; then those stamped after it.
        let go_at = Arc::new(AtomicU64::new(u64::MAX));
        let started = Instant::now();
        let lines = futures::stream::iter(0..settings.agents)
            .map(|i| {
                let (switch, service) = (switch.clone(), service.clone());
                async move {
                    let agent = AgentId::new(agent_name(i)).expect("an agent id");
                    let device = DeviceId::new(device_name(i)).expect("a device id");
                    let session =
                        Session::builder(Arc::new(switch.connector(device.clone())), agent, device)
                            .start()
                            .await
                            .expect("a session starts on the simulator");
                    let served = service
                        .serve(session.clone(), Timestamp::now())
                        .await
                        .expect("the line is served on NATS");
                    (i, session, served)
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let mut sessions = Vec::with_capacity(lines.len());
        let mut served = Vec::with_capacity(lines.len());
        for (i, session, line) in lines {
            // The in-process path: a subscriber of the session, in the same process as
            // the publisher.
            let mut events = opencti_core::DesktopInterface::subscribe(&session);
            let (samples, go_at) = (samples.clone(), go_at.clone());
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    let Ok(event) = event else { continue };
                    let received = Timestamp::now().as_micros();
                    let at = event.at.as_micros();
                    if at >= go_at.load(Ordering::Relaxed) {
                        samples.lock().expect("samples").push(LocalSample {
                            agent: i as u32,
                            seq: event.seq,
                            at,
                            latency: received.saturating_sub(at),
                        });
                    }
                }
            });
            sessions.push((i, session));
            served.push(line);
        }
        println!(
            "READY {} lines in {:.1} s",
            served.len(),
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::stdout().flush();
        let control = switch.control();
        while let Some(line) = lines_rx.recv().await {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("GO") => {
                    let at = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    go_at.store(at, Ordering::Relaxed);
                    let total = settings.rate * settings.secs;
                    let gap = Duration::from_secs_f64(1.0 / settings.rate as f64);
                    let mut next = tokio::time::Instant::now();
                    let mut failed = 0u64;
                    let mut behind = Duration::ZERO;
                    for n in 0..total {
                        next += gap;
                        tokio::time::sleep_until(next).await;
                        behind = behind.max(tokio::time::Instant::now() - next);
                        let queue = queue_name(n as usize % settings.queues);
                        let placed = control
                            .customer_calls(&queue, &format!("+4420{n:08}"))
                            .talk_for(settings.talk)
                            .call();
                        if placed.is_err() {
                            failed += 1;
                        }
                    }
                    println!(
                        "PLACED {total} {failed} {} {}",
                        now_micros(),
                        behind.as_micros()
                    );
                    let _ = std::io::stdout().flush();
                }
                Some("STOP") => {
                    let samples = std::mem::take(&mut *samples.lock().expect("samples"));
                    let mut text = String::with_capacity(samples.len() * 32);
                    for s in &samples {
                        text.push_str(&format!("E {} {} {} {}\n", s.agent, s.seq, s.at, s.latency));
                    }
                    // Each line's last seq, for the browsers' to be checked against.
                    for (i, session) in &sessions {
                        let seq = opencti_core::DesktopInterface::snapshot(session).seq;
                        text.push_str(&format!("F {i} {seq}\n"));
                    }
                    std::fs::write(&out, text).expect("the local samples file");
                    let stats = switch.control().stats();
                    println!("DONE {} {stats:?}", samples.len());
                    let _ = std::io::stdout().flush();
                }
                _ => {}
            }
        }
        drop(served);
    });
}
