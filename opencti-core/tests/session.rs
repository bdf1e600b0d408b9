//! The session engine against a mocked connector, under tokio's paused clock.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    AgentState, Call, CallState, Capabilities, Cause, ChosenState, Command, CommandKind,
    DesktopInterface, DesktopInterfaceExt, Dialable, Direction, DtmfDigits, Error, ErrorKind,
    Event, EventSink, LinkState, ReasonCode, Request, Result, Session, SwitchState, Timestamp,
};
use support::*;

/// Answers every request the way an obliging switch would.
fn obliging(request: &Request, sink: &EventSink) -> Result<()> {
    static NEXT_CALL: AtomicU64 = AtomicU64::new(1);
    match &request.command {
        Command::Login {} => sink.emit(Event::AgentStateChanged {
            state: AgentState::NotReady { reason: None },
        }),
        Command::Logout { .. } => sink.emit(Event::AgentStateChanged {
            state: AgentState::LoggedOut,
        }),
        Command::SetAgentState { state, after_call } => {
            if *after_call {
                sink.emit(Event::NextStateQueued {
                    next: state.clone(),
                })
            } else {
                sink.emit(Event::AgentStateChanged {
                    state: state.to_agent_state(),
                })
            }
        }
        Command::MakeCall { to, .. } => {
            let id = call(&format!(
                "out-{}",
                NEXT_CALL.fetch_add(1, Ordering::Relaxed)
            ));
            sink.emit_for(
                request.id,
                Event::CallInitiated {
                    call: id.clone(),
                    to: Some(opencti_core::Address::new(to.as_str()).unwrap()),
                    consult_of: None,
                    data: Default::default(),
                },
            );
            sink.emit(Event::CallRingback { call: id });
        }
        Command::Answer { call } => sink.emit(Event::CallConnected { call: call.clone() }),
        Command::Reject { call } => sink.emit(Event::CallEnded {
            call: call.clone(),
            cause: Cause::Rejected,
        }),
        Command::Hangup { call } => sink.emit(Event::CallEnded {
            call: call.clone(),
            cause: Cause::Normal,
        }),
        Command::Hold { call } => sink.emit(Event::CallHeld { call: call.clone() }),
        Command::Retrieve { call } => sink.emit(Event::CallRetrieved { call: call.clone() }),
        Command::BlindTransfer { call, .. } => {
            sink.emit(Event::CallTransferred {
                call: call.clone(),
                to: None,
            });
            sink.emit(Event::CallEnded {
                call: call.clone(),
                cause: Cause::Transferred,
            });
        }
        Command::SendDtmf { call, digits } => sink.emit(Event::DtmfSent {
            call: call.clone(),
            digits: digits.clone(),
        }),
        Command::CompleteWrapUp { .. } => sink.emit(Event::AgentStateChanged {
            state: AgentState::Ready,
        }),
        other => panic!("the obliging switch was not scripted for {:?}", other),
    }
    Ok(())
}

async fn start(capabilities: Capabilities) -> (Session, SinkSlot, SwitchView) {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(capabilities, &slot, &view, obliging);
    let session = Session::builder(Arc::new(mock), agent(), device())
        .clock_origin(Timestamp::from_micros(1_000_000))
        .start()
        .await
        .unwrap();
    (session, slot, view)
}

async fn logged_in_ready(capabilities: Capabilities) -> (Session, SinkSlot, SwitchView) {
    let (session, slot, view) = start(capabilities).await;
    session.login().await.unwrap();
    session.ready().await.unwrap();
    (session, slot, view)
}

