//! Property tests of the pure state machines over generated event sequences.

use opencti_core::machine::{Desk, Step};
use opencti_core::{
    AgentId, AgentState, CallData, CallId, CallState, Capabilities, Cause, ChosenState, Command,
    CommandKind, DeviceId, Dialable, DtmfDigits, Event, Party, PartyId, QueueId, ReasonCode,
};
use proptest::prelude::*;

fn id(s: &str) -> CallId {
    CallId::new(s).unwrap()
}

/// One step of a generated history.
#[derive(Debug, Clone)]
enum Action {
    /// An arbitrary event, likely to be refused.
    Raw(RawEvent),
    /// Pick the n-th command allowed now and apply the event that confirms it.
    Allowed(usize),
}

#[derive(Debug, Clone)]
enum RawEvent {
    Offered { call: u8, acd: bool },
    Initiated { call: u8 },
    Ringback(u8),
    Queued(u8),
    Connected(u8),
    Held(u8),
    Retrieved(u8),
    Failed(u8),
    Ended(u8),
    Diverted(u8),
    Transferred(u8),
    Conferenced(u8),
    PartyJoined(u8, u8),
    PartyLeft(u8, u8),
    Dtmf(u8),
    Agent(u8),
    NextQueued(u8),
    LinkDown,
    LinkUp,
}

fn raw_event() -> impl Strategy<Value = RawEvent> {
    let call = 0u8..4;
    prop_oneof![
        (call.clone(), any::<bool>()).prop_map(|(call, acd)| RawEvent::Offered { call, acd }),
        call.clone().prop_map(|call| RawEvent::Initiated { call }),
        call.clone().prop_map(RawEvent::Ringback),
        call.clone().prop_map(RawEvent::Queued),
        call.clone().prop_map(RawEvent::Connected),
        call.clone().prop_map(RawEvent::Held),
        call.clone().prop_map(RawEvent::Retrieved),
        call.clone().prop_map(RawEvent::Failed),
        call.clone().prop_map(RawEvent::Ended),
        call.clone().prop_map(RawEvent::Diverted),
        call.clone().prop_map(RawEvent::Transferred),
        call.clone().prop_map(RawEvent::Conferenced),
        (call.clone(), 0u8..3).prop_map(|(c, p)| RawEvent::PartyJoined(c, p)),
        (call.clone(), 0u8..3).prop_map(|(c, p)| RawEvent::PartyLeft(c, p)),
        call.prop_map(RawEvent::Dtmf),
        (0u8..6).prop_map(RawEvent::Agent),
        (0u8..3).prop_map(RawEvent::NextQueued),
        Just(RawEvent::LinkDown),
        Just(RawEvent::LinkUp),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => raw_event().prop_map(Action::Raw),
        3 => (0usize..32).prop_map(Action::Allowed),
    ]
}

fn chosen(n: u8) -> ChosenState {
    match n % 3 {
        0 => ChosenState::Ready,
        1 => ChosenState::NotReady {
            reason: Some(ReasonCode::new("lunch").unwrap()),
        },
        _ => ChosenState::LoggedOut,
    }
}

fn to_event(raw: &RawEvent) -> Event {
    let c = |n: &u8| id(&format!("c{}", n));
    match raw {
        RawEvent::Offered { call, acd } => Event::CallOffered {
            call: c(call),
            from: None,
            to: None,
            queue: acd.then(|| QueueId::new("support").unwrap()),
            data: CallData::new(),
        },
        RawEvent::Initiated { call } => Event::CallInitiated {
            call: c(call),
            to: None,
            consult_of: None,
            data: CallData::new(),
        },
        RawEvent::Ringback(n) => Event::CallRingback { call: c(n) },
        RawEvent::Queued(n) => Event::CallQueued {
            call: c(n),
            queue: None,
        },
        RawEvent::Connected(n) => Event::CallConnected { call: c(n) },
        RawEvent::Held(n) => Event::CallHeld { call: c(n) },
        RawEvent::Retrieved(n) => Event::CallRetrieved { call: c(n) },
        RawEvent::Failed(n) => Event::CallFailed {
            call: c(n),
            cause: Cause::Busy,
        },
        RawEvent::Ended(n) => Event::CallEnded {
            call: c(n),
            cause: Cause::Normal,
        },
        RawEvent::Diverted(n) => Event::CallDiverted {
            call: c(n),
            to: None,
        },
        RawEvent::Transferred(n) => Event::CallTransferred {
            call: c(n),
            to: None,
        },
        RawEvent::Conferenced(n) => Event::CallConferenced {
            call: c(n),
            merged: None,
        },
        RawEvent::PartyJoined(n, p) => Event::PartyJoined {
            call: c(n),
            party: Party::new(PartyId::new(format!("p{}", p)).unwrap()),
        },
        RawEvent::PartyLeft(n, p) => Event::PartyLeft {
            call: c(n),
            party: PartyId::new(format!("p{}", p)).unwrap(),
        },
        RawEvent::Dtmf(n) => Event::DtmfSent {
            call: c(n),
            digits: DtmfDigits::new("1").unwrap(),
        },
        RawEvent::Agent(n) => Event::AgentStateChanged {
            state: match n {
                0..=2 => chosen(*n).to_agent_state(),
                3 => AgentState::Busy {
                    next: ChosenState::Ready,
                },
                4 => AgentState::Reserved {
                    next: ChosenState::Ready,
                },
                _ => AgentState::WrapUp {
                    reason: None,
                    next: ChosenState::Ready,
                },
            },
        },
        RawEvent::NextQueued(n) => Event::NextStateQueued { next: chosen(*n) },
        RawEvent::LinkDown => Event::LinkDown {
            reason: "test".into(),
        },
        RawEvent::LinkUp => Event::LinkUp,
    }
}

