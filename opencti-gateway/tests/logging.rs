//! Sign-ins, session starts, refusals (bad token, bad origin, connection cap) and link
//! changes are logged, and no token ever appears in the log, at any level.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Limits, SimSessions, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Captures every event and span field, at every level, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Capture {
    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        span.record(&mut Fields(&mut text));
        text.push('\n');
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(text, "{}", event.metadata().level());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Waits up to 5 s for `what` to be logged.
async fn logged(capture: &Capture, what: &str) {
    for _ in 0..100 {
        if capture.text().contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{:?} was not logged:\n{}", what, capture.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_refusals_and_link_changes_are_logged_without_tokens() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();

    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let tokens = TokenTable::new();
    let alice = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let gateway = Gateway::with_limits(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default().with_max_connections(3),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let url = format!("ws://{}/ws", address);
    tokio::spawn(async move { gateway.serve(listener).await });

    // A sign-in, and the session it starts.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = json!({"auth": {"token": alice.expose()}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a snapshot within 5 s");
        if let Some(Ok(Message::Text(text))) = next {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value.get("snapshot").is_some() {
                break;
            }
        }
    }
    logged(&capture, "session started").await;
    logged(&capture, "desktop connected").await;

    // The link goes down and comes back.
    let device = DeviceId::new("1001").unwrap();
    switch.control().drop_link(&device).unwrap();
    logged(&capture, "link down").await;
    switch.control().restore_link(&device).unwrap();
    logged(&capture, "link up").await;

    // A wrong token: a near miss of the real one.
    let guess = format!("{}0", &alice.expose()[..63]);
    let (mut wrong, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = json!({"auth": {"token": guess}}).to_string();
    wrong.send(Message::Text(hello.into())).await.unwrap();
    logged(&capture, "authentication refused").await;
    drop(wrong);

    // Another origin.
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    logged(&capture, "origin not allowed").await;

    // The connection cap: the agent's WebSocket and two silent sockets fill it.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buf = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(2), over.read(&mut buf)).await;
    logged(&capture, "too many connections").await;

    let log = capture.text();
    assert!(
        !log.contains(alice.expose()),
        "a token was logged:\n{}",
        log
    );
    assert!(
        !log.contains(&guess),
        "a presented token was logged:\n{}",
        log
    );
    assert!(
        !log.contains(&alice.expose()[..16]),
        "part of a token was logged"
    );
}
