//! Where a line's canonical events go, and where its translation reads the state they
//! built: the session's `EventSink`, or a [`DeskEvents`] that applies them to a desk
//! of its own the way a session would.

use opencti_core::machine::{Desk, Step};
use opencti_core::{
    AgentId, Call, CallId, CallState, Capabilities, CommandId, DeviceId, ErrorBody, Event,
    SwitchState,
};

/// Where translated events go, and where the translator reads the state they build:
/// the session's `EventSink`, or a [`DeskEvents`] that applies them like a session.
pub trait EventOut {
    /// One canonical event; `command` is the command it answers, where known.
    fn emit(&mut self, event: Event, command: Option<CommandId>);

    /// Runs `f` on the state the events emitted so far built (not at all when there is
    /// no such state, for example once the session is gone).
    fn view(&self, f: &mut dyn FnMut(&Desk));
}

impl EventOut for opencti_core::EventSink {
    fn emit(&mut self, event: Event, command: Option<CommandId>) {
        match command {
            Some(id) => self.emit_for(id, event),
            None => opencti_core::EventSink::emit(self, event),
        }
    }

    fn view(&self, f: &mut dyn FnMut(&Desk)) {
        opencti_core::EventSink::view(self, f);
    }
}

/// Canonical events applied to a desk the way a session applies them: an event that
/// restates the state is dropped (unless it answers a command), one that does not fit is
/// counted and dropped. For a consumer without a session: the watcher of a whole
/// Asterisk, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct DeskEvents {
    desk: Desk,
    /// The events the desk took, in order, with the command each answers.
    pub events: Vec<(Event, Option<CommandId>)>,
    /// The events that did not fit the desk's state, with why.
    pub rejected: Vec<(Event, ErrorBody)>,
}

impl Default for DeskEvents {
    fn default() -> Self {
        DeskEvents::new()
    }
}

impl DeskEvents {
    /// An idle desk with the link up.
    pub fn new() -> Self {
        let agent = AgentId::new("ami").unwrap_or_else(|_| unreachable!("a valid constant"));
        let device = DeviceId::new("device").unwrap_or_else(|_| unreachable!("a valid constant"));
        let mut desk = Desk::new(agent, device, Capabilities::all().with_wrap_up(false));
        let _ = desk.apply(&mut Event::LinkUp);
        DeskEvents {
            desk,
            events: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// The desk.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// Replaces the desk's state with the switch's (as a session does when it
    /// resynchronises).
    pub fn resync(&mut self, state: SwitchState) {
        let _ = self.desk.apply(&mut Event::LinkUp);
        self.desk.resync(state, 0);
    }
}

impl EventOut for DeskEvents {
    fn emit(&mut self, event: Event, command: Option<CommandId>) {
        // The desk rewrites a reported agent state into the effective one; what a
        // session passes on is the state as reported, so that one is applied to a copy.
        let mut applied_to = event.clone();
        match self.desk.apply(&mut applied_to) {
            Ok(applied) => {
                if applied.step != Step::Duplicate || command.is_some() {
                    self.events.push((event, command));
                }
            }
            Err(error) => self.rejected.push((event, error.to_body())),
        }
    }

    fn view(&self, f: &mut dyn FnMut(&Desk)) {
        f(&self.desk);
    }
}

/// The state of `call` in `out`'s view.
pub(super) fn state_of(out: &dyn EventOut, call: &CallId) -> Option<CallState> {
    read_call(out, call, |c| c.state)
}

/// Reads `call` in `out`'s view.
pub(super) fn read_call<R>(
    out: &dyn EventOut,
    call: &CallId,
    f: impl FnOnce(&Call) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut result = None;
    out.view(&mut |desk| {
        if let (Some(c), Some(f)) = (desk.call(call), f.take()) {
            result = Some(f(c));
        }
    });
    result
}
