//! Connections that send nothing, or a byte now and then, are closed in time and do not
//! keep an agent out; beyond the cap, new connections are closed at once.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Limits, SimSessions, Token, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn start(limits: Limits) -> (String, Token) {
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
    let gateway =
        Gateway::with_limits(Arc::new(tokens), Arc::new(SimSessions::new(switch)), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { gateway.serve(listener).await });
    (address, alice)
}

/// An agent connects and gets its snapshot within 5 s.
async fn agent_gets_a_snapshot(address: &str, token: &Token) {
    let work = async {
        let url = format!("ws://{}/ws", address);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = json!({"auth": {"token": token.expose()}}).to_string();
        ws.send(Message::Text(hello.into())).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value.get("snapshot").is_some() {
                    return;
                }
            }
        }
        panic!("closed before the snapshot");
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("the agent's snapshot within 5 s");
}

/// Whether the server closes `stream` within `within` (an end of file or a reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed_and_an_agent_still_gets_in() {
    let limits = Limits::default()
        .with_connection_timeouts(Duration::from_millis(800), Duration::from_secs(30));
    let (address, alice) = start(limits).await;

    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(&address).await.unwrap());
    }
    // Slow loris: a request line one byte at a time, every 100 ms, never finished.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        slow.push(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ".iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return started.elapsed();
                }
                if closed_within(&mut stream, Duration::from_millis(100)).await {
                    return started.elapsed();
                }
            }
            unreachable!()
        }));
    }

    agent_gets_a_snapshot(&address, &alice).await;

    for stream in &mut silent {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "a silent connection stayed open"
        );
    }
    for task in slow {
        let lasted = tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("a slow connection stayed open")
            .unwrap();
        assert!(lasted < Duration::from_secs(3), "{:?}", lasted);
    }
    // And the agent still gets in afterwards.
    agent_gets_a_snapshot(&address, &alice).await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle() {
    let limits = Limits::default()
        .with_connection_timeouts(Duration::from_secs(30), Duration::from_millis(500));
    let (address, _) = start(limits).await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /panel.css HTTP/1.1\r\nHost: {}\r\n\r\n", address);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive: a second request on the same connection is served.
    stream.write_all(request.as_bytes()).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Then it idles, and is closed.
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await);
    // A connection that never sends anything goes the same way.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn beyond_the_cap_a_new_connection_is_closed_at_once() {
    let limits = Limits::default().with_max_connections(10);
    let (address, alice) = start(limits).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    // Give the gateway time to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(1)).await,
        "the connection over the cap was left open"
    );
    // Once they go, there is room again.
    drop(held);
    let mut admitted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut probe = TcpStream::connect(&address).await.unwrap();
        if !closed_within(&mut probe, Duration::from_millis(100)).await {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "no room after the connections closed");
    agent_gets_a_snapshot(&address, &alice).await;
}
