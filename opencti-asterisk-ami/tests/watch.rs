//! Watching a whole Asterisk: the [`Watcher`] against every real capture (each
//! device's events accepted by its own `Desk`, and the same as a translator for that
//! device alone would give), the rebuild from status lists, and [`AmiWatch`] against the
//! scripted AMI server (link, state, events of several devices, reconnect).

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use opencti_asterisk_ami::test_support::DeviceReplay;
use opencti_asterisk_ami::{
    interface_of, AmiConfig, AmiWatch, DeviceEvent, Frame, Message, PushDecoder, Secret,
    WatchConfig, WatchItem, Watcher,
};
use opencti_core::machine::Desk;
use opencti_core::{AgentId, Capabilities, DeviceId, ErrorKind, Event};
use support::{Control, Script};

/// Every event of a capture, in order.
fn events_of(capture: &str) -> Vec<Message> {
    let mut decoder = PushDecoder::new();
    decoder.push(&common::fixture(&format!("{capture}.txt")));
    decoder
        .frames()
        .filter_map(|f| match f {
            Ok(Frame::Message(m)) if m.is_event() => Some(m),
            _ => None,
        })
        .collect()
}

fn watch_config() -> WatchConfig {
    WatchConfig {
        queues: vec!["support".into()],
        ..WatchConfig::default()
    }
}

fn translator(device: &str) -> DeviceReplay {
    DeviceReplay::new(device, &["support"])
}

fn desk(device: &str) -> Desk {
    let mut desk = Desk::new(
        AgentId::new("watch").expect("id"),
        DeviceId::new(device).expect("a device id"),
        Capabilities::all().with_wrap_up(false),
    );
    let _ = desk.apply(&mut Event::LinkUp).expect("link up");
    desk
}

/// Applies every event to its device's own desk; panics on the first one refused.
fn check_desks(what: &str, events: &[DeviceEvent], desks: &mut BTreeMap<String, Desk>) {
    for e in events {
        let desk = desks
            .entry(e.device.clone())
            .or_insert_with(|| desk(&e.device));
        let mut event = e.event.clone();
        if let Err(err) = desk.apply(&mut event) {
            panic!("{what}: {} refused {:?}: {err}", e.device, e.event);
        }
    }
}

#[test]
fn every_device_of_every_capture_gets_events_its_desk_accepts() {
    let mut total = 0;
    let mut all_devices = BTreeSet::new();
    for capture in common::capture_names() {
        let messages = events_of(&capture);
        let mut watcher = Watcher::new(watch_config());
        let mut out = Vec::new();
        for m in &messages {
            watcher.translate(m, &mut out);
        }
        let mut desks = BTreeMap::new();
        check_desks(&capture, &out, &mut desks);
        // The same events as a translator that follows one device from the start.
        let devices: BTreeSet<&str> = messages
            .iter()
            .filter_map(|m| m.get("Channel").and_then(interface_of))
            .collect();
        for device in &devices {
            let mut alone = translator(device);
            for m in &messages {
                alone.translate(m);
            }
            let expected: Vec<Event> = alone.events().iter().map(|(e, _)| e.clone()).collect();
            let got: Vec<Event> = out
                .iter()
                .filter(|e| e.device == *device)
                .map(|e| e.event.clone())
                .collect();
            assert_eq!(got, expected, "{capture} {device}");
            // What is left is what that translator still has.
            let left = watcher
                .states()
                .into_iter()
                .find(|(d, _)| d == device)
                .map(|(_, s)| s);
            let alone_state = alone.switch_state();
            let idle = alone_state.calls.is_empty() && alone_state.agent.name() == "logged_out";
            match left {
                Some(state) => assert_eq!(state, alone_state, "{capture} {device}"),
                None => assert!(idle, "{capture} {device}: forgotten while busy"),
            }
            // The desk that checked the events agrees on the calls.
            if let Some(desk) = desks.get(*device) {
                let ids: Vec<_> = desk.calls().iter().map(|c| c.id.clone()).collect();
                let alone_ids: Vec<_> = alone_state.calls.iter().map(|c| c.id.clone()).collect();
                assert_eq!(ids, alone_ids, "{capture} {device}");
            }
        }
        // A device is kept only while it has a call or a queue membership (capture 19
        // filters the stream down to `Newchannel`: its channels rightly stay).
        for (device, state) in watcher.states() {
            if !capture.starts_with("19_") {
                assert!(state.calls.is_empty(), "{capture}: {device} {state:?}");
                assert_ne!(
                    state.agent.name(),
                    "logged_out",
                    "{capture}: {device} kept while idle"
                );
            }
        }
        all_devices.extend(out.iter().map(|e| e.device.clone()));
        total += out.len();
    }
    assert!(total > 150, "{total} events");
    // Agents, customers and dialled extensions alike.
    for device in [
        "Local/1001@agents",
        "Local/1002@agents",
        "Local/1003@agents",
        "Local/2000@customers",
    ] {
        assert!(all_devices.contains(device), "{all_devices:?}");
    }
}

