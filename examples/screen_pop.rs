//! Screen pop and call logging with a real database, as Salesforce Open CTI's `screenPop`
//! and `saveLog` do it: on an offered call, look the caller up in the CRM (a small SQLite
//! table); when the call ends, write a call log row; at wrap-up, record the disposition.
//!
//! The browser gateway does the same for every agent (`opencti panel`); this shows the
//! moving parts on their own.
//!
//! Run: `cargo run -p opencti-examples --example screen_pop`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    AgentId, CallId, DesktopInterface, DesktopInterfaceExt, DeviceId, Direction, Event, ReasonCode,
    Session, Timestamp,
};
use opencti_gateway::{CallLogEntry, Crm, SqliteCrm};
use opencti_sim::SimSwitch;

#[tokio::main]
async fn main() -> opencti_core::Result<()> {
    // The CRM: a SQLite database with a few customers (in memory here; a file works the
    // same with SqliteCrm::open).
    let crm = SqliteCrm::in_memory()?;
    crm.seed_demo()?;

    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(30))
        .agent("alice", "1001", &["support"])
        .build()?;
    let desk = Session::builder(
        Arc::new(switch.connector(DeviceId::new("1001")?)),
        AgentId::new("alice")?,
        DeviceId::new("1001")?,
    )
    .start()
    .await?;
    let mut events = desk.subscribe();
    desk.login().await?;
    desk.ready().await?;

    // A known customer, then an unknown number.
    let control = switch.control();
    for from in ["+441632960002", "+441632969999"] {
        control
            .customer_calls("support", from)
            .talk_for(Duration::from_millis(500))
            .call()?;
    }

    let mut started: HashMap<CallId, (Timestamp, Option<String>)> = HashMap::new();
    let mut ended: Vec<CallId> = Vec::new();
    while let Some(event) = events.next().await {
        let event = event?;
        match &event.event {
            Event::CallOffered { call, from, .. } => {
                let number = from.as_ref().map(|a| a.as_str().to_string());
                // Screen pop: who is calling?
                let contact = match &number {
                    Some(n) => crm.lookup(n).await?,
                    None => None,
                };
                match contact {
                    Some(c) => println!(
                        "SCREEN POP  {} ({}), account {}, tier {}",
                        c.name,
                        c.company.unwrap_or_default(),
                        c.account.unwrap_or_default(),
                        c.tier.unwrap_or_default()
                    ),
                    None => println!(
                        "SCREEN POP  unknown caller {}",
                        number.as_deref().unwrap_or("?")
                    ),
                }
                started.insert(call.clone(), (event.at, number));
                desk.answer(call.clone()).await?;
            }
            Event::CallEnded { call, cause } => {
                if let Some((at, number)) = started.remove(call) {
                    // Save the log row when the call ends.
                    crm.log_call(&CallLogEntry {
                        agent: event.agent.clone(),
                        device: event.device.clone(),
                        call: call.clone(),
                        direction: Direction::Inbound,
                        number,
                        queue: Some("support".into()),
                        started_at: at,
                        answered_at: Some(at),
                        ended_at: event.at,
                        outcome: cause.as_str().to_string(),
                        parties: Vec::new(),
                    })
                    .await?;
                    ended.push(call.clone());
                }
            }
            Event::AgentStateChanged { state } if state.name() == "wrap_up" => {
                // Wrap-up: choose a disposition, record it on the call, carry on.
                let disposition = if ended.len() == 1 {
                    "resolved"
                } else {
                    "follow-up"
                };
                desk.complete_wrap_up(Some(ReasonCode::new(disposition)?))
                    .await?;
                crm.set_disposition(&event.agent, &ended[ended.len() - 1..], disposition)
                    .await?;
                if ended.len() == 2 {
                    break;
                }
            }
            _ => {}
        }
    }

    println!("CALL LOG");
    for row in crm.call_log()? {
        println!(
            "  {:<8} {:<15} {:<8} {}",
            row.call,
            row.number.unwrap_or_default(),
            row.outcome,
            row.disposition.unwrap_or_default()
        );
    }
    Ok(())
}