/// Every command allowed now, with plausible arguments.
fn allowed_commands(desk: &Desk) -> Vec<Command> {
    let mut commands = Vec::new();
    let to = Dialable::new("2000").unwrap();
    for kind in desk.allowed_commands(None).iter() {
        commands.push(match kind {
            CommandKind::Login => Command::Login {},
            CommandKind::Logout => Command::Logout { reason: None },
            CommandKind::SetAgentState => Command::SetAgentState {
                state: ChosenState::Ready,
                after_call: desk.agent().is_derived(),
            },
            CommandKind::MakeCall => Command::MakeCall {
                to: to.clone(),
                data: CallData::new(),
            },
            CommandKind::CompleteWrapUp => Command::CompleteWrapUp { disposition: None },
            other => panic!("{} offered without a call", other),
        });
    }
    for call in desk.calls() {
        let c = call.id.clone();
        for kind in desk.allowed_commands(Some(&c)).iter() {
            commands.push(match kind {
                CommandKind::Answer => Command::Answer { call: c.clone() },
                CommandKind::Reject => Command::Reject { call: c.clone() },
                CommandKind::Hangup => Command::Hangup { call: c.clone() },
                CommandKind::Hold => Command::Hold { call: c.clone() },
                CommandKind::Retrieve => Command::Retrieve { call: c.clone() },
                CommandKind::Alternate => Command::Alternate { call: c.clone() },
                CommandKind::Consult => Command::Consult {
                    call: c.clone(),
                    to: to.clone(),
                },
                CommandKind::CompleteTransfer => Command::CompleteTransfer { call: c.clone() },
                CommandKind::BlindTransfer => Command::BlindTransfer {
                    call: c.clone(),
                    to: to.clone(),
                },
                CommandKind::CompleteConference => Command::CompleteConference { call: c.clone() },
                CommandKind::DropParty => Command::DropParty {
                    call: c.clone(),
                    party: call.parties[0].id.clone(),
                },
                CommandKind::SendDtmf => Command::SendDtmf {
                    call: c.clone(),
                    digits: DtmfDigits::new("5").unwrap(),
                },
                CommandKind::SetCallData => Command::SetCallData {
                    call: c.clone(),
                    data: CallData::from_pairs([("k", "v")]).unwrap(),
                },
                other => panic!("{} offered for a call", other),
            });
        }
    }
    commands
}

