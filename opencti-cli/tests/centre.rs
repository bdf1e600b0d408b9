//! A whole contact centre on the real Asterisk: `opencti serve` with the shipped example
//! deployment (`examples/deployments/asterisk.toml`), four agents at PJSIP desk phones
//! (headless baresip registered to the test PBX), two of them signed in from two
//! Chromium pages. A queue call is offered to the one who is ready, answered, consulted
//! to the other and transferred to them; both panels show it, and Asterisk's own
//! channels agree. Then `core restart now`: both desks see the link drop and come back
//! and end with what Asterisk has. The example's supervisor follows the queue on the
//! wallboard's feed throughout: one caller offered and answered, nobody waiting, before
//! and after the restart (and Asterisk's `QueueSummary` agrees); and listens in on Bob's
//! call, then whispers, then barges, each a ChanSpy on the supervisor's own phone.
//!
//! Needs the test PBX (`.ci/run` starts it), baresip, Chromium, node and the gateway's
//! `e2e/node_modules`. Without one of them the test is skipped with the reason printed,
//! except under `CI=true`, where that is a failure.

mod common;
#[path = "../../opencti-gateway/tests/e2e/mod.rs"]
mod e2e;
#[path = "../../opencti-asterisk-ami/tests/live/pbx.rs"]
mod pbx;
#[path = "../../opencti-asterisk-ami/tests/live/phone.rs"]
mod phone;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use common::Killed;
use pbx::Pbx;
use phone::{baresip_installed, Answer, Phone};

