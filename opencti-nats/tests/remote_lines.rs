//! A link service and stateless gateways over a real nats-server (see `support`): the
//! session runs in one place, two `RemoteLine`s of it stand for two gateways, and a desk
//! moves from one to the other in the middle of a call.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    AgentId, CallState, DesktopInterface, DesktopInterfaceExt, DeviceId, ErrorKind, EventEnvelope,
    EventStream, LineAccess, LinkState, Session, Timestamp,
};
use opencti_nats::async_nats;
use opencti_nats::async_nats::jetstream;
use opencti_nats::{ensure_stream, LineService, RemoteLine, Site, StreamLimits};
use opencti_sim::SimSwitch;
use support::NatsServer;

const WAIT: Duration = Duration::from_secs(20);

fn centre() -> SimSwitch {
    SimSwitch::builder()
        .queue("support")
        .agent("alice", "PJSIP/1001", &["support"])
        .build()
        .unwrap()
}

fn alice() -> (AgentId, DeviceId) {
    (
        AgentId::new("alice").unwrap(),
        DeviceId::new("PJSIP/1001").unwrap(),
    )
}

async fn session(switch: &SimSwitch) -> Session {
    let (agent, device) = alice();
    Session::builder(Arc::new(switch.connector(device.clone())), agent, device)
        .start()
        .await
        .unwrap()
}

/// A client of its own, as each process has.
async fn client(server: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .unwrap()
}

async fn site_on(server: &NatsServer, name: &str) -> Site {
    let site = Site::new(name).unwrap();
    ensure_stream(
        &jetstream::new(client(server).await),
        &site,
        &StreamLimits::default(),
    )
    .await
    .unwrap();
    site
}

/// The next event of `events`, within the test's wait.
async fn next(events: &mut EventStream) -> EventEnvelope {
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the events go on")
        .expect("no lag");
    (*event).clone()
}

/// The events of `events` up to and including `seq`.
async fn until(events: &mut EventStream, seq: u64) -> Vec<EventEnvelope> {
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &EventEnvelope| e.seq < seq) {
        out.push(next(events).await);
    }
    out
}