/// The events a switch emits to carry out `command`; the last one confirms it.
fn carry_out(desk: &Desk, command: &Command, fresh: &mut u32) -> Vec<Event> {
    let mut new_call = || {
        *fresh += 1;
        id(&format!("n{}", fresh))
    };
    match command {
        Command::Login {} => vec![Event::AgentStateChanged {
            state: AgentState::NotReady { reason: None },
        }],
        Command::Logout { .. } => vec![Event::AgentStateChanged {
            state: AgentState::LoggedOut,
        }],
        Command::SetAgentState { state, after_call } => {
            if *after_call {
                vec![Event::NextStateQueued {
                    next: state.clone(),
                }]
            } else {
                vec![Event::AgentStateChanged {
                    state: state.to_agent_state(),
                }]
            }
        }
        Command::CompleteWrapUp { .. } => vec![Event::AgentStateChanged {
            state: desk.agent().chosen().to_agent_state(),
        }],
        Command::MakeCall { .. } => vec![Event::CallInitiated {
            call: new_call(),
            to: None,
            consult_of: None,
            data: CallData::new(),
        }],
        Command::Answer { call } => vec![Event::CallConnected { call: call.clone() }],
        Command::Reject { call } | Command::Hangup { call } => vec![Event::CallEnded {
            call: call.clone(),
            cause: Cause::Normal,
        }],
        Command::Hold { call } => vec![Event::CallHeld { call: call.clone() }],
        Command::Retrieve { call } => vec![Event::CallRetrieved { call: call.clone() }],
        Command::Alternate { call } => {
            let active = desk
                .calls()
                .iter()
                .find(|c| c.state == CallState::Connected)
                .map(|c| c.id.clone())
                .unwrap();
            vec![
                Event::CallHeld { call: active },
                Event::CallRetrieved { call: call.clone() },
            ]
        }
        Command::Consult { call, .. } => {
            let mut events = Vec::new();
            if desk.call(call).unwrap().state == CallState::Connected {
                events.push(Event::CallHeld { call: call.clone() });
            }
            events.push(Event::CallInitiated {
                call: new_call(),
                to: None,
                consult_of: Some(call.clone()),
                data: CallData::new(),
            });
            events
        }
        Command::CompleteTransfer { call } | Command::BlindTransfer { call, .. } => {
            vec![Event::CallTransferred {
                call: call.clone(),
                to: None,
            }]
        }
        Command::CompleteConference { call } => {
            let primary = desk.call(call).unwrap().consult_of.clone().unwrap();
            vec![Event::CallConferenced {
                call: primary,
                merged: Some(call.clone()),
            }]
        }
        Command::DropParty { call, party } => vec![Event::PartyLeft {
            call: call.clone(),
            party: party.clone(),
        }],
        Command::SendDtmf { call, digits } => vec![Event::DtmfSent {
            call: call.clone(),
            digits: digits.clone(),
        }],
        Command::SetCallData { call, data } => vec![Event::CallDataChanged {
            call: call.clone(),
            data: data.clone(),
        }],
        other => panic!("not scripted: {:?}", other),
    }
}

fn new_desk(wrap_up: bool) -> Desk {
    let mut desk = Desk::new(
        AgentId::new("a").unwrap(),
        DeviceId::new("d").unwrap(),
        Capabilities::all().with_wrap_up(wrap_up),
    );
    let _ = desk.apply(&mut Event::LinkUp).unwrap();
    desk
}

fn check_invariants(desk: &Desk) -> Result<(), TestCaseError> {
    // An agent with an active ACD call is never ready.
    if desk.calls().iter().any(|c| c.is_acd()) {
        prop_assert_ne!(desk.agent(), &AgentState::Ready);
    }
    // Derived states agree with the calls.
    let any_busy = desk
        .calls()
        .iter()
        .any(|c| !matches!(c.state, CallState::Offered));
    if desk.agent().is_logged_in() && any_busy {
        prop_assert_eq!(desk.agent().name(), "busy");
    }
    if desk.agent().is_logged_in() && desk.calls().is_empty() {
        let derived_from_calls = matches!(
            desk.agent(),
            AgentState::Busy { .. } | AgentState::Reserved { .. }
        );
        prop_assert!(!derived_from_calls, "{:?} with no calls", desk.agent());
    }
    // No ended call stays on the desk; a consult always points at a call on the desk.
    for call in desk.calls() {
        prop_assert!(!call.state.is_ended());
    }
    prop_assert!(desk.calls().len() <= Desk::MAX_CALLS);
    // Every command offered is accepted by check, and its confirming events by the
    // machine: a UI that enables buttons from allowed_commands never offers a refusal.
    for command in allowed_commands(desk) {
        prop_assert!(
            desk.check(&command).is_ok(),
            "{:?} offered but refused: {:?}",
            command,
            desk.check(&command)
        );
        let mut probe = desk.clone();
        let mut fresh = 1000;
        let expectation = desk.expectation(&command);
        let events = carry_out(desk, &command, &mut fresh);
        let last = events.len() - 1;
        for (i, mut event) in events.into_iter().enumerate() {
            let applied = probe.apply(&mut event);
            prop_assert!(
                applied.is_ok(),
                "{:?} offered, but its event {:?} is refused: {:?}",
                command,
                event,
                applied
            );
            if i == last {
                prop_assert!(
                    expectation.is_confirmed_by(&event),
                    "{:?} is not confirmed by {:?}",
                    command,
                    event
                );
            }
        }
    }
    // Commands not offered are refused by check.
    for call in desk.calls() {
        let allowed = desk.allowed_commands(Some(&call.id));
        for command in [
            Command::Answer {
                call: call.id.clone(),
            },
            Command::Hold {
                call: call.id.clone(),
            },
            Command::Retrieve {
                call: call.id.clone(),
            },
            Command::Hangup {
                call: call.id.clone(),
            },
        ] {
            prop_assert_eq!(
                allowed.contains(command.kind()),
                desk.check(&command).is_ok(),
                "{:?} in {:?}",
                command,
                call.state
            );
        }
    }
    Ok(())
}

