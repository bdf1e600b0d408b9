//! Publishing and following against a real nats-server with JetStream (see
//! `support`): every event of a simulated centre's lines, durable resumption, a bad
//! message, and a server restart under a running publisher.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, ErrorKind, EventEnvelope,
    EventStream, ReasonCode, Session, Timestamp,
};
use opencti_nats::async_nats::jetstream;
use opencti_nats::{
    ensure_stream, EventPublisher, FollowFilter, Followed, Follower, LineMessage, Site,
    StreamLimits,
};
use opencti_sim::SimSwitch;
use support::NatsServer;

const WAIT: Duration = Duration::from_secs(20);

fn centre() -> SimSwitch {
    SimSwitch::builder()
        .queue("support")
        .agent("alice", "PJSIP/1001", &["support"])
        .agent("bob.smith", "PJSIP/1002", &["support"])
        .build()
        .unwrap()
}

async fn session(switch: &SimSwitch, agent: &str, device: &str) -> Session {
    let device = DeviceId::new(device).unwrap();
    Session::builder(
        Arc::new(switch.connector(device.clone())),
        AgentId::new(agent).unwrap(),
        device,
    )
    .start()
    .await
    .unwrap()
}

async fn jetstream(server: &NatsServer) -> jetstream::Context {
    let client = opencti_nats::async_nats::connect(server.url())
        .await
        .unwrap();
    jetstream::new(client)
}

/// A connection to `server`, site `name` with its stream, and a publisher for it.
async fn site_on(server: &NatsServer, name: &str) -> (jetstream::Context, Site, EventPublisher) {
    let js = jetstream(server).await;
    let site = Site::new(name).unwrap();
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();
    let publisher = EventPublisher::new(js.clone(), site.clone());
    (js, site, publisher)
}

/// Some agent-state changes: a handful of events on the line.
async fn work(session: &Session, rounds: usize) {
    for round in 0..rounds {
        session.ready().await.unwrap();
        let reason = ReasonCode::new(format!("break-{round}")).unwrap();
        session.not_ready(Some(reason)).await.unwrap();
    }
}

/// The events a subscription saw, up to and including `seq`.
async fn seen(events: &mut EventStream, seq: u64) -> Vec<EventEnvelope> {
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &EventEnvelope| e.seq < seq) {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("the session's event in time")
            .expect("the session's events go on")
            .expect("no lag");
        out.push((*event).clone());
    }
    out
}

/// The next `count` messages of `follower`, each within the test's wait.
async fn take(follower: &mut Follower, count: usize) -> Vec<Followed> {
    let mut out = Vec::new();
    for _ in 0..count {
        let next = tokio::time::timeout(WAIT, follower.next())
            .await
            .expect("a message in time")
            .expect("the follower goes on")
            .expect("a message that decodes");
        out.push(next);
    }
    out
}

/// That nothing more comes within a second.
async fn nothing_more(follower: &mut Follower) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_secs(1), follower.next()).await {
        panic!("no message expected, got {extra:?}");
    }
}

