//! Desktop logic tested against the simulator, the way an integrator would in CI.
//!
//! `BreakPolicy` is a piece of desktop logic an integrator might write: after every
//! `calls_before_break` answered calls, the agent is put not ready with reason `break`
//! once the current call is over, and made ready again when the break is over. It is written against `&dyn DesktopInterface`, so it
//! runs on any connector; its tests below run it against the simulated contact centre
//! under tokio's paused clock, where an hour of calls takes milliseconds.
//!
//! Run: `cargo run -p opencti-examples --example desk_logic`;
//! test: `cargo test -p opencti-examples --example desk_logic`.

use futures::StreamExt;
use opencti_core::{
    AgentState, ChosenState, Command, DesktopInterface, DesktopInterfaceExt, Event, ReasonCode,
    Result,
};

/// Answers offered calls; after every `calls_before_break` calls, queues a break.
pub struct BreakPolicy {
    /// How many calls an agent takes between breaks.
    pub calls_before_break: usize,
    /// How long a break lasts.
    pub break_length: std::time::Duration,
}

impl BreakPolicy {
    /// Runs until `calls` calls have been answered.
    pub async fn run(&self, desk: &dyn DesktopInterface, calls: usize) -> Result<usize> {
        let mut events = desk.subscribe();
        let mut answered = 0;
        let mut breaks = 0;
        while answered < calls {
            let Some(event) = events.next().await else {
                break;
            };
            match &event?.event {
                Event::CallOffered { call, .. } => {
                    desk.answer(call.clone()).await?;
                    answered += 1;
                    if answered % self.calls_before_break == 0 {
                        desk.execute(Command::SetAgentState {
                            state: ChosenState::NotReady {
                                reason: Some(ReasonCode::new("break")?),
                            },
                            after_call: true,
                        })
                        .await?;
                        breaks += 1;
                    }
                }
                Event::AgentStateChanged { state } if state.name() == "wrap_up" => {
                    desk.complete_wrap_up(None).await?;
                }
                Event::AgentStateChanged {
                    state:
                        AgentState::NotReady {
                            reason: Some(reason),
                        },
                } if reason.as_str() == "break" => {
                    tokio::time::sleep(self.break_length).await;
                    desk.ready().await?;
                }
                _ => {}
            }
        }
        Ok(breaks)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    tokio::time::pause();
    let (desk, switch) = support::desk_with_callers(6).await?;
    let breaks = BreakPolicy {
        calls_before_break: 3,
        break_length: std::time::Duration::from_secs(900),
    }
    .run(&desk, 6)
    .await?;
    println!(
        "answered 6 calls with {} breaks; the agent is now {}; simulated switch: {:?}",
        breaks,
        desk.snapshot().agent_state,
        switch.stats()
    );
    Ok(())
}

/// The simulated centre the tests (and `main`) run against.
mod support {
    use std::sync::Arc;
    use std::time::Duration;

    use opencti_core::{AgentId, DesktopInterfaceExt, DeviceId, Result, Session};
    use opencti_sim::SimSwitch;

    /// A logged-in, ready agent, and `callers` customers who call a minute apart and
    /// talk for two minutes each.
    pub async fn desk_with_callers(callers: usize) -> Result<(Session, SimSwitch)> {
        let switch = SimSwitch::builder()
            .queue("support")
            .wrap_up("support", Duration::from_secs(10))
            .agent("alice", "1001", &["support"])
            .build()?;
        let desk = Session::builder(
            Arc::new(switch.connector(DeviceId::new("1001")?)),
            AgentId::new("alice")?,
            DeviceId::new("1001")?,
        )
        .start()
        .await?;
        desk.login().await?;
        desk.ready().await?;
        let control = switch.control();
        tokio::spawn(async move {
            for i in 0..callers {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let _ = control
                    .customer_calls("support", &format!("+44163296{:04}", i))
                    .talk_for(Duration::from_secs(120))
                    .call();
            }
        });
        Ok((desk, switch))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_break_is_queued_after_every_third_call_and_taken_after_it() {
        let (desk, switch) = support::desk_with_callers(3).await.unwrap();
        let breaks = BreakPolicy {
            calls_before_break: 3,
            break_length: Duration::from_secs(900),
        }
        .run(&desk, 3)
        .await
        .unwrap();
        assert_eq!(breaks, 1);
        // During the third call the break waits; when the call and wrap-up are over, the
        // agent is on break and gets no more calls.
        assert_eq!(desk.snapshot().agent_state.name(), "busy");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let state = desk.snapshot().agent_state;
        assert_eq!(
            state,
            opencti_core::AgentState::NotReady {
                reason: Some(ReasonCode::new("break").unwrap())
            }
        );
        assert_eq!(switch.stats().answered, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_break_before_the_count_is_reached() {
        let (desk, _switch) = support::desk_with_callers(2).await.unwrap();
        let breaks = BreakPolicy {
            calls_before_break: 3,
            break_length: Duration::from_secs(900),
        }
        .run(&desk, 2)
        .await
        .unwrap();
        assert_eq!(breaks, 0);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(desk.snapshot().agent_state, opencti_core::AgentState::Ready);
    }
}
