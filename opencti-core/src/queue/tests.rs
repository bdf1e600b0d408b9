//! The queue figures against hand-worked cases and, over random event sequences, against
//! a naive count kept beside them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::agent::{AgentState, ChosenState};
use crate::ids::{AgentId, CallId, QueueId};
use crate::values::ReasonCode;
use crate::Timestamp;

fn q(name: &str) -> QueueId {
    QueueId::new(name).unwrap()
}
fn c(name: &str) -> CallId {
    CallId::new(name).unwrap()
}
fn a(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}
fn secs(s: u64) -> Timestamp {
    Timestamp::from_micros(s * 1_000_000)
}
fn busy() -> AgentState {
    AgentState::Busy {
        next: ChosenState::Ready,
    }
}
fn wrap_up() -> AgentState {
    AgentState::WrapUp {
        reason: None,
        next: ChosenState::Ready,
    }
}

#[test]
fn speed_of_answer_and_service_level_count_from_the_join() {
    let mut stats = QueueStats::new(secs(0)).with_queue(q("sales"), Duration::from_secs(10));
    stats.apply(
        secs(0),
        QueueEvent::CallerJoined {
            queue: q("sales"),
            call: c("1"),
        },
    );
    stats.apply(
        secs(1),
        QueueEvent::CallerJoined {
            queue: q("sales"),
            call: c("2"),
        },
    );
    stats.apply(
        secs(2),
        QueueEvent::CallerJoined {
            queue: q("sales"),
            call: c("3"),
        },
    );
    stats.apply(
        secs(4),
        QueueEvent::CallerOffered {
            queue: q("sales"),
            call: c("1"),
            agent: a("alice"),
        },
    );
    let f = stats.figures(&q("sales")).unwrap();
    assert_eq!((f.waiting, f.ringing, f.offered), (2, 1, 3));
    assert_eq!(f.oldest_since, Some(secs(0)));
    assert_eq!(f.longest_wait_ms(secs(4)), 4_000);
    // A ring with no answer: the caller waits again, still from their join.
    stats.apply(
        secs(6),
        QueueEvent::CallerReturned {
            queue: q("sales"),
            call: c("1"),
        },
    );
    stats.apply(
        secs(8),
        QueueEvent::CallerAnswered {
            queue: q("sales"),
            call: c("1"),
            agent: a("bob"),
        },
    );
    stats.apply(
        secs(21),
        QueueEvent::CallerAnswered {
            queue: q("sales"),
            call: c("2"),
            agent: a("alice"),
        },
    );
    let last = stats.apply(
        secs(30),
        QueueEvent::CallerAbandoned {
            queue: q("sales"),
            call: c("3"),
        },
    );
    assert_eq!(last.seq, 8);
    let f = &last.queues[0];
    assert_eq!(
        (f.offered, f.answered, f.abandoned, f.waiting),
        (3, 2, 1, 0)
    );
    assert_eq!(f.answered_within, 1, "8 s is within 10 s; 20 s is not");
    assert_eq!(f.service_level, Some(1.0 / 3.0));
    assert_eq!(f.average_speed_of_answer_ms, Some(14_000));
    assert_eq!(f.oldest_since, None);
    assert_eq!(f.threshold_ms, 10_000);
}

#[test]
fn handle_time_is_talk_plus_the_after_call_work_that_follows() {
    let mut stats = QueueStats::new(secs(0));
    let sales = q("sales");
    stats.apply(
        secs(0),
        QueueEvent::AgentJoined {
            queue: sales.clone(),
            agent: a("alice"),
        },
    );
    stats.apply(
        secs(0),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: AgentState::Ready,
        },
    );
    stats.apply(
        secs(0),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("1"),
        },
    );
    stats.apply(
        secs(2),
        QueueEvent::CallerAnswered {
            queue: sales.clone(),
            call: c("1"),
            agent: a("alice"),
        },
    );
    stats.apply(
        secs(2),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: busy(),
        },
    );
    let f = stats.figures(&sales).unwrap();
    assert_eq!(
        (f.agents.logged_in, f.agents.busy, f.agents.ready),
        (1, 1, 0)
    );
    stats.apply(
        secs(62),
        QueueEvent::CallerCompleted {
            queue: sales.clone(),
            call: c("1"),
            agent: a("alice"),
        },
    );
    assert_eq!(
        stats.figures(&sales).unwrap().average_handle_ms,
        Some(60_000)
    );
    stats.apply(
        secs(62),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: wrap_up(),
        },
    );
    assert_eq!(stats.figures(&sales).unwrap().agents.wrap_up, 1);
    let done = stats.apply(
        secs(92),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: AgentState::Ready,
        },
    );
    let f = &done.queues[0];
    assert_eq!(f.average_handle_ms, Some(90_000));
    assert_eq!((f.completed, f.agents.ready, f.agents.wrap_up), (1, 1, 0));

    // The session may put the agent in wrap-up before the switch reports the talk over.
    stats.apply(
        secs(100),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("2"),
        },
    );
    stats.apply(
        secs(100),
        QueueEvent::CallerAnswered {
            queue: sales.clone(),
            call: c("2"),
            agent: a("alice"),
        },
    );
    stats.apply(
        secs(130),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: wrap_up(),
        },
    );
    stats.apply(
        secs(130),
        QueueEvent::CallerCompleted {
            queue: sales.clone(),
            call: c("2"),
            agent: a("alice"),
        },
    );
    stats.apply(
        secs(140),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: AgentState::Ready,
        },
    );
    // (90 + 30 + 10) / 2
    assert_eq!(
        stats.figures(&sales).unwrap().average_handle_ms,
        Some(65_000)
    );
}

