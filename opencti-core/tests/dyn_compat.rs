//! The public traits work as `Box<dyn _>` and `Arc<dyn _>`.

mod support;

use std::sync::Arc;

use opencti_core::{
    AgentState, Capabilities, Command, Connector, DesktopInterface, DesktopInterfaceExt, Event,
    Session,
};
use support::*;

fn oblige(
    request: &opencti_core::Request,
    sink: &opencti_core::EventSink,
) -> opencti_core::Result<()> {
    if let Command::Login {} = request.command {
        sink.emit(Event::AgentStateChanged {
            state: AgentState::Ready,
        });
    }
    Ok(())
}

async fn session_over(connector: Arc<dyn Connector>) -> Session {
    Session::builder(connector, agent(), device())
        .start()
        .await
        .unwrap()
}

/// Desktop code written against the trait object.
async fn log_in(desk: &dyn DesktopInterface) -> String {
    desk.login().await.unwrap();
    desk.snapshot().agent_state.name().to_string()
}

#[tokio::test(start_paused = true)]
async fn connectors_work_boxed_and_shared() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let boxed: Box<dyn Connector> =
        Box::new(scripted_switch(Capabilities::all(), &slot, &view, oblige));
    let session = session_over(Arc::from(boxed)).await;
    assert_eq!(log_in(&session).await, "ready");

    let shared: Arc<dyn Connector> =
        Arc::new(scripted_switch(Capabilities::all(), &slot, &view, oblige));
    let session = session_over(shared).await;
    assert_eq!(log_in(&session).await, "ready");
}

#[tokio::test(start_paused = true)]
async fn the_desktop_interface_works_boxed_and_shared() {
    let slot = SinkSlot::default();
    let view = SwitchView::default();
    let session = session_over(Arc::new(scripted_switch(
        Capabilities::all(),
        &slot,
        &view,
        oblige,
    )))
    .await;
    let boxed: Box<dyn DesktopInterface> = Box::new(session.clone());
    assert_eq!(log_in(boxed.as_ref()).await, "ready");

    let session = session_over(Arc::new(scripted_switch(
        Capabilities::all(),
        &slot,
        &view,
        oblige,
    )))
    .await;
    let shared: Arc<dyn DesktopInterface> = Arc::new(session);
    let elsewhere = shared.clone();
    let task = tokio::spawn(async move { log_in(elsewhere.as_ref()).await });
    assert_eq!(task.await.unwrap(), "ready");
    assert_eq!(shared.capabilities(), Capabilities::all());
}
