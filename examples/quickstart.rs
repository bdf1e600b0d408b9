//! Quickstart: an agent desktop answering simulated calls.
//!
//! A simulated contact centre (one queue, one agent) stands in for the phone system. The
//! desktop logs in, becomes ready, answers each call it is offered, and completes wrap-up
//! with a disposition; two customers call. Every canonical event is printed as the JSON a
//! browser desktop would receive.
//!
//! Run: `cargo run -p opencti-examples --example quickstart`

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Event, ReasonCode, Session,
};
use opencti_sim::SimSwitch;

#[tokio::main]
async fn main() -> opencti_core::Result<()> {
    // The phone system: a queue with 1 s of after-call work, and Alice at extension 1001.
    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(1))
        .agent("alice", "1001", &["support"])
        .build()?;
    let control = switch.control();

    // The desktop: a session over the simulator's connector. Any other connector plugs
    // in the same way.
    let connector = Arc::new(switch.connector(DeviceId::new("1001")?));
    let desk = Session::builder(connector, AgentId::new("alice")?, DeviceId::new("1001")?)
        .start()
        .await?;
    let mut events = desk.subscribe();
    desk.login().await?;
    desk.ready().await?;

    // Two customers call the queue and talk for a second each.
    for from in ["+441632960001", "+441632960002"] {
        control
            .customer_calls("support", from)
            .talk_for(Duration::from_secs(1))
            .call()?;
    }

    let mut handled = 0;
    while let Some(event) = events.next().await {
        let event = event?;
        println!("{}", serde_json::to_string(&*event).unwrap_or_default());
        match &event.event {
            // A call rings: answer it, as an agent would click the button.
            Event::CallOffered { call, .. } => {
                desk.answer(call.clone()).await?;
            }
            Event::CallEnded { .. } => handled += 1,
            // After-call work: record a disposition and carry on.
            Event::AgentStateChanged { state } if state.name() == "wrap_up" => {
                desk.complete_wrap_up(Some(ReasonCode::new("resolved")?))
                    .await?;
                if handled == 2 {
                    break;
                }
            }
            _ => {}
        }
    }
    desk.logout(None).await?;
    println!(
        "handled {} calls; the switch answered {}, nobody abandoned: {}",
        handled,
        control.stats().answered,
        control.stats().abandoned == 0
    );
    Ok(())
}
