//! Failover of the link service over a real nats-server (see `support`): two link
//! services of one site share a simulated phone system; the leader dies mid-call; the
//! standby takes the lease and the lines over; a gateway's desks see `link_down`, then
//! `resynced` with the call still up and nothing made up, and a command sent during the
//! handover is answered.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use opencti_core::{
    AgentId, CallState, DesktopInterface, DesktopInterfaceExt, DeviceId, ErrorKind, Event,
    EventStream, LinkState, Session, Snapshot, Timestamp,
};
use opencti_nats::async_nats;
use opencti_nats::async_nats::jetstream;
use opencti_nats::{
    ensure_stream, leader, Lease, LineService, RemoteLine, ServedLine, Site, StreamLimits,
};
use opencti_sim::SimSwitch;
use support::NatsServer;

const WAIT: Duration = Duration::from_secs(20);
const TTL: Duration = Duration::from_millis(1500);

fn centre() -> SimSwitch {
    SimSwitch::builder()
        .queue("support")
        .agent("alice", "PJSIP/1001", &["support"])
        .agent("bob", "PJSIP/1002", &["support"])
        .build()
        .unwrap()
}

fn lines() -> Vec<(AgentId, DeviceId)> {
    [("alice", "PJSIP/1001"), ("bob", "PJSIP/1002")]
        .into_iter()
        .map(|(a, d)| (AgentId::new(a).unwrap(), DeviceId::new(d).unwrap()))
        .collect()
}

async fn client(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.unwrap()
}

/// One link service: its NATS connection, lease, sessions and served lines.
struct LinkService {
    client: async_nats::Client,
    _lease: Lease,
    sessions: Vec<Session>,
    _served: Vec<ServedLine>,
}

/// Waits for the lease as `holder`, then starts every line's session on `switch`,
/// taking each over from what the stream last published, and serves them.
async fn link_service(url: &str, site: &Site, switch: &SimSwitch, holder: &str) -> LinkService {
    let client = client(url).await;
    let lease = Lease::acquire(&jetstream::new(client.clone()), site, holder, TTL)
        .await
        .unwrap();
    let service = LineService::new(client.clone(), site.clone());
    let mut sessions = Vec::new();
    let mut served = Vec::new();
    for (agent, device) in lines() {
        let mut builder = Session::builder(
            Arc::new(switch.connector(device.clone())),
            agent.clone(),
            device.clone(),
        );
        let previous = service.last_published(&agent, &device).await.unwrap();
        let from = previous.as_ref().map_or(0, |p| p.seq);
        if let Some(previous) = previous {
            builder = builder.take_over(previous, format!("link service {holder} took over"));
        }
        // Every event from the session's first, so that desks hear of the take-over.
        let (session, events) = builder.start_with_events().await.unwrap();
        let line = service
            .serve_events(session.clone(), events, from, Timestamp::now())
            .await
            .unwrap();
        served.push(line);
        sessions.push(session);
    }
    LinkService {
        client,
        _lease: lease,
        sessions,
        _served: served,
    }
}

/// Reads a desk's events until `resynced`; the kinds seen and when it came.
async fn until_resynced(events: &mut EventStream) -> (Vec<&'static str>, Instant) {
    let mut kinds = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("the desk hears of the take-over in time")
            .expect("the events go on");
        match next {
            Ok(event) => {
                kinds.push(event.event.name());
                if matches!(event.event, Event::Resynced { .. }) {
                    return (kinds, Instant::now());
                }
            }
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::Lagged, "{error}");
                kinds.push("lagged");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_the_lines_over_mid_call_and_the_desks_see_the_truth() {
    let Some(server) = NatsServer::start("failover") else {
        return;
    };
    let site = Site::new("failover").unwrap();
    let url = server.url();
    let js = jetstream::new(client(&url).await);
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();
    // The phone system outlives either link service.
    let switch = centre();
    let first = link_service(&url, &site, &switch, "link-a").await;
    assert_eq!(leader(&js, &site).await.unwrap().as_deref(), Some("link-a"));
    let standby = {
        let (url, site, switch) = (url.clone(), site.clone(), switch.clone());
        tokio::spawn(async move { link_service(&url, &site, &switch, "link-b").await })
    };

    // A gateway's desks: alice on a call, bob ready.
    let gateway = client(&url).await;
    let mut desks = BTreeMap::new();
    for (agent, device) in lines() {
        let line = RemoteLine::open(gateway.clone(), &site, agent.clone(), device)
            .await
            .unwrap();
        line.login().await.unwrap();
        line.ready().await.unwrap();
        desks.insert(agent.as_str().to_owned(), line);
    }
    let alice = desks["alice"].clone();
    let bob = desks["bob"].clone();
    let mut alice_events = alice.subscribe();
    switch
        .control()
        .customer_calls("support", "+49 30 0000 0001")
        .call()
        .unwrap();
    let call = loop {
        let event = tokio::time::timeout(WAIT, alice_events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Event::CallOffered { call, .. } = &event.event {
            break call.clone();
        }
    };
    alice.answer(call.clone()).await.unwrap();
    let before: Snapshot = alice.snapshot();
    assert_eq!(before.calls[0].state, CallState::Connected);
    let mut bob_events = bob.subscribe();

    // The leader dies: its connection closes, its lease is left to expire.
    let died = Instant::now();
    first.client.drain().await.unwrap();
    drop(first);
    // The server notices the closed connection (at once, when a process dies).
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server notices the closed connection (at once, when a process dies).
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A command during the handover is answered, never lost.
    let during = bob.not_ready(None).await.unwrap_err();
    assert_eq!(during.kind(), ErrorKind::LinkDown, "{during}");

    let (alice_saw, alice_at) = until_resynced(&mut alice_events).await;
    let (bob_saw, bob_at) = until_resynced(&mut bob_events).await;
    let second = standby.await.unwrap();
    assert_eq!(leader(&js, &site).await.unwrap().as_deref(), Some("link-b"));
    let failover = alice_at.max(bob_at) - died;
    println!("failover: {failover:?} from the leader's death to resynced on both desks (lease ttl {TTL:?})");
    assert!(failover < TTL * 2 + Duration::from_secs(3), "{failover:?}");
    for saw in [&alice_saw, &bob_saw] {
        let down = saw.iter().position(|k| *k == "link_down");
        assert!(down.is_some(), "link_down before resynced: {saw:?}");
    }

    // The desks show the switch's truth: alice's call still up, bob with none.
    let now = alice.snapshot();
    assert_eq!(now.link, LinkState::Up);
    assert_eq!(now.calls.len(), 1, "{now:?}");
    assert_eq!(now.calls[0].id, call);
    assert_eq!(now.calls[0].state, CallState::Connected);
    assert!(now.seq > before.seq);
    assert!(bob.snapshot().calls.is_empty());
    assert_eq!(now, second.sessions[0].snapshot());
    assert_eq!(bob.snapshot(), second.sessions[1].snapshot());

    // And the desks work on through the new leader.
    alice.hangup(call).await.unwrap();
    bob.not_ready(None).await.unwrap();
    assert!(alice.snapshot().calls.is_empty());
}
