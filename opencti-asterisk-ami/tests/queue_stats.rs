//! Queue statistics from Asterisk's queue events: AMI text through the decoder and the
//! link's queue translation into `QueueStats`, on hand-written sequences (as Asterisk
//! 22 sends them) and on the real captures that hold a queue call.

mod common;

use std::time::Duration;

use opencti_asterisk_ami::test_support::QueueReplay;
use opencti_asterisk_ami::{DecoderConfig, Frame, Message, PushDecoder};
use opencti_core::queue::{QueueEvent, QueueFigures};
use opencti_core::{AgentId, AgentState, QueueId, Timestamp};

const START: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

/// Decodes AMI text (messages ended by a blank line, bare `\n` allowed).
fn messages(text: &str) -> Vec<Message> {
    let mut decoder = PushDecoder::with_config(DecoderConfig::new().with_banner(false));
    decoder.push(text.as_bytes());
    decoder
        .frames()
        .map(|frame| match frame {
            Ok(Frame::Message(m)) => m,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Feeds AMI text to the replay, `at` seconds after the start.
fn at(replay: &mut QueueReplay, secs: u64, text: &str) {
    let now = replay.now().as_micros() - START.as_micros();
    replay.advance(Duration::from_micros(secs * 1_000_000 - now));
    for msg in messages(text) {
        replay.translate(&msg);
    }
}

fn figures(replay: &QueueReplay, queue: &str) -> QueueFigures {
    replay
        .stats()
        .figures(&QueueId::new(queue).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|| panic!("queue {queue} unknown"))
}

fn names(replay: &QueueReplay) -> Vec<&'static str> {
    replay.events().iter().map(QueueEvent::name).collect()
}

fn ready(replay: &mut QueueReplay, agent: &str) {
    let at = replay.now();
    replay.stats_mut().apply(
        at,
        QueueEvent::AgentStateChanged {
            agent: AgentId::new(agent).unwrap_or_else(|e| panic!("{e}")),
            state: AgentState::Ready,
        },
    );
}

fn member(event: &str, interface: &str) -> String {
    format!(
        "Event: {event}\nPrivilege: agent,all\nQueue: sales\nMemberName: {interface}\nInterface: {interface}\n\
         StateInterface: {interface}\nMembership: dynamic\nPenalty: 0\nCallsTaken: 0\nStatus: 1\nPaused: 0\n\n"
    )
}

fn caller(event: &str, uniqueid: &str, extra: &str) -> String {
    format!(
        "Event: {event}\nPrivilege: agent,all\nChannel: Local/3001@from-customers-00000001;2\nChannelState: 6\n\
         Uniqueid: {uniqueid}\nLinkedid: {uniqueid}\nQueue: sales\n{extra}\n"
    )
}

fn agent(event: &str, uniqueid: &str, interface: &str, extra: &str) -> String {
    format!(
        "Event: {event}\nPrivilege: agent,all\nChannel: Local/3001@from-customers-00000001;2\n\
         Uniqueid: {uniqueid}\nLinkedid: {uniqueid}\nDestChannel: {interface}-00000009\n\
         DestUniqueid: {uniqueid}.agent\nQueue: sales\nInterface: {interface}\nMemberName: {interface}\n{extra}\n"
    )
}

fn hangup(kind: &str, uniqueid: &str) -> String {
    format!(
        "Event: {kind}\nPrivilege: call,all\nChannel: Local/3001@from-customers-00000001;2\nUniqueid: {uniqueid}\n\
         Linkedid: {uniqueid}\nCause: 16\n\n"
    )
}

fn two_agents() -> QueueReplay {
    QueueReplay::new(
        &["sales"],
        &[("alice", "PJSIP/1001"), ("bob", "PJSIP/1002")],
        START,
    )
}

#[test]
fn rung_out_answered_completed_abandoned_and_timed_out() {
    let mut r = two_agents();
    at(&mut r, 0, &member("QueueMemberAdded", "PJSIP/1001"));
    at(&mut r, 0, &member("QueueMemberAdded", "PJSIP/1002"));
    // Not a line of the link: not counted among the agents.
    at(&mut r, 0, &member("QueueMemberAdded", "PJSIP/1009"));
    ready(&mut r, "alice");
    ready(&mut r, "bob");
    assert_eq!(figures(&r, "sales").agents.ready, 2);

    at(
        &mut r,
        0,
        &caller("QueueCallerJoin", "c1", "Position: 1\nCount: 1\n"),
    );
    at(&mut r, 1, &agent("AgentCalled", "c1", "PJSIP/1001", ""));
    at(
        &mut r,
        5,
        &caller("QueueCallerJoin", "c2", "Position: 2\nCount: 2\n"),
    );
    let f = figures(&r, "sales");
    assert_eq!((f.offered, f.waiting, f.ringing), (2, 1, 1));
    // Alice lets it ring out; Bob is called next and answers.
    at(
        &mut r,
        16,
        &agent("AgentRingNoAnswer", "c1", "PJSIP/1001", "RingTime: 15000\n"),
    );
    assert_eq!(figures(&r, "sales").waiting, 2);
    // The second caller hangs up: Asterisk sends the abandon and then the leave.
    at(&mut r, 17, &hangup("HangupRequest", "c2"));
    at(
        &mut r,
        17,
        &caller(
            "QueueCallerAbandon",
            "c2",
            "Position: 2\nOriginalPosition: 2\nHoldTime: 12\n",
        ),
    );
    at(
        &mut r,
        17,
        &caller("QueueCallerLeave", "c2", "Position: 2\nCount: 1\n"),
    );
    at(&mut r, 17, &hangup("Hangup", "c2"));
    at(&mut r, 18, &agent("AgentCalled", "c1", "PJSIP/1002", ""));
    // Asterisk takes an answered caller out of the queue, then reports the connection.
    at(
        &mut r,
        19,
        &caller("QueueCallerLeave", "c1", "Position: 1\nCount: 0\n"),
    );
    let f = figures(&r, "sales");
    assert_eq!((f.answered, f.ringing), (0, 1), "answer awaited");
    at(
        &mut r,
        19,
        &agent(
            "AgentConnect",
            "c1",
            "PJSIP/1002",
            "HoldTime: 19\nRingTime: 1\n",
        ),
    );
    // A third caller: the queue's timeout. Asterisk 22 reports it as an abandon too, but
    // nobody asked the caller's channel to hang up.
    at(
        &mut r,
        25,
        &caller("QueueCallerJoin", "c3", "Position: 1\nCount: 1\n"),
    );
    at(
        &mut r,
        28,
        &caller(
            "QueueCallerAbandon",
            "c3",
            "Position: 1\nOriginalPosition: 1\nHoldTime: 3\n",
        ),
    );
    at(
        &mut r,
        28,
        &caller("QueueCallerLeave", "c3", "Position: 1\nCount: 0\n"),
    );
    at(&mut r, 29, &hangup("Hangup", "c3"));
    at(
        &mut r,
        79,
        &agent(
            "AgentComplete",
            "c1",
            "PJSIP/1002",
            "HoldTime: 19\nTalkTime: 60\nReason: caller\n",
        ),
    );
    at(&mut r, 80, &member("QueueMemberRemoved", "PJSIP/1002"));
    at(&mut r, 80, &member("QueueMemberRemoved", "PJSIP/1009"));

    assert_eq!(
        names(&r),
        [
            "agent_joined",
            "agent_joined",
            "caller_joined",
            "caller_offered",
            "caller_joined",
            "caller_returned",
            "caller_abandoned",
            "caller_offered",
            "caller_answered",
            "caller_joined",
            "caller_overflowed",
            "caller_completed",
            "agent_left",
        ]
    );
    let f = figures(&r, "sales");
    assert_eq!(
        (
            f.offered,
            f.answered,
            f.abandoned,
            f.overflowed,
            f.left_unseen
        ),
        (3, 1, 1, 1, 0)
    );
    assert_eq!((f.waiting, f.ringing, f.oldest_since), (0, 0, None));
    assert_eq!(f.answered_within, 1);
    assert_eq!(f.average_speed_of_answer_ms, Some(19_000));
    assert_eq!((f.completed, f.average_handle_ms), (1, Some(60_000)));
    assert_eq!((f.agents.logged_in, f.agents.ready), (1, 1), "alice only");
    match &r.events()[8] {
        QueueEvent::CallerAnswered { call, agent, .. } => {
            assert_eq!((call.as_str(), agent.as_str()), ("c1", "bob"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_ringall_a_caller_rings_until_every_member_gave_up() {
    let mut r = two_agents();
    at(
        &mut r,
        0,
        &caller("QueueCallerJoin", "c1", "Position: 1\nCount: 1\n"),
    );
    at(&mut r, 1, &agent("AgentCalled", "c1", "PJSIP/1001", ""));
    at(&mut r, 1, &agent("AgentCalled", "c1", "PJSIP/1002", ""));
    at(
        &mut r,
        16,
        &agent("AgentRingNoAnswer", "c1", "PJSIP/1001", "RingTime: 15000\n"),
    );
    assert_eq!(figures(&r, "sales").ringing, 1, "still ringing at bob");
    at(
        &mut r,
        16,
        &agent("AgentRingNoAnswer", "c1", "PJSIP/1002", "RingTime: 15000\n"),
    );
    assert_eq!(figures(&r, "sales").waiting, 1);
    // Both ring again; Bob answers, but hangs up before being connected (AgentDump):
    // Asterisk has hung up Alice's ring already, and the caller waits again.
    at(&mut r, 18, &agent("AgentCalled", "c1", "PJSIP/1001", ""));
    at(&mut r, 18, &agent("AgentCalled", "c1", "PJSIP/1002", ""));
    at(&mut r, 19, &agent("AgentDump", "c1", "PJSIP/1002", ""));
    let f = figures(&r, "sales");
    assert_eq!((f.waiting, f.ringing), (1, 0));
    // Both ring again; Alice answers (Bob's ring is hung up with no event).
    at(&mut r, 21, &agent("AgentCalled", "c1", "PJSIP/1001", ""));
    at(&mut r, 21, &agent("AgentCalled", "c1", "PJSIP/1002", ""));
    at(
        &mut r,
        22,
        &caller("QueueCallerLeave", "c1", "Position: 1\nCount: 0\n"),
    );
    at(
        &mut r,
        22,
        &agent(
            "AgentConnect",
            "c1",
            "PJSIP/1001",
            "HoldTime: 22\nRingTime: 1\n",
        ),
    );
    // Asterisk leaves the caller out of AgentComplete once its channel is gone
    // (capture 14): the member's talk names it.
    at(&mut r, 52, &hangup("Hangup", "c1"));
    at(
        &mut r,
        52,
        "Event: AgentComplete\nQueue: sales\nInterface: PJSIP/1001\nMemberName: Agent 1001\nHoldTime: 22\n\
         TalkTime: 30\nReason: caller\n\n",
    );
    let f = figures(&r, "sales");
    assert_eq!((f.offered, f.answered, f.completed), (1, 1, 1));
    assert_eq!((f.waiting, f.ringing), (0, 0));
    assert_eq!(f.average_handle_ms, Some(30_000));
    assert_eq!(
        names(&r),
        [
            "caller_joined",
            "caller_offered",
            "caller_offered",
            "caller_returned",
            "caller_offered",
            "caller_offered",
            "caller_returned",
            "caller_offered",
            "caller_offered",
            "caller_answered",
            "caller_completed",
        ]
    );
}

#[test]
fn a_caller_that_left_unanswered_while_nobody_rang_overflowed() {
    let mut r = two_agents();
    // Exit by a key (no abandon): it leaves while no member rings.
    at(
        &mut r,
        0,
        &caller("QueueCallerJoin", "c1", "Position: 1\nCount: 1\n"),
    );
    at(
        &mut r,
        4,
        &caller("QueueCallerLeave", "c1", "Position: 1\nCount: 0\n"),
    );
    // Joining another queue (not one of the link's) says nothing more here.
    at(
        &mut r,
        4,
        "Event: QueueCallerJoin\nQueue: other\nUniqueid: c1\nPosition: 1\nCount: 1\n\n",
    );
    let f = figures(&r, "sales");
    assert_eq!((f.offered, f.overflowed, f.waiting), (1, 1, 0));
    // A caller whose answer never came: settled when it joins another queue.
    at(
        &mut r,
        5,
        &caller("QueueCallerJoin", "c2", "Position: 1\nCount: 1\n"),
    );
    at(&mut r, 6, &agent("AgentCalled", "c2", "PJSIP/1001", ""));
    at(
        &mut r,
        7,
        &caller("QueueCallerLeave", "c2", "Position: 1\nCount: 0\n"),
    );
    at(
        &mut r,
        8,
        "Event: QueueCallerJoin\nQueue: other\nUniqueid: c2\nPosition: 1\nCount: 1\n\n",
    );
    let f = figures(&r, "sales");
    assert_eq!((f.offered, f.overflowed, f.ringing), (2, 2, 0));
    assert_eq!(
        names(&r),
        [
            "caller_joined",
            "caller_overflowed",
            "caller_joined",
            "caller_offered",
            "caller_overflowed",
        ]
    );
}

#[test]
fn bad_or_missing_headers_are_skipped() {
    let mut r = two_agents();
    for text in [
        "Event: QueueCallerJoin\nUniqueid: c1\n\n",
        "Event: QueueCallerJoin\nQueue: sales\n\n",
        "Event: QueueCallerJoin\nQueue: sales\nUniqueid: \n\n",
        "Event: QueueCallerJoin\nQueue: sales\nUniqueid: two words\n\n",
        "Event: QueueCallerJoin\nQueue: sales\nUniqueid: <unknown>\n\n",
        "Event: QueueCallerJoin\nQueue: other\nUniqueid: c1\n\n",
        "Event: AgentCalled\nQueue: sales\nUniqueid: c9\n\n",
        "Event: AgentConnect\nQueue: sales\nUniqueid: c9\n\n",
        "Event: AgentComplete\nQueue: sales\nInterface: PJSIP/1001\n\n",
        "Event: AgentComplete\nInterface: PJSIP/1001\nUniqueid: c9\n\n",
        "Event: AgentRingNoAnswer\nUniqueid: c9\n\n",
        "Event: QueueCallerAbandon\nQueue: sales\n\n",
        "Event: QueueCallerLeave\nUniqueid: c9\n\n",
        "Event: QueueMemberAdded\nQueue: sales\n\n",
        "Event: QueueMemberRemoved\nInterface: PJSIP/1001\n\n",
        "Event: QueueMemberAdded\nQueue: sales\nInterface: two words\n\n",
        "Event: Hangup\n\n",
        "Event: HangupRequest\nUniqueid: nobody\n\n",
        "Response: Success\nMessage: not an event\n\n",
    ] {
        at(&mut r, 0, text);
    }
    assert!(r.events().is_empty(), "{:?}", r.events());
}

fn status_item(text: &str) -> Message {
    Message::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn after_a_reconnect_the_figures_come_from_queue_status() {
    let mut r = two_agents();
    at(&mut r, 0, &member("QueueMemberAdded", "PJSIP/1002"));
    at(
        &mut r,
        10,
        &caller("QueueCallerJoin", "gone", "Position: 1\nCount: 1\n"),
    );
    at(
        &mut r,
        20,
        &caller("QueueCallerJoin", "stays", "Position: 2\nCount: 2\n"),
    );
    r.link_down("Asterisk AMI: connection reset");
    r.link_down("Asterisk AMI: connection reset");
    at(&mut r, 40, "");
    let status = [
        "Event: QueueParams\nQueue: sales\nMax: 0\nStrategy: ringall\nCalls: 2\nCompleted: 0\nAbandoned: 1\n",
        "Event: QueueMember\nQueue: sales\nName: Agent 1001\nLocation: PJSIP/1001\nStateInterface: PJSIP/1001\nMembership: dynamic\nPaused: 0\n",
        "Event: QueueMember\nQueue: sales\nName: someone\nLocation: PJSIP/1009\nStateInterface: PJSIP/1009\nMembership: dynamic\nPaused: 0\n",
        "Event: QueueEntry\nQueue: sales\nPosition: 1\nChannel: Local/3001@from-customers-00000002;2\nUniqueid: stays\nWait: 20\n",
        "Event: QueueEntry\nQueue: sales\nPosition: 2\nChannel: Local/3001@from-customers-00000003;2\nUniqueid: new\nWait: 4\n",
        "Event: QueueEntry\nQueue: sales\nPosition: 3\nChannel: Local/3001@from-customers-00000004;2\nWait: 2\n",
        "Event: QueueEntry\nQueue: sales\nPosition: 3\nChannel: Local/3001@from-customers-00000005;2\nUniqueid: badwait\nWait: soon\n",
        "Event: QueueEntry\nQueue: support\nPosition: 1\nUniqueid: elsewhere\nWait: 1\n",
    ]
    .map(status_item);
    r.restore(&status);
    let restored: Vec<&str> = names(&r);
    assert_eq!(
        restored,
        [
            "agent_joined",
            "caller_joined",
            "caller_joined",
            "link_down",
            "resynced",
        ]
    );
    let f = figures(&r, "sales");
    assert_eq!(
        (f.offered, f.left_unseen, f.waiting, f.ringing),
        (4, 1, 3, 0),
        "gone left unseen; new and badwait joined while the link was down"
    );
    assert_eq!(
        f.oldest_since,
        Some(Timestamp::from_micros(START.as_micros() + 20_000_000)),
        "a caller known before keeps its own join time"
    );
    assert_eq!(
        r.stats()
            .agent_state(&AgentId::new("alice").unwrap_or_else(|e| panic!("{e}"))),
        AgentState::LoggedOut
    );
    ready(&mut r, "alice");
    ready(&mut r, "bob");
    assert_eq!(
        figures(&r, "sales").agents.ready,
        1,
        "members as Asterisk lists them: alice, not bob"
    );
    // Events Asterisk sent before its report, applied after it: nothing twice.
    at(&mut r, 40, &hangup("HangupRequest", "gone"));
    at(
        &mut r,
        40,
        &caller(
            "QueueCallerAbandon",
            "gone",
            "Position: 1\nOriginalPosition: 1\nHoldTime: 25\n",
        ),
    );
    at(
        &mut r,
        40,
        &caller("QueueCallerLeave", "gone", "Position: 1\nCount: 2\n"),
    );
    let f = figures(&r, "sales");
    assert_eq!((f.offered, f.abandoned, f.left_unseen), (4, 0, 1));
    // Who rings for a restored caller is not known: its leave awaits the answer.
    at(
        &mut r,
        41,
        &caller("QueueCallerLeave", "stays", "Position: 1\nCount: 1\n"),
    );
    at(
        &mut r,
        41,
        &agent(
            "AgentConnect",
            "stays",
            "PJSIP/1001",
            "HoldTime: 21\nRingTime: 1\n",
        ),
    );
    // ... and one that leaves with no answer is settled when its channel hangs up.
    at(
        &mut r,
        42,
        &caller("QueueCallerLeave", "new", "Position: 1\nCount: 0\n"),
    );
    assert_eq!(figures(&r, "sales").overflowed, 0);
    at(&mut r, 43, &hangup("Hangup", "new"));
    let f = figures(&r, "sales");
    assert_eq!(
        (
            f.offered,
            f.answered,
            f.overflowed,
            f.left_unseen,
            f.waiting
        ),
        (4, 1, 1, 1, 1)
    );
    assert_eq!(f.average_speed_of_answer_ms, Some(21_000));
}

/// Replays a capture's events through a link whose lines are `lines`.
fn replay_capture(capture: &str, queue: &str, lines: &[(&str, &str)]) -> QueueReplay {
    let mut replay = QueueReplay::new(&[queue], lines, START);
    let mut decoder = PushDecoder::new();
    decoder.push(&common::fixture(&format!("{capture}.txt")));
    for frame in decoder.frames() {
        match frame {
            Ok(Frame::Message(m)) if m.is_event() => replay.translate(&m),
            Ok(_) => {}
            Err(e) => panic!("{capture}: {e}"),
        }
    }
    replay
}

#[test]
fn captured_queue_call_to_a_local_agent() {
    // Capture 14: Local/1003 logs in and out; a customer is answered by Local/1002,
    // which Asterisk reports complete without the caller's channel (gone by then).
    let r = replay_capture(
        "14_queue",
        "support",
        &[
            ("agent-1001", "Local/1001@agents"),
            ("agent-1002", "Local/1002@agents"),
            ("agent-1003", "Local/1003@agents"),
        ],
    );
    assert_eq!(
        names(&r),
        [
            "agent_joined",
            "caller_joined",
            "caller_offered",
            "caller_answered",
            "caller_completed",
            "agent_left",
        ]
    );
    match &r.events()[4] {
        QueueEvent::CallerCompleted { call, agent, .. } => {
            assert_eq!(
                (call.as_str(), agent.as_str()),
                ("1795238125.59", "agent-1002")
            )
        }
        other => panic!("{other:?}"),
    }
    let f = figures(&r, "support");
    assert_eq!(
        (f.offered, f.answered, f.completed, f.abandoned, f.waiting),
        (1, 1, 1, 0, 0)
    );
}

#[test]
fn captured_queue_calls_to_a_pjsip_phone() {
    for capture in ["20_pjsip_queue_call", "22_pjsip_consult_transfer"] {
        let r = replay_capture(capture, "sales", &[("alice", "PJSIP/1001")]);
        assert_eq!(
            names(&r),
            [
                "agent_joined",
                "caller_joined",
                "caller_offered",
                "caller_answered",
                "caller_completed",
                "agent_left",
            ],
            "{capture}"
        );
        let f = figures(&r, "sales");
        assert_eq!(
            (f.offered, f.answered, f.completed, f.waiting, f.ringing),
            (1, 1, 1, 0, 0),
            "{capture}"
        );
    }
}