#[test]
fn agents_are_counted_in_every_queue_they_belong_to_with_not_ready_reasons() {
    let mut stats = QueueStats::new(secs(0));
    for queue in ["sales", "support"] {
        stats.apply(
            secs(0),
            QueueEvent::AgentJoined {
                queue: q(queue),
                agent: a("alice"),
            },
        );
    }
    stats.apply(
        secs(0),
        QueueEvent::AgentJoined {
            queue: q("sales"),
            agent: a("bob"),
        },
    );
    let lunch = AgentState::NotReady {
        reason: Some(ReasonCode::new("lunch").unwrap()),
    };
    let changed = stats.apply(
        secs(1),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: lunch,
        },
    );
    assert_eq!(changed.queues.len(), 2, "both of alice's queues changed");
    stats.apply(
        secs(1),
        QueueEvent::AgentStateChanged {
            agent: a("bob"),
            state: AgentState::NotReady { reason: None },
        },
    );
    let sales = stats.figures(&q("sales")).unwrap();
    assert_eq!(sales.agents.logged_in, 2);
    assert_eq!(sales.agents.not_ready, 2);
    assert_eq!(
        sales.agents.not_ready_reasons,
        BTreeMap::from([("".to_string(), 1), ("lunch".to_string(), 1)])
    );
    stats.apply(
        secs(2),
        QueueEvent::AgentLeft {
            queue: q("sales"),
            agent: a("alice"),
        },
    );
    let sales = stats.figures(&q("sales")).unwrap();
    assert_eq!((sales.agents.logged_in, sales.agents.not_ready), (1, 1));
    assert_eq!(stats.figures(&q("support")).unwrap().agents.not_ready, 1);
    stats.apply(
        secs(3),
        QueueEvent::AgentStateChanged {
            agent: a("bob"),
            state: AgentState::LoggedOut,
        },
    );
    assert_eq!(
        stats.figures(&q("sales")).unwrap().agents,
        AgentCounts::default()
    );
}

#[test]
fn repeated_and_unseen_callers_keep_the_counts_whole() {
    let mut stats = QueueStats::new(secs(0));
    let sales = q("sales");
    stats.apply(
        secs(0),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("1"),
        },
    );
    stats.apply(
        secs(0),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("1"),
        },
    );
    stats.apply(
        secs(1),
        QueueEvent::CallerAnswered {
            queue: sales.clone(),
            call: c("1"),
            agent: a("x"),
        },
    );
    stats.apply(
        secs(1),
        QueueEvent::CallerAnswered {
            queue: sales.clone(),
            call: c("1"),
            agent: a("x"),
        },
    );
    // Answered before the figures saw it join (they started late): it joined then.
    stats.apply(
        secs(5),
        QueueEvent::CallerAbandoned {
            queue: sales.clone(),
            call: c("9"),
        },
    );
    let f = stats.figures(&sales).unwrap();
    assert_eq!(
        (f.offered, f.answered, f.abandoned, f.waiting),
        (2, 1, 1, 0)
    );
}

