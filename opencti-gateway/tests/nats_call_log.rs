//! The SQLite call log written by one follower of a site's stream, over a real
//! nats-server (the harness of `opencti-nats/tests/support`): the follower is stopped
//! while one call goes from start to end and another starts, and started again; every
//! call is in the log exactly once, with its disposition, and nothing is missing.

#![cfg(feature = "nats")]

#[path = "../../opencti-nats/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use opencti_core::{
    AgentId, AgentState, CallId, DesktopInterface, DesktopInterfaceExt, DeviceId, ReasonCode,
    Session, Timestamp,
};
use opencti_gateway::{Crm, NatsCallLogger, SqliteCrm};
use opencti_nats::async_nats::{self, jetstream};
use opencti_nats::{ensure_stream, LineService, Site, StreamLimits};
use opencti_sim::SimSwitch;
use support::NatsServer;

const WAIT: Duration = Duration::from_secs(20);

async fn offered(session: &Session) -> CallId {
    for _ in 0..500 {
        if let Some(call) = session.snapshot().calls.first() {
            return call.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no call offered");
}

/// A customer calls; alice answers and the call is connected; its id.
async fn answered_call(switch: &SimSwitch, session: &Session, from: &str) -> CallId {
    switch
        .control()
        .customer_calls("support", from)
        .call()
        .unwrap();
    let call = offered(session).await;
    session.answer(call.clone()).await.unwrap();
    call
}

/// Alice hangs up and completes the wrap-up with `disposition`.
async fn finish(session: &Session, call: CallId, disposition: &str) {
    session.hangup(call).await.unwrap();
    assert!(
        matches!(session.snapshot().agent_state, AgentState::WrapUp { .. }),
        "{:?}",
        session.snapshot().agent_state
    );
    session
        .complete_wrap_up(Some(ReasonCode::new(disposition).unwrap()))
        .await
        .unwrap();
}

/// The site's stream's last sequence number.
async fn last_seq(js: &jetstream::Context, site: &Site) -> u64 {
    let mut stream = js.get_stream(site.stream_name()).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_writes_every_call_once_across_its_own_restart() {
    let Some(server) = NatsServer::start("call-log") else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let site = Site::new("logged").unwrap();
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();

    // The link service: alice's session on a simulated switch, served on the site.
    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(600))
        .agent("alice", "PJSIP/1001", &["support"])
        .build()
        .unwrap();
    let device = DeviceId::new("PJSIP/1001").unwrap();
    let alice = Session::builder(
        Arc::new(switch.connector(device.clone())),
        AgentId::new("alice").unwrap(),
        device,
    )
    .start()
    .await
    .unwrap();
    let service = LineService::new(client.clone(), site.clone());
    let served = service
        .serve(alice.clone(), Timestamp::now())
        .await
        .unwrap();
    alice.login().await.unwrap();
    alice.ready().await.unwrap();

    let dir = std::env::temp_dir().join(format!("opencti-call-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("calls.sqlite3");
    let _ = std::fs::remove_file(&db);
    let crm = Arc::new(SqliteCrm::open(&db).unwrap());

    // The follower writes the first call.
    let logger = NatsCallLogger::start(&js, &site, "call-log", crm.clone() as Arc<dyn Crm>)
        .await
        .unwrap();
    let first = answered_call(&switch, &alice, "+33 1 00 00 00 01").await;
    finish(&alice, first.clone(), "sale").await;
    assert!(served.feed().published(alice.snapshot().seq, WAIT).await);
    assert!(logger.reached(last_seq(&js, &site).await, WAIT).await);
    assert_eq!(crm.call_log().unwrap().len(), 1);

    // The follower stops; a call comes and goes, another comes and is answered.
    drop(logger);
    let second = answered_call(&switch, &alice, "+33 1 00 00 00 02").await;
    finish(&alice, second.clone(), "callback").await;
    let third = answered_call(&switch, &alice, "+33 1 00 00 00 03").await;
    assert!(served.feed().published(alice.snapshot().seq, WAIT).await);
    assert_eq!(crm.call_log().unwrap().len(), 1, "nobody wrote meanwhile");

    // It starts again where it stopped; the third call ends after.
    let logger = NatsCallLogger::start(&js, &site, "call-log", crm.clone() as Arc<dyn Crm>)
        .await
        .unwrap();
    finish(&alice, third.clone(), "sale").await;
    assert!(served.feed().published(alice.snapshot().seq, WAIT).await);
    assert!(logger.reached(last_seq(&js, &site).await, WAIT).await);

    let rows = crm.call_log().unwrap();
    let logged: Vec<(String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.call.clone(), r.number.clone(), r.disposition.clone()))
        .collect();
    let mut expected = vec![
        (
            first.as_str().to_owned(),
            Some("+33 1 00 00 00 01".to_owned()),
            Some("sale".to_owned()),
        ),
        (
            second.as_str().to_owned(),
            Some("+33 1 00 00 00 02".to_owned()),
            Some("callback".to_owned()),
        ),
        (
            third.as_str().to_owned(),
            Some("+33 1 00 00 00 03".to_owned()),
            Some("sale".to_owned()),
        ),
    ];
    let mut logged_sorted = logged.clone();
    logged_sorted.sort();
    expected.sort();
    assert_eq!(logged_sorted, expected, "every call once: {logged:?}");

    // Started from scratch under another name, a follower reads the stream from its
    // start and writes the same calls again: still one row a call.
    let again = NatsCallLogger::start(&js, &site, "call-log-2", crm.clone() as Arc<dyn Crm>)
        .await
        .unwrap();
    assert!(again.reached(last_seq(&js, &site).await, WAIT).await);
    assert_eq!(crm.call_log().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_follower_name_is_refused() {
    let Some(server) = NatsServer::start("call-log-name") else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let site = Site::new("named").unwrap();
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();
    let crm: Arc<dyn Crm> = Arc::new(SqliteCrm::in_memory().unwrap());
    for bad in ["", "a.b", "x y", &"n".repeat(65)] {
        let error = NatsCallLogger::start(&js, &site, bad, crm.clone())
            .await
            .unwrap_err();
        assert!(error.message().contains("follower name"), "{error}");
    }
}
