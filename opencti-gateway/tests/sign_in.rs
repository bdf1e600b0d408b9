//! Signing in with an agent id and a password: a token that works, expires and can be
//! revoked; the same refusal for an unknown agent and a wrong password; bad requests
//! answered clearly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opencti_core::{AgentId, DeviceId, ErrorKind};
use opencti_gateway::{Authenticator, Gateway, Grant, SignIn, SimSessions, TokenTable};
use opencti_sim::SimSwitch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

async fn start(lifetime: Duration) -> (String, TokenTable) {
    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let tokens = TokenTable::new();
    let passwords = Passwords([("alice", ("1001", "correct horse"))].into_iter().collect());
    let gateway = Gateway::new(Arc::new(tokens.clone()), Arc::new(SimSessions::new(switch)))
        .with_sign_in(Arc::new(passwords), Arc::new(tokens.clone()), lifetime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { gateway.serve(listener).await });
    (address, tokens)
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

fn token_of(body: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    json["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_string()
}

#[tokio::test]
async fn the_right_password_gets_a_token_for_the_agent() {
    let (address, tokens) = start(Duration::from_secs(3600)).await;
    let (status, body) = request(
        &address,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"correct horse"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["agent"], "alice");
    assert_eq!(json["expires_in"], 3600);
    let grant = tokens.authenticate(&token_of(&body)).await.unwrap();
    assert_eq!(
        (grant.agent.as_str(), grant.device.as_str()),
        ("alice", "1001")
    );
    // The page is served, with the security headers.
    let (status, page) = request(&address, "GET", "/sign-in", b"").await;
    assert_eq!(status, 200);
    assert!(page.contains("sign-in.js"), "{page}");
}

#[tokio::test]
async fn an_unknown_agent_and_a_wrong_password_are_refused_alike() {
    let (address, _) = start(Duration::from_secs(3600)).await;
    let (wrong, wrong_body) = request(
        &address,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"wrong"}"#,
    )
    .await;
    let (unknown, unknown_body) = request(
        &address,
        "POST",
        "/api/sign-in",
        br#"{"agent":"mallory","password":"correct horse"}"#,
    )
    .await;
    assert_eq!((wrong, unknown), (401, 401));
    assert_eq!(
        wrong_body, unknown_body,
        "nothing tells whether the agent exists"
    );
    assert!(wrong_body.contains("unauthorized"), "{wrong_body}");
    assert!(!wrong_body.contains("correct horse") && !wrong_body.contains("wrong\""));
}

#[tokio::test]
async fn bad_requests_get_a_clear_error() {
    let (address, _) = start(Duration::from_secs(3600)).await;
    for body in [
        &b"not json"[..],
        br#"{"agent":"alice"}"#,
        br#"{"agent":1,"password":"x"}"#,
    ] {
        let (status, answer) = request(&address, "POST", "/api/sign-in", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.contains("bad_input") && answer.contains("agent and password"),
            "{answer}"
        );
    }
    let big = vec![b'x'; 64 * 1024];
    let (status, answer) = request(&address, "POST", "/api/sign-in", &big).await;
    assert_eq!(status, 413, "{answer}");
}

#[tokio::test]
async fn a_token_expires_and_can_be_revoked() {
    let (address, tokens) = start(Duration::from_millis(300)).await;
    let sign_in = br#"{"agent":"alice","password":"correct horse"}"#;
    let (_, body) = request(&address, "POST", "/api/sign-in", sign_in).await;
    let token = token_of(&body);
    assert!(tokens.authenticate(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = tokens.authenticate(&token).await.unwrap_err();
    assert_eq!(expired.kind(), ErrorKind::Unauthorized);
    assert!(expired.message().contains("expired"), "{expired}");

    let (address, tokens) = start(Duration::from_secs(3600)).await;
    let (_, body) = request(&address, "POST", "/api/sign-in", sign_in).await;
    let token = token_of(&body);
    let (status, _) = request(&address, "POST", "/api/sign-out", token.as_bytes()).await;
    assert_eq!(status, 204);
    assert!(tokens.authenticate(&token).await.is_err(), "signed out");
    // And every token of an agent at once.
    let (_, body) = request(&address, "POST", "/api/sign-in", sign_in).await;
    let token = token_of(&body);
    tokens.revoke_agent(&AgentId::new("alice").unwrap());
    assert!(tokens.authenticate(&token).await.is_err());
}

#[tokio::test]
async fn repeated_failures_for_an_agent_id_are_throttled_alike() {
    let (address, _) = start(Duration::from_secs(3600)).await;
    for agent in ["alice", "mallory"] {
        for _ in 0..opencti_gateway::MAX_FAILED_SIGN_INS {
            let body = format!(r#"{{"agent":"{agent}","password":"guess"}}"#);
            let (status, _) = request(&address, "POST", "/api/sign-in", body.as_bytes()).await;
            assert_eq!(status, 401);
        }
        // Now even the right password waits for the window to pass.
        let body = format!(r#"{{"agent":"{agent}","password":"correct horse"}}"#);
        let (status, answer) = request(&address, "POST", "/api/sign-in", body.as_bytes()).await;
        assert_eq!(status, 429, "{agent}: {answer}");
        assert!(answer.contains("too many failed sign-ins"), "{answer}");
    }
}

#[tokio::test]
async fn guessing_across_many_agent_ids_from_one_address_is_throttled() {
    let (address, _) = start(Duration::from_secs(3600)).await;
    // Each id fails once only, far below the limit per id.
    for n in 0..opencti_gateway::MAX_FAILED_SIGN_INS_PER_ADDRESS {
        let body = format!(r#"{{"agent":"agent-{n}","password":"guess"}}"#);
        let (status, answer) = request(&address, "POST", "/api/sign-in", body.as_bytes()).await;
        assert_eq!(status, 401, "attempt {n}: {answer}");
    }
    // From this address, even the right password for an id never tried waits.
    let (status, answer) = request(
        &address,
        "POST",
        "/api/sign-in",
        br#"{"agent":"alice","password":"correct horse"}"#,
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert!(answer.contains("from this address"), "{answer}");
}
