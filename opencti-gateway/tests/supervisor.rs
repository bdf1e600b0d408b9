//! Supervisors on the simulator: the whole centre, its changes, every supervisor command
//! and every refusal; and an agent's token reaching none of it.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::queue::{QueueBoard, QueueStats};
use opencti_core::{AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, QueueId};
use opencti_gateway::{Gateway, Grant, Limits, NoCrm, SimSessions, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Centre {
    gateway: Gateway,
    switch: SimSwitch,
    url: String,
    tokens: TokenTable,
}

fn grant(agent: &str, device: &str) -> Grant {
    Grant::agent(AgentId::new(agent).unwrap(), DeviceId::new(device).unwrap())
}

async fn centre() -> Centre {
    let switch = SimSwitch::builder()
        .queue("sales")
        .wrap_up("sales", Duration::from_secs(60))
        .agent("alice", "1001", &["sales"])
        .agent("bob", "1002", &["sales"])
        .build()
        .unwrap();
    let start = switch.now();
    let stats =
        QueueStats::new(start).with_queue(QueueId::new("sales").unwrap(), Duration::from_secs(20));
    serve(switch, Some(stats)).await
}

/// The gateway on `switch`, with a queue board over `stats` following the switch's
/// queues, or with none (a phone system that reports no queues).
async fn serve(switch: SimSwitch, stats: Option<QueueStats>) -> Centre {
    let tokens = TokenTable::new();
    let mut gateway = Gateway::with_crm(
        Arc::new(tokens.clone()),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(NoCrm),
    );
    if let Some(stats) = stats {
        let board = QueueBoard::new(stats, switch.now());
        board.feed_stamped(switch.queue_events());
        gateway = gateway.with_queue_board(board);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let served = gateway.clone();
    tokio::spawn(async move { served.serve(listener).await });
    Centre {
        gateway,
        switch,
        url,
        tokens,
    }
}

impl Centre {
    async fn connect(&self, grant: Grant) -> Socket {
        let token = self.tokens.issue_grant(grant, None).unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(&self.url).await.unwrap();
        send(&mut ws, json!({"auth": {"token": token.expose()}})).await;
        ws
    }

    async fn supervisor(&self) -> (Socket, Value) {
        let mut ws = self
            .connect(Grant::supervisor(
                AgentId::new("sam").unwrap(),
                DeviceId::new("1009").unwrap(),
            ))
            .await;
        let whole = until(&mut ws, |m| m.get("centre").is_some()).await;
        (ws, whole["centre"].clone())
    }
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

async fn until(ws: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if wanted(&message) {
                return message;
            }
        }
    }
}

async fn supervise(ws: &mut Socket, id: &str, command: Value) -> Value {
    send(ws, json!({"id": id, "supervise": command})).await;
    until(ws, |m| m["reply"]["id"] == id).await["reply"].clone()
}

/// The centre as the supervisor's messages leave it: queues and agents by name.
#[derive(Default)]
struct View {
    queues: std::collections::HashMap<String, Value>,
    agents: std::collections::HashMap<String, Value>,
}

impl View {
    fn take(&mut self, message: &Value) {
        let body = message.get("centre").or_else(|| message.get("update"));
        let Some(body) = body else { return };
        let queues = body["queues"]["queues"]
            .as_array()
            .or_else(|| body["queues"].as_array());
        for queue in queues.into_iter().flatten() {
            self.queues
                .insert(queue["queue"].as_str().unwrap().to_string(), queue.clone());
        }
        for agent in body["agents"].as_array().into_iter().flatten() {
            self.agents
                .insert(agent["agent"].as_str().unwrap().to_string(), agent.clone());
        }
    }

    fn queue(&self, name: &str) -> &Value {
        &self.queues[name]
    }

    fn agent(&self, name: &str) -> &Value {
        &self.agents[name]
    }
}

/// Reads messages into `view` until `wanted` holds of it.
async fn until_view(ws: &mut Socket, view: &mut View, wanted: impl Fn(&View) -> bool) {
    while !wanted(view) {
        let message = until(ws, |_| true).await;
        view.take(&message);
    }
}

#[tokio::test]
async fn a_supervisor_sees_every_agent_and_queue_then_their_changes() {
    let centre = centre().await;
    let alice = centre
        .gateway
        .session(&grant("alice", "1001"))
        .await
        .unwrap();
    let bob = centre.gateway.session(&grant("bob", "1002")).await.unwrap();
    alice.login().await.unwrap();
    alice.ready().await.unwrap();
    bob.login().await.unwrap();

    let (mut ws, whole) = centre.supervisor().await;
    let agents = whole["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{}", whole);
    assert_eq!(agents[0]["agent"], "alice");
    assert_eq!(agents[0]["agent_state"]["state"], "ready");
    assert!(agents[0]["agent_state_since"].as_u64().is_some());
    assert_eq!(agents[1]["agent_state"]["state"], "not_ready");
    let sales = &whole["queues"]["queues"][0];
    assert_eq!(sales["queue"], "sales");
    assert_eq!(sales["agents"]["logged_in"], 2);
    assert_eq!(sales["agents"]["ready"], 1);
    assert!(whole["history"].is_array());
    assert_eq!(
        whole["can_monitor"], false,
        "the simulator cannot listen in"
    );
    let mut view = View::default();
    view.take(&json!({ "centre": whole }));

    // A caller: the queue and alice's row change.
    centre
        .switch
        .control()
        .customer_calls("sales", "+441632960001")
        .call()
        .unwrap();
    until_view(&mut ws, &mut view, |v| {
        v.agent("alice")["agent_state"]["state"] == "reserved" && v.queue("sales")["ringing"] == 1
    })
    .await;
    assert_eq!(view.agent("alice")["calls"][0]["state"], "offered");
    assert_eq!(view.queue("sales")["offered"], 1);
    let call = view.agent("alice")["calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .answer(opencti_core::CallId::new(call).unwrap())
        .await
        .unwrap();
    until_view(&mut ws, &mut view, |v| {
        v.queue("sales")["answered"] == 1 && v.queue("sales")["agents"]["busy"] == 1
    })
    .await;
    assert_eq!(view.agent("alice")["calls"][0]["state"], "connected");
    assert_eq!(view.queue("sales")["ringing"], 0);
}

#[tokio::test]
async fn a_supervisor_forces_not_ready_and_logs_out_through_the_agent_session() {
    let centre = centre().await;
    let alice = centre
        .gateway
        .session(&grant("alice", "1001"))
        .await
        .unwrap();
    alice.login().await.unwrap();
    alice.ready().await.unwrap();
    let (mut ws, _) = centre.supervisor().await;

    let reply = supervise(
        &mut ws,
        "s1",
        json!({"type": "force_not_ready", "agent": "alice", "reason": "meeting"}),
    )
    .await;
    assert_eq!(reply["done"], true, "{}", reply);
    let state = alice.snapshot().agent_state;
    assert_eq!(state.name(), "not_ready");
    assert_eq!(
        serde_json::to_value(&state).unwrap()["reason"],
        "meeting",
        "the reason reaches the agent's desk"
    );
    let mut view = View::default();
    until_view(&mut ws, &mut view, |v| {
        v.agents
            .get("alice")
            .is_some_and(|a| a["agent_state"]["reason"] == "meeting")
    })
    .await;

    let reply = supervise(
        &mut ws,
        "s2",
        json!({"type": "force_log_out", "agent": "alice"}),
    )
    .await;
    assert_eq!(reply["done"], true, "{}", reply);
    assert_eq!(alice.snapshot().agent_state.name(), "logged_out");
}

#[tokio::test]
async fn supervisor_commands_are_refused_with_the_reason() {
    let centre = centre().await;
    let alice = centre
        .gateway
        .session(&grant("alice", "1001"))
        .await
        .unwrap();
    alice.login().await.unwrap();
    let (mut ws, _) = centre.supervisor().await;

    let nobody = supervise(
        &mut ws,
        "r1",
        json!({"type": "force_log_out", "agent": "zed"}),
    )
    .await;
    assert_eq!(nobody["error"]["kind"], "not_found", "{}", nobody);

    let idle = supervise(
        &mut ws,
        "r2",
        json!({"type": "monitor", "agent": "alice", "mode": "listen"}),
    )
    .await;
    assert_eq!(idle["error"]["kind"], "invalid_state", "{}", idle);

    // On a call, the simulator cannot listen in: refused as unsupported, for each mode.
    alice.ready().await.unwrap();
    centre
        .switch
        .control()
        .customer_calls("sales", "+441632960002")
        .call()
        .unwrap();
    let mut view = View::default();
    until_view(&mut ws, &mut view, |v| {
        v.agents
            .get("alice")
            .is_some_and(|a| a["calls"][0]["state"] == "offered")
    })
    .await;
    let call = view.agent("alice")["calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .answer(opencti_core::CallId::new(call).unwrap())
        .await
        .unwrap();
    for (n, mode) in ["listen", "whisper", "barge"].into_iter().enumerate() {
        let id = format!("m{}", n);
        let refused = supervise(
            &mut ws,
            &id,
            json!({"type": "monitor", "agent": "alice", "mode": mode}),
        )
        .await;
        assert_eq!(refused["error"]["kind"], "unsupported", "{}", refused);
        assert!(refused["error"]["message"].as_str().unwrap().contains(mode));
    }

    let unknown = supervise(&mut ws, "r3", json!({"type": "fire", "agent": "alice"})).await;
    assert_eq!(unknown["error"]["kind"], "bad_input", "{}", unknown);
    // A desk command from a supervisor is no supervisor request.
    send(&mut ws, json!({"id": "d1", "command": {"type": "login"}})).await;
    let desk = until(&mut ws, |m| m["reply"]["error"].is_object()).await;
    assert_eq!(desk["reply"]["error"]["kind"], "bad_input", "{}", desk);
}

#[tokio::test]
async fn an_agent_token_reaches_no_supervisor_command_and_no_other_agent() {
    let centre = centre().await;
    let bob = centre.gateway.session(&grant("bob", "1002")).await.unwrap();
    bob.login().await.unwrap();
    bob.ready().await.unwrap();
    let mut ws = centre.connect(grant("alice", "1001")).await;
    let first = until(&mut ws, |m| m.get("snapshot").is_some()).await;
    assert_eq!(first["snapshot"]["agent"], "alice");

    for (n, command) in [
        json!({"type": "force_log_out", "agent": "bob"}),
        json!({"type": "force_not_ready", "agent": "bob"}),
        json!({"type": "monitor", "agent": "bob", "mode": "listen"}),
    ]
    .into_iter()
    .enumerate()
    {
        send(
            &mut ws,
            json!({"id": format!("x{}", n), "supervise": command}),
        )
        .await;
        let refused = until(&mut ws, |m| m["reply"]["error"].is_object()).await;
        assert_eq!(
            refused["reply"]["error"]["kind"], "unauthorized",
            "{}",
            refused
        );
    }
    assert_eq!(
        bob.snapshot().agent_state.name(),
        "ready",
        "bob was not touched"
    );

    // Bob's changes and the queues never reach alice's connection.
    bob.not_ready(None).await.unwrap();
    centre
        .switch
        .control()
        .customer_calls("sales", "+441632960003")
        .call()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(deadline, ws.next()).await
    {
        let message: Value = serde_json::from_str(&text).unwrap();
        assert!(
            message.get("centre").is_none() && message.get("update").is_none(),
            "{}",
            message
        );
        if let Some(event) = message.get("event") {
            assert_eq!(event["agent"], "alice", "{}", message);
        }
    }
    // And a supervisor's grant has no desk.
    let refused = centre
        .gateway
        .session(&Grant::supervisor(
            AgentId::new("sam").unwrap(),
            DeviceId::new("1009").unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), opencti_core::ErrorKind::Unauthorized);
}

#[tokio::test]
async fn without_queue_figures_a_supervisor_gets_none_rather_than_zeros() {
    let switch = SimSwitch::builder()
        .queue("sales")
        .agent("alice", "1001", &["sales"])
        .build()
        .unwrap();
    // A phone system that reports no queues (a SIP registrar): no board.
    let centre = serve(switch, None).await;
    centre
        .gateway
        .session(&grant("alice", "1001"))
        .await
        .unwrap();
    let (_ws, whole) = centre.supervisor().await;
    assert!(whole["queues"].is_null(), "{whole}");
    assert_eq!(whole["history"], json!([]));
    assert_eq!(whole["agents"][0]["agent"], "alice");
}

#[tokio::test]
async fn an_agent_sees_how_many_wait_in_their_own_queues_only() {
    let switch = SimSwitch::builder()
        .queue("sales")
        .queue("support")
        .agent("alice", "1001", &["sales"])
        .agent("carol", "1003", &["support"])
        .build()
        .unwrap();
    let centre = serve(switch.clone(), Some(QueueStats::new(switch.now()))).await;
    let mut ws = centre.connect(grant("alice", "1001")).await;
    let first = until(&mut ws, |_| true).await;
    assert!(
        first.get("snapshot").is_some(),
        "the desk's snapshot comes first: {first}"
    );
    let mine = until(&mut ws, |m| m.get("queue_waiting").is_some()).await;
    assert_eq!(
        mine["queue_waiting"],
        json!({"queue": "sales", "waiting": 0})
    );

    // Nobody is ready: callers wait in both queues; alice hears of hers only.
    let control = switch.control();
    control
        .customer_calls("support", "+441632960004")
        .call()
        .unwrap();
    control
        .customer_calls("sales", "+441632960005")
        .call()
        .unwrap();
    let waiting = until(&mut ws, |m| m["queue_waiting"]["waiting"] == 1).await;
    assert_eq!(waiting["queue_waiting"]["queue"], "sales", "{waiting}");
    assert!(waiting["queue_waiting"]["oldest_since"].as_u64().is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(deadline, ws.next()).await
    {
        let message: Value = serde_json::from_str(&text).unwrap();
        if let Some(queue) = message.get("queue_waiting") {
            assert_eq!(queue["queue"], "sales", "{message}");
        }
        assert!(message.get("update").is_none() && message.get("centre").is_none());
    }
}