#[test]
fn a_two_party_call_shows_on_both_devices() {
    let mut watcher = Watcher::new(watch_config());
    let mut out = Vec::new();
    for m in &events_of("05_two_party_call") {
        watcher.translate(m, &mut out);
    }
    let by_device: BTreeMap<&str, Vec<&str>> = out.iter().fold(BTreeMap::new(), |mut map, e| {
        map.entry(e.device.as_str())
            .or_default()
            .push(e.event.name());
        map
    });
    assert_eq!(by_device.len(), 2, "{by_device:?}");
    for (device, names) in &by_device {
        assert_eq!(names.last(), Some(&"call_ended"), "{device}: {names:?}");
        assert!(names.contains(&"call_connected"), "{device}: {names:?}");
    }
}

#[test]
fn device_patterns_and_technologies_limit_what_is_followed() {
    let mut config = watch_config();
    config.devices = vec!["Local/1*".into()];
    let mut watcher = Watcher::new(config);
    let mut out = Vec::new();
    for m in &events_of("12_attended_transfer") {
        watcher.translate(m, &mut out);
    }
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|e| e.device.starts_with("Local/1")),
        "{:?}",
        out.iter().map(|e| &e.device).collect::<BTreeSet<_>>()
    );
    let mut config = watch_config();
    config.ignore_technologies.push("Local".into());
    let mut watcher = Watcher::new(config);
    let mut out = Vec::new();
    for m in &events_of("12_attended_transfer") {
        watcher.translate(m, &mut out);
    }
    assert!(out.is_empty());
}

#[test]
fn max_devices_bounds_the_translators() {
    let mut config = watch_config();
    config.max_devices = 1;
    let mut watcher = Watcher::new(config);
    let mut out = Vec::new();
    for m in &events_of("05_two_party_call") {
        watcher.translate(m, &mut out);
        assert!(watcher.devices().count() <= 1);
    }
    assert!(watcher.not_followed() > 0);
    let devices: BTreeSet<&str> = out.iter().map(|e| e.device.as_str()).collect();
    assert_eq!(devices.len(), 1);
}