#[tokio::test(start_paused = true)]
async fn start_waits_for_link_and_takes_the_switch_state() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mut in_progress = Call::new(call("c0"), CallState::Connected, Direction::Inbound);
    in_progress.queue = Some(opencti_core::QueueId::new("support").unwrap());
    view.set(SwitchState {
        agent: AgentState::Ready,
        calls: vec![in_progress],
        withheld: Vec::new(),
    });
    let mock = scripted_switch(Capabilities::all(), &slot, &view, obliging);
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let snap = session.snapshot();
    assert_eq!(snap.link, LinkState::Up);
    assert_eq!(snap.calls.len(), 1);
    // The switch said ready, but a call is connected: the agent is busy, returning to ready.
    assert_eq!(
        snap.agent_state,
        AgentState::Busy {
            next: ChosenState::Ready
        }
    );
    assert_eq!(snap.seq, 2, "link_up then resynced");
}

#[tokio::test(start_paused = true)]
async fn start_fails_clearly_when_the_link_never_comes_up() {
    let mut mock = MockSwitch::new();
    mock.expect_capabilities().return_const(Capabilities::all());
    mock.expect_start().returning(|_, _| Ok(()));
    mock.expect_fmt().returning(|f| f.write_str("silent"));
    let err = Session::builder(Arc::new(mock), agent(), device())
        .start_timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LinkDown);
    assert!(err.message().contains("link"), "{}", err);
}

#[tokio::test(start_paused = true)]
async fn commands_are_confirmed_by_their_event_and_events_are_numbered_without_gaps() {
    let (session, _slot, _view) = start(Capabilities::all()).await;
    let mut events = session.subscribe();
    let login = session.login().await.unwrap();
    assert_eq!(login.event.event.name(), "agent_state_changed");
    assert_eq!(login.event.command, Some(login.command));
    let ready = session.ready().await.unwrap();
    assert_eq!(ready.command.get(), login.command.get() + 1);
    assert_eq!(session.snapshot().agent_state, AgentState::Ready);

    let first = events.next().await.unwrap().unwrap();
    let second = events.next().await.unwrap().unwrap();
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(first.agent.as_str(), "alice");
    assert_eq!(first.device.as_str(), "1001");
    assert!(second.at >= first.at);
}

#[tokio::test(start_paused = true)]
async fn a_command_in_the_wrong_state_never_reaches_the_switch() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mut mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| {
        panic!("the switch must not see a refused command")
    });
    mock.checkpoint();
    mock.expect_capabilities().return_const(Capabilities::all());
    let slot2 = slot.clone();
    mock.expect_start().returning(move |_, sink| {
        sink.emit(Event::LinkUp);
        *slot2.0.lock().unwrap() = Some(sink);
        Ok(())
    });
    let view2 = view.clone();
    mock.expect_snapshot()
        .returning(move || Ok(view2.0.lock().unwrap().clone()));
    mock.expect_submit().times(0);
    mock.expect_fmt().returning(|f| f.write_str("MockSwitch"));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    slot.emit(offered("c1", None));

    let err = session.hold(call("c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(
        err.message(),
        "hold refused: call c1 is offered; allowed now: answer, reject, set_call_data"
    );
    let allowed = err.allowed().unwrap();
    assert!(allowed.contains(CommandKind::Answer));
    assert!(!allowed.contains(CommandKind::Hold));

    let err = session.logout(None).await.unwrap_err();
    assert!(err.message().contains("the agent is logged_out"), "{}", err);
    let err = session.answer(call("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn unsupported_commands_fail_as_unsupported() {
    let caps = Capabilities::all().without(CommandKind::Answer);
    let (session, slot, _view) = logged_in_ready(caps).await;
    slot.emit(offered("c1", None));
    let err = session.answer(call("c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(!session
        .allowed_commands(Some(&call("c1")))
        .contains(CommandKind::Answer));
}

#[tokio::test(start_paused = true)]
async fn an_unconfirmed_command_times_out_and_a_late_confirmation_is_plain_news() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| Ok(()));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .command_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let before = tokio::time::Instant::now();
    let err = session.login().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(before.elapsed(), Duration::from_secs(3));
    assert!(err.message().contains("may still take effect"), "{}", err);

    let mut events = session.subscribe();
    slot.emit(Event::AgentStateChanged {
        state: AgentState::Ready,
    });
    let late = events.next().await.unwrap().unwrap();
    assert_eq!(late.command, None);
    assert_eq!(session.snapshot().agent_state, AgentState::Ready);
}

#[tokio::test(start_paused = true)]
async fn refusals_and_later_failures_from_the_switch_reach_the_caller() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(
        Capabilities::all(),
        &slot,
        &view,
        |request, sink| match &request.command {
            Command::Login {} => Err(Error::new(ErrorKind::Rejected, "queue member exists")),
            Command::SetAgentState { .. } => {
                sink.command_failed(request.id, Error::new(ErrorKind::Rejected, "not a member"));
                Ok(())
            }
            _ => Ok(()),
        },
    );
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let err = session.login().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    // The refused login is forgotten: a second one may be tried.
    let err = session.login().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);

    slot.emit(Event::AgentStateChanged {
        state: AgentState::NotReady { reason: None },
    });
    let mut events = session.subscribe();
    let err = session.ready().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert_eq!(err.message(), "not a member");
    let failed = events.next().await.unwrap().unwrap();
    assert_eq!(failed.event.name(), "command_failed");
    assert!(failed.command.is_some());
}