#[test]
fn a_caller_that_never_leaves_does_not_pile_up_the_join_order() {
    let mut stats = QueueStats::new(secs(0));
    let sales = q("sales");
    stats.apply(
        secs(0),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("stuck"),
        },
    );
    for n in 0..100_000u64 {
        let call = c(&n.to_string());
        stats.apply(
            secs(n),
            QueueEvent::CallerJoined {
                queue: sales.clone(),
                call: call.clone(),
            },
        );
        stats.apply(
            secs(n),
            QueueEvent::CallerAbandoned {
                queue: sales.clone(),
                call,
            },
        );
    }
    let queue = &stats.queues_for_tests()[&sales];
    assert!(
        queue.0 <= 66,
        "{} join-order entries for one caller",
        queue.0
    );
    assert!(queue.1 <= 4096, "{} leavers remembered", queue.1);
    assert_eq!(stats.figures(&sales).unwrap().oldest_since, Some(secs(0)));
}

#[test]
fn after_the_link_returns_the_switch_report_replaces_callers_and_members() {
    let mut stats = QueueStats::new(secs(0));
    let sales = q("sales");
    stats.apply(
        secs(0),
        QueueEvent::AgentJoined {
            queue: sales.clone(),
            agent: a("alice"),
        },
    );
    stats.apply(
        secs(0),
        QueueEvent::AgentStateChanged {
            agent: a("alice"),
            state: AgentState::Ready,
        },
    );
    stats.apply(
        secs(0),
        QueueEvent::AgentStateChanged {
            agent: a("bob"),
            state: AgentState::Ready,
        },
    );
    stats.apply(
        secs(1),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("gone"),
        },
    );
    stats.apply(
        secs(2),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("stays"),
        },
    );
    let down = stats.apply(
        secs(3),
        QueueEvent::LinkDown {
            reason: "lost".into(),
        },
    );
    assert!(down.queues.is_empty());
    assert_eq!(stats.snapshot(secs(3)).link, crate::LinkState::Down);
    let resynced = stats.restore(
        secs(10),
        ReportedQueues {
            queues: vec![ReportedQueue {
                queue: sales.clone(),
                callers: vec![
                    ReportedCaller {
                        call: c("stays"),
                        joined: secs(9),
                        ringing: true,
                    },
                    ReportedCaller {
                        call: c("new"),
                        joined: secs(7),
                        ringing: false,
                    },
                ],
                members: Some(vec![a("bob")]),
            }],
        },
    );
    assert_eq!(resynced.seq, down.seq + 1);
    let QueueEvent::Resynced { snapshot } = resynced.event else {
        panic!("{:?}", resynced.event)
    };
    assert_eq!(snapshot.link, crate::LinkState::Up);
    let f = &snapshot.queues[0];
    assert_eq!(
        (f.offered, f.left_unseen, f.waiting, f.ringing),
        (3, 1, 1, 1)
    );
    assert_eq!(
        f.oldest_since,
        Some(secs(2)),
        "a known caller keeps its own join time"
    );
    assert_eq!((f.agents.logged_in, f.agents.ready), (1, 1), "bob only");
}

#[test]
fn a_leave_reported_after_the_restore_counts_the_caller_once() {
    let mut stats = QueueStats::new(secs(0));
    let sales = q("sales");
    stats.apply(
        secs(1),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("gone"),
        },
    );
    stats.apply(
        secs(2),
        QueueEvent::LinkDown {
            reason: "lost".into(),
        },
    );
    stats.restore(
        secs(5),
        ReportedQueues {
            queues: vec![ReportedQueue {
                queue: sales.clone(),
                callers: Vec::new(),
                members: None,
            }],
        },
    );
    // The switch told of the abandon before its report, but the event was applied after.
    stats.apply(
        secs(5),
        QueueEvent::CallerAbandoned {
            queue: sales.clone(),
            call: c("gone"),
        },
    );
    let f = stats.figures(&sales).unwrap();
    assert_eq!(
        (f.offered, f.left_unseen, f.abandoned, f.waiting),
        (1, 1, 0, 0)
    );
    // The same caller may join again later, and is counted again then.
    stats.apply(
        secs(6),
        QueueEvent::CallerJoined {
            queue: sales.clone(),
            call: c("gone"),
        },
    );
    assert_eq!(stats.figures(&sales).unwrap().offered, 2);
}

// ----- random sequences against a naive count -----

#[derive(Debug, Clone)]
enum Step {
    Join(usize, usize),
    Offer(usize, usize, usize),
    Return(usize, usize),
    Answer(usize, usize, usize),
    Abandon(usize, usize),
    Overflow(usize, usize),
    Complete(usize, usize, usize),
    Member(usize, usize, bool),
    State(usize, usize),
    Restore(usize, Vec<(usize, bool)>),
}

