//! The gateway over real WebSocket connections on loopback.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Limits, Security, SimSessions, Token, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Fixture {
    url: String,
    alice: Token,
    bob: Token,
    switch: SimSwitch,
}

async fn start(limits: Limits) -> Fixture {
    start_with(limits, Security::default()).await
}

async fn start_with(limits: Limits, security: Security) -> Fixture {
    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .agent("bob", "1002", &["support"])
        .build()
        .unwrap();
    let tokens = TokenTable::new();
    let alice = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let bob = tokens
        .issue(AgentId::new("bob").unwrap(), DeviceId::new("1002").unwrap())
        .unwrap();
    let gateway = Gateway::with_limits(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        limits,
    )
    .with_security(security);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve(listener).await });
    Fixture {
        url,
        alice,
        bob,
        switch,
    }
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next message that satisfies `wanted`, within 5 s.
async fn until(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {} within 5 s", what));
        match next {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if wanted(&value) {
                    return value;
                }
            }
            Some(Ok(Message::Close(_))) | None => panic!("closed while waiting for {}", what),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{} while waiting for {}", e, what),
        }
    }
}

async fn reply(ws: &mut Ws, id: &str) -> Value {
    until(ws, &format!("reply {}", id), |m| m["reply"]["id"] == id).await["reply"].clone()
}

async fn logged_in(url: &str, token: &Token) -> Ws {
    let mut ws = connect(url).await;
    send(&mut ws, json!({"auth": {"token": token.expose()}})).await;
    let snapshot = until(&mut ws, "snapshot", |m| m.get("snapshot").is_some()).await;
    assert_eq!(snapshot["snapshot"]["link"], "up");
    ws
}

/// Whether the server closes the connection within 5 s (after any messages).
async fn closes(ws: &mut Ws) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => seen.push(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return seen,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection stayed open; saw {:?}", seen),
        }
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_connection_closed() {
    let f = start(Limits::default()).await;
    let mut ws = connect(&f.url).await;
    send(&mut ws, json!({"auth": {"token": "not-a-token"}})).await;
    let seen = closes(&mut ws).await;
    assert_eq!(seen.len(), 1, "{:?}", seen);
    assert_eq!(seen[0]["reply"]["error"]["kind"], "unauthorized");
    assert!(
        !seen[0].to_string().contains("not-a-token"),
        "the token is not echoed"
    );
}

#[tokio::test]
async fn commands_before_authentication_are_refused() {
    let f = start(Limits::default()).await;
    let mut ws = connect(&f.url).await;
    send(&mut ws, json!({"id": "r1", "command": {"type": "login"}})).await;
    let seen = closes(&mut ws).await;
    assert_eq!(seen[0]["reply"]["error"]["kind"], "unauthorized");
    assert!(seen.iter().all(|m| m.get("snapshot").is_none()));
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_auth_timeout() {
    let mut limits = Limits::default();
    limits.auth_timeout = Duration::from_millis(200);
    let f = start(limits).await;
    let mut ws = connect(&f.url).await;
    let seen = closes(&mut ws).await;
    assert_eq!(seen[0]["reply"]["error"]["kind"], "unauthorized");
}

#[tokio::test]
async fn an_agent_works_its_own_desk_and_cannot_touch_another_agents_calls() {
    let f = start(Limits::default()).await;
    let mut alice = logged_in(&f.url, &f.alice).await;
    let mut bob = logged_in(&f.url, &f.bob).await;
    send(&mut alice, json!({"id": "1", "command": {"type": "login"}})).await;
    reply(&mut alice, "1").await;
    send(
        &mut alice,
        json!({"id": "2", "command": {"type": "set_agent_state", "state": {"state": "ready"}}}),
    )
    .await;
    assert!(reply(&mut alice, "2").await["confirmed"].is_object());

    f.switch
        .control()
        .customer_calls("support", "+441632960001")
        .call()
        .unwrap();
    let offered = until(&mut alice, "call_offered", |m| {
        m["event"]["type"] == "call_offered"
    })
    .await;
    let call = offered["event"]["call"].as_str().unwrap().to_string();

    // Bob names Alice's call: his session has no such call.
    send(
        &mut bob,
        json!({"id": "steal", "command": {"type": "answer", "call": call}}),
    )
    .await;
    let refused = reply(&mut bob, "steal").await;
    assert_eq!(refused["error"]["kind"], "not_found");
    send(
        &mut bob,
        json!({"id": "snap", "query": {"type": "snapshot"}}),
    )
    .await;
    let snap = reply(&mut bob, "snap").await;
    assert_eq!(snap["snapshot"]["agent"], "bob");
    assert_eq!(snap["snapshot"]["calls"], json!([]));

    send(
        &mut alice,
        json!({"id": "3", "command": {"type": "answer", "call": call}}),
    )
    .await;
    assert!(reply(&mut alice, "3").await["confirmed"].is_object());
}

#[tokio::test]
async fn malformed_oversized_binary_and_excess_requests_get_typed_errors() {
    let limits = Limits::default()
        .with_rate(5.0, 5.0)
        .with_max_message_bytes(1024);
    let f = start(limits).await;
    let mut alice = logged_in(&f.url, &f.alice).await;

    alice.send(Message::Text("{not json".into())).await.unwrap();
    let bad = until(&mut alice, "error", |m| m["reply"]["error"].is_object()).await;
    assert_eq!(bad["reply"]["error"]["kind"], "bad_input");

    alice
        .send(Message::Text("x".repeat(2048).into()))
        .await
        .unwrap();
    let big = until(&mut alice, "error", |m| m["reply"]["error"].is_object()).await;
    assert_eq!(big["reply"]["error"]["kind"], "bad_input");
    assert!(big["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 1024"));

    alice
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let binary = until(&mut alice, "error", |m| m["reply"]["error"].is_object()).await;
    assert!(binary["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("text frames"));

    for i in 0..20 {
        send(
            &mut alice,
            json!({"id": format!("q{}", i), "query": {"type": "capabilities"}}),
        )
        .await;
    }
    let limited = until(&mut alice, "rate limit", |m| {
        m["reply"]["error"]["kind"] == "rate_limited"
    })
    .await;
    assert!(limited["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requests a second"));

    // The connection survives all of it, and so does everyone else's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(
        &mut alice,
        json!({"id": "after", "query": {"type": "snapshot"}}),
    )
    .await;
    assert!(reply(&mut alice, "after").await["snapshot"].is_object());
    let mut bob = logged_in(&f.url, &f.bob).await;
    send(
        &mut bob,
        json!({"id": "b", "query": {"type": "capabilities"}}),
    )
    .await;
    assert!(reply(&mut bob, "b").await["capabilities"].is_object());
}

#[tokio::test]
async fn a_reconnecting_browser_finds_its_session_as_it_left_it() {
    let f = start(Limits::default()).await;
    let mut first = logged_in(&f.url, &f.alice).await;
    send(&mut first, json!({"id": "1", "command": {"type": "login"}})).await;
    reply(&mut first, "1").await;
    drop(first);
    let mut again = connect(&f.url).await;
    send(&mut again, json!({"auth": {"token": f.alice.expose()}})).await;
    let snapshot = until(&mut again, "snapshot", |m| m.get("snapshot").is_some()).await;
    assert_eq!(snapshot["snapshot"]["agent_state"]["state"], "not_ready");
}

/// Opens the WebSocket with `origin` as the browser's `Origin` header.
async fn connect_from(
    url: &str,
    origin: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let connecting = tokio_tungstenite::connect_async(request);
    tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .expect("an answer within 5 s")
        .map(|(ws, _)| ws)
}

fn refused_with_403(result: Result<Ws, tokio_tungstenite::tungstenite::Error>) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("refused, but not with 403: {}", other),
        Ok(_) => panic!("the WebSocket was opened"),
    }
}

