//! The session's state under its lock: the desk, the sequence, pending commands, and the
//! fan-out. Everything here runs synchronously and briefly; nothing awaits.

use std::sync::Arc;

use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::Instant;

use crate::call::Cause;
use crate::command::{Command, CommandKind};
use crate::event::{Event, EventEnvelope};
use crate::ids::{CallId, CommandId};
use crate::machine::{Desk, Expectation, Step};
use crate::record::Recorder;
use crate::snapshot::{LinkState, SwitchState};
use crate::time::Timestamp;
use crate::{Error, ErrorKind, Result};

use super::{AcceptedCommand, Confirmation, Rejected, SessionStats};

/// Events held while a resynchronisation is in flight, at most.
const RESYNC_BUFFER: usize = 10_000;

pub(super) struct Pending {
    id: CommandId,
    kind: CommandKind,
    expect: Expectation,
    reply: oneshot::Sender<Result<Confirmation>>,
}

#[derive(Default)]
struct Resync {
    requested: bool,
    forced: bool,
    in_progress: bool,
    buffer: Vec<(Event, Option<CommandId>)>,
    overflowed: bool,
}

/// Session time: the wall clock at start plus tokio's monotonic (and pausable) time since.
pub(super) struct Clock {
    origin: Timestamp,
    start: Instant,
}

