//! What serving one line's desktops needs from its session, wherever the session runs.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::command::Command;
use crate::desktop::DesktopInterface;
use crate::session::{AcceptedCommand, EventStream, PendingCommand, Session};
use crate::snapshot::Snapshot;
use crate::Result;

/// One line's session as a server of desktops (the desktop protocol, the browser
/// gateway) reaches it: the [`Session`] itself in this process, or a session that runs
/// in another process, reached through a transport that keeps a
/// [`Replica`](crate::Replica) of it here.
///
/// Code written against this trait serves a line the same way wherever its session
/// runs: running the sessions elsewhere is a choice of transport, not a second code path.
#[async_trait]
pub trait LineAccess: DesktopInterface + std::fmt::Debug {
    /// The line's state and a stream of every event after it, taken atomically: the
    /// stream's first event is the snapshot's `seq + 1`.
    fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream);

    /// Checks `command` against the state and hands it to the switch; returns once the
    /// session accepted it, with a future for its confirmation. Commands submitted one
    /// after another take effect in that order.
    async fn submit(&self, command: Command) -> Result<PendingCommand>;

    /// Every command the session accepts from now on (a wrap-up's disposition for a
    /// call logger, an audit trail). A receiver that falls behind gets `Lagged`.
    fn subscribe_commands(&self) -> broadcast::Receiver<Arc<AcceptedCommand>>;
}

#[async_trait]
impl LineAccess for Session {
    fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream) {
        Session::snapshot_and_subscribe(self)
    }

    async fn submit(&self, command: Command) -> Result<PendingCommand> {
        Session::submit(self, command).await
    }

    fn subscribe_commands(&self) -> broadcast::Receiver<Arc<AcceptedCommand>> {
        Session::subscribe_commands(self)
    }
}

/// A shared line is a line: `Arc<dyn LineAccess>` goes wherever one is taken by value.
#[async_trait]
impl<T: LineAccess + ?Sized> LineAccess for Arc<T> {
    fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream) {
        (**self).snapshot_and_subscribe()
    }

    async fn submit(&self, command: Command) -> Result<PendingCommand> {
        (**self).submit(command).await
    }

    fn subscribe_commands(&self) -> broadcast::Receiver<Arc<AcceptedCommand>> {
        (**self).subscribe_commands()
    }
}
