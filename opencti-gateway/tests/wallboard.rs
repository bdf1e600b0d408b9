//! The wallboard in a real browser: a busy period on the simulator (an hour's traffic at
//! 120 times speed, about 30 s), then every figure on the page against the simulated
//! switch's own counts; the supervisor's buttons; and a new caller on the page within a
//! second.
//!
//! Needs `chromium`, `node` and `e2e/node_modules` as `tests/browser.rs` does; skipped
//! with the reason printed elsewhere, a failure under `CI=true`.
//! `OPENCTI_SCREENSHOTS=<dir>` keeps the screenshot (the README's comes from this).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::queue::{QueueBoard, QueueStats};
use opencti_core::{AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Event, QueueId};
use opencti_gateway::{Gateway, Grant, Limits, NoCrm, SimSessions, TokenTable};
use opencti_sim::{QueueCounts, SimSwitch};
use serde_json::{json, Value};

mod e2e;

use e2e::Driver;

const QUEUES: [&str; 2] = ["sales", "support"];
/// 20 s, at 120 times speed.
const SERVICE_LEVEL: Duration = Duration::from_millis(167);
const SPEED: u64 = 120;

/// A small deterministic generator, so that the period is the same every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// `secs` of the centre's time, at the test's speed.
fn scaled(secs: u64) -> Duration {
    Duration::from_millis(secs * 1000 / SPEED)
}

/// Answers most calls after a few (scaled) seconds, lets some ring out, and is ready
/// again soon after the switch made them not ready for it, until `stop` is set.
fn agent_at_work(
    session: opencti_gateway::AgentLine,
    seed: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    tokio::spawn(async move {
        let mut dice = Dice(seed);
        let mut events = session.subscribe();
        while let Some(Ok(envelope)) = events.next().await {
            match &envelope.event {
                Event::CallOffered { call, .. } => {
                    if dice.next(8) == 0 {
                        continue;
                    }
                    let (session, call) = (session.clone(), call.clone());
                    let after = scaled(2 + dice.next(10));
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = session.answer(call).await;
                    });
                }
                Event::AgentStateChanged { state } if state.name() == "not_ready" => {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    let session = session.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(scaled(60)).await;
                        let _ = session.ready().await;
                    });
                }
                _ => {}
            }
        }
    });
}

/// What the page must show for a queue, from the switch's own counts.
fn expected(counts: &QueueCounts) -> Value {
    let known = counts.answered + counts.abandoned;
    let level = if known == 0 {
        "—".to_string()
    } else {
        format!(
            "{}%",
            (counts.answered_within as f64 / known as f64 * 100.0).round()
        )
    };
    let asa = if counts.answered == 0 {
        "—".to_string()
    } else {
        // As the board averages: whole milliseconds; then as the page shows them.
        let ms = (counts.wait_sum.as_micros() / u128::from(counts.answered) / 1000) as u64;
        if ms >= 10_000 {
            format!("{} s", (ms as f64 / 1000.0).round())
        } else {
            let tenths = (ms as f64 / 100.0).round() as u64;
            format!("{}.{} s", tenths / 10, tenths % 10)
        }
    };
    let a = &counts.agents;
    json!({
        "waiting": (counts.waiting + counts.ringing).to_string(),
        "offered": counts.offered.to_string(),
        "answered": counts.answered.to_string(),
        "abandoned": counts.abandoned.to_string(),
        "service_level": level,
        "asa": asa,
        "logged_in": a.logged_in.to_string(),
        "ready": a.ready.to_string(),
        "reserved": a.reserved.to_string(),
        "busy": a.busy.to_string(),
        "wrap_up": a.wrap_up.to_string(),
        "not_ready": a.not_ready.to_string(),
    })
}

/// Writes `value` to `dir/name` whole (through a temporary name), for the driver.
fn hand_over(dir: &std::path::Path, name: &str, value: &Value) {
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, value.to_string()).unwrap();
    std::fs::rename(part, dir.join(name)).unwrap();
}

