//! The tracker and translator against the real Asterisk 22 captures: the canonical
//! events each capture produces for the agent's device, exactly, and the tracker empty
//! once the calls are over.

mod common;

use opencti_asterisk_ami::test_support::DeviceReplay;
use opencti_asterisk_ami::{Frame, PushDecoder};
use opencti_core::Event;

fn translator(device: &str) -> DeviceReplay {
    common::translator(device, &["support"])
}

/// Replays a capture's events; returns the canonical events as compact strings.
fn replay(capture: &str, device: &str) -> (Vec<String>, DeviceReplay) {
    common::canonical_events(
        &common::fixture(&format!("{capture}.txt")),
        translator(device),
    )
}

fn assert_empty(t: &DeviceReplay) {
    assert_eq!(t.open_calls(), (0, 0), "no leg or call left");
    assert_eq!(t.tracked(), (0, 0), "no channel or bridge left");
}

#[test]
fn two_party_call_from_a_foreign_originate() {
    let (events, t) = replay("05_two_party_call", "Local/1001@agents");
    assert_eq!(
        events,
        [
            "call_offered 1795238031.6",
            "agent_state_changed ready",
            "call_connected 1795238031.6",
            "party_joined 1795238031.6",
            "call_ended 1795238031.6 normal",
        ]
    );
    assert_empty(&t);
}

#[test]
fn hold_by_redirect_and_retrieve_by_bridge() {
    let (events, t) = replay("06_hold_redirect_moh_and_unhold", "Local/1002@agents");
    assert_eq!(
        events,
        [
            "call_offered 1795238038.10",
            "agent_state_changed ready",
            "call_connected 1795238038.10",
            "party_joined 1795238038.10",
            "party_left 1795238038.10",
            "call_held 1795238038.10",
            "call_retrieved 1795238038.10",
            "party_joined 1795238038.10",
            "call_ended 1795238038.10 normal",
        ]
    );
    assert_empty(&t);
}

#[test]
fn redirecting_one_leg_ends_the_call() {
    let (events, t) = replay("07_hold_redirect_single_leg", "Local/1003@agents");
    assert_eq!(
        events.last().map(String::as_str),
        Some("call_ended 1795238050.16 normal")
    );
    assert!(
        !events.iter().any(|e| e.starts_with("call_held")),
        "{events:?}"
    );
    assert_empty(&t);
}

#[test]
fn blind_transfer_for_the_transferer_and_the_target() {
    let (events, t) = replay("10_blind_transfer_action", "Local/1001@agents");
    assert_eq!(
        &events[4..],
        [
            "call_transferred 1795238082.31",
            "party_left 1795238082.31",
            "call_ended 1795238082.31 transferred",
        ]
    );
    assert_empty(&t);
    // Agent 1002 gets the transferred customer as a new inbound call.
    let (events, _) = replay("10_blind_transfer_action", "Local/1002@agents");
    assert_eq!(events[0], "call_offered 1795238082.31");
    assert!(events.contains(&"call_connected 1795238082.31".to_string()));
}

#[test]
fn attended_transfer_consults_then_transfers_both_calls() {
    let (events, t) = replay("12_attended_transfer", "Local/1001@agents");
    // Without the connector's Atxfer pending, the queued feature digits `*2` read as
    // the agent's own DTMF (they are: the phone could have sent them).
    let tail: Vec<&str> = events.iter().skip(6).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "call_held 1795238100.43",
            "call_initiated 1795238105.47",
            "call_ringback 1795238105.47",
            "party_joined 1795238105.47",
            "call_connected 1795238105.47",
            "call_transferred 1795238105.47",
            "call_transferred 1795238100.43",
            "call_ended 1795238105.47 transferred",
            "call_ended 1795238100.43 transferred",
        ]
    );
    assert_empty(&t);
}

#[test]
fn cancelled_consultation_returns_to_the_held_call() {
    let (events, t) = replay("13_attended_transfer_cancel", "Local/1001@agents");
    let tail: Vec<&str> = events.iter().skip(6).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "call_held 1795238113.51",
            "call_initiated 1795238117.55",
            "call_ringback 1795238117.55",
            "party_joined 1795238117.55",
            "call_connected 1795238117.55",
            "call_ended 1795238117.55 normal",
            "call_retrieved 1795238113.51",
            "call_ended 1795238113.51 normal",
        ]
    );
    assert_empty(&t);
}