const QUEUES: usize = 3;
const CALLS: usize = 6;
const AGENTS: usize = 4;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..QUEUES, 0..CALLS).prop_map(|(q, c)| Step::Join(q, c)),
        (0..QUEUES, 0..CALLS, 0..AGENTS).prop_map(|(q, c, a)| Step::Offer(q, c, a)),
        (0..QUEUES, 0..CALLS).prop_map(|(q, c)| Step::Return(q, c)),
        (0..QUEUES, 0..CALLS, 0..AGENTS).prop_map(|(q, c, a)| Step::Answer(q, c, a)),
        (0..QUEUES, 0..CALLS).prop_map(|(q, c)| Step::Abandon(q, c)),
        (0..QUEUES, 0..CALLS).prop_map(|(q, c)| Step::Overflow(q, c)),
        (0..QUEUES, 0..CALLS, 0..AGENTS).prop_map(|(q, c, a)| Step::Complete(q, c, a)),
        (0..QUEUES, 0..AGENTS, any::<bool>()).prop_map(|(q, a, join)| Step::Member(q, a, join)),
        (0..AGENTS, 0..7usize).prop_map(|(a, s)| Step::State(a, s)),
        (
            0..QUEUES,
            proptest::collection::vec((0..CALLS, any::<bool>()), 0..4)
        )
            .prop_map(|(q, callers)| Step::Restore(q, callers)),
    ]
}

fn state(n: usize) -> AgentState {
    match n {
        0 => AgentState::LoggedOut,
        1 => AgentState::Ready,
        2 => AgentState::NotReady { reason: None },
        3 => AgentState::NotReady {
            reason: Some(ReasonCode::new("lunch").unwrap()),
        },
        4 => AgentState::Reserved {
            next: ChosenState::Ready,
        },
        5 => busy(),
        _ => wrap_up(),
    }
}

/// The same counts, kept the plain way.
#[derive(Default)]
struct Naive {
    callers: HashMap<(usize, usize), bool>,
    left: HashSet<(usize, usize)>,
    offered: [u64; QUEUES],
    answered: [u64; QUEUES],
    abandoned: [u64; QUEUES],
    overflowed: [u64; QUEUES],
    unseen: [u64; QUEUES],
    members: HashSet<(usize, usize)>,
    states: HashMap<usize, usize>,
}