/// Waits until `line`'s copy holds `seq`.
async fn holds(line: &RemoteLine, seq: u64) {
    tokio::time::timeout(WAIT, line.replica().holds(seq))
        .await
        .expect("the copy catches up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_serve_one_session_and_a_desk_moves_between_them_mid_call() {
    let Some(server) = NatsServer::start("two-gateways") else {
        return;
    };
    let site = site_on(&server, "lyon").await;
    let switch = centre();
    let owner = session(&switch).await;
    let mut at_source = owner.subscribe();
    let service = LineService::new(client(&server).await, site.clone());
    let _served = service
        .serve(owner.clone(), Timestamp::now())
        .await
        .unwrap();

    let (agent, device) = alice();
    let gateway_a = RemoteLine::open(client(&server).await, &site, agent.clone(), device.clone())
        .await
        .unwrap();
    let gateway_b = RemoteLine::open(client(&server).await, &site, agent.clone(), device.clone())
        .await
        .unwrap();
    assert_eq!(gateway_a.snapshot(), owner.snapshot());
    assert_eq!(gateway_a.capabilities(), owner.capabilities());

    // The desk starts on gateway A: commands go to the session, in order.
    let (first, mut on_a) = gateway_a.snapshot_and_subscribe();
    gateway_a.login().await.unwrap();
    let ready = gateway_a.ready().await.unwrap();
    // A confirmation comes once the copy holds its event.
    assert!(gateway_a.snapshot().seq >= ready.event.seq);
    assert_eq!(
        gateway_a.snapshot().agent_state,
        owner.snapshot().agent_state
    );

    switch
        .control()
        .customer_calls("support", "+33 4 00 00 00 01")
        .call()
        .unwrap();
    let mut on_a_so_far = Vec::new();
    let offered = loop {
        let event = next(&mut on_a).await;
        on_a_so_far.push(event.clone());
        if let Some(call) = event.call() {
            break call.clone();
        }
    };
    gateway_a.answer(offered.clone()).await.unwrap();
    let talking = owner.snapshot();
    assert_eq!(talking.calls[0].state, CallState::Connected);
    on_a_so_far.extend(until(&mut on_a, talking.seq).await);

    // Gateway A goes away; the browser comes back on gateway B: a snapshot, then every
    // later event once.
    drop(on_a);
    drop(gateway_a);
    holds(&gateway_b, talking.seq).await;
    let (moved, mut on_b) = gateway_b.snapshot_and_subscribe();
    assert_eq!(moved, talking, "gateway B's snapshot is the session's");
    gateway_b.hold(offered.clone()).await.unwrap();
    gateway_b.retrieve(offered.clone()).await.unwrap();
    gateway_b.hangup(offered.clone()).await.unwrap();
    let last = owner.snapshot().seq;
    let on_b_after = until(&mut on_b, last).await;
    assert_eq!(
        on_b_after[0].seq,
        moved.seq + 1,
        "no gap after the snapshot"
    );

    // What the desk saw, on A then B, is exactly what the session produced.
    let at_source = until(&mut at_source, last).await;
    let desk_saw: Vec<EventEnvelope> = on_a_so_far.into_iter().chain(on_b_after).collect();
    let expected: Vec<EventEnvelope> = at_source
        .into_iter()
        .filter(|e| e.seq > first.seq)
        .collect();
    assert_eq!(desk_saw, expected);
    assert_eq!(gateway_b.snapshot(), owner.snapshot());
    assert_eq!(
        gateway_b.allowed_commands(None),
        owner.allowed_commands(None)
    );

    // The session refuses, and says why, through the gateway.
    let refused = gateway_b.hold(offered.clone()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");

    // The accepted commands reach the gateway too (a call logger reads dispositions).
    let mut accepted = gateway_b.subscribe_commands();
    gateway_b.not_ready(None).await.unwrap();
    // (Earlier commands may still be on their way to the stream: they come first.)
    let command = tokio::time::timeout(WAIT, async {
        loop {
            let command = accepted.recv().await.expect("a command");
            if command.command.kind().as_str() == "set_agent_state" {
                return command;
            }
        }
    })
    .await
    .expect("in time");
    assert!(matches!(
        command.command,
        opencti_core::Command::SetAgentState { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_nobody_serves_is_link_down_and_a_stopped_service_stops_answering() {
    let Some(server) = NatsServer::start("nobody-serves") else {
        return;
    };
    let site = site_on(&server, "oslo").await;
    let (agent, device) = alice();
    let error = RemoteLine::open(client(&server).await, &site, agent.clone(), device.clone())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LinkDown, "{error}");
    assert!(error.message().contains("no link service"), "{error}");

    let switch = centre();
    let owner = session(&switch).await;
    let service = LineService::new(client(&server).await, site.clone());
    let served = service
        .serve(owner.clone(), Timestamp::now())
        .await
        .unwrap();
    let line = RemoteLine::open(client(&server).await, &site, agent, device)
        .await
        .unwrap();
    line.login().await.unwrap();
    drop(served);
    // Let the service's unsubscribe reach the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let error = line.ready().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LinkDown, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_takes_its_copy_again_after_the_server_restarts() {
    let Some(mut server) = NatsServer::start("copy-restart") else {
        return;
    };
    let site = site_on(&server, "rome").await;
    let switch = centre();
    let owner = session(&switch).await;
    let service = LineService::new(client(&server).await, site.clone());
    let _served = service
        .serve(owner.clone(), Timestamp::now())
        .await
        .unwrap();
    let (agent, device) = alice();
    let line = RemoteLine::open(client(&server).await, &site, agent, device)
        .await
        .unwrap();
    let mut events = line.subscribe();
    line.login().await.unwrap();

    // While the server is away the session changes; the gateway's copy cannot hear it.
    server.stop();
    owner.ready().await.unwrap();
    owner.not_ready(None).await.unwrap();
    let now = owner.snapshot();
    server.restart();
    holds(&line, now.seq).await;
    assert_eq!(line.snapshot(), now);
    // Its subscribers are told to read the snapshot again.
    let lagged = loop {
        match tokio::time::timeout(WAIT, events.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => break error,
            other => panic!("a lag expected, got {other:?}"),
        }
    };
    assert_eq!(lagged.kind(), ErrorKind::Lagged);
    // And the line works on.
    line.ready().await.unwrap();
    assert_eq!(line.snapshot(), owner.snapshot());
    assert_eq!(owner.snapshot().link, LinkState::Up);
}