fn run(actions: &[Action], wrap_up: bool) -> Result<(), TestCaseError> {
    let mut desk = new_desk(wrap_up);
    let mut ended: Vec<CallId> = Vec::new();
    let mut fresh = 0u32;
    for action in actions {
        let events = match action {
            Action::Raw(raw) => vec![to_event(raw)],
            Action::Allowed(n) => {
                let commands = allowed_commands(&desk);
                if commands.is_empty() {
                    continue;
                }
                let command = &commands[n % commands.len()];
                carry_out(&desk, command, &mut fresh)
            }
        };
        for mut event in events {
            let before = desk.clone();
            let previous_state = event.call().and_then(|c| desk.call(c)).map(|c| c.state);
            match desk.apply(&mut event) {
                Err(_) => {
                    // A refused event leaves the state exactly as it was.
                    prop_assert_eq!(&desk, &before);
                }
                Ok(applied) => {
                    if let Some(call) = event.call() {
                        // Nothing follows ended.
                        if ended.contains(call) {
                            let repeat_end = matches!(event, Event::CallEnded { .. })
                                && applied.step == Step::Duplicate;
                            prop_assert!(repeat_end, "{:?} accepted after the call ended", event);
                        }
                        // Held only from connected.
                        if desk.call(call).map(|c| c.state) == Some(CallState::Held) {
                            let from_connected = matches!(
                                previous_state,
                                Some(CallState::Connected | CallState::Held)
                            );
                            prop_assert!(from_connected, "held from {:?}", previous_state);
                        }
                        if matches!(event, Event::CallEnded { .. }) && !ended.contains(call) {
                            ended.push(call.clone());
                        }
                    }
                }
            }
            check_invariants(&desk)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_over_any_event_sequence(actions in prop::collection::vec(action(), 1..60), wrap_up in any::<bool>()) {
        run(&actions, wrap_up)?;
    }

    #[test]
    fn snapshots_survive_a_json_round_trip(actions in prop::collection::vec(action(), 1..40)) {
        let mut desk = new_desk(true);
        let mut fresh = 0;
        for action in &actions {
            if let Action::Allowed(n) = action {
                let commands = allowed_commands(&desk);
                if commands.is_empty() { continue; }
                for mut e in carry_out(&desk, &commands[n % commands.len()], &mut fresh) {
                    let _ = desk.apply(&mut e);
                }
            }
        }
        let snap = desk.snapshot(7);
        let json = serde_json::to_string(&snap).unwrap();
        let back: opencti_core::Snapshot = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, snap);
    }
}

#[test]
fn a_consult_then_conference_then_drop_party_walks_through() {
    let mut desk = new_desk(true);
    let mut events = [
        Event::AgentStateChanged {
            state: AgentState::Ready,
        },
        Event::CallOffered {
            call: id("c1"),
            from: None,
            to: None,
            queue: Some(QueueId::new("support").unwrap()),
            data: CallData::new(),
        },
        Event::CallConnected { call: id("c1") },
        Event::CallHeld { call: id("c1") },
        Event::CallInitiated {
            call: id("c2"),
            to: None,
            consult_of: Some(id("c1")),
            data: CallData::new(),
        },
        Event::CallRingback { call: id("c2") },
        Event::CallConnected { call: id("c2") },
    ];
    for e in events.iter_mut() {
        let _ = desk.apply(e).unwrap();
    }
    let allowed = desk.allowed_commands(Some(&id("c2")));
    assert!(allowed.contains(CommandKind::CompleteTransfer));
    assert!(allowed.contains(CommandKind::CompleteConference));
    assert!(desk
        .allowed_commands(Some(&id("c1")))
        .contains(CommandKind::Alternate));
    let _ = desk
        .apply(&mut Event::CallConferenced {
            call: id("c1"),
            merged: Some(id("c2")),
        })
        .unwrap();
    let _ = desk
        .apply(&mut Event::CallEnded {
            call: id("c2"),
            cause: Cause::Merged,
        })
        .unwrap();
    let _ = desk
        .apply(&mut Event::PartyJoined {
            call: id("c1"),
            party: Party::new(PartyId::new("p1").unwrap()),
        })
        .unwrap();
    assert!(desk
        .allowed_commands(Some(&id("c1")))
        .contains(CommandKind::DropParty));
    let applied = desk
        .apply(&mut Event::CallEnded {
            call: id("c1"),
            cause: Cause::Normal,
        })
        .unwrap();
    assert_eq!(applied.derived.unwrap().name(), "wrap_up");
}
