//! The session engine, written once for every connector.
//!
//! A [`Session`] sits between desktop code and a [`Connector`]: it checks each command
//! against the current state before the switch sees it, numbers it, waits for the event
//! that confirms it, keeps the snapshot, stamps every event (gap-free `seq`, time, the
//! command it answers) and fans it out to any number of subscribers, and rebuilds its
//! state from the switch whenever the link comes back.

mod engine;
mod resync;
mod sink;
pub(crate) mod stream;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};

use crate::capabilities::Capabilities;
use crate::command::{Command, CommandSet};
use crate::connector::{Connector, Line, Request};
use crate::desktop::DesktopInterface;
use crate::error::ErrorBody;
use crate::event::{Event, EventEnvelope};
use crate::ids::{AgentId, CallId, CommandId, DeviceId};
use crate::machine::Desk;
use crate::record::Recorder;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::{Error, ErrorKind, Result};

use engine::{Clock, Engine};
pub use sink::EventSink;
pub use stream::EventStream;

/// A command that took effect: its id and the event that confirmed it.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The command's id.
    pub command: CommandId,
    /// The confirming event.
    pub event: Arc<EventEnvelope>,
}

impl Confirmation {
    /// The call the confirming event is about: for `make_call` and `consult`, the new call.
    pub fn call(&self) -> Option<&CallId> {
        self.event.call()
    }
}

/// A command the session checked and handed to the switch, as observers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedCommand {
    /// The command's id: events that confirm it carry it.
    pub id: CommandId,
    /// The command.
    pub command: Command,
}

/// Counters of what a session has seen, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionStats {
    /// Events received from the connector.
    pub received: u64,
    /// Events emitted to subscribers (including derived ones).
    pub emitted: u64,
    /// Events that restated the state and were not delivered again.
    pub duplicates: u64,
    /// Events that contradicted the state: each led to a resynchronisation.
    pub rejected: u64,
    /// Resynchronisations completed.
    pub resyncs: u64,
    /// Commands accepted for the switch.
    pub commands: u64,
}

/// An event from the connector that did not fit the session's state (the session then
/// resynchronised), and why: what a connector's author needs to find a translation bug.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rejected {
    /// The event as the connector emitted it.
    pub event: Event,
    /// Why the state machines refused it.
    pub error: ErrorBody,
}

pub(crate) struct Shared {
    engine: Mutex<Engine>,
    connector: Arc<dyn Connector>,
    events: broadcast::Sender<Arc<EventEnvelope>>,
    commands: broadcast::Sender<Arc<AcceptedCommand>>,
    wake_resync: Arc<Notify>,
    command_timeout: Duration,
}

impl Shared {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        // The engine is never left half-updated by a panic in this crate, so a poisoned
        // lock still guards consistent state.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ingest(&self, event: Event, tag: Option<CommandId>) {
        let wake = self.engine().ingest(event, tag);
        if wake {
            self.wake_resync.notify_one();
        }
    }

    fn request_resync(&self) {
        if self.engine().request_resync(false) {
            self.wake_resync.notify_one();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the resync task notice that the session is gone.
        self.wake_resync.notify_one();
    }
}

/// A running session: one agent at one device, served by one connector.
///
/// Cheap to clone; all clones share the session. Build one with [`Session::builder`].
///
/// ```no_run
/// # async fn demo(connector: std::sync::Arc<dyn opencti_core::Connector>) -> opencti_core::Result<()> {
/// use futures::StreamExt;
/// use opencti_core::{AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Session};
///
/// let session = Session::builder(connector, AgentId::new("alice")?, DeviceId::new("1001")?)
///     .start()
///     .await?;
/// let mut events = session.subscribe();
/// session.login().await?;
/// session.ready().await?;
/// while let Some(event) = events.next().await {
///     println!("{}", serde_json::to_string(&*event?).unwrap());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = self.shared.engine();
        f.debug_struct("Session")
            .field("agent", engine.desk.agent_id())
            .field("device", engine.desk.device())
            .field("seq", &engine.seq())
            .field("connector", &self.shared.connector)
            .finish()
    }
}

impl Session {
    /// Starts building a session for `agent` at `device` over `connector`.
    pub fn builder(
        connector: Arc<dyn Connector>,
        agent: AgentId,
        device: DeviceId,
    ) -> SessionBuilder {
        SessionBuilder {
            connector,
            line: Line { agent, device },
            command_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
            event_capacity: 1024,
            clock_origin: None,
            recorder: None,
            taken_over: None,
        }
    }