fn event(followed: &Followed) -> &EventEnvelope {
    match &followed.message {
        LineMessage::Event(event) => event,
        other => panic!("an event expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_every_event_of_every_line_as_the_session_produced_it() {
    let Some(server) = NatsServer::start("every-event") else {
        return;
    };
    let js = jetstream(&server).await;
    let site = Site::new("paris").unwrap();
    let stream = ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();
    // Idempotent: a second call changes nothing and fails nothing.
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();
    let publisher = EventPublisher::new(js.clone(), site.clone());

    let switch = centre();
    let alice = session(&switch, "alice", "PJSIP/1001").await;
    let bob = session(&switch, "bob.smith", "PJSIP/1002").await;
    let (mut alice_seen, mut bob_seen) = (alice.subscribe(), bob.subscribe());
    let epoch = Timestamp::now();
    let alice_feed = publisher.follow(alice.clone(), epoch);
    let bob_feed = publisher.follow(bob.clone(), epoch);

    alice.login().await.unwrap();
    bob.login().await.unwrap();
    let (alice_work, bob_work) = (work(&alice, 3), work(&bob, 2));
    tokio::join!(alice_work, bob_work);
    let (alice_last, bob_last) = (alice.snapshot().seq, bob.snapshot().seq);
    let alice_events = seen(&mut alice_seen, alice_last).await;
    let bob_events = seen(&mut bob_seen, bob_last).await;
    assert!(alice_feed.published(alice_last, WAIT).await);
    assert!(bob_feed.published(bob_last, WAIT).await);

    let mut follower = Follower::durable(&js, &site, "wallboard", FollowFilter::Site)
        .await
        .unwrap();
    let all = take(&mut follower, alice_events.len() + bob_events.len()).await;
    nothing_more(&mut follower).await;

    let mut lines: BTreeMap<String, Vec<&Followed>> = BTreeMap::new();
    for followed in &all {
        lines
            .entry(followed.agent.to_string())
            .or_default()
            .push(followed);
    }
    for (agent, device, expected) in [
        ("alice", "PJSIP/1001", &alice_events),
        ("bob.smith", "PJSIP/1002", &bob_events),
    ] {
        let got = &lines[agent];
        assert_eq!(got.len(), expected.len(), "{agent}'s events");
        for (followed, expected) in got.iter().zip(expected.iter()) {
            assert_eq!(followed.agent.as_str(), agent);
            assert_eq!(followed.device.as_str(), device);
            assert_eq!(event(followed), expected, "{agent}, in seq order");
            // The stored payload is the session's JSON, byte for byte.
            let raw = stream.get_raw_message(followed.stream_seq).await.unwrap();
            assert_eq!(raw.payload.as_ref(), serde_json::to_vec(expected).unwrap());
            assert_eq!(
                raw.subject.as_str(),
                site.line_events(&expected.agent, &expected.device)
            );
            assert_eq!(
                raw.headers.get("Nats-Msg-Id").unwrap().as_str(),
                site.event_msg_id(&expected.agent, &expected.device, epoch, expected.seq)
            );
        }
    }

    // One agent's follower sees that agent's line only.
    let mut bobs = Follower::durable(
        &js,
        &site,
        "bob-logger",
        FollowFilter::Agent(AgentId::new("bob.smith").unwrap()),
    )
    .await
    .unwrap();
    let got = take(&mut bobs, bob_events.len()).await;
    let got: Vec<&EventEnvelope> = got.iter().map(event).collect();
    assert_eq!(got, bob_events.iter().collect::<Vec<_>>());
    nothing_more(&mut bobs).await;

    // The same durable name with another filter is refused.
    let error = Follower::durable(&js, &site, "bob-logger", FollowFilter::Site)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_follower_resumes_after_the_last_message_it_took() {
    let Some(server) = NatsServer::start("resume") else {
        return;
    };
    let (js, site, publisher) = site_on(&server, "lyon").await;
    let switch = centre();
    let alice = session(&switch, "alice", "PJSIP/1001").await;
    // Publishing starts with the events after the session's start-up ones.
    let start = alice.snapshot().seq;
    let feed = publisher.follow(alice.clone(), Timestamp::now());

    alice.login().await.unwrap();
    work(&alice, 3).await;
    let first = alice.snapshot().seq;
    assert!(feed.published(first, WAIT).await);

    let mut follower = Follower::durable(&js, &site, "crm", FollowFilter::Site)
        .await
        .unwrap();
    let before: Vec<u64> = take(&mut follower, 4)
        .await
        .iter()
        .map(|f| event(f).seq)
        .collect();
    drop(follower);

    work(&alice, 2).await;
    let last = alice.snapshot().seq;
    assert!(feed.published(last, WAIT).await);

    let mut follower = Follower::durable(&js, &site, "crm", FollowFilter::Site)
        .await
        .unwrap();
    let rest = take(&mut follower, (last - start - 4) as usize).await;
    nothing_more(&mut follower).await;
    let rest: Vec<u64> = rest.iter().map(|f| event(f).seq).collect();
    let all: Vec<u64> = before.into_iter().chain(rest).collect();
    assert_eq!(
        all,
        (start + 1..=last).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_decode_is_reported_once_and_skipped() {
    let Some(server) = NatsServer::start("bad-message") else {
        return;
    };
    let (js, site, publisher) = site_on(&server, "nice").await;
    let switch = centre();
    let alice = session(&switch, "alice", "PJSIP/1001").await;
    let mut events = alice.subscribe();
    alice.login().await.unwrap();
    let good = seen(&mut events, alice.snapshot().seq).await;

    let subject = "opencti.nice.events.alice.PJSIP/1001";
    js.publish(subject, "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    for event in &good {
        publisher
            .publish_event(event, Timestamp::from_micros(1))
            .await
            .unwrap();
    }

    let mut follower = Follower::durable(&js, &site, "logger", FollowFilter::Site)
        .await
        .unwrap();
    let error = tokio::time::timeout(WAIT, follower.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadInput);
    assert!(error.message().contains(subject), "{error}");
    let got = take(&mut follower, good.len()).await;
    assert_eq!(
        got.iter().map(event).collect::<Vec<_>>(),
        good.iter().collect::<Vec<_>>()
    );
    drop(follower);

    // Terminated: not delivered again to the same durable consumer.
    let mut follower = Follower::durable(&js, &site, "logger", FollowFilter::Site)
        .await
        .unwrap();
    nothing_more(&mut follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_rides_out_a_server_restart_without_duplicates() {
    let Some(mut server) = NatsServer::start("restart") else {
        return;
    };
    let (js, site, publisher) = site_on(&server, "berlin").await;
    let switch = centre();
    let alice = session(&switch, "alice", "PJSIP/1001").await;
    let mut alice_seen = alice.subscribe();
    let epoch = Timestamp::now();
    let feed = publisher.follow(alice.clone(), epoch);

    alice.login().await.unwrap();
    work(&alice, 2).await;
    let before = alice.snapshot().seq;
    assert!(feed.published(before, WAIT).await);

    // Publishing an event again is dropped by the server.
    let first = seen(&mut alice_seen, before).await;
    let again = publisher.publish_event(&first[0], epoch).await.unwrap();
    assert!(again.duplicate);

    // The server goes away; the line goes on; the server comes back on the same store.
    server.stop();
    work(&alice, 2).await;
    let last = alice.snapshot().seq;
    assert!(!feed.published(last, Duration::from_millis(300)).await);
    server.restart();
    assert!(
        feed.published(last, WAIT).await,
        "published after the restart"
    );
    let all = seen(&mut alice_seen, last).await;
    let all: Vec<EventEnvelope> = first.into_iter().chain(all).collect();

    // Still a duplicate after the restart: the server rebuilt its ids from the store.
    let again = publisher.publish_event(&all[0], epoch).await.unwrap();
    assert!(again.duplicate);
    let mut stream = js.get_stream(site.stream_name()).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        all.len() as u64
    );

    let mut follower = Follower::durable(&js, &site, "audit", FollowFilter::Site)
        .await
        .unwrap();
    let got = take(&mut follower, all.len()).await;
    nothing_more(&mut follower).await;
    assert_eq!(
        got.iter().map(event).collect::<Vec<_>>(),
        all.iter().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_fell_behind_publishes_the_snapshot_then_goes_on() {
    let Some(mut server) = NatsServer::start("lagged") else {
        return;
    };
    let (js, site, publisher) = site_on(&server, "madrid").await;
    let switch = centre();
    // A small subscriber buffer, so that a publisher held up by the server falls behind.
    let device = DeviceId::new("PJSIP/1001").unwrap();
    let alice = Session::builder(
        Arc::new(switch.connector(device.clone())),
        AgentId::new("alice").unwrap(),
        device,
    )
    .event_capacity(4)
    .start()
    .await
    .unwrap();
    let feed = publisher.follow(alice.clone(), Timestamp::now());
    alice.login().await.unwrap();
    let before = alice.snapshot().seq;
    assert!(feed.published(before, WAIT).await);

    // The server goes away while the line makes far more events than the buffer holds.
    server.stop();
    work(&alice, 10).await;
    let lagged_at = alice.snapshot().seq;
    server.restart();
    // Then a little more, after the snapshot.
    work(&alice, 1).await;
    let last = alice.snapshot().seq;
    assert!(
        feed.published(last, WAIT).await,
        "published up to {last} after the lag"
    );

    let mut follower = Follower::durable(&js, &site, "lagged", FollowFilter::Site)
        .await
        .unwrap();
    // The line as followers get it: events in order with no gap, except where a snapshot
    // stands in for skipped ones (one or more: the publisher may fall behind again
    // while it catches up); after a snapshot, the events that follow it, once.
    let mut covered = 0u64;
    let mut snapshots = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, follower.next())
            .await
            .expect("a message in time")
            .expect("the follower goes on")
            .expect("a message that decodes");
        match next.message {
            LineMessage::Snapshot(snapshot) => {
                assert!(
                    snapshot.seq > covered && snapshot.seq <= last,
                    "a snapshot ahead of what came before: {} after {covered}",
                    snapshot.seq
                );
                covered = snapshot.seq;
                snapshots.push(snapshot.seq);
            }
            LineMessage::Event(event) => {
                if covered > 0 {
                    assert_eq!(event.seq, covered + 1, "no gap, no repeat");
                }
                covered = event.seq;
            }
            other => panic!("{other:?}"),
        }
        if covered == last {
            break;
        }
    }
    // The publisher takes the snapshot when it notices the lag, after its retry wait:
    // by then the line may have gone on past `lagged_at`.
    assert!(
        snapshots.first().is_some_and(|&s| s > before),
        "a snapshot where events were skipped: {snapshots:?} (events {before}..={lagged_at}, last {last})"
    );
    nothing_more(&mut follower).await;
}
