//! Where a connector emits its events.

use std::sync::Weak;

use crate::event::Event;
use crate::ids::CommandId;
use crate::machine::Desk;
use crate::Error;

use super::Shared;

/// The connector's handle for emitting events into its session.
///
/// Emitting never blocks and never waits for subscribers: the session applies the event
/// to its state and hands it to subscribers' buffers at once, so a connector may call it
/// straight from its socket reader. After the session is dropped, emitting does nothing.
#[derive(Clone)]
pub struct EventSink {
    shared: Weak<Shared>,
}

impl EventSink {
    pub(super) fn new(shared: Weak<Shared>) -> Self {
        EventSink { shared }
    }

    /// Emits a switch event.
    pub fn emit(&self, event: Event) {
        if let Some(shared) = self.shared.upgrade() {
            shared.ingest(event, None);
        }
    }

    /// Emits a switch event that answers the command `id` (for switches that correlate,
    /// like AMI's `ActionID`). Without it the session matches events to commands by kind
    /// and call, oldest command first.
    pub fn emit_for(&self, id: CommandId, event: Event) {
        if let Some(shared) = self.shared.upgrade() {
            shared.ingest(event, Some(id));
        }
    }

    /// Reports that command `id`, accepted earlier, failed.
    pub fn command_failed(&self, id: CommandId, error: Error) {
        self.emit_for(
            id,
            Event::CommandFailed {
                error: error.to_body(),
            },
        );
    }

    /// Asks the session to read the switch's state again (a resynchronisation, without
    /// a `link_up`): for a connector that learns its view of the switch may be stale,
    /// such as a configuration that now allows a command it withheld.
    pub fn resync(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.request_resync();
        }
    }

    /// Reads the session's state as it stands after every event emitted so far: the
    /// read view a translator uses where the same switch event means different things
    /// in different states (an answered channel connects an offered call, not a held
    /// one). `None` once the session is gone.
    ///
    /// The session is the only owner of agent and call state, so a connector asks here
    /// rather than keeping a copy. While the session resynchronises, events emitted
    /// meanwhile wait to be applied and are not in the view yet: a connector that must
    /// translate against the new state holds its switch events until
    /// [`Connector::resynced`](crate::Connector::resynced).
    pub fn view<R>(&self, f: impl FnOnce(&Desk) -> R) -> Option<R> {
        let shared = self.shared.upgrade()?;
        let engine = shared.engine();
        Some(f(&engine.desk))
    }

    /// Whether the session still exists.
    pub fn is_open(&self) -> bool {
        self.shared.strong_count() > 0
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("open", &self.is_open())
            .finish()
    }
}