    /// Checks `command`, hands it to the switch and returns its id and a future for its
    /// outcome, without waiting for the confirmation.
    pub async fn submit(&self, command: Command) -> Result<PendingCommand> {
        let (id, outcome) = self.shared.engine().register(&command)?;
        let request = Request { id, command };
        if let Err(error) = self.shared.connector.submit(request).await {
            self.shared.engine().forget(id);
            return Err(error);
        }
        Ok(PendingCommand {
            id,
            outcome: Outcome::Local {
                receiver: outcome,
                shared: self.shared.clone(),
            },
        })
    }

    /// The snapshot and a stream of every event after it, taken atomically.
    pub fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream) {
        let engine = self.shared.engine();
        let snapshot = engine.desk.snapshot(engine.seq());
        (snapshot, EventStream::new(self.shared.events.subscribe()))
    }

    /// Every command accepted from now on (checked and handed to the switch), for audit
    /// logs and call loggers that need what the desktop asked for, such as a wrap-up's
    /// disposition. Like events, a receiver that falls behind gets `Lagged`.
    pub fn subscribe_commands(&self) -> broadcast::Receiver<Arc<AcceptedCommand>> {
        self.shared.commands.subscribe()
    }

    /// Counters of what the session has seen.
    pub fn stats(&self) -> SessionStats {
        self.shared.engine().stats
    }

    /// The last event from the connector that did not fit the state, if any.
    pub fn last_rejected(&self) -> Option<Rejected> {
        self.shared.engine().last_rejected.clone()
    }

    /// The connector behind the session.
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.shared.connector
    }

    /// Stops the connector. The session keeps its last state; commands are refused.
    pub async fn stop(&self) -> Result<()> {
        self.shared.connector.stop().await?;
        self.shared.ingest(
            Event::LinkDown {
                reason: "session stopped".into(),
            },
            None,
        );
        Ok(())
    }
}

/// A command handed to the switch, waiting for its confirming event.
#[must_use = "a pending command does nothing unless its outcome is awaited"]
pub struct PendingCommand {
    id: CommandId,
    outcome: Outcome,
}

/// Where a pending command's outcome comes from.
enum Outcome {
    /// This process's session: its engine resolves the command.
    Local {
        receiver: tokio::sync::oneshot::Receiver<Result<Confirmation>>,
        shared: Arc<Shared>,
    },
    /// A session in another process, reached through a transport that resolves the
    /// future (and bounds its wait) itself.
    Elsewhere(futures::future::BoxFuture<'static, Result<Confirmation>>),
}

impl PendingCommand {
    /// A command that a session in another process accepted as `id`; `outcome` resolves
    /// to what that session answered. For transports that serve a line away from its
    /// session: the outcome must end on its own (a timeout, a lost connection).
    pub fn elsewhere(
        id: CommandId,
        outcome: impl std::future::Future<Output = Result<Confirmation>> + Send + 'static,
    ) -> Self {
        PendingCommand {
            id,
            outcome: Outcome::Elsewhere(Box::pin(outcome)),
        }
    }

    /// The command's id; the confirming event will carry it.
    pub fn id(&self) -> CommandId {
        self.id
    }

    /// Waits for the confirmation, at most the session's command timeout.
    pub async fn confirmed(self) -> Result<Confirmation> {
        let (receiver, shared) = match self.outcome {
            Outcome::Local { receiver, shared } => (receiver, shared),
            Outcome::Elsewhere(outcome) => return outcome.await,
        };
        let timeout = shared.command_timeout;
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::new(ErrorKind::Closed, "the session has shut down")),
            Err(_) => {
                shared.engine().forget(self.id);
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "command {} was accepted but not confirmed within {:?}; it may still take effect",
                        self.id, timeout
                    ),
                ))
            }
        }
    }
}

impl std::fmt::Debug for PendingCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCommand")
            .field("id", &self.id)
            .finish()
    }
}

#[async_trait]
impl DesktopInterface for Session {
    async fn execute(&self, command: Command) -> Result<Confirmation> {
        self.submit(command).await?.confirmed().await
    }

    fn subscribe(&self) -> EventStream {
        EventStream::new(self.shared.events.subscribe())
    }

    fn snapshot(&self) -> Snapshot {
        let engine = self.shared.engine();
        engine.desk.snapshot(engine.seq())
    }

    fn capabilities(&self) -> Capabilities {
        *self.shared.engine().desk.capabilities()
    }

    fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet {
        self.shared.engine().desk.allowed_commands(call)
    }
}

/// Configures and starts a [`Session`].
#[must_use = "a builder does nothing until start() is awaited"]
pub struct SessionBuilder {
    connector: Arc<dyn Connector>,
    line: Line,
    command_timeout: Duration,
    start_timeout: Duration,
    event_capacity: usize,
    clock_origin: Option<Timestamp>,
    recorder: Option<Recorder>,
    taken_over: Option<(Snapshot, String)>,
}

