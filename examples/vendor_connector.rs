//! A custom vendor connector, and how to prove it with the conformance kit.
//!
//! `TinyPbx` stands in for a vendor's phone system: extensions ring, answer, hold and hang
//! up, and outside numbers answer after a moment. `TinyPbxConnector` is the Desktop
//! Implementation for it: it implements `opencti_core::Connector` (translate commands to
//! the PBX, and the PBX's happenings to canonical events), and says honestly what it
//! cannot do (transfers, conferences, ACD), so the kit skips those cases and checks that
//! they are refused as `unsupported`.
//!
//! Run: `cargo run -p opencti-examples --example vendor_connector`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{
    Address, AgentState, Call, CallId, CallState, Capabilities, Cause, Command, CommandKind,
    Connector, DeviceId, Dialable, Direction, Error, ErrorKind, Event, EventSink, Line, Request,
    Result, SwitchState,
};
use opencti_sim::conformance::{Backend, Fixture, Kit, Stimulus};

/// The vendor's PBX, reduced to what a desk phone sees: calls by id with a state.
#[derive(Default)]
struct TinyPbx {
    calls: HashMap<CallId, CallState>,
    next: u64,
    agent: Option<AgentState>,
    sink: Option<EventSink>,
}

impl TinyPbx {
    fn new_call(&mut self) -> CallId {
        self.next += 1;
        CallId::new(format!("tiny-{}", self.next)).unwrap_or_else(|_| unreachable!())
    }

    /// The PBX tells its listener what happened, as a vendor's event feed would.
    fn publish(&self, event: Event) {
        if let Some(sink) = &self.sink {
            sink.emit(event);
        }
    }

    fn set(&mut self, call: &CallId, state: CallState) -> Result<()> {
        let current = self
            .calls
            .get_mut(call)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no call {}", call)))?;
        *current = state;
        Ok(())
    }

    fn end(&mut self, call: &CallId, cause: Cause) {
        if self.calls.remove(call).is_some() {
            self.publish(Event::CallEnded {
                call: call.clone(),
                cause,
            });
        }
    }
}

/// The Desktop Implementation for `TinyPbx`.
#[derive(Clone, Default)]
struct TinyPbxConnector {
    pbx: Arc<Mutex<TinyPbx>>,
}

impl std::fmt::Debug for TinyPbxConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TinyPbxConnector")
    }
}

impl TinyPbxConnector {
    fn pbx(&self) -> std::sync::MutexGuard<'_, TinyPbx> {
        self.pbx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Connector for TinyPbxConnector {
    fn capabilities(&self) -> Capabilities {
        use CommandKind::*;
        [
            Login,
            Logout,
            SetAgentState,
            MakeCall,
            Answer,
            Reject,
            Hangup,
            Hold,
            Retrieve,
            SendDtmf,
        ]
        .into_iter()
        .fold(Capabilities::none(), Capabilities::with)
    }

    async fn start(&self, _line: &Line, sink: EventSink) -> Result<()> {
        sink.emit(Event::LinkUp);
        self.pbx().sink = Some(sink);
        Ok(())
    }

    async fn submit(&self, request: Request) -> Result<()> {
        let mut pbx = self.pbx();
        let event = match request.command {
            Command::Login {} | Command::SetAgentState { .. } | Command::Logout { .. } => {
                let state = match request.command {
                    Command::Login {} => AgentState::NotReady { reason: None },
                    Command::SetAgentState { state, .. } => state.to_agent_state(),
                    _ => AgentState::LoggedOut,
                };
                pbx.agent = Some(state.clone());
                Event::AgentStateChanged { state }
            }
            Command::MakeCall { to, .. } => {
                let call = pbx.new_call();
                pbx.calls.insert(call.clone(), CallState::Ringback);
                pbx.publish(Event::CallInitiated {
                    call: call.clone(),
                    to: Address::new(to.as_str()).ok(),
                    consult_of: None,
                    data: Default::default(),
                });
                // The far end answers a moment later.
                let connector = self.clone();
                let answered = call.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut pbx = connector.pbx();
                    if pbx.set(&answered, CallState::Connected).is_ok() {
                        pbx.publish(Event::CallConnected { call: answered });
                    }
                });
                Event::CallRingback { call }
            }
            Command::Answer { call } => {
                pbx.set(&call, CallState::Connected)?;
                Event::CallConnected { call }
            }
            Command::Hold { call } => {
                pbx.set(&call, CallState::Held)?;
                Event::CallHeld { call }
            }
            Command::Retrieve { call } => {
                pbx.set(&call, CallState::Connected)?;
                Event::CallRetrieved { call }
            }
            Command::Reject { call } | Command::Hangup { call } => {
                pbx.end(&call, Cause::Normal);
                return Ok(());
            }
            Command::SendDtmf { call, digits } => Event::DtmfSent { call, digits },
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("TinyPbx cannot {}", other.kind()),
                ))
            }
        };
        pbx.publish(event);
        Ok(())
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        let pbx = self.pbx();
        Ok(SwitchState {
            agent: pbx.agent.clone().unwrap_or(AgentState::LoggedOut),
            calls: pbx
                .calls
                .iter()
                .map(|(id, state)| Call::new(id.clone(), *state, Direction::Inbound))
                .collect(),
            withheld: Vec::new(),
        })
    }

    async fn stop(&self) -> Result<()> {
        self.pbx().sink = None;
        Ok(())
    }
}

/// The far end, for the kit: outside callers ring the desk, and hang up.
struct TinyStimulus(TinyPbxConnector);

#[async_trait]
impl Stimulus for TinyStimulus {
    async fn call_device(&self, _device: &DeviceId) -> Result<()> {
        let mut pbx = self.0.pbx();
        let call = pbx.new_call();
        pbx.calls.insert(call.clone(), CallState::Offered);
        pbx.publish(Event::CallOffered {
            call,
            from: Address::new("+441632960042").ok(),
            to: None,
            queue: None,
            data: Default::default(),
        });
        Ok(())
    }

    async fn far_end_hangs_up(&self, _device: &DeviceId, call: &CallId) -> Result<()> {
        self.0.pbx().end(call, Cause::Normal);
        Ok(())
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("2000").unwrap_or_else(|_| unreachable!())
    }

    fn second_number(&self) -> Dialable {
        Dialable::new("2001").unwrap_or_else(|_| unreachable!())
    }
}

struct TinyBackend;

#[async_trait]
impl Backend for TinyBackend {
    async fn fixture(&self) -> Result<Fixture> {
        let connector = TinyPbxConnector::default();
        Ok(Fixture {
            connector: Arc::new(connector.clone()),
            agent: opencti_core::AgentId::new("vendor-agent")?,
            device: DeviceId::new("100")?,
            stimulus: Arc::new(TinyStimulus(connector)),
        })
    }
}

#[tokio::main]
async fn main() {
    let report = Kit::new()
        .wait(Duration::from_secs(5))
        .run(&TinyBackend)
        .await;
    for case in &report.cases {
        println!("{:<28} {:?}", case.name, case.outcome);
    }
    report.assert_passed();
    println!(
        "TinyPbxConnector conforms: {} cases passed, the rest skipped by capability",
        report.passed()
    );
}
