//! Captures from the real PBX: scenarios played on Asterisk while a plain AMI connection
//! records every byte it sends (as the captures in `tests/fixtures/` were made), then fed
//! to the translator. The canonical events must be what the committed capture of the
//! same scenario gives (`tests/translate_captures.rs`), so the fixtures and the scripted
//! server built on them keep modelling this Asterisk.
//!
//! `OPENCTI_RECORD_CAPTURES=1` writes the fresh captures into `tests/fixtures/` (the raw
//! bytes and a `.summary.json` with the counts `tests/captures.rs` checks).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opencti_asterisk_ami::{Frame, PushDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::common;
use super::pbx::{Pbx, AMI_ADDRESS, AMI_SECRET, AMI_USER, WAIT};
use super::phone::{baresip_installed, Answer, Phone};

/// A plain AMI connection that logs in with every event class on and keeps every byte.
struct Recorder {
    write: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let stream = TcpStream::connect(AMI_ADDRESS)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut read, mut write) = stream.into_split();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = read.read(&mut chunk).await {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        let login = format!(
            "Action: Login\r\nActionID: capture-1\r\nUsername: {AMI_USER}\r\nSecret: {AMI_SECRET}\r\nEvents: on\r\n\r\n"
        );
        write
            .write_all(login.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let recorder = Recorder {
            write,
            bytes,
            reader,
        };
        recorder.wait_for(b"Authentication accepted").await;
        recorder
    }

    async fn wait_for(&self, needle: &[u8]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            {
                let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the recorder never saw {:?}",
                String::from_utf8_lossy(needle)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Logs off and returns everything Asterisk sent.
    async fn finish(mut self) -> Vec<u8> {
        let _ = self
            .write
            .write_all(b"Action: Logoff\r\nActionID: capture-2\r\n\r\n")
            .await;
        let _ = tokio::time::timeout(WAIT, &mut self.reader).await;
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        bytes.clone()
    }
}

/// Writes the capture and its summary into `tests/fixtures/` when asked to.
fn keep(name: &str, description: &str, bytes: &[u8]) {
    if std::env::var_os("OPENCTI_RECORD_CAPTURES").is_none() {
        return;
    }
    let mut decoder = PushDecoder::new();
    decoder.push(bytes);
    let (mut banner, mut messages, mut responses, mut events) = (String::new(), 0, 0, 0);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for frame in decoder.frames() {
        match frame {
            Ok(Frame::Banner(b)) => banner = b.line().to_string(),
            Ok(Frame::Message(m)) => {
                messages += 1;
                if m.is_event() {
                    events += 1;
                    *counts
                        .entry(m.event().unwrap_or_default().to_string())
                        .or_default() += 1;
                }
                // As the shared summaries count them: `OriginateResponse` (an event
                // with a `Response` header) among the responses too.
                if m.response().is_some() {
                    responses += 1;
                }
            }
            Err(e) => panic!("{name}: the capture does not decode: {e}"),
        }
    }
    let summary = serde_json::json!({
        "scenario": name,
        "description": description,
        "ok": true,
        "error": null,
        "banner": banner,
        "bytes_received": bytes.len(),
        "messages": messages,
        "responses": responses,
        "events": events,
        "event_counts": counts,
    });
    let dir = common::fixtures_dir();
    std::fs::write(dir.join(format!("{name}.txt")), bytes).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join(format!("{name}.summary.json")),
        serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("wrote {}/{name}.txt", dir.display());
}

/// The canonical events of a capture with the call ids taken out, for comparing two
/// captures of the same scenario: every event in order, except parties. Whether
/// Asterisk reports the far end leaving the bridge before or after a transfer, after the
/// agent's leg hung up (then the desk's call has ended and no `party_left` follows) or
/// not at all varies from run to run; four orders were seen for the same transfer. So
/// `party_left` is left out and `party_joined` compared as a count.
fn shapes(events: &[String]) -> Vec<String> {
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            let mut words: Vec<&str> = e.split(' ').collect();
            if words.len() > 1 && !words[0].starts_with("agent_state") {
                words.remove(1);
            }
            words.join(" ")
        })
        .filter(|n| n != "party_left")
        .collect();
    let joined = names.iter().filter(|n| *n == "party_joined").count();
    // Asterisk publishes device state (the agent's ready, busy, ...) from a queue of its
    // own, so where it falls among the call's events varies from run to run: the two are
    // compared each in its own order.
    let (agent, call): (Vec<String>, Vec<String>) = names
        .into_iter()
        .filter(|n| n != "party_joined")
        .partition(|n| n.starts_with("agent_state"));
    call.into_iter()
        .chain(agent)
        .chain(std::iter::once(format!("{joined} party_joined")))
        .collect()
}