/// The example file's agents used here, with the demo passwords it documents.
const FIRST: &str = "alice:alice-demo";
/// Alice's desk phone.
const FIRST_EXTEN: &str = "1001";
const SECOND: &str = "bob:bob-demo";
/// Bob's desk phone, as the consult target.
const SECOND_EXTEN: &str = "1002";
/// The queue the example's agents work in, and how a customer reaches it.
const QUEUE: &str = "sales";
const QUEUE_EXTEN: &str = "3001";
const CUSTOMER: &str = "2468";
const CUSTOMER_NAME: &str = "Customer";
/// The example supervisor's phone.
const SUPERVISOR_EXTEN: &str = "1009";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example deployment, copied beside its secret file, listening on a free port.
fn example_deployment(dir: &Path) -> PathBuf {
    let examples = repository().join("examples/deployments");
    let text = std::fs::read_to_string(examples.join("asterisk.toml"))
        .unwrap_or_else(|e| panic!("the example deployment: {e}"));
    let text = text.replace("address = \"127.0.0.1:8080\"", "address = \"127.0.0.1:0\"");
    assert!(
        text.contains("127.0.0.1:0"),
        "the example listens elsewhere now"
    );
    std::fs::write(dir.join("centre.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        examples.join("test-asterisk-ami-secret"),
        dir.join("test-asterisk-ami-secret"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    dir.join("centre.toml")
}

/// The browser's milestone lines.
type Milestones = std::io::Lines<BufReader<ChildStdout>>;

/// Waits for the browser's next milestones, `steps` in order (off the runtime: the
/// pipe blocks); panics on anything else.
async fn milestones(mut lines: Milestones, steps: &'static [&'static str]) -> Milestones {
    tokio::task::spawn_blocking(move || {
        for step in steps {
            match lines.next() {
                Some(Ok(line)) if line == *step => {}
                other => panic!("the panels: expected {step}, got {other:?}"),
            }
        }
        lines
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The agent state a desk must show for `interface`'s membership of the queue.
fn desk_state(members: &[pbx::Member], interface: &str) -> &'static str {
    match members.iter().find(|m| m.interface == interface) {
        None => "logged_out",
        Some(m) if m.paused => "not_ready",
        Some(_) => "ready",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_panels_take_a_queue_call_through_a_consult_transfer_and_a_restart() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    if !e2e::can_run("the panels of the centre", true, &["playwright-core"]) {
        return;
    }
    // The example's four agents, each at an auto-answering desk phone that rings for a
    // moment first, so that the panels see the call offered.
    let mut phones = Vec::new();
    for ext in ["1001", "1002", "1003", "1004"] {
        phones.push(Phone::start(ext, Answer::AfterRing(Duration::from_secs(2))).await);
    }
    // The supervisor's own phone, where listening in rings.
    phones.push(Phone::start(SUPERVISOR_EXTEN, Answer::Auto).await);
    let dir = std::env::temp_dir().join(format!("opencti-centre-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    // Every AMI event of the run, as Asterisk sent it, for a failure to be replayed.
    let mut raw = pbx.raw_events();
    let mut recording =
        std::fs::File::create(dir.join("ami-events.txt")).unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok(event) = raw.recv().await {
            let _ = write!(recording, "{}\r\n", event.as_str());
        }
    });
    eprintln!(
        "the AMI events and opencti serve's log go to {}",
        dir.display()
    );
    let log = dir.join("serve.log");
    let (_served, url) = common::serve(&example_deployment(&dir), &["--log", "debug"], Some(&log));

    // The supervisor follows the queue from the start.
    let address = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {url}"))
        .to_string();
    let sales = supervisor_follows(&address, QUEUE).await;

    let mut browser = Command::new("node")
        .current_dir(e2e::e2e_dir())
        .args([
            "centre.mjs",
            &url,
            FIRST,
            FIRST_EXTEN,
            SECOND,
            SECOND_EXTEN,
            CUSTOMER_NAME,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let mut stdin = browser.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let stdout = browser.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let browser = Killed(browser);
    let lines = milestones(BufReader::new(stdout).lines(), &["READY"]).await;

    // Both agents are in the queue, one ready and one not.
    let members = pbx.queue_members(QUEUE).await;
    assert_eq!(desk_state(&members, "PJSIP/1001"), "ready", "{members:?}");
    assert_eq!(
        desk_state(&members, "PJSIP/1002"),
        "not_ready",
        "{members:?}"
    );
    pbx.customer_calls("from-customers", QUEUE_EXTEN, CUSTOMER)
        .await;
    let lines = milestones(lines, &["ANSWERED", "CONSULTED", "TRANSFERRED"]).await;

    // Asterisk agrees: the customer is bridged with Bob's phone, Alice's phone is free.
    let channels = pbx.list("CoreShowChannels", &[]).await;
    let field =
        |m: &opencti_asterisk_ami::Message, key: &str| m.get(key).unwrap_or_default().to_string();
    let names: Vec<String> = channels.iter().map(|c| field(c, "Channel")).collect();
    let bridge_of = |prefix: &str| {
        channels
            .iter()
            .find(|c| field(c, "Channel").starts_with(prefix))
            .map(|c| field(c, "BridgeId"))
    };
    let bob =
        bridge_of("PJSIP/1002-").unwrap_or_else(|| panic!("no channel on Bob's phone: {names:?}"));
    assert!(
        !bob.is_empty()
            && channels
                .iter()
                .any(|c| field(c, "CallerIDNum") == CUSTOMER && field(c, "BridgeId") == bob),
        "the customer is not bridged with Bob's phone: {names:?}"
    );
    assert!(
        bridge_of("PJSIP/1001-").is_none(),
        "Alice's phone still has a channel: {names:?}"
    );

    // The supervisor's wallboard agrees: one caller came, was answered, nobody waits.
    wait_for_figures(&sales, "after the transfer", |f| {
        f["offered"] == 1
            && f["answered"] == 1
            && f["waiting"] == 0
            && f["ringing"] == 0
            && f["agents"]["logged_in"] == 2
            && f["agents"]["busy"].as_u64() >= Some(1)
    })
    .await;
    let summary = pbx.list("QueueSummary", &[("Queue", QUEUE)]).await;
    assert_eq!(
        summary.first().and_then(|m| m.get("Callers")),
        Some("0"),
        "Asterisk's own summary: {summary:?}"
    );

    assert_eq!(
        *sales.can_monitor.lock().unwrap_or_else(|e| e.into_inner()),
        Some(true),
        "the wallboard is told that Asterisk can listen in"
    );
    // The supervisor listens in on Bob's call, then whispers, then barges: each time
    // Asterisk rings the supervisor's phone, which runs ChanSpy on Bob's phone with that
    // mode's options.
    for (n, (mode, options)) in [("listen", "qE"), ("whisper", "qEw"), ("barge", "qEB")]
        .into_iter()
        .enumerate()
    {
        let reply = sales
            .supervise(
                &format!("m{n}"),
                serde_json::json!({"type": "monitor", "agent": "bob", "mode": mode}),
            )
            .await;
        assert_eq!(reply["done"], true, "{mode}: {reply}");
        let (spy, data) = spy_channel(&pbx, &format!("PJSIP/{SUPERVISOR_EXTEN}")).await;
        assert_eq!(data, format!("PJSIP/{SECOND_EXTEN}-,{options}"), "{mode}");
        pbx.send("Hangup", &[("Channel", &spy)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pbx
            .list("CoreShowChannels", &[])
            .await
            .iter()
            .any(|c| c.get("Channel") == Some(spy.as_str()))
        {
            assert!(tokio::time::Instant::now() < deadline, "{spy} stays");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let lines = milestones(lines, &["RESTART"]).await;
    pbx.cli("core restart now");
    let mut lines = milestones(lines, &["RESTARTED"]).await;
    // What Asterisk has after its restart is what the desks must come to show.
    pbx.wait_until_back().await;
    let members = pbx.queue_members(QUEUE).await;
    let expected = format!(
        "EXPECT alice={} bob={}",
        desk_state(&members, "PJSIP/1001"),
        desk_state(&members, "PJSIP/1002")
    );
    writeln!(stdin, "{expected}").unwrap_or_else(|e| panic!("{e}"));
    let done = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&done, Some(Ok(line)) if line == "DONE"),
        "the desks after the restart ({expected}; queue {QUEUE}: {members:?}): {done:?}; opencti serve's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // After the restart the board was rebuilt from Asterisk's QueueStatus: still nobody
    // waits, the answered call still counts, and the agents logged in are those Asterisk
    // has as members of the queue now.
    let logged_in = ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/1004"]
        .iter()
        .filter(|interface| desk_state(&members, interface) != "logged_out")
        .count() as u64;
    wait_for_figures(&sales, "after the restart", |f| {
        f["waiting"] == 0 && f["answered"] == 1 && f["agents"]["logged_in"] == logged_in
    })
    .await;
    drop(browser);
    drop(phones);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example's supervisor, signed in over the wallboard's WebSocket: the latest figures
/// of one queue as their connection leaves them, and their commands.
struct Supervisor {
    figures: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
    /// What the wallboard was told: whether supervisors can listen in.
    can_monitor: std::sync::Arc<std::sync::Mutex<Option<bool>>>,
    replies: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    requests: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Supervisor {
    /// Sends a supervisor command and waits (up to 15 s) for its reply.
    async fn supervise(&self, id: &str, command: serde_json::Value) -> serde_json::Value {
        let request = serde_json::json!({"id": id, "supervise": command}).to_string();
        self.requests
            .send(request)
            .unwrap_or_else(|e| panic!("the supervisor's connection: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(reply) = self
                .replies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id)
            {
                return reply;
            }
            assert!(tokio::time::Instant::now() < deadline, "no reply to {id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Signs the example's supervisor in and follows `queue`.
async fn supervisor_follows(address: &str, queue: &'static str) -> Supervisor {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (status, body) = common::post(
        address,
        "/api/sign-in",
        r#"{"agent":"sam","password":"sam-demo"}"#,
    );
    assert_eq!(status, 200, "the supervisor's sign-in: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(json["role"], "supervisor");
    let token = json["token"].as_str().unwrap_or_default().to_string();
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut sink, mut stream) = ws.split();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    sink.send(Message::Text(hello.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (requests, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let supervisor = Supervisor {
        figures: Default::default(),
        can_monitor: Default::default(),
        replies: Default::default(),
        requests,
    };
    let (figures, replies, can_monitor) = (
        supervisor.figures.clone(),
        supervisor.replies.clone(),
        supervisor.can_monitor.clone(),
    );
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Ok(text) = message.into_text() else {
                continue;
            };
            let message: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(whole) = message.get("centre") {
                *can_monitor.lock().unwrap_or_else(|e| e.into_inner()) =
                    whole["can_monitor"].as_bool();
            }
            if let Some(id) = message["reply"]["id"].as_str() {
                replies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_string(), message["reply"].clone());
            }
            let body = message.get("centre").or_else(|| message.get("update"));
            let queues = body.and_then(|b| {
                b["queues"]["queues"]
                    .as_array()
                    .or_else(|| b["queues"].as_array())
                    .cloned()
            });
            for found in queues.into_iter().flatten() {
                if found["queue"] == queue {
                    *figures.lock().unwrap_or_else(|e| e.into_inner()) = found;
                }
            }
        }
    });
    supervisor
}

/// Waits (up to 15 s) until Asterisk has a channel on `device` running ChanSpy, and
/// answers its name and ChanSpy's argument.
async fn spy_channel(pbx: &Pbx, device: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let channels = pbx.list("CoreShowChannels", &[]).await;
        let spy = channels.iter().find(|c| {
            c.get("Channel")
                .unwrap_or_default()
                .starts_with(&format!("{device}-"))
                && c.get("Application") == Some("ChanSpy")
        });
        if let Some(spy) = spy {
            return (
                spy.get("Channel").unwrap_or_default().to_string(),
                spy.get("ApplicationData").unwrap_or_default().to_string(),
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ChanSpy on {device}: {:?}",
            channels
                .iter()
                .map(|c| format!(
                    "{} {}",
                    c.get("Channel").unwrap_or_default(),
                    c.get("Application").unwrap_or_default()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 15 s) until the followed figures satisfy `wanted`.
async fn wait_for_figures(
    supervisor: &Supervisor,
    when: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = supervisor
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if wanted(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the supervisor's figures {when}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
