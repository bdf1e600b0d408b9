//! The call log as a machine: lines' events and accepted commands in, what to write to
//! the CRM out. The gateway runs one for each session it starts; a follower of a site's
//! stream runs one for the whole site and keeps it with its position.

use std::collections::{BTreeMap, HashMap};

use opencti_core::session::AcceptedCommand;
use opencti_core::{
    AgentId, AgentState, CallId, Command, CommandId, DeviceId, Direction, Event, EventEnvelope,
    Result, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::crm::{CallLogEntry, Crm};

/// What the call log has to write to the CRM after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallLogWrite {
    /// A call ended: its entry.
    Call(CallLogEntry),
    /// The agent completed wrap-up with a disposition, for the calls of that wrap-up.
    Disposition {
        /// The agent.
        agent: AgentId,
        /// The calls the wrap-up followed.
        calls: Vec<CallId>,
        /// The disposition the agent chose.
        disposition: String,
    },
}

impl CallLogWrite {
    /// Writes it to `crm`. Both writes may be repeated: the CRM keeps one entry a call.
    pub async fn write_to(&self, crm: &dyn Crm) -> Result<()> {
        match self {
            CallLogWrite::Call(entry) => crm.log_call(entry).await,
            CallLogWrite::Disposition {
                agent,
                calls,
                disposition,
            } => crm.set_disposition(agent, calls, disposition).await,
        }
    }
}

/// Calls under way and wrap-ups pending, line by line: enough to write each call's entry
/// when it ends and each disposition when wrap-up completes. Serialisable, so that a
/// follower can keep it with its position and pick up after a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallLog {
    /// By line: the JSON of `[agent, device]` (JSON object keys are text).
    lines: HashMap<String, LineLog>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LineLog {
    open: BTreeMap<CallId, Open>,
    /// Calls that ended since the agent was last out of wrap-up.
    wrapped: Vec<CallId>,
    /// Dispositions of accepted wrap-up completions, until their confirmation.
    dispositions: BTreeMap<CommandId, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Open {
    direction: Direction,
    number: Option<String>,
    queue: Option<String>,
    started_at: Timestamp,
    answered_at: Option<Timestamp>,
    parties: Vec<String>,
}

fn line_key(agent: &AgentId, device: &DeviceId) -> String {
    serde_json::to_string(&(agent, device)).unwrap_or_default()
}

impl CallLog {
    /// An empty log.
    pub fn new() -> Self {
        CallLog::default()
    }

    fn line(&mut self, agent: &AgentId, device: &DeviceId) -> &mut LineLog {
        self.lines.entry(line_key(agent, device)).or_default()
    }

    /// Notes a command the line's session accepted: a wrap-up's disposition is written
    /// once the wrap-up ends.
    pub fn command(&mut self, agent: &AgentId, device: &DeviceId, accepted: &AcceptedCommand) {
        if let Command::CompleteWrapUp {
            disposition: Some(disposition),
        } = &accepted.command
        {
            self.line(agent, device)
                .dispositions
                .insert(accepted.id, disposition.as_str().to_owned());
        }
    }

    /// Takes one of a line's events; says what to write, if anything.
    pub fn event(&mut self, event: &EventEnvelope) -> Option<CallLogWrite> {
        let (agent, device) = (&event.agent, &event.device);
        let line = self.line(agent, device);
        match &event.event {
            Event::CallOffered {
                call, from, queue, ..
            } => {
                line.open.insert(
                    call.clone(),
                    Open {
                        direction: Direction::Inbound,
                        number: from.as_ref().map(|a| a.as_str().to_owned()),
                        queue: queue.as_ref().map(|q| q.as_str().to_owned()),
                        started_at: event.at,
                        answered_at: None,
                        parties: Vec::new(),
                    },
                );
                None
            }
            Event::CallInitiated { call, to, .. } => {
                line.open.insert(
                    call.clone(),
                    Open {
                        direction: Direction::Outbound,
                        number: to.as_ref().map(|a| a.as_str().to_owned()),
                        queue: None,
                        started_at: event.at,
                        answered_at: None,
                        parties: Vec::new(),
                    },
                );
                None
            }
            Event::CallConnected { call } => {
                if let Some(open) = line.open.get_mut(call) {
                    open.answered_at.get_or_insert(event.at);
                }
                None
            }
            Event::PartyJoined { call, party } => {
                if let Some(open) = line.open.get_mut(call) {
                    let who = party
                        .address
                        .as_ref()
                        .map(|a| a.as_str().to_owned())
                        .unwrap_or_else(|| party.id.as_str().to_owned());
                    if !open.parties.contains(&who) {
                        open.parties.push(who);
                    }
                }
                None
            }
            Event::CallEnded { call, cause } => {
                let open = line.open.remove(call)?;
                line.wrapped.push(call.clone());
                Some(CallLogWrite::Call(CallLogEntry {
                    agent: agent.clone(),
                    device: device.clone(),
                    call: call.clone(),
                    direction: open.direction,
                    number: open.number,
                    queue: open.queue,
                    started_at: open.started_at,
                    answered_at: open.answered_at,
                    ended_at: event.at,
                    outcome: cause.as_str().to_owned(),
                    parties: open.parties,
                }))
            }
            Event::AgentStateChanged { state } => {
                if matches!(state, AgentState::WrapUp { .. }) {
                    return None;
                }
                let disposition = event.command.and_then(|id| line.dispositions.remove(&id));
                let write = disposition.map(|disposition| CallLogWrite::Disposition {
                    agent: agent.clone(),
                    calls: line.wrapped.clone(),
                    disposition,
                });
                if !state.is_derived() {
                    line.wrapped.clear();
                }
                write
            }
            _ => None,
        }
    }

    /// Calls under way, over every line.
    pub fn open_calls(&self) -> usize {
        self.lines.values().map(|l| l.open.len()).sum()
    }
}
