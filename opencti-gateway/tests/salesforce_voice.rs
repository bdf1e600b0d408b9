//! The Salesforce Voice connector (`adapters/salesforce-voice`) on the real
//! `@salesforce/scv-connector-base` 3.6.2, driven in Node by a harness playing
//! Salesforce's side of the message channel (`e2e/salesforce-voice.mjs`) against the
//! gateway on a simulated centre: the setup message and the sign-in (a wrong token, then
//! the right one), agent statuses, an inbound call accepted, held, resumed, sent digits,
//! refused a mute, ended and wrapped up; one declined, offered again and ended by the
//! caller; dials refused (a blank number, one the gateway refuses); an outbound call
//! dialled, a participant consulted who hangs up, the call resumed, then held, retrieved
//! and consulted about from another desktop, ended by the far end; another handed on in
//! a blind transfer; not ready for lunch; logout. Every message the connector sends
//! Salesforce is checked, and every request's effect at the gateway.
//!
//! Needs `node` and `e2e/node_modules` (`npm ci` in `opencti-gateway/e2e`). Without them
//! the test is skipped with the reason printed, except under `CI=true`, where it fails.

use std::sync::Arc;
use std::time::Duration;

use opencti_core::{AgentId, CallId, DeviceId};
use opencti_gateway::{Gateway, Limits, SimSessions, SqliteCrm, TokenTable};
use opencti_sim::{FarEnd, SimSwitch};

mod e2e;

use e2e::Driver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_works_calls_through_the_voice_connector() {
    if !e2e::can_run(
        "the Salesforce Voice test",
        false,
        &["@salesforce/scv-connector-base"],
    ) {
        return;
    }

    let answers = FarEnd::Answer {
        after: Duration::from_millis(300),
    };
    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(60))
        .agent("alice", "1001", &["support"])
        .extension("1900", answers)
        .extension("1901", answers)
        .build()
        .unwrap();
    let device = DeviceId::new("1001").unwrap();
    let control = switch.control();
    let tokens = TokenTable::new();
    let token = tokens
        .issue(AgentId::new("alice").unwrap(), device.clone())
        .unwrap();
    let crm = SqliteCrm::in_memory().unwrap();
    crm.seed_demo().unwrap();
    let gateway = Gateway::with_crm(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(crm),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve(listener).await });

    let flags = e2e::websocket_flags();
    let mut driver = Driver::start(
        &flags,
        "salesforce-voice.mjs",
        &[base.as_str(), token.expose(), "1001"],
    );

    let mut seen = Vec::new();
    while let Some(line) = driver.next().await {
        println!("{}", line);
        seen.push(line.clone());
        let hangs_up = |prefix: &str| {
            line.strip_prefix(prefix)
                .map(|call| CallId::new(call).unwrap())
        };
        if let Some(call) =
            hangs_up("PARTICIPANT HANGS UP ").or_else(|| hangs_up("FAR END HANGS UP "))
        {
            control.far_end_hangs_up(&device, &call).unwrap();
            continue;
        }
        match line.as_str() {
            "READY" => control
                .customer_calls("support", "+441632960003")
                .call()
                .unwrap(),
            "DECLINE" => control
                .customer_calls("support", "+441632960001")
                .talk_for(Duration::from_millis(500))
                .call()
                .unwrap(),
            "DONE" => break,
            _ => {}
        }
    }
    assert!(
        driver.succeeded(),
        "the Salesforce harness failed after {:?}",
        seen
    );
    assert_eq!(seen.first().map(String::as_str), Some("READY"));
    assert_eq!(seen.last().map(String::as_str), Some("DONE"));
    for milestone in ["DECLINE", "PARTICIPANT HANGS UP", "FAR END HANGS UP"] {
        assert!(
            seen.iter().any(|line| line.starts_with(milestone)),
            "no {}",
            milestone
        );
    }
}

/// `GET path` on `address`: the status and the body.
async fn get_status_and_body(address: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let status = String::from_utf8_lossy(&response[9..12]).parse().unwrap();
    (status, response[head_end + 4..].to_vec())
}

#[tokio::test]
async fn the_gateway_serves_the_library_the_deployment_gives_it() {
    if !e2e::can_run(
        "the Salesforce Voice library test",
        false,
        &["@salesforce/scv-connector-base"],
    ) {
        return;
    }
    let library = e2e::e2e_dir()
        .join("node_modules/@salesforce/scv-connector-base/dist/scv-connector-base.js");
    let serve = |gateway: Gateway| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { gateway.serve(listener).await });
        address
    };
    let switch = SimSwitch::builder().build().unwrap();
    let plain = || {
        Gateway::new(
            Arc::new(TokenTable::new()),
            Arc::new(SimSessions::new(switch.clone())),
        )
    };
    let path = "/salesforce-voice/scv-connector-base.js";

    let given = serve(plain().with_salesforce_voice_library(&library).unwrap()).await;
    let (status, body) = get_status_and_body(given, path).await;
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&library).unwrap(), "the file, as it is");

    let without = serve(plain()).await;
    let (status, body) = get_status_and_body(without, path).await;
    assert_eq!(status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("[salesforce_voice] library"),
        "says what to give"
    );

    let missing = plain()
        .with_salesforce_voice_library("/nonexistent/scv-connector-base.js")
        .unwrap_err();
    assert_eq!(missing.kind(), opencti_core::ErrorKind::Config);
    assert!(
        missing
            .message()
            .contains("/nonexistent/scv-connector-base.js"),
        "{missing}"
    );
    let not_a_script = std::env::temp_dir().join(format!("opencti-scv-{}.bin", std::process::id()));
    std::fs::write(&not_a_script, [0xff, 0xfe, 0x00]).unwrap();
    let refused = plain()
        .with_salesforce_voice_library(&not_a_script)
        .unwrap_err();
    assert!(refused.message().contains("not UTF-8"), "{refused}");
    let _ = std::fs::remove_file(&not_a_script);
}