impl SessionBuilder {
    /// Takes the line over from a session that ran elsewhere and stopped (a standby link
    /// service that became the leader): this session starts from `previous`, that
    /// session's last state as its desktops know it, and numbers its events after
    /// `previous.seq`, so that those desktops follow on with no gap and no repeat.
    ///
    /// Its first event is `link_down` with `reason` (sent even where `previous` already
    /// had the link down); once the connector is up it reads the switch's state, and
    /// the `resynced` that follows says what changed meanwhile (calls that ended, calls
    /// found). `previous` must be of this line.
    pub fn take_over(mut self, previous: Snapshot, reason: impl Into<String>) -> Self {
        self.taken_over = Some((previous, reason.into()));
        self
    }

    /// How long a command may wait for its confirming event (default 10 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long [`start`](SessionBuilder::start) waits for the link and the first
    /// resynchronisation (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How many events each subscriber may fall behind before it lags (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// The timestamp of the session's start, instead of the wall clock: with tokio's
    /// paused clock this makes every `at` reproducible.
    pub fn clock_origin(mut self, origin: Timestamp) -> Self {
        self.clock_origin = Some(origin);
        self
    }

    /// Records every command and event as JSON lines into `out` (see
    /// [`record`](crate::record)). Writing happens as events arrive; give it a buffered
    /// writer.
    pub fn record(mut self, out: impl Write + Send + 'static) -> Self {
        self.recorder = Some(Recorder::new(Box::new(out)));
        self
    }

    /// Starts the connector and waits until the link is up and the session has read the
    /// switch's state. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<Session> {
        Ok(self.start_with_events().await?.0)
    }

    /// [`start`](SessionBuilder::start), and a stream of every event of the session from
    /// its very first: for a subscriber that must miss none, such as a publisher of a
    /// line taken over (whose first events say the link went down and what the
    /// resynchronisation changed).
    pub async fn start_with_events(self) -> Result<(Session, EventStream)> {
        let capabilities = self.connector.capabilities();
        let desk = match &self.taken_over {
            Some((previous, _)) => {
                if previous.agent != self.line.agent || previous.device != self.line.device {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "cannot take over {} at {} from a session of {} at {}",
                            self.line.agent, self.line.device, previous.agent, previous.device
                        ),
                    ));
                }
                // Up as far as this session knows, so that its first event is news.
                let mut previous = previous.clone();
                previous.link = crate::snapshot::LinkState::Up;
                Desk::from_snapshot(&previous, capabilities)
            }
            None => Desk::new(
                self.line.agent.clone(),
                self.line.device.clone(),
                capabilities,
            ),
        };
        let (events, _) = broadcast::channel(self.event_capacity);
        // Commands are far fewer than events; their observers need a shorter ring.
        let (commands, _) = broadcast::channel(self.event_capacity.clamp(1, 64));
        let (synced, mut synced_rx) = watch::channel(false);
        let mut recorder = self.recorder;
        if let Some(recorder) = &mut recorder {
            recorder.header(&self.line, &capabilities);
        }
        let clock = Clock::new(self.clock_origin.unwrap_or_else(Timestamp::now));
        let mut engine = Engine::new(
            desk,
            clock,
            events.clone(),
            commands.clone(),
            synced,
            recorder,
        );
        if let Some((previous, _)) = &self.taken_over {
            engine.continue_after(previous.seq);
        }
        let wake_resync = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            connector: self.connector,
            events,
            commands,
            wake_resync: wake_resync.clone(),
            command_timeout: self.command_timeout,
        });
        tokio::spawn(resync::run(Arc::downgrade(&shared), wake_resync));
        let first_events = EventStream::new(shared.events.subscribe());
        if let Some((_, reason)) = self.taken_over {
            shared.ingest(Event::LinkDown { reason }, None);
        }
        let sink = EventSink::new(Arc::downgrade(&shared));
        shared.connector.start(&self.line, sink).await?;
        let waited = tokio::time::timeout(self.start_timeout, synced_rx.wait_for(|s| *s)).await;
        match waited {
            Ok(Ok(_)) => Ok((Session { shared }, first_events)),
            Ok(Err(_)) => Err(Error::new(ErrorKind::Closed, "the session shut down while starting")),
            Err(_) => Err(Error::new(
                ErrorKind::LinkDown,
                format!(
                    "the connector did not bring the link up and report the switch's state within {:?}",
                    self.start_timeout
                ),
            )),
        }
    }
}