#[tokio::test(start_paused = true)]
async fn an_acd_call_makes_the_agent_reserved_busy_then_wrap_up() {
    let (session, slot, _view) = logged_in_ready(Capabilities::all()).await;
    let mut events = session.subscribe();
    slot.emit(offered("c1", Some("support")));
    assert_eq!(
        events.next().await.unwrap().unwrap().event.name(),
        "call_offered"
    );
    let reserved = events.next().await.unwrap().unwrap();
    assert_eq!(
        reserved.event,
        Event::AgentStateChanged {
            state: AgentState::Reserved {
                next: ChosenState::Ready
            }
        }
    );

    let answered = session.answer(call("c1")).await.unwrap();
    let connected = events.next().await.unwrap().unwrap();
    assert_eq!(connected.seq, answered.event.seq);
    let busy = events.next().await.unwrap().unwrap();
    assert_eq!(busy.event.name(), "agent_state_changed");
    assert_eq!(
        busy.command,
        Some(answered.command),
        "derived from the answer"
    );
    assert_eq!(session.snapshot().agent_state.name(), "busy");

    // Not ready after this call: queued, the agent stays busy.
    session
        .execute(Command::SetAgentState {
            state: ChosenState::NotReady {
                reason: Some(ReasonCode::new("lunch").unwrap()),
            },
            after_call: true,
        })
        .await
        .unwrap();
    session.hangup(call("c1")).await.unwrap();
    let snap = session.snapshot();
    assert!(snap.calls.is_empty());
    assert_eq!(
        snap.agent_state,
        AgentState::WrapUp {
            reason: None,
            next: ChosenState::NotReady {
                reason: Some(ReasonCode::new("lunch").unwrap())
            }
        }
    );
    assert!(session
        .allowed_commands(None)
        .contains(CommandKind::CompleteWrapUp));
    session.complete_wrap_up(None).await.unwrap();
    assert_eq!(session.snapshot().agent_state, AgentState::Ready);
}

#[tokio::test(start_paused = true)]
async fn without_switch_wrap_up_the_agent_returns_to_its_chosen_state() {
    let caps = Capabilities::all().with_wrap_up(false);
    let (session, slot, _view) = logged_in_ready(caps).await;
    slot.emit(offered("c1", Some("support")));
    session.answer(call("c1")).await.unwrap();
    session.hangup(call("c1")).await.unwrap();
    assert_eq!(session.snapshot().agent_state, AgentState::Ready);
}

#[tokio::test(start_paused = true)]
async fn make_call_and_consult_return_the_new_call() {
    let (session, _slot, _view) = logged_in_ready(Capabilities::all()).await;
    let made = session
        .make_call(Dialable::new("2001").unwrap())
        .await
        .unwrap();
    let id = made.call().unwrap().clone();
    assert_eq!(
        session.snapshot().call(&id).unwrap().state,
        CallState::Ringback
    );
    assert_eq!(session.snapshot().agent_state.name(), "busy");
    // Dialling already: another call must wait.
    let err = session
        .make_call(Dialable::new("2002").unwrap())
        .await
        .unwrap_err();
    assert!(err.message().contains("hold it first"), "{}", err);
    session.hangup(id).await.unwrap();
    assert_eq!(session.snapshot().agent_state, AgentState::Ready);
}

