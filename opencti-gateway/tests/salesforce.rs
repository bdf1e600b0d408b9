//! The Salesforce Open CTI softphone end to end: headless Chromium shows a stand-in
//! Salesforce page (its own server, another origin) that frames the gateway's softphone
//! and plays `sforce.opencti` from the documented method shapes, recording every call.
//! Over the simulated centre, a click-to-dial call, an inbound call (pop, answer, hold,
//! retrieve, hang up, wrap-up, log), one whose log Salesforce refuses and one with two
//! matches must make exactly the documented Open CTI calls with exactly the documented
//! payloads.
//!
//! Needs `chromium`, `node` and `e2e/node_modules`, like the panel's browser test: without
//! them the test is skipped with the reason printed, except under `CI=true`.
//! `OPENCTI_SCREENSHOTS=<dir>` keeps the screenshots there (the docs' come from this).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Grant, Security, SignIn, SimSessions, TokenTable};
use opencti_sim::{FarEnd, SimSwitch};
use serde_json::{json, Value};

mod e2e;

use e2e::Driver;

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

/// Serves the stand-in Salesforce page and its `opencti_min.js` where Salesforce serves
/// the library; answers the server's address.
async fn stand_in_salesforce() -> std::net::SocketAddr {
    let page = || async {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            include_str!("../e2e/fake-salesforce/lightning.html"),
        )
    };
    let library = || async {
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            include_str!("../e2e/fake-salesforce/opencti_min.js"),
        )
    };
    let router = axum::Router::new()
        .route("/lightning", get(page))
        .route("/support/api/67.0/lightning/opencti_min.js", get(library));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_softphone_makes_the_documented_open_cti_calls() {
    if !e2e::can_run("the Salesforce softphone test", true, &["playwright-core"]) {
        return;
    }

    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(600))
        .agent("alice", "1001", &["support"])
        .extension(
            "1900",
            FarEnd::Answer {
                after: Duration::from_millis(300),
            },
        )
        .build()
        .unwrap();
    let control = switch.control();

    let salesforce = stand_in_salesforce().await;
    let tokens = TokenTable::new();
    let passwords = Passwords([("alice", ("1001", "correct horse"))].into_iter().collect());
    let gateway = Gateway::new(
        Arc::new(tokens.clone()),
        Arc::new(SimSessions::new(switch.clone())),
    )
    .with_sign_in(
        Arc::new(passwords),
        Arc::new(tokens),
        Duration::from_secs(3600),
    )
    .with_security(
        Security::default()
            .frame_ancestor(format!("http://{}", salesforce))
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let softphone = format!(
        "http://{}/salesforce/softphone",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { gateway.serve(listener).await });
    let url = format!(
        "http://{}/lightning?softphone={}",
        salesforce,
        softphone.replace(':', "%3A").replace('/', "%2F")
    );

    let shots = e2e::screenshots("opencti-sf-shots");
    let mut driver = Driver::start(&[], "salesforce.mjs", &[&url, &shots.display().to_string()]);

    let mut seen = Vec::new();
    let mut call_ids = Vec::new();
    let mut today = String::new();
    let mut recorded = Value::Null;
    loop {
        let Some(line) = driver.next().await else {
            break;
        };
        if let Some(id) = line.strip_prefix("CALL ") {
            call_ids.push(id.to_string());
            continue;
        }
        if let Some(date) = line.strip_prefix("DATE ") {
            today = date.to_string();
            continue;
        }
        if let Some(calls) = line.strip_prefix("CALLS ") {
            recorded = serde_json::from_str(calls).unwrap();
            continue;
        }
        seen.push(line.clone());
        match line.as_str() {
            "READY" => control
                .customer_calls("support", "+441632960003")
                .call()
                .unwrap(),
            "NEXT" => control
                .customer_calls("support", "+441632960999")
                .call()
                .unwrap(),
            "MORE" => control
                .customer_calls("support", "+441632960005")
                .call()
                .unwrap(),
            "DONE" => break,
            _ => {}
        }
    }
    assert!(
        driver.succeeded(),
        "the browser script failed after {:?}",
        seen
    );
    assert_eq!(seen, ["READY", "NEXT", "MORE", "DONE"]);
    assert_eq!(call_ids.len(), 4, "{call_ids:?}");

    // Durations depend on the machine's speed: each must be a whole number of seconds,
    // short here; the rest of each payload is exact.
    let mut recorded = recorded.as_array().cloned().unwrap_or_default();
    for call in &mut recorded {
        if let Some(duration) = call.pointer_mut("/args/value/CallDurationInSeconds") {
            let seconds = duration.as_u64().expect("a whole number of seconds");
            assert!(seconds < 60, "{seconds}");
            *duration = json!("<seconds>");
        }
    }
    let task = |call: &str, subject: &str, call_type: &str, extra: Value| {
        let mut value = json!({
            "entityApiName": "Task",
            "Subject": subject,
            "Status": "Completed",
            "ActivityDate": today,
            "CallType": call_type,
            "CallDurationInSeconds": "<seconds>",
            "CallObject": call,
        });
        for (key, field) in extra.as_object().unwrap() {
            value[key] = field.clone();
        }
        json!({ "method": "saveLog", "args": { "value": value } })
    };
    let plain = |method: &str| json!({ "method": method, "args": {} });
    let refused = task(
        &call_ids[2],
        "Call from +441632960999",
        "Inbound",
        json!({ "CallDisposition": "no-action", "WhatId": "500000000000002AAA" }),
    );
    let expected = vec![
        // Loading: listeners, the record open, then ready.
        json!({ "method": "onClickToDial", "args": { "listener": "<function>" } }),
        json!({ "method": "onNavigationChange", "args": { "listener": "<function>" } }),
        plain("getAppViewInfo"),
        plain("notifyInitializationComplete"),
        // Logged in: click-to-dial on.
        plain("enableClickToDial"),
        // The click-to-dial call, linked to the clicked contact and the case open.
        task(
            &call_ids[0],
            "Call to 1900",
            "Outbound",
            json!({ "WhoId": "003000000000009AAA", "WhatId": "500000000000001AAA" }),
        ),
        plain("refreshView"),
        // The inbound call: the panel opens, the caller pops, the log after wrap-up.
        json!({ "method": "setSoftphonePanelVisibility", "args": { "visible": true } }),
        json!({ "method": "searchAndScreenPop", "args": {
            "searchParams": "+441632960003",
            "callType": "inbound",
            "defaultFieldValues": { "Phone": "+441632960003" },
            "deferred": false,
        } }),
        task(
            &call_ids[1],
            "Call from +441632960003",
            "Inbound",
            json!({
                "CallDisposition": "resolved",
                "WhoId": "003000000000001AAA",
                "WhatId": "500000000000002AAA",
            }),
        ),
        plain("refreshView"),
        // The unknown caller: no single match, so the log takes the record the agent
        // has open; Salesforce refuses it, the agent saves it again.
        json!({ "method": "setSoftphonePanelVisibility", "args": { "visible": true } }),
        json!({ "method": "searchAndScreenPop", "args": {
            "searchParams": "+441632960999",
            "callType": "inbound",
            "defaultFieldValues": { "Phone": "+441632960999" },
            "deferred": false,
        } }),
        refused.clone(),
        refused,
        plain("refreshView"),
        // Two matches: no record of its own; the agent opened the lead.
        json!({ "method": "setSoftphonePanelVisibility", "args": { "visible": true } }),
        json!({ "method": "searchAndScreenPop", "args": {
            "searchParams": "+441632960005",
            "callType": "inbound",
            "defaultFieldValues": { "Phone": "+441632960005" },
            "deferred": false,
        } }),
        task(
            &call_ids[3],
            "Call from +441632960005",
            "Inbound",
            json!({ "CallDisposition": "escalated", "WhoId": "00Q000000000001AAA" }),
        ),
        plain("refreshView"),
        // Logged out: click-to-dial off.
        plain("disableClickToDial"),
    ];
    assert_eq!(
        recorded,
        expected,
        "recorded:\n{}",
        serde_json::to_string_pretty(&recorded).unwrap()
    );
}