fn quiet(switch: &SimSwitch) -> bool {
    QUEUES.iter().all(|q| {
        let c = switch.queue_counts(&QueueId::new(*q).unwrap()).unwrap();
        c.waiting == 0
            && c.ringing == 0
            && c.agents.busy == 0
            && c.agents.reserved == 0
            && c.agents.wrap_up == 0
            && c.agents.not_ready == 0
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_shows_the_switch_own_counts_after_a_busy_period() {
    if !e2e::can_run("the wallboard test", true, &["playwright-core"]) {
        return;
    }
    let mut builder = SimSwitch::builder();
    for queue in QUEUES {
        builder = builder
            .queue(queue)
            .ring_timeout(queue, scaled(12))
            .wrap_up(queue, scaled(25))
            .service_level(queue, SERVICE_LEVEL);
    }
    for n in 0..10 {
        let skills: &[&str] = match n % 3 {
            0 => &["sales"],
            1 => &["support"],
            _ => &["sales", "support"],
        };
        builder = builder.agent(&format!("agent{n}"), &format!("{}", 2000 + n), skills);
    }
    let switch = builder.build().unwrap();
    let start = switch.now();
    let mut stats = QueueStats::new(start);
    for queue in QUEUES {
        stats = stats.with_queue(QueueId::new(queue).unwrap(), SERVICE_LEVEL);
    }
    let board = QueueBoard::new(stats, start);
    board.feed_stamped(switch.queue_events());
    let tokens = TokenTable::new();
    let gateway = Gateway::with_crm(
        Arc::new(tokens.clone()),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(NoCrm),
    )
    .with_queue_board(board);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for n in 0..10u64 {
        let session = gateway
            .session(&Grant::agent(
                AgentId::new(format!("agent{n}")).unwrap(),
                DeviceId::new(format!("{}", 2000 + n)).unwrap(),
            ))
            .await
            .unwrap();
        session.login().await.unwrap();
        session.ready().await.unwrap();
        agent_at_work(session, 100 + n, stop.clone());
    }
    let supervisor = tokens
        .issue_grant(
            Grant::supervisor(AgentId::new("sam").unwrap(), DeviceId::new("2100").unwrap()),
            None,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/wallboard#token={}",
        listener.local_addr().unwrap(),
        supervisor.expose()
    );
    tokio::spawn(async move { gateway.serve(listener).await });
    let exchange = std::env::temp_dir().join(format!("opencti-wallboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&exchange);
    std::fs::create_dir_all(&exchange).unwrap();
    let shots = e2e::screenshots("opencti-wallboard");
    let mut driver = Driver::start(
        &[],
        "wallboard.mjs",
        &[
            url.as_str(),
            exchange.to_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    );

    let mut seen = Vec::new();
    let control = switch.control();
    while let Some(line) = driver.next().await {
        println!("{line}");
        seen.push(line.clone());
        if line == "OPEN" {
            // About 5 callers a minute for an hour, at 120 times speed.
            let mut dice = Dice(7);
            let mut caller = 0u64;
            for _minute in 0..60 {
                for _ in 0..(4 + dice.next(3)) {
                    let queue = QUEUES[dice.next(2) as usize];
                    caller += 1;
                    control
                        .customer_calls(queue, &format!("+4416329{caller:05}"))
                        .patience(scaled(10 + dice.next(90)))
                        .talk_for(scaled(30 + dice.next(120)))
                        .call()
                        .unwrap();
                    tokio::time::sleep(scaled(2 + dice.next(16))).await;
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !quiet(&switch) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the centre never went quiet"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let counts: serde_json::Map<String, Value> = QUEUES
                .iter()
                .map(|q| {
                    let c = switch.queue_counts(&QueueId::new(*q).unwrap()).unwrap();
                    println!("{q}: {c:?}");
                    assert!(c.offered > 100 && c.abandoned > 5, "{c:?}");
                    (q.to_string(), expected(&c))
                })
                .collect();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            hand_over(&exchange, "counts.json", &Value::Object(counts));
        } else if line == "NOT READY" {
            control
                .customer_calls("sales", "+441632999999")
                .patience(Duration::from_secs(60))
                .call()
                .unwrap();
            let joined_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            hand_over(
                &exchange,
                "caller.json",
                &json!({"queue": "sales", "joined_ms": joined_ms}),
            );
        } else if line == "DONE" {
            break;
        }
    }
    assert!(
        driver.succeeded(),
        "the wallboard driver failed after {seen:?}"
    );
    assert!(seen.iter().any(|l| l.starts_with("MATCHED")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("SHOWN")), "{seen:?}");
    let _ = std::fs::remove_dir_all(&exchange);
}
