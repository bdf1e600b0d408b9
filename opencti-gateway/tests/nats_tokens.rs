//! Sign-in's tokens shared by gateways through a real nats-server with JetStream (see
//! `support`): a token issued through one gateway's connection works through another's,
//! a revocation through either holds on both at once, tokens expire, made-up ones are
//! refused, and nothing is granted while NATS is down. Then two whole gateways: sign in
//! on one, connect to the other, sign out there, refused on the first.
//!
//! Compiled with the feature `nats` (on in a workspace build: the CLI enables it).

#![cfg(feature = "nats")]

#[path = "../../opencti-nats/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId, ErrorKind};
use opencti_gateway::{
    Authenticator, Gateway, Grant, NatsTokenLimits, NatsTokens, Role, SignIn, SimSessions,
    TokenStore,
};
use opencti_nats::async_nats::{self, jetstream};
use opencti_nats::Site;
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use support::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const HOUR: Duration = Duration::from_secs(3600);

/// A gateway's own connection to `server`, with requests that give up after 1 s.
async fn connection(server: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(server.url()).await.unwrap();
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client)
}

/// A gateway's store for site `site` on its own connection.
async fn store(server: &NatsServer, site: &str, limits: &NatsTokenLimits) -> NatsTokens {
    let site = Site::new(site).unwrap();
    NatsTokens::open(&connection(server).await, &site, limits)
        .await
        .unwrap()
}

/// Two gateways' stores for the same site, each on its own connection.
async fn two_gateways(server: &NatsServer) -> (NatsTokens, NatsTokens) {
    let limits = NatsTokenLimits::default();
    (
        store(server, "paris", &limits).await,
        store(server, "paris", &limits).await,
    )
}

fn alice() -> Grant {
    Grant::agent(
        AgentId::new("alice").unwrap(),
        DeviceId::new("1001").unwrap(),
    )
}

fn refused_as(result: opencti_core::Result<Grant>, kind: ErrorKind, says: &str) {
    let error = result.expect_err("refused");
    assert_eq!(error.kind(), kind, "{error}");
    assert!(error.message().contains(says), "{error}");
}

#[tokio::test]
async fn a_token_issued_through_one_gateway_works_through_another() {
    let Some(server) = NatsServer::start("tokens-shared") else {
        return;
    };
    let (a, b) = two_gateways(&server).await;
    assert_eq!(a.bucket(), "opencti_paris_tokens");
    let token = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    assert_eq!(b.authenticate(token.expose()).await.unwrap(), alice());
    assert_eq!(a.authenticate(token.expose()).await.unwrap(), alice());

    let boss = Grant::supervisor(
        AgentId::new("carol").unwrap(),
        DeviceId::new("2001").unwrap(),
    );
    let token = b.issue_grant(boss.clone(), None).await.unwrap();
    let grant = a.authenticate(token.expose()).await.unwrap();
    assert_eq!((grant.role, grant), (Role::Supervisor, boss));

    // Another site's gateways share nothing with these.
    let lyon = store(&server, "lyon", &NatsTokenLimits::default()).await;
    refused_as(
        lyon.authenticate(token.expose()).await,
        ErrorKind::Unauthorized,
        "unknown",
    );
}

#[tokio::test]
async fn the_bucket_holds_hashes_and_grants_never_the_token() {
    let Some(server) = NatsServer::start("tokens-hashed") else {
        return;
    };
    let (a, _) = two_gateways(&server).await;
    let token = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    a.revoke_agent(&AgentId::new("bob").unwrap()).await.unwrap();
    let kv = connection(&server)
        .await
        .get_key_value("opencti_paris_tokens")
        .await
        .unwrap();
    let mut keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with("agent.") && keys[1].starts_with("token."),
        "{keys:?}"
    );
    for key in &keys {
        assert!(!key.contains(token.expose()), "{key}");
        let value = kv.get(key.as_str()).await.unwrap().unwrap();
        let text = std::str::from_utf8(&value).unwrap();
        assert!(!text.contains(token.expose()), "{text}");
    }
    let value = kv.get(keys[1].as_str()).await.unwrap().unwrap();
    let stored: Value = serde_json::from_slice(&value).unwrap();
    assert_eq!(
        (&stored["agent"], &stored["device"], &stored["role"]),
        (&json!("alice"), &json!("1001"), &json!("agent"))
    );
    let expires = stored["expires"].as_u64().unwrap();
    let now = opencti_core::Timestamp::now().as_micros();
    assert!(expires > now && expires <= now + 3_600_000_000, "{stored}");
}