impl Clock {
    pub(super) fn new(origin: Timestamp) -> Self {
        Clock {
            origin,
            start: Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        self.origin.saturating_add(self.start.elapsed())
    }
}

pub(super) struct Engine {
    pub(super) desk: Desk,
    seq: u64,
    next_command: u64,
    pending: Vec<Pending>,
    resync: Resync,
    recorder: Option<Recorder>,
    clock: Clock,
    pub(super) stats: SessionStats,
    /// The last event from the connector that did not fit the state, and why.
    pub(super) last_rejected: Option<Rejected>,
    events: broadcast::Sender<Arc<EventEnvelope>>,
    commands: broadcast::Sender<Arc<AcceptedCommand>>,
    synced: watch::Sender<bool>,
}

impl Engine {
    pub(super) fn new(
        desk: Desk,
        clock: Clock,
        events: broadcast::Sender<Arc<EventEnvelope>>,
        commands: broadcast::Sender<Arc<AcceptedCommand>>,
        synced: watch::Sender<bool>,
        recorder: Option<Recorder>,
    ) -> Self {
        Engine {
            desk,
            seq: 0,
            next_command: 0,
            pending: Vec::new(),
            resync: Resync::default(),
            recorder,
            clock,
            stats: SessionStats::default(),
            last_rejected: None,
            events,
            commands,
            synced,
        }
    }

    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Numbers the next event `seq + 1`: a session taking a line over from another.
    pub(super) fn continue_after(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Checks a command and registers it as pending; returns its id and where its outcome
    /// will arrive.
    pub(super) fn register(
        &mut self,
        command: &Command,
    ) -> Result<(CommandId, oneshot::Receiver<Result<Confirmation>>)> {
        self.desk.check(command)?;
        let expect = self.desk.expectation(command);
        if let Some(other) = self.pending.iter().find(|p| p.expect == expect) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "{} refused: command {} ({}) is already waiting for the same confirmation",
                    command.kind(),
                    other.id,
                    other.kind
                ),
            ));
        }
        self.next_command += 1;
        let id = CommandId::new(
            std::num::NonZeroU64::new(self.next_command).unwrap_or(std::num::NonZeroU64::MIN),
        );
        let (reply, outcome) = oneshot::channel();
        self.pending.push(Pending {
            id,
            kind: command.kind(),
            expect,
            reply,
        });
        if let Some(recorder) = &mut self.recorder {
            recorder.command(id, command);
        }
        // No observer is not an error.
        let _ = self.commands.send(Arc::new(AcceptedCommand {
            id,
            command: command.clone(),
        }));
        self.stats.commands += 1;
        Ok((id, outcome))
    }

    /// Forgets a pending command (it timed out, or the connector refused it).
    pub(super) fn forget(&mut self, id: CommandId) {
        self.pending.retain(|p| p.id != id);
    }

    /// Takes in one event from the connector. Returns whether a resynchronisation should
    /// start.
    pub(super) fn ingest(&mut self, event: Event, tag: Option<CommandId>) -> bool {
        if self.resync.in_progress {
            if self.resync.buffer.len() < RESYNC_BUFFER {
                self.resync.buffer.push((event, tag));
            } else {
                // The snapshot under way is stale already: take another one afterwards.
                self.resync.overflowed = true;
            }
            return false;
        }
        self.process(event, tag)
    }

    fn process(&mut self, mut event: Event, tag: Option<CommandId>) -> bool {
        self.stats.received += 1;
        if let Event::CommandFailed { error } = &event {
            let error = Error::from(error.clone());
            let env_command = tag;
            self.emit(event, env_command);
            if let Some(id) = tag {
                self.resolve(id, Err(error));
            }
            return false;
        }
        let applied = match self.desk.apply(&mut event) {
            Ok(applied) => applied,
            Err(error) => {
                self.stats.rejected += 1;
                tracing::warn!(
                    event = event.name(),
                    %error,
                    "event does not fit the session's state; resynchronising"
                );
                self.last_rejected = Some(Rejected {
                    event,
                    error: error.to_body(),
                });
                return self.request_resync(false);
            }
        };
        let confirmed = self.find_confirmed(&event, tag);
        if applied.step == Step::Duplicate && confirmed.is_none() {
            self.stats.duplicates += 1;
            return false;
        }
        let command = confirmed.map(|i| self.pending[i].id).or(tag);
        let envelope = self.emit(event, command);
        if let Some(i) = confirmed {
            let pending = self.pending.remove(i);
            let _ = pending.reply.send(Ok(Confirmation {
                command: pending.id,
                event: envelope.clone(),
            }));
        }
        self.defeat_pending(&envelope.event);
        if let Some(state) = applied.derived {
            self.emit(Event::AgentStateChanged { state }, command);
        }
        match envelope.event {
            Event::LinkUp => self.request_resync(true),
            Event::LinkDown { .. } => {
                self.synced.send_replace(false);
                for pending in self.pending.drain(..) {
                    let _ = pending.reply.send(Err(Error::new(
                        ErrorKind::LinkDown,
                        format!(
                            "the link to the switch dropped while {} (command {}) was waiting; it may or may not have taken effect: watch for resynced",
                            pending.kind, pending.id
                        ),
                    )));
                }
                false
            }
            _ => false,
        }
    }

    fn find_confirmed(&self, event: &Event, tag: Option<CommandId>) -> Option<usize> {
        match tag {
            Some(id) => self
                .pending
                .iter()
                .position(|p| p.id == id && p.expect.is_confirmed_by(event)),
            None => self
                .pending
                .iter()
                .position(|p| p.expect.is_confirmed_by(event)),
        }
    }

    fn defeat_pending(&mut self, event: &Event) {
        let mut i = 0;
        while i < self.pending.len() {
            if let Some(why) = self.pending[i].expect.is_defeated_by(event) {
                let pending = self.pending.remove(i);
                let _ = pending
                    .reply
                    .send(Err(Error::new(ErrorKind::InvalidState, why)));
            } else {
                i += 1;
            }
        }
    }

    fn resolve(&mut self, id: CommandId, outcome: Result<Confirmation>) {
        if let Some(i) = self.pending.iter().position(|p| p.id == id) {
            let pending = self.pending.remove(i);
            let _ = pending.reply.send(outcome);
        }
    }

    /// Stamps an event and hands it to the recorder and every subscriber.
    fn emit(&mut self, event: Event, command: Option<CommandId>) -> Arc<EventEnvelope> {
        self.seq += 1;
        self.stats.emitted += 1;
        let envelope = Arc::new(EventEnvelope {
            seq: self.seq,
            at: self.clock.now(),
            agent: self.desk.agent_id().clone(),
            device: self.desk.device().clone(),
            command,
            event,
        });
        self.desk.stamp(&envelope.event, envelope.at);
        if let Some(recorder) = &mut self.recorder {
            recorder.event(&envelope);
        }
        // No subscriber is not an error: the event is in the snapshot all the same.
        let _ = self.events.send(envelope.clone());
        envelope
    }

    pub(super) fn request_resync(&mut self, forced: bool) -> bool {
        if self.desk.link() == LinkState::Down {
            return false;
        }
        self.resync.forced |= forced;
        let first = !self.resync.requested;
        self.resync.requested = true;
        first || forced
    }

    /// Starts a resynchronisation if one was requested: events are held from now until
    /// [`Engine::finish_resync`]. Returns whether it was forced (by `link_up`).
    pub(super) fn take_resync_request(&mut self) -> Option<bool> {
        if !self.resync.requested || self.resync.in_progress {
            return None;
        }
        self.resync.requested = false;
        self.resync.in_progress = true;
        Some(std::mem::take(&mut self.resync.forced))
    }

    /// Applies the switch's state (or records the failure), then the events held
    /// meanwhile. Returns whether to try again later.
    pub(super) fn finish_resync(&mut self, result: Result<SwitchState>, forced: bool) -> bool {
        let mut retry = false;
        match result {
            Ok(state) => self.apply_switch_state(state, forced),
            Err(error) => {
                tracing::warn!(%error, "could not read the switch's state to resynchronise");
                self.resync.requested = true;
                self.resync.forced |= forced;
                retry = true;
            }
        }
        self.resync.in_progress = false;
        let held = std::mem::take(&mut self.resync.buffer);
        for (event, tag) in held {
            self.process(event, tag);
        }
        if std::mem::take(&mut self.resync.overflowed) {
            self.request_resync(true);
        }
        retry && self.desk.link() == LinkState::Up
    }

    fn apply_switch_state(&mut self, state: SwitchState, forced: bool) {
        self.stats.resyncs += 1;
        // Calls the switch no longer has end here, visibly, so that no consumer keeps a
        // phantom call; then the rest of the state is replaced.
        let vanished: Vec<CallId> = self
            .desk
            .calls()
            .iter()
            .filter(|c| !state.calls.iter().any(|s| s.id == c.id))
            .map(|c| c.id.clone())
            .collect();
        for call in &vanished {
            self.process(
                Event::CallEnded {
                    call: call.clone(),
                    cause: Cause::Vanished,
                },
                None,
            );
        }
        let mut changes = self.desk.resync(state, self.seq + 1);
        changes.removed = vanished;
        // The snapshot in `resynced` carries the times that event starts.
        self.desk
            .stamp_resync(changes.agent_changed, self.clock.now());
        changes.snapshot = self.desk.snapshot(self.seq + 1);
        let changed = !changes.added.is_empty()
            || !changes.removed.is_empty()
            || !changes.changed.is_empty()
            || changes.agent_changed
            || changes.capabilities_changed;
        if forced || changed {
            self.emit(
                Event::Resynced {
                    changes: Box::new(changes),
                },
                None,
            );
        }
        self.synced.send_replace(true);
    }
}
