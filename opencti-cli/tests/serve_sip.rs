//! `opencti serve` over a SIP registrar: a deployment whose agents are SIP lines of one
//! link (one socket, one REGISTER per agent) through a real kamailio with digest auth.
//! Two agents sign in with their passwords, and a call from one desk to the other is
//! offered, answered and hung up over the WebSocket. Needs kamailio: skipped with a
//! printed reason without it, except under `CI=true`, where that is a failure.

mod common;
#[path = "../../opencti-sip/tests/support/mod.rs"]
mod sip;

use std::time::Duration;

use common::{command, desk, hash, next_text, Socket};

/// Waits for the event `name` on the desk (within 15 s) and returns it.
async fn event(ws: &mut Socket, name: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {name} within 15 s"
        );
        let text = next_text(ws).await;
        let message: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        if message["event"]["type"] == name {
            return message["event"].clone();
        }
    }
}

fn ok(reply: &str) {
    assert!(!reply.contains("\"error\""), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_at_sip_lines_sign_in_and_call_each_other() {
    if !sip::require(&["kamailio"]) {
        return;
    }
    let run = sip::RunDir::new("serve");
    let kamailio = sip::Kamailio::start(&run, &[]);
    let registrar = kamailio.addr();
    // kamailio's test config takes any user with the password `secret`.
    std::fs::write(run.0.join("sip-secret"), "secret\n").unwrap_or_else(|e| panic!("{e}"));
    let file = run.0.join("centre.toml");
    std::fs::write(
        &file,
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\n\n\
             [phone_system]\nkind = \"sip\"\nregistrar = \"{registrar}\"\ndomain = \"{registrar}\"\n\n\
             [[agent]]\nid = \"alice\"\nname = \"Alice\"\ndevice = \"1001\"\nsip_password_file = \"sip-secret\"\npassword_hash = \"{}\"\n\n\
             [[agent]]\nid = \"bob\"\nname = \"Bob\"\ndevice = \"1002\"\nsip_password_file = \"sip-secret\"\npassword_hash = \"{}\"\n",
            hash("alice-pw"),
            hash("bob-pw")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_served, url) = common::serve(&file, &[], None);
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut alice = desk(&address, "alice", "alice-pw").await;
    let mut bob = desk(&address, "bob", "bob-pw").await;
    // Each agent's line registers its own account once the desk is open.
    kamailio.wait_registered("1001").await;
    kamailio.wait_registered("1002").await;
    let reply = command(
        &mut alice,
        "a1",
        serde_json::json!({"type": "make_call", "to": "1002"}),
    )
    .await;
    ok(&reply);
    let offered = event(&mut bob, "call_offered").await;
    let incoming = offered["call"].as_str().unwrap_or_default().to_string();
    assert!(!incoming.is_empty(), "{offered}");
    ok(&command(
        &mut bob,
        "b1",
        serde_json::json!({"type": "answer", "call": incoming}),
    )
    .await);
    let connected = event(&mut alice, "call_connected").await;
    let outgoing = connected["call"].as_str().unwrap_or_default().to_string();
    ok(&command(
        &mut alice,
        "a2",
        serde_json::json!({"type": "hangup", "call": outgoing}),
    )
    .await);
    let ended = event(&mut bob, "call_ended").await;
    assert_eq!(ended["call"], incoming.as_str(), "{ended}");
}