#[tokio::test(start_paused = true)]
async fn the_same_command_twice_at_once_is_refused() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| Ok(()));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let first = session.submit(Command::Login {}).await.unwrap();
    let err = session.login().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.message().contains("already waiting"), "{}", err);
    slot.emit(Event::AgentStateChanged {
        state: AgentState::Ready,
    });
    let confirmed = first.confirmed().await.unwrap();
    assert_eq!(confirmed.command.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pending_command_fails_when_its_call_ends_first() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| Ok(()));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    slot.emit(offered("c1", None));
    slot.emit(Event::CallConnected { call: call("c1") });
    let pending = session
        .submit(Command::Hold { call: call("c1") })
        .await
        .unwrap();
    slot.emit(Event::CallEnded {
        call: call("c1"),
        cause: Cause::Normal,
    });
    let err = pending.confirmed().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(
        err.message(),
        "call c1 ended (normal) before hold took effect"
    );
}

#[tokio::test(start_paused = true)]
async fn every_subscriber_sees_the_same_events_and_a_slow_one_is_told_it_lagged() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, obliging);
    let session = Session::builder(Arc::new(mock), agent(), device())
        .event_capacity(4)
        .start()
        .await
        .unwrap();
    let mut fast: Vec<_> = (0..3).map(|_| session.subscribe()).collect();
    let mut slow = session.subscribe();
    for i in 0..10 {
        slot.emit(Event::AgentStateChanged {
            state: if i % 2 == 0 {
                AgentState::Ready
            } else {
                AgentState::NotReady { reason: None }
            },
        });
        for s in fast.iter_mut() {
            let e = s.next().await.unwrap().unwrap();
            assert_eq!(e.seq, 3 + i as u64);
        }
    }
    let err = slow.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Lagged);
    assert!(err.message().contains("6 events were skipped"), "{}", err);
    // Then it carries on with the oldest event still held, and can resynchronise.
    let next = slow.next().await.unwrap().unwrap();
    assert_eq!(next.seq, 9);
    assert_eq!(session.snapshot().seq, 12);
}

