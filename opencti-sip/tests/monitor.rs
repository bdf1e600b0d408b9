//! Monitoring another extension (busy lamp field): SUBSCRIBE to kamailio's dialog event
//! server (RFC 4235, `presence_dialoginfo`) for 1002; a real call between two baresip
//! phones (1003 calls 1002) becomes canonical events for device 1002.

mod support;

use std::time::Duration;

use opencti_core::{Dialable, Event};
use opencti_sip::DeviceEvents;
use support::{require, Baresip, Kamailio, RunDir};

async fn next_event(events: &mut DeviceEvents, name: &str) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(e))) if e.event.name() == name => {
                assert_eq!(e.device.as_str(), "1002");
                return e.event;
            }
            Ok(Some(Ok(e))) => seen.push(e.event.name()),
            Ok(Some(Err(e))) => panic!("{e}"),
            Ok(None) => panic!("monitoring stream closed"),
            Err(_) => panic!("no {name} for 1002 within 15 s; saw {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialog_event_notifies_become_canonical_events_for_the_watched_device() {
    if !require(&["kamailio", "kamcmd", "baresip"]) {
        return;
    }
    let run = RunDir::new("monitor");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH", "WITH_PRESENCE"]);
    let b1002 = Baresip::start(&run, &kamailio, "1002");
    let b1003 = Baresip::start(&run, &kamailio, "1003");
    let _ctl2 = b1002.control().await;
    let mut caller = b1003.control().await;
    kamailio.wait_registered("1002").await;
    kamailio.wait_registered("1003").await;
    let (_session, _events, connector) = support::session(support::config(&kamailio, "1001")).await;
    let mut events = connector
        .monitor(&[Dialable::new("1002").unwrap_or_else(|e| panic!("{e}"))])
        .await
        .unwrap_or_else(|e| panic!("monitor: {e}"));

    caller
        .send(
            "dial",
            Some(&format!("sip:1002@127.0.0.1:{}", kamailio.port)),
        )
        .await;
    match next_event(&mut events, "call_offered").await {
        Event::CallOffered { from, .. } => {
            assert_eq!(from.as_ref().map(|a| a.as_str()), Some("1003"))
        }
        other => panic!("{other:?}"),
    }
    next_event(&mut events, "call_connected").await;
    caller.send("hangup", None).await;
    next_event(&mut events, "call_ended").await;
}
