//! Record and replay: a session as JSON lines, and a recording run back through the state
//! machines, so that a recorded bug report becomes a test.
//!
//! A recording is one JSON object per line, told apart by `record`:
//!
//! ```text
//! {"record":"session","agent":"alice","device":"1001","capabilities":{...}}
//! {"record":"command","id":1,"command":{"type":"login"}}
//! {"record":"event","seq":1,"at":1795238123000000,"agent":"alice","device":"1001","type":"link_up"}
//! ```
//!
//! [`replay`] reads such a recording, checks that `seq` has no gaps, that every command
//! was allowed in the state it met, and that every event is accepted by the state
//! machines, and returns the final state. An error names the line.
//!
//! ```
//! use opencti_core::record::replay;
//! let recording = r#"
//! {"record":"session","agent":"alice","device":"1001","capabilities":{"commands":["login","set_agent_state"],"next_state_after_call":false,"wrap_up":false}}
//! {"record":"event","seq":1,"at":0,"agent":"alice","device":"1001","type":"link_up"}
//! {"record":"command","id":1,"command":{"type":"login"}}
//! {"record":"event","seq":2,"at":5,"agent":"alice","device":"1001","command":1,"type":"agent_state_changed","state":{"state":"not_ready"}}
//! "#;
//! let report = replay(recording.as_bytes()).unwrap();
//! assert_eq!(report.snapshot.agent_state.name(), "not_ready");
//! assert_eq!(report.events, 2);
//!
//! // A recording whose events break the rules fails, naming the line.
//! let broken = recording.replace("\"type\":\"link_up\"", "\"type\":\"call_held\",\"call\":\"c9\"");
//! let err = replay(broken.as_bytes()).unwrap_err();
//! assert!(err.message().starts_with("line 3:"), "{}", err);
//! ```

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;
use crate::command::Command;
use crate::connector::Line;
use crate::event::EventEnvelope;
use crate::ids::{AgentId, CommandId, DeviceId};
use crate::machine::Desk;
use crate::snapshot::Snapshot;
use crate::{Error, ErrorKind, Result};

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum RecordLine {
    /// The first line: whose session it is and what the connector could do.
    Session {
        /// The agent.
        agent: AgentId,
        /// The device.
        device: DeviceId,
        /// The connector's capabilities.
        capabilities: Capabilities,
    },
    /// A command the session accepted and handed to the switch.
    Command {
        /// The command's id.
        id: CommandId,
        /// The command.
        command: Command,
    },
    /// An event the session emitted.
    Event(EventEnvelope),
}

/// Writes a session's commands and events as JSON lines. A write error stops the
/// recording (logged once); it never stops the session.
pub(crate) struct Recorder {
    out: Box<dyn Write + Send>,
    failed: bool,
}

impl Recorder {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Recorder { out, failed: false }
    }

    pub(crate) fn header(&mut self, line: &Line, capabilities: &Capabilities) {
        self.write(&RecordLine::Session {
            agent: line.agent.clone(),
            device: line.device.clone(),
            capabilities: *capabilities,
        });
    }

    pub(crate) fn command(&mut self, id: CommandId, command: &Command) {
        self.write(&RecordLine::Command {
            id,
            command: command.clone(),
        });
    }

    pub(crate) fn event(&mut self, envelope: &EventEnvelope) {
        if self.failed {
            return;
        }
        // Serialise the envelope with the tag added, without cloning it.
        #[derive(Serialize)]
        struct Tagged<'a> {
            record: &'static str,
            #[serde(flatten)]
            envelope: &'a EventEnvelope,
        }
        let tagged = Tagged {
            record: "event",
            envelope,
        };
        self.write(&tagged);
    }

    fn write<T: Serialize>(&mut self, line: &T) {
        if self.failed {
            return;
        }
        let result = serde_json::to_writer(&mut self.out, line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(error) = result {
            self.failed = true;
            tracing::warn!(%error, "recording stopped: could not write");
        }
    }
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Events replayed.
    pub events: u64,
    /// Commands checked.
    pub commands: u64,
    /// The state at the end of the recording.
    pub snapshot: Snapshot,
}

/// The longest line a recording may have, in bytes.
pub const MAX_LINE: usize = 1 << 20;

/// Replays a recording through the state machines. See the [module docs](self).
pub fn replay(mut input: impl BufRead) -> Result<ReplayReport> {
    let mut desk: Option<Desk> = None;
    let mut seq = 0u64;
    let mut events = 0u64;
    let mut commands = 0u64;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        number += 1;
        let read = std::io::Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("line {}: cannot read: {}", number, e),
                )
                .with_source(e)
            })?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE {
            return Err(at(number, format!("longer than {} bytes", MAX_LINE)));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| at(number, "not UTF-8".into()))?;
        if text.trim().is_empty() {
            continue;
        }
        let line: RecordLine =
            serde_json::from_str(text).map_err(|e| at(number, format!("not a record: {}", e)))?;
        match line {
            RecordLine::Session {
                agent,
                device,
                capabilities,
            } => {
                if desk.is_some() {
                    return Err(at(number, "a second session header".into()));
                }
                desk = Some(Desk::new(agent, device, capabilities));
            }
            RecordLine::Command { id, command } => {
                let desk = desk
                    .as_ref()
                    .ok_or_else(|| at(number, "a command before the session header".into()))?;
                desk.check(&command)
                    .map_err(|e| at(number, format!("command {} was not allowed: {}", id, e)))?;
                commands += 1;
            }
            RecordLine::Event(mut envelope) => {
                let desk = desk
                    .as_mut()
                    .ok_or_else(|| at(number, "an event before the session header".into()))?;
                if envelope.seq != seq + 1 {
                    return Err(at(
                        number,
                        format!(
                            "seq {} follows seq {}: events are missing",
                            envelope.seq, seq
                        ),
                    ));
                }
                seq = envelope.seq;
                let _applied = desk.apply(&mut envelope.event).map_err(|e| {
                    at(
                        number,
                        format!(
                            "event {} (seq {}) does not fit: {}",
                            envelope.event.name(),
                            seq,
                            e
                        ),
                    )
                })?;
                desk.stamp(&envelope.event, envelope.at);
                events += 1;
            }
        }
    }
    let desk = desk.ok_or_else(|| at(number, "no session header".into()))?;
    Ok(ReplayReport {
        events,
        commands,
        snapshot: desk.snapshot(seq),
    })
}

fn at(line: usize, message: String) -> Error {
    Error::new(ErrorKind::BadInput, format!("line {}: {}", line, message))
}