#[tokio::test(start_paused = true)]
async fn link_down_fails_waiting_commands_and_link_up_removes_phantom_calls() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| Ok(()));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    slot.emit(Event::AgentStateChanged {
        state: AgentState::Ready,
    });
    slot.emit(offered("c1", None));
    slot.emit(Event::CallConnected { call: call("c1") });
    slot.emit(offered("c2", None));
    let pending = session
        .submit(Command::Hold { call: call("c1") })
        .await
        .unwrap();
    let mut events = session.subscribe();

    slot.emit(Event::LinkDown {
        reason: "connection reset".into(),
    });
    let err = pending.confirmed().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LinkDown);
    assert!(err.message().contains("may or may not have taken effect"));
    let err = session.hold(call("c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LinkDown);
    assert!(session.allowed_commands(Some(&call("c1"))).is_empty());

    // While the link was down, c2 stopped ringing and c1 went on hold at the switch.
    let mut c1 = Call::new(call("c1"), CallState::Held, Direction::Inbound);
    c1.from = Some(opencti_core::Address::new("+441632960001").unwrap());
    view.set(SwitchState {
        agent: AgentState::Ready,
        calls: vec![c1],
        withheld: Vec::new(),
    });
    slot.emit(Event::LinkUp);
    let names: Vec<String> = {
        let mut names = Vec::new();
        loop {
            let e = events.next().await.unwrap().unwrap();
            names.push(e.event.name().to_string());
            if let Event::Resynced { changes } = &e.event {
                assert_eq!(changes.removed, vec![call("c2")]);
                assert_eq!(changes.changed, vec![call("c1")]);
                assert!(changes.added.is_empty());
                assert_eq!(changes.snapshot.seq, e.seq);
                assert_eq!(changes.snapshot.calls.len(), 1);
                break;
            }
        }
        names
    };
    assert_eq!(
        names,
        ["link_down", "link_up", "call_ended", "resynced"],
        "the phantom call ends visibly before the resync"
    );
    let snap = session.snapshot();
    assert_eq!(snap.calls.len(), 1);
    assert_eq!(snap.calls[0].state, CallState::Held);
    assert_eq!(snap.agent_state.name(), "busy");
    assert!(session.stats().resyncs >= 2);
}

#[tokio::test(start_paused = true)]
async fn duplicates_are_dropped_and_contradictions_trigger_a_resync() {
    let (session, slot, view) = logged_in_ready(Capabilities::all()).await;
    slot.emit(offered("c1", None));
    slot.emit(offered("c1", None));
    assert_eq!(session.stats().duplicates, 1);

    // The switch says the call was connected and then held, but the connected event was
    // lost: the held event contradicts the state, and the session asks the switch.
    view.set(SwitchState {
        agent: AgentState::Ready,
        calls: vec![Call::new(call("c1"), CallState::Held, Direction::Inbound)],
        withheld: Vec::new(),
    });
    let mut events = session.subscribe();
    slot.emit(Event::CallHeld { call: call("c1") });
    let resynced = events.next().await.unwrap().unwrap();
    assert_eq!(resynced.event.name(), "resynced");
    assert_eq!(session.stats().rejected, 1);
    assert_eq!(session.snapshot().calls[0].state, CallState::Held);
}

#[tokio::test(start_paused = true)]
async fn events_arriving_during_a_resync_are_applied_after_it() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mut mock = MockSwitch::new();
    mock.expect_capabilities().return_const(Capabilities::all());
    mock.expect_fmt().returning(|f| f.write_str("slow"));
    let slot2 = slot.clone();
    mock.expect_start().returning(move |_, sink| {
        sink.emit(Event::LinkUp);
        *slot2.0.lock().unwrap() = Some(sink);
        Ok(())
    });
    // The switch takes its snapshot, then an event races in before the answer arrives.
    let slot3 = slot.clone();
    let view2 = view.clone();
    mock.expect_snapshot().returning(move || {
        let state = view2.0.lock().unwrap().clone();
        if let Some(sink) = slot3.0.lock().unwrap().as_ref() {
            sink.emit(offered("late", None));
        }
        Ok(state)
    });
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let snap = session.snapshot();
    assert_eq!(snap.calls.len(), 1, "{:?}", snap);
    assert_eq!(snap.calls[0].id, call("late"));
}

