//! A session that takes a line over from one that stopped (a standby link service
//! becoming the leader): it goes on from the previous session's numbering, says the
//! link went down, and resynchronises from the switch, which still has the calls.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::record::RecordLine;
use opencti_core::{
    AgentId, CallState, DesktopInterface, DesktopInterfaceExt, DeviceId, ErrorKind, Event,
    EventEnvelope, LinkState, Session,
};
use opencti_sim::SimSwitch;

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

async fn until_connected(session: &Session) -> opencti_core::CallId {
    for _ in 0..200 {
        if let Some(call) = session.snapshot().calls.first() {
            return call.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no call offered");
}

#[tokio::test]
async fn a_session_taking_over_goes_on_from_the_previous_numbering_with_the_calls_of_the_switch() {
    let switch = centre();
    let (agent, device) = alice();
    let first = Session::builder(
        Arc::new(switch.connector(device.clone())),
        agent.clone(),
        device.clone(),
    )
    .start()
    .await
    .unwrap();
    first.login().await.unwrap();
    first.ready().await.unwrap();
    switch
        .control()
        .customer_calls("support", "+44 20 0000 0001")
        .call()
        .unwrap();
    let call = until_connected(&first).await;
    first.answer(call.clone()).await.unwrap();
    let previous = first.snapshot();
    // The first session's process dies; its connector's line stays at the switch.
    drop(first);

    let second = Session::builder(
        Arc::new(switch.connector(device.clone())),
        agent.clone(),
        device.clone(),
    )
    .take_over(previous.clone(), "the link service changed");
    let second = second.start().await.unwrap();
    let now = second.snapshot();
    assert!(now.seq > previous.seq);
    assert_eq!(now.link, LinkState::Up);
    assert_eq!(now.calls.len(), 1, "the call, and no other: {now:?}");
    assert_eq!(now.calls[0].id, call);
    assert_eq!(now.calls[0].state, CallState::Connected);
    assert_eq!(now.agent_state, previous.agent_state);

    // The line goes on from there.
    let mut events = second.subscribe();
    let ended = second.hangup(call.clone()).await.unwrap();
    let mut seen: Vec<EventEnvelope> = Vec::new();
    while seen.last().is_none_or(|e| e.seq < ended.event.seq) {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push((*event).clone());
    }
    assert_eq!(seen[0].seq, now.seq + 1, "numbering goes on");
}

#[tokio::test]
async fn the_first_events_of_a_take_over_are_link_down_then_the_resync() {
    let switch = centre();
    let (agent, device) = alice();
    let first = Session::builder(
        Arc::new(switch.connector(device.clone())),
        agent.clone(),
        device.clone(),
    )
    .start()
    .await
    .unwrap();
    first.login().await.unwrap();
    let previous = first.snapshot();
    drop(first);

    // A copy of the line as a gateway keeps it, following the new session from the
    // previous state: every event fits, in order, from previous.seq + 1.
    let replica =
        opencti_core::Replica::new(previous.clone(), opencti_core::Capabilities::all(), 64);
    let second = Session::builder(
        Arc::new(switch.connector(device.clone())),
        agent.clone(),
        device.clone(),
    )
    .take_over(previous.clone(), "the link service changed")
    .record(RecordTo)
    .start()
    .await
    .unwrap();
    let recorded = RecordTo::lines();
    let events: Vec<EventEnvelope> = recorded
        .iter()
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(RecordLine::Event(event)) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(events[0].seq, previous.seq + 1);
    assert!(
        matches!(&events[0].event, Event::LinkDown { reason } if reason == "the link service changed"),
        "{:?}",
        events[0]
    );
    let names: Vec<&str> = events.iter().map(|e| e.event.name()).collect();
    assert!(names.contains(&"resynced"), "{names:?}");
    for event in &events {
        assert_eq!(
            replica.offer(event),
            opencti_core::Offered::Applied,
            "{event:?}"
        );
    }
    assert_eq!(replica.snapshot(), second.snapshot());

    // A take-over of another line is refused.
    let wrong = Session::builder(
        Arc::new(switch.connector(device.clone())),
        AgentId::new("bob").unwrap(),
        device,
    )
    .take_over(previous, "x")
    .start()
    .await
    .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Config);
}

/// A recording sink the test reads back: every line written, kept in a static.
struct RecordTo;

static RECORDED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

impl RecordTo {
    fn lines() -> Vec<String> {
        let bytes = RECORDED.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for RecordTo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        RECORDED.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
