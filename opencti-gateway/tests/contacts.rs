//! The agent's phone book over the WebSocket: a contact search answered from the SQLite
//! CRM, beside the desktop protocol on the same connection.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Contact, Crm, Gateway, Limits, SimSessions, SqliteCrm, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn signed_in(crm: SqliteCrm) -> Socket {
    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let tokens = TokenTable::new();
    let token = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let gateway = Gateway::with_crm(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch)),
        Limits::default(),
        Arc::new(crm),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve(listener).await });
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    send(&mut ws, json!({"auth": {"token": token.expose()}})).await;
    until(&mut ws, |m| m.get("snapshot").is_some()).await;
    ws
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

async fn search(ws: &mut Socket, id: &str, text: &str) -> Value {
    send(ws, json!({"id": id, "contacts": {"search": text}})).await;
    until(ws, |m| m["reply"]["id"] == id).await["reply"].clone()
}

fn names(reply: &Value) -> Vec<&str> {
    reply["contacts"]
        .as_array()
        .unwrap_or_else(|| panic!("contacts in {}", reply))
        .iter()
        .map(|c| c["contact"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_search_finds_contacts_by_name_number_or_company_in_any_case() {
    let crm = SqliteCrm::in_memory().unwrap();
    crm.seed_demo().unwrap();
    let mut ws = signed_in(crm).await;

    let everyone = search(&mut ws, "c1", "").await;
    assert_eq!(names(&everyone).len(), 6, "{}", everyone);
    assert!(names(&everyone).windows(2).all(|w| w[0] <= w[1]), "by name");

    let by_name = search(&mut ws, "c2", "turing").await;
    assert_eq!(names(&by_name), ["Alan Turing"]);
    assert_eq!(by_name["contacts"][0]["number"], "+441632960004");
    assert_eq!(
        by_name["contacts"][0]["contact"]["company"],
        "Bletchley Systems"
    );

    let by_number = search(&mut ws, "c3", "960005").await;
    assert_eq!(names(&by_number), ["Katherine Johnson"]);

    let by_company = search(&mut ws, "c4", "shortest PATH").await;
    assert_eq!(names(&by_company), ["Edsger Dijkstra"]);

    let nobody = search(&mut ws, "c5", "nobody here").await;
    assert!(names(&nobody).is_empty());

    // The desktop protocol goes on beside it on the same connection.
    send(&mut ws, json!({"id": "q", "query": {"type": "snapshot"}})).await;
    let reply = until(&mut ws, |m| m["reply"]["id"] == "q").await;
    assert!(reply["reply"]["snapshot"].is_object(), "{}", reply);
}

#[tokio::test]
async fn wildcards_in_a_search_are_letters() {
    let crm = SqliteCrm::in_memory().unwrap();
    let person = |name: &str| Contact {
        name: name.into(),
        company: None,
        account: None,
        tier: None,
        notes: None,
    };
    crm.add_contact("100", &person("Percent 100% Sure"))
        .unwrap();
    crm.add_contact("200", &person("Under_Score")).unwrap();
    crm.add_contact("300", &person("Plain Person")).unwrap();
    assert_eq!(
        crm.search("%", 10).await.unwrap().len(),
        1,
        "a % matches only a %"
    );
    let mut ws = signed_in(crm).await;
    assert_eq!(
        names(&search(&mut ws, "w1", "_").await),
        ["Under_Score"],
        "an _ matches only an _"
    );
}

#[tokio::test]
async fn a_bad_search_is_refused_under_its_id_and_the_connection_stays() {
    let mut ws = signed_in(SqliteCrm::in_memory().unwrap()).await;

    let long = search(&mut ws, "b1", &"x".repeat(101)).await;
    assert_eq!(long["error"]["kind"], "bad_input", "{}", long);

    send(&mut ws, json!({"id": "b2", "contacts": {"name": "ada"}})).await;
    let unknown = until(&mut ws, |m| m["reply"]["id"] == "b2").await;
    assert_eq!(unknown["reply"]["error"]["kind"], "bad_input");
    assert!(
        unknown["reply"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`name`"),
        "{}",
        unknown
    );

    let fine = search(&mut ws, "b3", "").await;
    assert!(names(&fine).is_empty());
}