#[test]
fn queue_call_and_pause_reasons() {
    let (events, t) = replay("14_queue", "Local/1002@agents");
    assert_eq!(events[0], "call_offered 1795238125.59");
    assert_eq!(
        events.last().map(String::as_str),
        Some("call_ended 1795238125.59 normal")
    );
    assert_empty(&t);
    let (events, _) = replay("14_queue", "Local/1001@agents");
    assert_eq!(
        events,
        ["agent_state_changed not_ready", "agent_state_changed ready"]
    );
}

#[test]
fn queue_call_carries_its_queue_and_caller() {
    let mut decoder = PushDecoder::new();
    decoder.push(&common::fixture("14_queue.txt"));
    let mut t = translator("Local/1002@agents");
    for frame in decoder.frames() {
        if let Ok(Frame::Message(m)) = frame {
            if m.is_event() {
                t.translate(&m);
            }
        }
    }
    match &t.events()[0].0 {
        Event::CallOffered {
            from, to, queue, ..
        } => {
            assert_eq!(from.as_ref().map(|a| a.as_str()), Some("2005"));
            assert_eq!(to.as_ref().map(|a| a.as_str()), Some("3000"));
            assert_eq!(queue.as_ref().map(|q| q.as_str()), Some("support"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn recording_flags_and_every_capture_leaves_nothing_behind() {
    let (events, _) = replay("17_dtmf_mixmonitor_userevent", "Local/1001@agents");
    assert!(
        events
            .iter()
            .filter(|e| e.starts_with("call_flags_changed"))
            .count()
            == 2
    );
    // Capture 19 filters the stream down to `Newchannel` (no `Hangup` ever comes), so
    // its channels rightly stay.
    for capture in common::capture_names()
        .into_iter()
        .filter(|c| !c.starts_with("19_"))
    {
        for device in [
            "Local/1001@agents",
            "Local/1002@agents",
            "Local/1003@agents",
        ] {
            let (_, t) = replay(&capture, device);
            assert_eq!(t.open_calls(), (0, 0), "{capture} {device}");
            assert_eq!(t.tracked().0, 0, "{capture} {device}");
        }
    }
}

#[test]
fn rebuild_from_status_lists() {
    // Capture 15 holds CoreShowChannels and BridgeList answers taken during a call
    // 1001 <-> 2000 and a lone 1002 in Wait(): rebuild from them.
    let mut decoder = PushDecoder::new();
    decoder.push(&common::fixture("15_status_lists.txt"));
    let mut channels = Vec::new();
    let mut bridges = Vec::new();
    for frame in decoder.frames() {
        if let Ok(Frame::Message(m)) = frame {
            match m.event() {
                Some("CoreShowChannel") => channels.push(m),
                Some("BridgeListItem") => bridges.push(m),
                _ => {}
            }
        }
    }
    assert_eq!(channels.len(), 6);
    let mut t = translator("Local/1001@agents");
    let state = t.rebuild(&channels, &bridges, &[]);
    assert_eq!(state.calls.len(), 1, "{state:?}");
    let call = &state.calls[0];
    assert_eq!(call.id.as_str(), "1795238132.63");
    assert_eq!(call.state.name(), "connected");
    assert_eq!(call.parties.len(), 1);
    assert_eq!(call.parties[0].id.as_str(), "1795238133.65");
    assert_eq!(state.agent.name(), "logged_out");
    // 1002 sits in Wait() answered, with no bridge: a connected call with no party.
    let mut t = translator("Local/1002@agents");
    let state = t.rebuild(&channels, &bridges, &[]);
    assert_eq!(state.calls.len(), 1);
    assert_eq!(state.calls[0].state.name(), "connected");
    assert!(state.calls[0].parties.is_empty());
}

#[test]
fn confbridge_room_joined_by_two_devices() {
    // Capture 18: both agents' Local channels are originated into ConfBridge room 8000
    // (a `base` bridge, technology softmix); 1002 is muted, unmuted and kicked, then
    // everything hangs up. There is no consultation in it, so no `merged` call: each
    // device's call becomes a conference call when it enters the room.
    let (events, t) = replay("18_confbridge", "Local/1001@agents");
    assert_eq!(
        events,
        [
            "call_offered 1795238151.77",
            "agent_state_changed ready",
            "call_connected 1795238151.77",
            "call_conferenced 1795238151.77",
            // 1002, already in the room.
            "party_joined 1795238151.77",
            // 1002 kicked (ConfbridgeKick: ConfbridgeLeave, BridgeLeave).
            "party_left 1795238151.77",
            "call_ended 1795238151.77 normal",
        ]
    );
    assert_empty(&t);
    let (events, t) = replay("18_confbridge", "Local/1002@agents");
    assert_eq!(
        events,
        [
            "call_offered 1795238151.78",
            "agent_state_changed ready",
            "call_connected 1795238151.78",
            // Alone in the room (with ConfBridge's announcer, which AMI never shows).
            "call_conferenced 1795238151.78",
            // 1001 joins.
            "party_joined 1795238151.78",
            "call_ended 1795238151.78 normal",
        ]
    );
    assert_empty(&t);
}

#[test]
fn a_queue_call_to_a_pjsip_phone() {
    let capture = "20_pjsip_queue_call";
    let (events, t) = common::canonical_events(
        &common::fixture(&format!("{capture}.txt")),
        common::translator("PJSIP/1001", &["sales"]),
    );
    let call = "cust-10689444616733199444";
    assert_eq!(
        events,
        [
            "agent_state_changed ready".to_string(),
            format!("call_offered {call}"),
            format!("call_connected {call}"),
            format!("party_joined {call}"),
            format!("party_left {call}"),
            format!("call_ended {call} normal"),
            "agent_state_changed logged_out".to_string(),
        ]
    );
    assert_empty(&t);
    // The offer names the queue and the customer.
    let mut decoder = PushDecoder::new();
    decoder.push(&common::fixture(&format!("{capture}.txt")));
    let mut t = common::translator("PJSIP/1001", &["sales"]);
    for frame in decoder.frames() {
        if let Ok(Frame::Message(m)) = frame {
            t.translate(&m);
        }
    }
    let offered = t
        .events()
        .iter()
        .find_map(|(e, _)| match e {
            Event::CallOffered { queue, from, .. } => Some((queue.clone(), from.clone())),
            _ => None,
        })
        .expect("call_offered");
    assert_eq!(offered.0.as_ref().map(|q| q.as_str()), Some("sales"));
    assert_eq!(
        offered.1.as_ref().map(|a| a.as_str()),
        Some("+441632960120")
    );
}

#[test]
fn hold_and_blind_transfer_pressed_on_a_pjsip_phone() {
    let (events, t) = common::canonical_events(
        &common::fixture("21_pjsip_phone_hold_and_transfer.txt"),
        common::translator("PJSIP/1001", &[]),
    );
    let call = "opencti-capture-21";
    assert_eq!(
        events,
        [
            "call_initiated",
            "call_ringback",
            "call_connected",
            "party_joined",
            "call_held",
            "call_retrieved",
            "call_transferred",
            "party_left",
        ]
        .iter()
        .map(|e| format!("{e} {call}"))
        .chain([format!("call_ended {call} transferred")])
        .collect::<Vec<_>>()
    );
    assert_empty(&t);
}

/// The parties of each call, from `party_joined` and `party_left`.
fn rosters(events: &[(Event, Option<opencti_core::CommandId>)]) -> Vec<(String, Vec<String>)> {
    let mut calls: Vec<(String, Vec<String>)> = Vec::new();
    for (event, _) in events {
        let (call, party, joined) = match event {
            Event::PartyJoined { call, party } => (call, party.id.to_string(), true),
            Event::PartyLeft { call, party } => (call, party.to_string(), false),
            _ => continue,
        };
        let i = match calls.iter().position(|(c, _)| c == call.as_str()) {
            Some(i) => i,
            None => {
                calls.push((call.to_string(), Vec::new()));
                calls.len() - 1
            }
        };
        let parties = &mut calls[i].1;
        parties.retain(|p| p != &party);
        if joined {
            parties.push(party);
        }
    }
    calls
}

#[test]
fn the_target_of_a_consult_transfer_talks_to_the_customer_alone() {
    let capture = common::fixture("22_pjsip_consult_transfer.txt");
    let mut bob = common::translator("PJSIP/1002", &[]);
    let mut decoder = PushDecoder::new();
    decoder.push(&capture);
    // Up to the customer's hangup: the transfer is complete, the call is Bob's and the
    // customer's.
    for frame in decoder.frames() {
        let Ok(Frame::Message(m)) = frame else {
            continue;
        };
        let customer_hangs_up = m.get("Channel") == Some("Local/3001@from-customers-00000000;1")
            && matches!(
                m.event(),
                Some("SoftHangupRequest" | "HangupRequest" | "Hangup")
            );
        if customer_hangs_up {
            break;
        }
        if m.is_event() {
            bob.translate(&m);
        }
    }
    assert_eq!(bob.rejected(), &[], "every event fits Bob's desk");
    let rosters = rosters(bob.events());
    let customer = "cust-18090411151320970060-2";
    assert_eq!(rosters.len(), 1, "{rosters:?}");
    assert_eq!(rosters[0].1, [customer], "{rosters:?}");
}