impl Naive {
    fn join(&mut self, q: usize, c: usize) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.callers.entry((q, c)) {
            e.insert(false);
            self.offered[q] += 1;
        }
    }
    fn leave(&mut self, q: usize, c: usize) -> bool {
        if !self.callers.contains_key(&(q, c)) {
            if self.left.contains(&(q, c)) {
                return false;
            }
            self.join(q, c);
        }
        self.callers.remove(&(q, c));
        self.left.insert((q, c));
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_caller_is_counted_once_and_every_member_in_one_state(
        steps in proptest::collection::vec((step(), 0u64..5), 1..120)
    ) {
        let mut stats = QueueStats::new(secs(0));
        let mut naive = Naive::default();
        let mut now = 0u64;
        for (n, (step, later)) in steps.into_iter().enumerate() {
            now += later;
            let at = secs(now);
            let qid = |i: usize| q(&format!("q{}", i));
            let cid = |i: usize| c(&format!("c{}", i));
            let aid = |i: usize| a(&format!("a{}", i));
            let envelope = match step.clone() {
                Step::Join(qi, ci) => {
                    naive.join(qi, ci);
                    stats.apply(at, QueueEvent::CallerJoined { queue: qid(qi), call: cid(ci) })
                }
                Step::Offer(qi, ci, ai) => {
                    naive.join(qi, ci);
                    naive.callers.insert((qi, ci), true);
                    stats.apply(at, QueueEvent::CallerOffered { queue: qid(qi), call: cid(ci), agent: aid(ai) })
                }
                Step::Return(qi, ci) => {
                    naive.join(qi, ci);
                    naive.callers.insert((qi, ci), false);
                    stats.apply(at, QueueEvent::CallerReturned { queue: qid(qi), call: cid(ci) })
                }
                Step::Answer(qi, ci, ai) => {
                    if naive.leave(qi, ci) { naive.answered[qi] += 1; }
                    stats.apply(at, QueueEvent::CallerAnswered { queue: qid(qi), call: cid(ci), agent: aid(ai) })
                }
                Step::Abandon(qi, ci) => {
                    if naive.leave(qi, ci) { naive.abandoned[qi] += 1; }
                    stats.apply(at, QueueEvent::CallerAbandoned { queue: qid(qi), call: cid(ci) })
                }
                Step::Overflow(qi, ci) => {
                    if naive.leave(qi, ci) { naive.overflowed[qi] += 1; }
                    stats.apply(at, QueueEvent::CallerOverflowed { queue: qid(qi), call: cid(ci) })
                }
                Step::Complete(qi, ci, ai) => {
                    stats.apply(at, QueueEvent::CallerCompleted { queue: qid(qi), call: cid(ci), agent: aid(ai) })
                }
                Step::Member(qi, ai, true) => {
                    naive.members.insert((qi, ai));
                    stats.apply(at, QueueEvent::AgentJoined { queue: qid(qi), agent: aid(ai) })
                }
                Step::Member(qi, ai, false) => {
                    naive.members.remove(&(qi, ai));
                    stats.apply(at, QueueEvent::AgentLeft { queue: qid(qi), agent: aid(ai) })
                }
                Step::State(ai, si) => {
                    naive.states.insert(ai, si);
                    stats.apply(at, QueueEvent::AgentStateChanged { agent: aid(ai), state: state(si) })
                }
                Step::Restore(qi, callers) => {
                    // The switch reports each caller once.
                    let now_in: HashMap<(usize, usize), bool> =
                        callers.into_iter().map(|(ci, ringing)| ((qi, ci), ringing)).collect();
                    let reported: Vec<ReportedCaller> = now_in
                        .iter()
                        .map(|(&(_, ci), &ringing)| ReportedCaller { call: cid(ci), joined: at, ringing })
                        .collect();
                    let before: Vec<(usize, usize)> = naive.callers.keys().filter(|k| k.0 == qi).copied().collect();
                    for key in before {
                        if !now_in.contains_key(&key) {
                            naive.callers.remove(&key);
                            naive.left.insert(key);
                            naive.unseen[qi] += 1;
                        }
                    }
                    for (key, ringing) in now_in {
                        if !naive.callers.contains_key(&key) {
                            naive.offered[qi] += 1;
                        }
                        naive.callers.insert(key, ringing);
                    }
                    stats.restore(at, ReportedQueues {
                        queues: vec![ReportedQueue { queue: qid(qi), callers: reported, members: None }],
                    })
                }
            };
            prop_assert_eq!(envelope.seq, n as u64 + 1, "gap-free");
            for qi in 0..QUEUES {
                let Some(f) = stats.figures(&qid(qi)) else { continue };
                let waiting = naive.callers.iter().filter(|(k, r)| k.0 == qi && !**r).count() as u32;
                let ringing = naive.callers.iter().filter(|(k, r)| k.0 == qi && **r).count() as u32;
                prop_assert_eq!(f.waiting, waiting);
                prop_assert_eq!(f.ringing, ringing);
                prop_assert_eq!(f.offered, naive.offered[qi]);
                prop_assert_eq!(f.answered, naive.answered[qi]);
                prop_assert_eq!(f.abandoned, naive.abandoned[qi]);
                prop_assert_eq!(f.overflowed, naive.overflowed[qi]);
                prop_assert_eq!(f.left_unseen, naive.unseen[qi]);
                prop_assert_eq!(
                    f.offered,
                    f.answered + f.abandoned + f.overflowed + f.left_unseen + u64::from(f.waiting) + u64::from(f.ringing)
                );
                prop_assert!(f.answered_within <= f.answered);
                if let Some(level) = f.service_level {
                    prop_assert!((0.0..=1.0).contains(&level));
                }
                prop_assert_eq!(f.oldest_since.is_some(), waiting + ringing > 0);

                let members: Vec<usize> = (0..AGENTS).filter(|ai| naive.members.contains(&(qi, *ai))).collect();
                let in_state = |wanted: &[usize]| members.iter().filter(|ai| wanted.contains(naive.states.get(ai).unwrap_or(&0))).count() as u32;
                let counts = &f.agents;
                prop_assert_eq!(counts.logged_in, in_state(&[1, 2, 3, 4, 5, 6]));
                prop_assert_eq!(counts.ready, in_state(&[1]));
                prop_assert_eq!(counts.not_ready, in_state(&[2, 3]));
                prop_assert_eq!(counts.reserved, in_state(&[4]));
                prop_assert_eq!(counts.busy, in_state(&[5]));
                prop_assert_eq!(counts.wrap_up, in_state(&[6]));
                prop_assert_eq!(counts.not_ready_reasons.get("lunch").copied().unwrap_or(0), in_state(&[3]));
                prop_assert_eq!(counts.not_ready_reasons.values().sum::<u32>(), counts.not_ready);
            }
        }
    }
}
