//! Screen pop and call logging with the SQLite CRM.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Limits, SimSessions, SqliteCrm, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn an_offered_call_pops_the_contact_and_ends_in_the_call_log_with_its_disposition() {
    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(60))
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let crm = SqliteCrm::in_memory().unwrap();
    crm.seed_demo().unwrap();
    let tokens = TokenTable::new();
    let token = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let gateway = Gateway::with_crm(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(crm.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve(listener).await });

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    async fn until(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a message within 5 s")
                .unwrap()
                .unwrap();
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(&text).unwrap();
                if wanted(&v) {
                    return v;
                }
            }
        }
    }
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"auth": {"token": token.expose()}})))
        .await
        .unwrap();
    until(&mut ws, |m| m.get("snapshot").is_some()).await;
    ws.send(send(json!({"id": "1", "command": {"type": "login"}})))
        .await
        .unwrap();
    until(&mut ws, |m| m["reply"]["id"] == "1").await;
    ws.send(send(
        json!({"id": "2", "command": {"type": "set_agent_state", "state": {"state": "ready"}}}),
    ))
    .await
    .unwrap();
    until(&mut ws, |m| m["reply"]["id"] == "2").await;

    switch
        .control()
        .customer_calls("support", "+441632960003")
        .call()
        .unwrap();
    let pop = until(&mut ws, |m| m.get("screen_pop").is_some()).await;
    assert_eq!(pop["screen_pop"]["number"], "+441632960003");
    assert_eq!(pop["screen_pop"]["contact"]["name"], "Grace Hopper");
    assert_eq!(pop["screen_pop"]["contact"]["account"], "A-3003");
    let call = pop["screen_pop"]["call"].as_str().unwrap().to_string();

    ws.send(send(
        json!({"id": "3", "command": {"type": "answer", "call": call}}),
    ))
    .await
    .unwrap();
    until(&mut ws, |m| m["reply"]["id"] == "3").await;
    ws.send(send(
        json!({"id": "4", "command": {"type": "hangup", "call": call}}),
    ))
    .await
    .unwrap();
    until(&mut ws, |m| m["reply"]["id"] == "4").await;
    ws.send(send(
        json!({"id": "5", "command": {"type": "complete_wrap_up", "disposition": "resolved"}}),
    ))
    .await
    .unwrap();
    let done = until(&mut ws, |m| m["reply"]["id"] == "5").await;
    assert!(done["reply"]["confirmed"].is_object(), "{}", done);

    // The logger writes asynchronously; give it a moment.
    let mut log = Vec::new();
    for _ in 0..50 {
        log = crm.call_log().unwrap();
        if log.first().is_some_and(|row| row.disposition.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        log,
        vec![opencti_gateway::CallLogRow {
            call,
            number: Some("+441632960003".to_string()),
            outcome: "normal".to_string(),
            disposition: Some("resolved".to_string()),
        }]
    );
}