#[tokio::test]
async fn another_origin_is_refused_before_the_upgrade() {
    let f = start(Limits::default()).await;
    refused_with_403(connect_from(&f.url, "http://evil.example").await);
    refused_with_403(connect_from(&f.url, "null").await);
    // The gateway's own origin works, with the token.
    let own = f.url.replace("ws://", "http://").replace("/ws", "");
    let mut ws = connect_from(&f.url, &own).await.unwrap();
    send(&mut ws, json!({"auth": {"token": f.alice.expose()}})).await;
    until(&mut ws, "snapshot", |m| m.get("snapshot").is_some()).await;
    // So does a client with no Origin at all (a native one).
    logged_in(&f.url, &f.bob).await;
}

#[tokio::test]
async fn a_listed_crm_origin_may_open_the_websocket() {
    let security = Security::default()
        .allow_origin("https://crm.example")
        .unwrap();
    let f = start_with(Limits::default(), security).await;
    let mut ws = connect_from(&f.url, "https://crm.example").await.unwrap();
    send(&mut ws, json!({"auth": {"token": f.alice.expose()}})).await;
    until(&mut ws, "snapshot", |m| m.get("snapshot").is_some()).await;
    refused_with_403(connect_from(&f.url, "https://other.example").await);
}

/// The messages the server sends, then its close frame's code, within 5 s.
async fn closed_with(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => seen.push(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => return (seen, frame.map(|f| u16::from(f.code))),
            Ok(None) | Ok(Some(Err(_))) => return (seen, None),
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the connection stayed open; saw {:?}", seen),
        }
    }
}

#[tokio::test]
async fn a_message_too_large_to_read_gets_a_typed_error_and_close_1009() {
    // The default limits: 64 KiB messages, frames refused unread beyond 256 KiB.
    let f = start(Limits::default()).await;
    let mut alice = logged_in(&f.url, &f.alice).await;
    alice
        .send(Message::Text("x".repeat(300 * 1024).into()))
        .await
        .unwrap();
    let (seen, code) = closed_with(&mut alice).await;
    let refusal = seen
        .iter()
        .find(|m| m["reply"]["error"].is_object())
        .unwrap_or_else(|| panic!("no typed error in {:?}", seen));
    assert_eq!(refusal["reply"]["error"]["kind"], "bad_input");
    assert!(refusal["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 65536"));
    assert_eq!(code, Some(1009));
    // Everyone else carries on.
    logged_in(&f.url, &f.bob).await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_a_typed_error_and_close_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let f = start(Limits::default()).await;
    let mut alice = logged_in(&f.url, &f.alice).await;
    let invalid = vec![b'{', 0xff, 0xfe, b'}'];
    alice
        .send(Message::Frame(Frame::message(
            invalid,
            OpCode::Data(Data::Text),
            true,
        )))
        .await
        .unwrap();
    let (seen, code) = closed_with(&mut alice).await;
    let refusal = seen
        .iter()
        .find(|m| m["reply"]["error"].is_object())
        .unwrap_or_else(|| panic!("no typed error in {:?}", seen));
    assert_eq!(refusal["reply"]["error"]["kind"], "bad_input");
    assert!(refusal["reply"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));
    assert_eq!(code, Some(1007));
    logged_in(&f.url, &f.bob).await;
}

#[test]
fn tokens_never_show_in_debug_output() {
    let token = Token::generate().unwrap();
    assert_eq!(format!("{:?}", token), "Token(<redacted>)");
    assert_eq!(token.to_string(), "<redacted>");
    assert_eq!(token.expose().len(), 64);
}