#[test]
fn rebuild_from_status_lists_then_held_events() {
    let mut channels = Vec::new();
    let mut bridges = Vec::new();
    let mut later = Vec::new();
    let mut listed = false;
    for m in events_of("15_status_lists") {
        match m.event() {
            Some("CoreShowChannel") => channels.push(m),
            Some("BridgeListItem") => bridges.push(m),
            Some("CoreShowChannelsComplete") => listed = true,
            _ if listed => later.push(m),
            _ => {}
        }
    }
    let queue_items = [
        Message::parse("Event: QueueParams\r\nQueue: support\r\n").expect("msg"),
        Message::parse(
            "Event: QueueMember\r\nQueue: support\r\nName: bob\r\nLocation: PJSIP/9001\r\nPaused: 1\r\nPausedReason: lunch\r\n",
        )
        .expect("msg"),
        Message::parse("Event: QueueMember\r\nQueue: other\r\nLocation: PJSIP/9002\r\nPaused: 0\r\n")
            .expect("msg"),
    ];
    // Every queue (none configured): `support` is found in QueueParams.
    let mut watcher = Watcher::new(WatchConfig::default());
    watcher.hold_events();
    let mut out = Vec::new();
    for m in later.iter().cloned() {
        assert!(watcher.on_event(m, &mut out));
    }
    assert!(out.is_empty(), "held");
    let states = watcher.rebuild(&channels, &bridges, &queue_items);
    assert_eq!(watcher.queues(), ["support".to_string()]);
    let states: BTreeMap<String, _> = states.into_iter().collect();
    let s1001 = &states["Local/1001@agents"];
    assert_eq!(s1001.calls.len(), 1);
    assert_eq!(s1001.calls[0].id.as_str(), "1795238132.63");
    assert_eq!(s1001.calls[0].state.name(), "connected");
    assert_eq!(states["Local/1002@agents"].calls.len(), 1);
    assert_eq!(states["PJSIP/9001"].agent.name(), "not_ready");
    assert!(states["PJSIP/9001"].calls.is_empty());
    assert!(!states.contains_key("PJSIP/9002"), "not a followed queue");
    // The same as the connector's translator for one device.
    let mut t = translator("Local/1001@agents");
    assert_eq!(t.rebuild(&channels, &bridges, &[]), *s1001);
    // Then the held events, against that state, each accepted by its device's desk.
    assert!(watcher.release_held(&mut out));
    let mut desks = BTreeMap::new();
    for (device, state) in &states {
        let mut d = desk(device);
        d.resync(state.clone(), 0);
        desks.insert(device.clone(), d);
    }
    check_desks("15 after rebuild", &out, &mut desks);
    assert!(
        out.iter().any(|e| e.event.name() == "call_ended"),
        "{out:?}"
    );
}

#[test]
fn held_events_over_the_limit_ask_for_a_reconnect() {
    let mut config = watch_config();
    config.max_held_events = 3;
    let mut watcher = Watcher::new(config);
    watcher.hold_events();
    let mut out = Vec::new();
    let results: Vec<bool> = events_of("05_two_party_call")
        .into_iter()
        .take(5)
        .map(|m| watcher.on_event(m, &mut out))
        .collect();
    assert_eq!(results, [true, true, true, false, false]);
    watcher.rebuild(&[], &[], &[]);
    assert!(!watcher.release_held(&mut out), "reports the loss");
}

// ----- AmiWatch against the scripted server -----

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test took longer than {LIMIT:?}"),
    }
}

fn config(address: String) -> AmiConfig {
    let mut c = AmiConfig::new(address, "opencti", Secret::new("opencti-secret"));
    c.timeouts.action = Duration::from_secs(2);
    c.timeouts.connect = Duration::from_secs(2);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c
}

/// Items until `done` says so (the items seen so far are returned).
async fn until(watch: &mut AmiWatch, done: impl Fn(&[WatchItem]) -> bool) -> Vec<WatchItem> {
    let mut items = Vec::new();
    while !done(&items) {
        match watch.next().await {
            Some(item) => items.push(item),
            None => panic!("the watch ended: {items:?}"),
        }
    }
    items
}