#[tokio::test]
async fn a_revocation_through_one_gateway_is_refused_by_the_other_at_once() {
    let Some(server) = NatsServer::start("tokens-revoked") else {
        return;
    };
    let (a, b) = two_gateways(&server).await;
    let token = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    let other = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    assert!(a.authenticate(token.expose()).await.is_ok());
    b.revoke_text(token.expose()).await.unwrap();
    refused_as(
        a.authenticate(token.expose()).await,
        ErrorKind::Unauthorized,
        "unknown or revoked",
    );
    // The agent's other token still works; revoking twice, or a made-up token, is fine.
    assert!(a.authenticate(other.expose()).await.is_ok());
    b.revoke_text(token.expose()).await.unwrap();
    b.revoke_text("not a token").await.unwrap();
    b.revoke_text(&"0".repeat(64)).await.unwrap();
}

#[tokio::test]
async fn revoking_an_agent_withdraws_every_token_it_has_on_every_gateway() {
    let Some(server) = NatsServer::start("tokens-agent") else {
        return;
    };
    let (a, b) = two_gateways(&server).await;
    let first = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    let second = b.issue_grant(alice(), None).await.unwrap();
    let bob = Grant::agent(AgentId::new("bob").unwrap(), DeviceId::new("1002").unwrap());
    let bobs = a.issue_grant(bob.clone(), Some(HOUR)).await.unwrap();

    b.revoke_agent(&AgentId::new("alice").unwrap())
        .await
        .unwrap();
    for token in [&first, &second] {
        refused_as(
            a.authenticate(token.expose()).await,
            ErrorKind::Unauthorized,
            "revoked",
        );
        refused_as(
            b.authenticate(token.expose()).await,
            ErrorKind::Unauthorized,
            "revoked",
        );
    }
    assert_eq!(a.authenticate(bobs.expose()).await.unwrap(), bob);
    // Signing in again afterwards works.
    let again = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    assert_eq!(b.authenticate(again.expose()).await.unwrap(), alice());
}

