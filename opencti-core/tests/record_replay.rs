//! A live session's recording replays to the same state; a tampered one fails, naming the
//! line.

mod support;

use std::sync::Arc;

use opencti_core::record::replay;
use opencti_core::{
    AgentState, Capabilities, Cause, Command, DesktopInterface, DesktopInterfaceExt, Event, Session,
};
use support::*;

fn switch(
    request: &opencti_core::Request,
    sink: &opencti_core::EventSink,
) -> opencti_core::Result<()> {
    match &request.command {
        Command::Login {} => sink.emit(Event::AgentStateChanged {
            state: AgentState::Ready,
        }),
        Command::Answer { call } => sink.emit(Event::CallConnected { call: call.clone() }),
        Command::Hold { call } => sink.emit(Event::CallHeld { call: call.clone() }),
        Command::Hangup { call } => sink.emit(Event::CallEnded {
            call: call.clone(),
            cause: Cause::Normal,
        }),
        Command::CompleteWrapUp { .. } => sink.emit(Event::AgentStateChanged {
            state: AgentState::Ready,
        }),
        _ => {}
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_recorded_session_replays_to_the_same_state() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let out = SharedBuffer::default();
    let mock = scripted_switch(Capabilities::all(), &slot, &view, switch);
    let session = Session::builder(Arc::new(mock), agent(), device())
        .record(out.clone())
        .start()
        .await
        .unwrap();
    session.login().await.unwrap();
    slot.emit(offered("c1", Some("support")));
    session.answer(call("c1")).await.unwrap();
    session.hold(call("c1")).await.unwrap();
    session.hangup(call("c1")).await.unwrap();
    slot.emit(Event::LinkDown {
        reason: "test".into(),
    });
    view.set(opencti_core::SwitchState {
        agent: AgentState::WrapUp {
            reason: None,
            next: opencti_core::ChosenState::Ready,
        },
        calls: Vec::new(),
        withheld: Vec::new(),
    });
    slot.emit(Event::LinkUp);
    tokio::task::yield_now().await;
    assert_eq!(session.snapshot().agent_state.name(), "wrap_up");
    session.complete_wrap_up(None).await.unwrap();

    let recording = out.contents();
    let report = replay(recording.as_slice()).unwrap();
    assert_eq!(report.snapshot, session.snapshot());
    assert_eq!(report.commands, 5);
    assert_eq!(report.events, session.snapshot().seq);

    // Drop an event: the gap is found.
    let text = String::from_utf8(recording).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let gap = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"record\":\"event\""))
        .nth(3)
        .unwrap()
        .0;
    let tampered: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != gap)
        .map(|(_, l)| format!("{}\n", l))
        .collect();
    let err = replay(tampered.as_bytes()).unwrap_err();
    assert!(err.message().contains("events are missing"), "{}", err);
    assert!(
        err.message().starts_with(&format!("line {}:", gap + 1)),
        "{}",
        err
    );

    // Garbage in a line is named too.
    let garbage = format!("{}{{\"record\":\"event\",\"seq\":\"x\"}}\n", text);
    let err = replay(garbage.as_bytes()).unwrap_err();
    assert!(
        err.message()
            .starts_with(&format!("line {}: not a record", lines.len() + 1)),
        "{}",
        err
    );
}