fn device_events(items: &[WatchItem]) -> Vec<DeviceEvent> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_watch_follows_every_device_and_survives_a_reconnect() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        // Already paused in `support` when the watch starts; a call already up.
        server.add_static_member("support", true, "lunch");
        let first = server.call_device("+441632960001");
        // Answered (after 50 ms) before the watch starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut watch = AmiWatch::start(config(server.address()), WatchConfig::default())
            .await
            .expect("watch");
        let items = until(&mut watch, |items| {
            items.iter().any(|i| matches!(i, WatchItem::Synced { .. }))
        })
        .await;
        assert!(matches!(items[0], WatchItem::LinkUp { .. }), "{items:?}");
        assert!(
            matches!(items.last(), Some(WatchItem::Synced { devices: 2 })),
            "{items:?}"
        );
        let states: BTreeMap<String, _> = items
            .iter()
            .filter_map(|i| match i {
                WatchItem::State { device, state } => Some((device.clone(), state.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(states["PJSIP/7001"].agent.name(), "not_ready", "{states:?}");
        assert!(states.contains_key("PJSIP/trunk"), "{states:?}");
        let mut desks = BTreeMap::new();
        for (device, state) in &states {
            let mut d = desk(device);
            d.resync(state.clone(), 0);
            desks.insert(device.clone(), d);
        }
        // The first call ends; a second one comes in and is answered.
        assert!(server.far_end_hangs_up(&first));
        server.call_device("+441632960002");
        assert_eq!(states["PJSIP/7001"].calls[0].state.name(), "connected");
        let items = until(&mut watch, |items| {
            let events = device_events(items);
            let ended = events.iter().position(|e| {
                e.device == "PJSIP/7001" && matches!(e.event, Event::CallEnded { .. })
            });
            let connected = events.iter().rposition(|e| {
                e.device == "PJSIP/7001" && matches!(e.event, Event::CallConnected { .. })
            });
            matches!((ended, connected), (Some(a), Some(b)) if a < b)
                && events.iter().any(|e| {
                    e.device == "PJSIP/trunk" && matches!(e.event, Event::CallConnected { .. })
                })
        })
        .await;
        let events = device_events(&items);
        check_desks("scripted", &events, &mut desks);
        let names: Vec<String> = events
            .iter()
            .map(|e| format!("{} {}", e.device, e.event.name()))
            .collect();
        assert!(
            names.contains(&"PJSIP/7001 call_ended".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"PJSIP/7001 call_offered".to_string()),
            "{names:?}"
        );
        // The link drops: link_down, then link_up and the state again.
        server.drop_connections();
        let items = until(&mut watch, |items| {
            items
                .iter()
                .any(|i| matches!(i, WatchItem::State { device, .. } if device == "PJSIP/7001"))
        })
        .await;
        let down = items
            .iter()
            .position(|i| matches!(i, WatchItem::LinkDown { .. }))
            .expect("link_down");
        let up = items
            .iter()
            .position(|i| matches!(i, WatchItem::LinkUp { .. }))
            .expect("link_up");
        assert!(down < up, "{items:?}");
        let state = items
            .iter()
            .find_map(|i| match i {
                WatchItem::State { device, state } if device == "PJSIP/7001" => Some(state),
                _ => None,
            })
            .expect("state");
        assert_eq!(state.calls.len(), 1, "the second call is still up");
        assert_eq!(state.calls[0].state.name(), "connected");
        // The call keeps its id over the reconnect.
        let offered = events
            .iter()
            .rev()
            .find_map(|e| match &e.event {
                Event::CallOffered { call, .. } if e.device == "PJSIP/7001" => Some(call.clone()),
                _ => None,
            })
            .expect("offered");
        assert_eq!(state.calls[0].id, offered);
        watch.stop().await;
        // Drains what was handed out, then ends.
        while watch.next().await.is_some() {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_watch_refuses_a_wrong_secret_without_showing_it() {
    bounded(async {
        let server = Control::start(Script::default()).await;
        let mut c = config(server.address());
        c.secret = Secret::new("wrong-Secret-42");
        let err = AmiWatch::start(c, WatchConfig::default())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(!format!("{err} {err:?}").contains("wrong-Secret-42"));
    })
    .await;
}