#[tokio::test]
async fn tokens_expire_and_none_outlives_the_bucket() {
    let Some(server) = NatsServer::start("tokens-expiry") else {
        return;
    };
    let (a, b) = two_gateways(&server).await;
    let token = a
        .issue_grant(alice(), Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(b.authenticate(token.expose()).await.is_ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    refused_as(
        b.authenticate(token.expose()).await,
        ErrorKind::Unauthorized,
        "expired",
    );

    // A bucket that keeps entries 1 s: a token asked for an hour, or for ever, lasts 1 s.
    let short = NatsTokenLimits::default().with_max_age(Duration::from_secs(1));
    let c = store(&server, "brief", &short).await;
    let hour = c.issue_grant(alice(), Some(HOUR)).await.unwrap();
    let ever = c.issue_grant(alice(), None).await.unwrap();
    assert!(c.authenticate(hour.expose()).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for token in [&hour, &ever] {
        let error = c.authenticate(token.expose()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    }

    let zero = NatsTokenLimits::default().with_max_age(Duration::ZERO);
    let site = Site::new("zero").unwrap();
    let error = NatsTokens::open(&connection(&server).await, &site, &zero)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert!(error.message().contains("max age"), "{error}");
}

#[tokio::test]
async fn made_up_tokens_are_refused_without_echoing_them() {
    let Some(server) = NatsServer::start("tokens-garbage") else {
        return;
    };
    let (a, _) = two_gateways(&server).await;
    let issued = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    let in_process = opencti_gateway::TokenTable::new()
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let upper = issued.expose().to_uppercase();
    let longer = format!("{}0", issued.expose());
    let huge = "x".repeat(100_000);
    for garbage in [
        "",
        "guess",
        "0".repeat(64).as_str(),
        in_process.expose(),
        upper.as_str(),
        longer.as_str(),
        &issued.expose()[..63],
        "token.*",
        "../../$KV.>",
        "é".repeat(32).as_str(),
        huge.as_str(),
    ] {
        let error = a.authenticate(garbage).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::Unauthorized,
            "{garbage:.80}: {error}"
        );
        assert!(
            garbage.is_empty() || !error.message().contains(garbage),
            "{error}"
        );
    }
    assert!(a.authenticate(issued.expose()).await.is_ok());
}

#[tokio::test]
async fn with_nats_down_nothing_is_granted() {
    let Some(mut server) = NatsServer::start("tokens-down") else {
        return;
    };
    let (a, b) = two_gateways(&server).await;
    let token = a.issue_grant(alice(), Some(HOUR)).await.unwrap();
    assert!(b.authenticate(token.expose()).await.is_ok());
    server.stop();
    let bounded = Duration::from_secs(10);
    let error = tokio::time::timeout(bounded, b.authenticate(token.expose()))
        .await
        .expect("an answer while NATS is down")
        .expect_err("no grant while NATS is down");
    assert_eq!(error.kind(), ErrorKind::LinkDown, "{error}");
    assert!(
        error.message().contains("opencti_paris_tokens")
            && !error.message().contains(token.expose()),
        "{error}"
    );
    let issued = tokio::time::timeout(bounded, a.issue_grant(alice(), Some(HOUR)))
        .await
        .expect("an answer while NATS is down");
    assert_eq!(issued.unwrap_err().kind(), ErrorKind::LinkDown);
    let revoked = tokio::time::timeout(bounded, a.revoke_text(token.expose()))
        .await
        .expect("an answer while NATS is down");
    assert_eq!(revoked.unwrap_err().kind(), ErrorKind::LinkDown);
    let revoked = tokio::time::timeout(bounded, a.revoke_agent(&AgentId::new("carol").unwrap()))
        .await
        .expect("an answer while NATS is down");
    assert_eq!(revoked.unwrap_err().kind(), ErrorKind::LinkDown);
    let site = Site::new("paris").unwrap();
    let (context, limits) = (
        a_context_while_down(&server).await,
        NatsTokenLimits::default(),
    );
    let opened = tokio::time::timeout(bounded, NatsTokens::open(&context, &site, &limits))
        .await
        .expect("an answer while NATS is down");
    assert_eq!(opened.unwrap_err().kind(), ErrorKind::LinkDown);

    // Back up: the token (kept on disk) works again. (Carol's revocation, answered
    // `link_down`, may still arrive: the client sends what it buffered.)
    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Err(error) = b.authenticate(token.expose()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "works again after a restart: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JetStream context whose client never connected (NATS is down): connecting is
/// retried in the background while requests time out.
async fn a_context_while_down(server: &NatsServer) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .unwrap();
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client)
}

// Two whole gateways.

/// Passwords in clear, for the test (a deployment checks hashes).
struct Passwords(HashMap<&'static str, (&'static str, &'static str)>);

impl SignIn for Passwords {
    fn sign_in(&self, agent: &str, password: &str) -> Option<Grant> {
        let (device, expected) = self.0.get(agent)?;
        (password == *expected).then(|| {
            Grant::agent(
                AgentId::new(agent).unwrap(),
                DeviceId::new(*device).unwrap(),
            )
        })
    }
}

/// A gateway on the shared simulated centre with its own NATS connection and store:
/// its address.
async fn gateway(server: &NatsServer, switch: &SimSwitch) -> String {
    let tokens: Arc<NatsTokens> =
        Arc::new(store(server, "paris", &NatsTokenLimits::default()).await);
    let passwords = Passwords([("alice", ("1001", "correct horse"))].into_iter().collect());
    let gateway = Gateway::new(tokens.clone(), Arc::new(SimSessions::new(switch.clone())))
        .with_sign_in(Arc::new(passwords), tokens, HOUR);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { gateway.serve(listener).await });
    address
}

/// The status code and body of one request.
async fn request(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("a response within 10 s");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// The first message a gateway's WebSocket answers to `token`.
async fn first_answer(address: &str, token: &str) -> Value {
    let url = format!("ws://{address}/ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"auth": {"token": token}}).to_string().into(),
    ))
    .await
    .unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s");
        match next {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("closed without an answer: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sign_in_on_one_gateway_connect_to_another_sign_out_there() {
    let Some(server) = NatsServer::start("tokens-gateways") else {
        return;
    };
    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let a = gateway(&server, &switch).await;
    let b = gateway(&server, &switch).await;

    let (status, body) = request(
        &a,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"correct horse"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let signed_in: Value = serde_json::from_str(&body).unwrap();
    let token = signed_in["token"].as_str().unwrap().to_string();

    let answer = first_answer(&b, &token).await;
    assert_eq!(answer["snapshot"]["agent"], "alice", "{answer}");
    assert_eq!(answer["snapshot"]["link"], "up", "{answer}");

    let (status, body) = request(&b, "POST", "/api/sign-out", token.as_bytes()).await;
    assert_eq!(status, 204, "{body}");
    for gateway in [&a, &b] {
        let answer = first_answer(gateway, &token).await;
        assert_eq!(answer["reply"]["error"]["kind"], "unauthorized", "{answer}");
        assert!(!answer.to_string().contains(&token), "{answer}");
    }

    // With NATS down, neither signs anyone in nor lets a token through.
    let (_, body) = request(
        &a,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"correct horse"}"#,
    )
    .await;
    let live: Value = serde_json::from_str(&body).unwrap();
    let live = live["token"].as_str().unwrap().to_string();
    drop(server);
    let (status, body) = request(
        &a,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"correct horse"}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("link_down"), "{body}");
    let answer = first_answer(&b, &live).await;
    assert_eq!(answer["reply"]["error"]["kind"], "unauthorized", "{answer}");
    let (status, body) = request(&b, "POST", "/api/sign-out", live.as_bytes()).await;
    assert_eq!(status, 503, "{body}");
}