#[tokio::test(start_paused = true)]
async fn blind_transfer_dtmf_and_hold_retrieve_round_trip() {
    let (session, slot, _view) = logged_in_ready(Capabilities::all()).await;
    slot.emit(offered("c1", None));
    session.answer(call("c1")).await.unwrap();
    session
        .send_dtmf(call("c1"), DtmfDigits::new("12#").unwrap())
        .await
        .unwrap();
    session.hold(call("c1")).await.unwrap();
    assert!(session
        .allowed_commands(Some(&call("c1")))
        .contains(CommandKind::Retrieve));
    session.retrieve(call("c1")).await.unwrap();
    let done = session
        .blind_transfer(call("c1"), Dialable::new("2002").unwrap())
        .await
        .unwrap();
    assert_eq!(done.event.event.name(), "call_transferred");
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timestamps_follow_the_paused_clock_from_the_given_origin() {
    let (session, slot, _view) = start(Capabilities::all()).await;
    let mut events = session.subscribe();
    tokio::time::advance(Duration::from_secs(90)).await;
    slot.emit(Event::AgentStateChanged {
        state: AgentState::Ready,
    });
    let e = events.next().await.unwrap().unwrap();
    assert!(e.at.as_micros() >= 1_000_000 + 90_000_000);
    assert!(e.at.as_micros() < 1_000_000 + 91_000_000);
}

#[tokio::test(start_paused = true)]
async fn commands_the_switch_withholds_are_refused_with_its_reason_until_it_allows_them() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let reason = "the device is a static member of queue support";
    view.set(SwitchState {
        agent: AgentState::Ready,
        calls: Vec::new(),
        withheld: [CommandKind::Login, CommandKind::Logout]
            .into_iter()
            .map(|command| opencti_core::Withheld {
                command,
                reason: reason.into(),
            })
            .collect(),
    });
    let mock = scripted_switch(Capabilities::all(), &slot, &view, obliging);
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let caps = session.capabilities();
    assert!(!caps.supports(CommandKind::Logout) && !caps.supports(CommandKind::Login));
    assert!(caps.supports(CommandKind::SetAgentState));
    let allowed = session.allowed_commands(None);
    assert!(!allowed.contains(CommandKind::Logout));
    assert!(allowed.contains(CommandKind::SetAgentState));
    let err = session.logout(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.message(), format!("logout refused: {reason}"));
    session.not_ready(None).await.unwrap();

    // After the next resync the switch allows them again (the member became dynamic).
    view.set(SwitchState {
        agent: AgentState::NotReady { reason: None },
        calls: Vec::new(),
        withheld: Vec::new(),
    });
    let mut events = session.subscribe();
    slot.emit(Event::LinkDown {
        reason: "reload".into(),
    });
    slot.emit(Event::LinkUp);
    while events.next().await.unwrap().unwrap().event.name() != "resynced" {}
    assert!(session.capabilities().supports(CommandKind::Logout));
    assert!(session.allowed_commands(None).contains(CommandKind::Logout));
    session.logout(None).await.unwrap();
}

/// When the next event named `name` happened.
async fn at_of(events: &mut opencti_core::EventStream, name: &str) -> Timestamp {
    loop {
        let e = events.next().await.unwrap().unwrap();
        if e.event.name() == name {
            return e.at;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_says_since_when_the_agent_and_each_call_are_in_their_state() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, |_, _| Ok(()));
    let session = Session::builder(Arc::new(mock), agent(), device())
        .start()
        .await
        .unwrap();
    let mut events = session.subscribe();
    slot.emit(Event::AgentStateChanged {
        state: AgentState::Ready,
    });
    let ready_at = at_of(&mut events, "agent_state_changed").await;
    assert_eq!(session.snapshot().agent_state_since, Some(ready_at));

    tokio::time::sleep(Duration::from_secs(5)).await;
    slot.emit(offered("c1", None));
    let offered_at = at_of(&mut events, "call_offered").await;
    let reserved_at = at_of(&mut events, "agent_state_changed").await;
    assert!(offered_at.as_micros() >= ready_at.as_micros() + 5_000_000);
    let snap = session.snapshot();
    assert_eq!(snap.calls[0].state_since, Some(offered_at));
    assert_eq!(snap.agent_state_since, Some(reserved_at));

    tokio::time::sleep(Duration::from_secs(3)).await;
    slot.emit(Event::CallConnected { call: call("c1") });
    let connected_at = at_of(&mut events, "call_connected").await;
    assert_eq!(session.snapshot().calls[0].state_since, Some(connected_at));

    // A resynchronisation that finds the call unchanged keeps its timer.
    let mut same = Call::new(call("c1"), CallState::Connected, Direction::Inbound);
    same.from = session.snapshot().calls[0].from.clone();
    view.set(SwitchState {
        agent: AgentState::Ready,
        calls: vec![same],
        withheld: Vec::new(),
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    slot.emit(Event::LinkDown {
        reason: "cut".into(),
    });
    slot.emit(Event::LinkUp);
    at_of(&mut events, "resynced").await;
    let snap = session.snapshot();
    assert_eq!(snap.calls[0].state_since, Some(connected_at));
    assert_eq!(snap.agent_state.name(), "busy");
}
