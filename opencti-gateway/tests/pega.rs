//! The Pega Call Desktop Implementation (`adapters/pega`), driven by a stub Pega desktop
//! in Node (`e2e/pega.mjs`) against the gateway on a simulated centre: login, ready, an
//! inbound call answered, held, retrieved, DTMF and a blind transfer; a second one
//! transferred after a consultation; a third abandoned while ringing; an outbound call
//! made a conference, a party dropped, hung up; the link to the switch dropping and
//! coming back; the connection to the gateway cut and made again; not
//! ready with a reason; logout; and failing commands with Pega's error codes. Every event handed to Pega must validate against the JSON Schemas
//! in `adapters/pega/schemas`, and every failure against `Error.json`.
//!
//! Needs `node` and `e2e/node_modules` (`npm ci` in `opencti-gateway/e2e`). Without them
//! the test is skipped with the reason printed, except under `CI=true`, where it fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, SimSessions, TokenTable};
use opencti_sim::{FarEnd, SimSwitch};
use tokio::sync::watch;

mod e2e;

use e2e::Driver;

/// A TCP relay to the gateway, as a network between the desktop and the gateway: each
/// increment of the returned counter cuts the connections open through it, as a network
/// failure would; new ones go through.
async fn relay_to(gateway: SocketAddr) -> (SocketAddr, watch::Sender<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (cut, cuts) = watch::channel(0);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut cuts = cuts.clone();
            cuts.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(gateway).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    (address, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stub_pega_desktop_works_calls_through_the_desktop_implementation() {
    if !e2e::can_run("the Pega test", false, &["ajv"]) {
        return;
    }

    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .extension(
            "1900",
            FarEnd::Answer {
                after: Duration::from_millis(300),
            },
        )
        .extension(
            "1901",
            FarEnd::Answer {
                after: Duration::from_millis(300),
            },
        )
        .build()
        .unwrap();
    let device = DeviceId::new("1001").unwrap();
    let control = switch.control();
    let tokens = TokenTable::new();
    let token = tokens
        .issue(AgentId::new("alice").unwrap(), device.clone())
        .unwrap();
    let gateway = Gateway::new(Arc::new(tokens), Arc::new(SimSessions::new(switch.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (relay, cut) = relay_to(listener.local_addr().unwrap()).await;
    let base = format!("http://{}", relay);
    tokio::spawn(async move { gateway.serve(listener).await });

    let flags = e2e::websocket_flags();
    let mut driver = Driver::start(
        &flags,
        "pega.mjs",
        &[base.as_str(), token.expose(), "alice", "1001"],
    );

    let mut seen = Vec::new();
    loop {
        let Some(line) = driver.next().await else {
            break;
        };
        println!("{}", line);
        seen.push(line.clone());
        match line.as_str() {
            "READY" => control
                .customer_calls("support", "+441632960003")
                .call()
                .unwrap(),
            "NEXT" => control
                .customer_calls("support", "+441632960001")
                .call()
                .unwrap(),
            "ABANDON" => control
                .customer_calls("support", "+441632960002")
                .patience(Duration::from_millis(500))
                .call()
                .unwrap(),
            "LINK DOWN" => control.drop_link(&device).unwrap(),
            "LINK UP" => control.restore_link(&device).unwrap(),
            "CUT" => cut.send_modify(|cuts| *cuts += 1),
            "DONE" => break,
            _ => {}
        }
    }
    assert!(
        driver.succeeded(),
        "the stub desktop failed after {:?}",
        seen
    );
    assert_eq!(seen.first().map(String::as_str), Some("READY"));
    assert_eq!(seen.last().map(String::as_str), Some("DONE"));
    for milestone in ["NEXT", "ABANDON", "LINK DOWN", "LINK UP", "CUT"] {
        assert!(
            seen.iter().any(|line| line == milestone),
            "no {}",
            milestone
        );
    }
}