/// The shapes the committed capture `name` gives for `device` in `queues`.
fn committed_shapes(name: &str, device: &str, queues: &[&str]) -> Vec<String> {
    let (events, _) = common::canonical_events(
        &common::fixture(&format!("{name}.txt")),
        common::translator(device, queues),
    );
    shapes(&events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_party_call_still_looks_as_captured() {
    let Some(pbx) = Pbx::take().await else { return };
    let recorder = Recorder::start().await;
    // As capture 05: click-to-dial from Local/1001@agents to 2000, hung up by the agent.
    pbx.send(
        "Originate",
        &[
            ("Channel", "Local/1001@agents"),
            ("Context", "from-agents"),
            ("Exten", "2000"),
            ("Priority", "1"),
            ("Async", "true"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    recorder.wait_for(b"Event: BridgeEnter").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let agent = pbx
        .channels()
        .await
        .into_iter()
        .find(|c| c.name.starts_with("Local/1001@agents") && c.name.ends_with(";1"))
        .unwrap_or_else(|| panic!("no agent leg"));
    pbx.send("Hangup", &[("Channel", &agent.name), ("Cause", "16")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pbx.clear().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = recorder.finish().await;
    let (events, t) = common::canonical_events(
        &bytes,
        common::translator("Local/1001@agents", &["support"]),
    );
    assert_eq!(
        shapes(&events),
        committed_shapes("05_two_party_call", "Local/1001@agents", &["support"]),
        "capture 05 no longer models this Asterisk: {events:?}"
    );
    assert_eq!(t.open_calls(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_call_to_a_pjsip_phone() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let mut phone = Phone::start("1001", Answer::AfterRing(Duration::from_secs(1))).await;
    let recorder = Recorder::start().await;
    pbx.send(
        "QueueAdd",
        &[
            ("Queue", "sales"),
            ("Interface", "PJSIP/1001"),
            ("MemberName", "Agent 1001"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pbx.customer_calls("from-customers", "3001", "+441632960120")
        .await;
    phone.expect("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for c in pbx.channels().await {
        if c.name.starts_with("Local/3001@from-customers") && c.name.ends_with(";1") {
            let _ = pbx.send("Hangup", &[("Channel", &c.name)]).await;
        }
    }
    phone.expect("CALL_CLOSED").await;
    pbx.send(
        "QueueRemove",
        &[("Queue", "sales"), ("Interface", "PJSIP/1001")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pbx.clear().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = recorder.finish().await;
    keep(
        "20_pjsip_queue_call",
        "Queue call to a PJSIP desk phone: QueueAdd sales PJSIP/1001 (baresip, answers after ringing 1 s); a customer (Originate Local/3001@from-customers, Application Wait) joins queue sales; the queue rings PJSIP/1001, the phone answers; 1 s later the customer hangs up; QueueRemove.",
        &bytes,
    );
    let (events, t) =
        common::canonical_events(&bytes, common::translator("PJSIP/1001", &["sales"]));
    assert_eq!(
        shapes(&events),
        committed_shapes("20_pjsip_queue_call", "PJSIP/1001", &["sales"]),
        "{events:?}"
    );
    assert_eq!(t.open_calls(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_transfer_pressed_on_a_pjsip_phone() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let mut phone = Phone::start("1001", Answer::Auto).await;
    let recorder = Recorder::start().await;
    pbx.send(
        "Originate",
        &[
            ("Channel", "PJSIP/1001"),
            ("Context", "pjsip-agents"),
            ("Exten", "2000"),
            ("Priority", "1"),
            ("ChannelId", "opencti-capture-21"),
            ("Async", "true"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    phone.expect("CALL_ESTABLISHED").await;
    recorder.wait_for(b"Event: BridgeEnter").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phone.press("hold", None).await;
    recorder.wait_for(b"Event: Hold").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    phone.press("resume", None).await;
    recorder.wait_for(b"Event: Unhold").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    phone
        .press("transfer", Some("sip:2005@127.0.0.1:5080"))
        .await;
    phone.expect("CALL_CLOSED").await;
    recorder.wait_for(b"Event: BlindTransfer").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pbx.clear().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = recorder.finish().await;
    keep(
        "21_pjsip_phone_hold_and_transfer",
        "Hold and blind transfer pressed on a PJSIP desk phone: Originate PJSIP/1001 (baresip, auto-answer) to pjsip-agents 2000 (ChannelId opencti-capture-21) -> customer Local/2000@customers answers; the phone puts the call on hold (re-INVITE sendonly: Hold), resumes it (Unhold), then transfers it blind to 2005 (REFER: BlindTransfer); the customer talks to 2005; then everything is hung up.",
        &bytes,
    );
    let (events, t) = common::canonical_events(&bytes, common::translator("PJSIP/1001", &[]));
    assert_eq!(
        shapes(&events),
        committed_shapes("21_pjsip_phone_hold_and_transfer", "PJSIP/1001", &[]),
        "{events:?}"
    );
    assert_eq!(t.open_calls(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consult_transfer_between_two_pjsip_phones() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let mut alice = Phone::start("1001", Answer::AfterRing(Duration::from_secs(1))).await;
    let mut bob = Phone::start("1002", Answer::AfterRing(Duration::from_secs(1))).await;
    let recorder = Recorder::start().await;
    pbx.send(
        "QueueAdd",
        &[
            ("Queue", "sales"),
            ("Interface", "PJSIP/1001"),
            ("MemberName", "Agent 1001"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pbx.customer_calls("from-customers", "3001", "+441632960121")
        .await;
    alice.expect("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // What the connector's consult and complete_transfer send: Atxfer, then the
    // transferer's hangup.
    let transferer = pbx
        .channels()
        .await
        .into_iter()
        .find(|c| c.name.starts_with("PJSIP/1001-"))
        .unwrap_or_else(|| panic!("no channel on PJSIP/1001"))
        .name;
    pbx.send(
        "Atxfer",
        &[
            ("Channel", &transferer),
            ("Exten", "1002"),
            ("Context", "pjsip-agents"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    bob.expect("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pbx.send("Hangup", &[("Channel", &transferer)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    alice.expect("CALL_CLOSED").await;
    recorder.wait_for(b"Event: AttendedTransfer").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for c in pbx.channels().await {
        if c.name.starts_with("Local/3001@from-customers") && c.name.ends_with(";1") {
            let _ = pbx.send("Hangup", &[("Channel", &c.name)]).await;
        }
    }
    bob.expect("CALL_CLOSED").await;
    pbx.send(
        "QueueRemove",
        &[("Queue", "sales"), ("Interface", "PJSIP/1001")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    pbx.clear().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = recorder.finish().await;
    keep(
        "22_pjsip_consult_transfer",
        "Consult transfer between two PJSIP desk phones: QueueAdd sales PJSIP/1001 (baresip, answers after ringing 1 s); a customer (Originate Local/3001@from-customers, Application Wait, caller +441632960121) joins queue sales and PJSIP/1001 answers; Atxfer of PJSIP/1001's channel to 1002@pjsip-agents (Local/1002@pjsip-agents, then PJSIP/1002, answering after 1 s); 1 s later PJSIP/1001's channel is hung up, which completes the transfer (the Local channel optimizes away, PJSIP/1002 swaps into the customer's bridge); 1 s later the customer hangs up; QueueRemove.",
        &bytes,
    );
    // How many times the consultation's far end joins varies too here (three or four
    // `party_joined` for the transferer, as the Local channel's caller id changes before
    // or after it is bridged), so the calls' courses are compared without the parties;
    // who is left in the call is checked on the committed capture
    // (`tests/translate_captures.rs`).
    let course = |shapes: Vec<String>| -> Vec<String> {
        shapes
            .into_iter()
            .filter(|s| !s.ends_with("party_joined"))
            .collect()
    };
    for (device, queues) in [("PJSIP/1001", &["sales"][..]), ("PJSIP/1002", &[][..])] {
        let (events, t) = common::canonical_events(&bytes, common::translator(device, queues));
        assert_eq!(
            course(shapes(&events)),
            course(committed_shapes(
                "22_pjsip_consult_transfer",
                device,
                queues
            )),
            "{device}: {events:?}"
        );
        assert_eq!(t.open_calls(), (0, 0), "{device}");
    }
}
