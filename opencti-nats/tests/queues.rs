//! A site's queue figures on a real nats-server (see `support`): the board of a
//! simulated centre is published, its figures first and then every event in order, and a
//! follower reading the stream ends with the board's own figures; a gateway's copy that
//! joins late has the board's figures and keeps up.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::queue::{QueueBoard, QueueEnvelope, QueueSnapshot, QueueStats};
use opencti_core::{AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, QueueId, Session};
use opencti_nats::async_nats::{self, jetstream};
use opencti_nats::{
    ensure_stream, QueueFeed, RemoteQueues, Site, StreamLimits, KIND_HEADER, KIND_QUEUE_EVENT,
    KIND_QUEUE_SNAPSHOT,
};
use opencti_sim::SimSwitch;
use support::NatsServer;

const WAIT: Duration = Duration::from_secs(20);

/// A customer calls the support queue from `caller`; alice answers and hangs up, and
/// the board has a moment to count it.
async fn one_call(switch: &SimSwitch, alice: &Session, caller: &str) {
    switch
        .control()
        .customer_calls("support", caller)
        .call()
        .unwrap();
    let call = loop {
        if let Some(call) = alice.snapshot().calls.first() {
            break call.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    alice.answer(call.clone()).await.unwrap();
    alice.hangup(call).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_is_published_figures_first_then_every_event_in_order() {
    let Some(server) = NatsServer::start("queues") else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let site = Site::new("queues").unwrap();
    ensure_stream(&js, &site, &StreamLimits::default())
        .await
        .unwrap();

    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "PJSIP/1001", &["support"])
        .build()
        .unwrap();
    let support = QueueId::new("support").unwrap();
    let board = QueueBoard::new(
        QueueStats::new(switch.now()).with_queue(support.clone(), Duration::from_secs(20)),
        switch.now(),
    );
    board.feed_stamped(switch.queue_events());
    let device = DeviceId::new("PJSIP/1001").unwrap();
    let alice = Session::builder(
        Arc::new(switch.connector(device.clone())),
        AgentId::new("alice").unwrap(),
        device,
    )
    .start()
    .await
    .unwrap();
    board.follow(alice.clone());
    let feed = QueueFeed::start(js.clone(), site.clone(), board.clone());

    alice.login().await.unwrap();
    alice.ready().await.unwrap();
    one_call(&switch, &alice, "+1 555 0100").await;
    let last = board.snapshot().seq;
    assert!(feed.published(last, WAIT).await, "published up to {last}");

    // A follower of the site's queues.
    let stream = js.get_stream(site.stream_name()).await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: site.all_queues(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut seq = None;
    let mut latest = None;
    while seq != Some(last) {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("a message in time")
            .expect("messages go on")
            .expect("a message");
        let kind = message
            .headers
            .as_ref()
            .and_then(|h| h.get(KIND_HEADER))
            .map(|v| v.as_str().to_owned());
        match kind.as_deref() {
            Some(KIND_QUEUE_SNAPSHOT) => {
                assert!(seq.is_none(), "the figures come first, once");
                let snapshot: QueueSnapshot = serde_json::from_slice(&message.payload).unwrap();
                seq = Some(snapshot.seq);
                latest = snapshot.queues.into_iter().find(|q| q.queue == support);
            }
            Some(KIND_QUEUE_EVENT) => {
                let envelope: QueueEnvelope = serde_json::from_slice(&message.payload).unwrap();
                assert_eq!(Some(envelope.seq), seq.map(|s| s + 1), "no gap, no repeat");
                seq = Some(envelope.seq);
                if let Some(figures) = envelope.queues.into_iter().find(|q| q.queue == support) {
                    latest = Some(figures);
                }
            }
            other => panic!("an unexpected message of kind {other:?}"),
        }
    }
    let ours = board.figures(&support).unwrap();
    let theirs = latest.expect("the support queue's figures");
    assert_eq!(theirs, ours, "the follower's figures are the board's");
    assert_eq!((ours.offered, ours.answered), (1, 1));

    // A gateway that joins now copies the board: from its last figures and the events
    // after them, it has the board's figures, and keeps up as calls go on.
    let members =
        std::collections::HashMap::from([(AgentId::new("alice").unwrap(), vec![support.clone()])]);
    let remote = RemoteQueues::open(&js, &site, members).await.unwrap();
    let caught_up = |target: u64| {
        let mirror = remote.mirror().clone();
        async move {
            for _ in 0..500 {
                if mirror.seq() >= target {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(caught_up(last).await, "the copy reaches seq {last}");
    assert_eq!(remote.mirror().figures(&support), board.figures(&support));
    one_call(&switch, &alice, "+1 555 0101").await;
    let last = board.snapshot().seq;
    assert!(caught_up(last).await, "the copy follows to seq {last}");
    assert_eq!(remote.mirror().figures(&support), board.figures(&support));
    assert_eq!(remote.mirror().figures(&support).unwrap().offered, 2);
    assert_eq!(
        remote.mirror().queues_of(&AgentId::new("alice").unwrap()),
        vec![support]
    );
}
