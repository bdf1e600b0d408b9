//! One link to a phone system, shared by the sessions of many lines.
//!
//! A contact centre has one phone system and hundreds of agents. A [`SwitchLink`] is
//! what a vendor implements when its protocol serves every line over one connection
//! (Asterisk's AMI, a CTI server): it connects once, reads the switch's state once after
//! each (re)connect for every line, and translates each line's events into that line's
//! session. A [`SharedLink`] is the running link on the core's side: it opens a
//! [`Session`] per line over it, tells every session when the link goes down and comes
//! back, and turns the sessions' reads of the switch's state after a reconnect into one
//! read for all of them.
//!
//! ```text
//!  Session (alice, PJSIP/1001) ─┐
//!  Session (bob,   PJSIP/1002) ─┼─▶ SharedLink ─▶ dyn SwitchLink ─▶ one connection
//!  Session (carol, PJSIP/1003) ─┘
//! ```
//!
//! The sessions stay the only owners of agent and call state: a switch link keeps its
//! protocol's bookkeeping (which channel is which call) and nothing a session decides.
//! A protocol with one line per connection (a SIP user agent, a simple vendor API)
//! implements [`Connector`] instead, and its sessions start with [`Session::builder`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::connector::{Connector, Line, Request};
use crate::event::Event;
use crate::ids::{AgentId, DeviceId};
use crate::session::{EventSink, Session, SessionBuilder};
use crate::snapshot::SwitchState;
use crate::{Error, ErrorKind, Result};

/// A link to one phone system that serves any number of lines: what a vendor implements
/// when one connection carries every agent's events and commands.
///
/// Dyn-compatible: a [`SharedLink`] holds it as `Arc<dyn SwitchLink>`.
///
/// # Behavior
///
/// - [`start`](SwitchLink::start) connects (or begins to) and reports the link's state
///   into `status` from then on: [`LinkStatus::up`] every time the link comes up (the
///   first time too), [`LinkStatus::down`] when it drops. It reconnects by itself. The
///   core passes both on to every line's session as `link_up` and `link_down`. A line
///   that cannot be served while the link is up (a refused account) is reported with
///   [`LinkStatus::line_down`] and [`LinkStatus::line_up`], to its session alone.
/// - [`open_line`](SwitchLink::open_line) starts serving a line: from then on every
///   switch event for the line is translated and emitted into its `sink`, in order
///   (never `link_up` or `link_down`: those come from `status`). Emitting never blocks.
///   [`close_line`](SwitchLink::close_line) stops it; nothing more goes into that sink.
/// - [`submit`](SwitchLink::submit) is [`Connector::submit`] for one line: it returns
///   once the switch has accepted the request (`Ok`) or refused it (`Err`); the command
///   takes effect when its confirming event is emitted into the line's sink.
/// - [`snapshot`](SwitchLink::snapshot) reads the switch's state of `lines`, once for all
///   of them, and returns one [`SwitchState`] per line in the same order. The core calls
///   it once after every (re)connect for every open line, and again for one line whose
///   session's state has diverged.
/// - [`resynced`](SwitchLink::resynced) follows once the line's session has applied that
///   state. A link that holds back switch events while it reads (to keep its own
///   bookkeeping, such as which channel is in which bridge, consistent with the lists it
///   reads) translates them there, so that it reads the session's new state through
///   [`EventSink::view`] while it does.
/// - [`stop`](SwitchLink::stop) disconnects; no events follow.
#[async_trait]
pub trait SwitchLink: Send + Sync + fmt::Debug {
    /// What the link can do for a line.
    fn capabilities(&self) -> Capabilities;

    /// Connects and reports the link's state into `status`.
    async fn start(&self, status: LinkStatus) -> Result<()>;

    /// Starts translating `line`'s events into `sink`.
    async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()>;

    /// Stops serving `line`.
    async fn close_line(&self, line: &Line) -> Result<()>;

    /// Hands a checked command of `line` to the switch.
    async fn submit(&self, line: &Line, request: Request) -> Result<()>;

    /// The switch's view of each of `lines`, in the same order, read once.
    async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>>;

    /// `line`'s session has applied the state [`snapshot`](SwitchLink::snapshot) read
    /// for it: [`Connector::resynced`] for one line. The default does nothing.
    fn resynced(&self, line: &Line) {
        let _ = line;
    }

    /// Disconnects.
    async fn stop(&self) -> Result<()>;
}

/// The switch link's handle for reporting that the link went down or came up; the core
/// tells every open line's session. Cheap to clone; does nothing once the link's owner
/// (a [`SharedLink`], or the connector made by [`one_line`]) is gone.
#[derive(Clone)]
pub struct LinkStatus {
    target: Weak<dyn StatusTarget>,
}

/// Who hears a link's status: the sessions of its lines.
trait StatusTarget: Send + Sync {
    fn changed(&self, up: bool, reason: &str);
    fn line_changed(&self, device: &DeviceId, up: bool, reason: &str);
    fn resync(&self);
}

impl LinkStatus {
    fn new(target: Weak<dyn StatusTarget>) -> Self {
        LinkStatus { target }
    }

    /// The link is up (again): every line's session reads its state and resynchronises.
    pub fn up(&self) {
        if let Some(target) = self.target.upgrade() {
            target.changed(true, "");
        }
    }

    /// The link dropped: every line's commands are refused until it is back.
    pub fn down(&self, reason: &str) {
        if let Some(target) = self.target.upgrade() {
            target.changed(false, reason);
        }
    }

    /// The switch's configuration changed (a command withheld for want of it may work
    /// now): every line's session reads its state again, without a `link_up`.
    pub fn resync(&self) {
        if let Some(target) = self.target.upgrade() {
            target.resync();
        }
    }

    /// One line cannot be served although the link is up (its account was refused, its
    /// device is gone): only that line's session hears `link_down`, and its commands
    /// are refused until [`line_up`](LinkStatus::line_up).
    pub fn line_down(&self, device: &DeviceId, reason: &str) {
        if let Some(target) = self.target.upgrade() {
            target.line_changed(device, false, reason);
        }
    }

    /// One line is served again after [`line_down`](LinkStatus::line_down): its session
    /// hears `link_up` and resynchronises on its own.
    pub fn line_up(&self, device: &DeviceId) {
        if let Some(target) = self.target.upgrade() {
            target.line_changed(device, true, "");
        }
    }
}

impl fmt::Debug for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkStatus").finish_non_exhaustive()
    }
}

/// Tells `sinks` that the link went down or came up.
fn tell(sinks: Vec<EventSink>, up: bool, reason: &str) {
    for sink in sinks {
        sink.emit(if up {
            Event::LinkUp
        } else {
            Event::LinkDown {
                reason: reason.to_owned(),
            }
        });
    }
}

struct OpenLine {
    line: Line,
    sink: EventSink,
    /// The read number current when the line opened: a read that started before it
    /// knows nothing of this line.
    opened_after_read: u64,
}

#[derive(Default)]
struct LinkState {
    up: bool,
    /// Counts the times every line's state had to be read again: the link came up, or
    /// the switch's configuration changed.
    generation: u64,
    lines: HashMap<DeviceId, OpenLine>,
    /// Counts the reads of the switch's state started.
    reads: u64,
}

impl LinkState {
    fn sinks(&self) -> Vec<EventSink> {
        self.lines.values().map(|l| l.sink.clone()).collect()
    }
}

/// The one read after a (re)connect, served to each line's first resynchronisation.
struct FirstRead {
    generation: u64,
    read: u64,
    states: HashMap<DeviceId, SwitchState>,
    served: HashSet<DeviceId>,
}

struct Shared {
    link: Arc<dyn SwitchLink>,
    state: Mutex<LinkState>,
    first_read: tokio::sync::Mutex<Option<FirstRead>>,
}

impl StatusTarget for Shared {
    fn changed(&self, up: bool, reason: &str) {
        let sinks = {
            let mut state = self.state();
            state.up = up;
            if up {
                state.generation += 1;
            }
            state.sinks()
        };
        tell(sinks, up, reason);
    }

    fn line_changed(&self, device: &DeviceId, up: bool, reason: &str) {
        let sink = self.state().lines.get(device).map(|l| l.sink.clone());
        tell(sink.into_iter().collect(), up, reason);
    }

    fn resync(&self) {
        let sinks = {
            let mut state = self.state();
            state.generation += 1;
            state.sinks()
        };
        for sink in sinks {
            sink.resync();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, LinkState> {
        // Nothing panics while holding it; a poisoned lock still guards a valid map.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The switch's state of `line`: from the read made for every line after the link
    /// came up when this is the line's first resynchronisation since, else a fresh read.
    async fn read_state(&self, line: &Line) -> Result<SwitchState> {
        let mut first = self.first_read.lock().await;
        let (generation, opened_after) = {
            let state = self.state();
            let opened = state.lines.get(&line.device).map(|l| l.opened_after_read);
            (state.generation, opened)
        };
        if let (Some(read), Some(opened_after)) = (first.as_mut(), opened_after) {
            if read.generation == generation
                && read.read > opened_after
                && !read.served.contains(&line.device)
            {
                if let Some(state) = read.states.get(&line.device) {
                    read.served.insert(line.device.clone());
                    return Ok(state.clone());
                }
            }
        }
        // The first read since the link came up reads every open line, for the sessions
        // that will ask next; a later one reads only the line that asked.
        let first_of_generation = first.as_ref().is_none_or(|r| r.generation != generation);
        let (lines, number) = {
            let mut state = self.state();
            state.reads += 1;
            let lines: Vec<Line> = if first_of_generation {
                state.lines.values().map(|l| l.line.clone()).collect()
            } else {
                vec![line.clone()]
            };
            (lines, state.reads)
        };
        let states = self.link.snapshot(&lines).await?;
        if states.len() != lines.len() {
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the switch link answered a read of {} lines with {} states",
                    lines.len(),
                    states.len()
                ),
            ));
        }
        let states: HashMap<DeviceId, SwitchState> =
            lines.into_iter().map(|l| l.device).zip(states).collect();
        let mine = states.get(&line.device).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("line {} closed while its state was read", line.device),
            )
        })?;
        if first_of_generation {
            *first = Some(FirstRead {
                generation,
                read: number,
                states,
                served: HashSet::from([line.device.clone()]),
            });
        }
        Ok(mine)
    }
}

/// A running [`SwitchLink`] shared by the sessions of many lines. Cheap to clone.
///
/// ```no_run
/// # async fn centre(link: std::sync::Arc<dyn opencti_core::SwitchLink>) -> opencti_core::Result<()> {
/// use opencti_core::{AgentId, DesktopInterfaceExt, DeviceId, SharedLink};
///
/// let link = SharedLink::start(link).await?;
/// let alice = link.session(AgentId::new("alice")?, DeviceId::new("PJSIP/1001")?).start().await?;
/// let bob = link.session(AgentId::new("bob")?, DeviceId::new("PJSIP/1002")?).start().await?;
/// alice.login().await?;
/// bob.login().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedLink {
    shared: Arc<Shared>,
}

impl SharedLink {
    /// Starts `link`: it connects (or begins to, retrying by itself). Sessions opened with
    /// [`session`](SharedLink::session) start once the link is up.
    pub async fn start(link: Arc<dyn SwitchLink>) -> Result<SharedLink> {
        let shared = Arc::new(Shared {
            link,
            state: Mutex::new(LinkState::default()),
            first_read: tokio::sync::Mutex::new(None),
        });
        let target: Arc<dyn StatusTarget> = shared.clone();
        shared
            .link
            .start(LinkStatus::new(Arc::downgrade(&target)))
            .await?;
        Ok(SharedLink { shared })
    }

    /// A session for `agent` at `device` over this link; one session per device.
    pub fn session(&self, agent: AgentId, device: DeviceId) -> SessionBuilder {
        let line = LinkLine {
            shared: self.shared.clone(),
            line: Line {
                agent: agent.clone(),
                device: device.clone(),
            },
        };
        Session::builder(Arc::new(line), agent, device)
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.shared.state().up
    }

    /// The lines open on the link.
    pub fn lines(&self) -> Vec<Line> {
        self.shared
            .state()
            .lines
            .values()
            .map(|l| l.line.clone())
            .collect()
    }

    /// The switch link behind it.
    pub fn link(&self) -> &Arc<dyn SwitchLink> {
        &self.shared.link
    }

    /// Disconnects. Every session sees `link_down`; their commands are refused.
    pub async fn stop(&self) -> Result<()> {
        self.shared.link.stop().await?;
        self.shared.changed(false, "the link was stopped");
        Ok(())
    }
}

impl fmt::Debug for SharedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("SharedLink")
            .field("link", &self.shared.link)
            .field("up", &state.up)
            .field("lines", &state.lines.len())
            .finish()
    }
}

/// One line of a shared link, as its session sees it: a [`Connector`].
struct LinkLine {
    shared: Arc<Shared>,
    line: Line,
}

impl fmt::Debug for LinkLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkLine")
            .field("device", &self.line.device)
            .field("link", &self.shared.link)
            .finish()
    }
}

#[async_trait]
impl Connector for LinkLine {
    fn capabilities(&self) -> Capabilities {
        self.shared.link.capabilities()
    }

    async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
        let up = {
            let mut state = self.shared.state();
            if let Some(other) = state.lines.get(&line.device) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "device {} already has a session on this link, for agent {}",
                        line.device, other.line.agent
                    ),
                ));
            }
            let opened_after_read = state.reads;
            state.lines.insert(
                line.device.clone(),
                OpenLine {
                    line: line.clone(),
                    sink: sink.clone(),
                    opened_after_read,
                },
            );
            state.up
        };
        if let Err(e) = self.shared.link.open_line(line, sink.clone()).await {
            self.shared.state().lines.remove(&line.device);
            return Err(e);
        }
        if up {
            sink.emit(Event::LinkUp);
        }
        Ok(())
    }

    async fn submit(&self, request: Request) -> Result<()> {
        self.shared.link.submit(&self.line, request).await
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        self.shared.read_state(&self.line).await
    }

    fn resynced(&self) {
        self.shared.link.resynced(&self.line);
    }

    async fn stop(&self) -> Result<()> {
        let removed = self.shared.state().lines.remove(&self.line.device);
        if removed.is_some() {
            self.shared.link.close_line(&self.line).await?;
        }
        Ok(())
    }
}

/// A [`Connector`] that runs `link` for exactly one line: for a session started with
/// [`Session::builder`] over a protocol that has a switch link, when a single agent is
/// all there is (a command-line tool, a test). A contact centre shares one link between
/// its lines with a [`SharedLink`] instead.
pub fn one_line(link: Arc<dyn SwitchLink>) -> Arc<dyn Connector> {
    Arc::new(OneLine {
        state: Arc::new(OneLineState {
            link,
            line: Mutex::new(None),
        }),
    })
}

struct OneLineState {
    link: Arc<dyn SwitchLink>,
    line: Mutex<Option<(Line, EventSink)>>,
}

impl OneLineState {
    fn line(&self) -> Result<Line> {
        self.line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(line, _)| line.clone())
            .ok_or_else(|| Error::new(ErrorKind::InvalidState, "the connector is not started"))
    }
}

impl StatusTarget for OneLineState {
    fn changed(&self, up: bool, reason: &str) {
        let sink = self
            .line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, sink)| sink.clone());
        tell(sink.into_iter().collect(), up, reason);
    }

    fn line_changed(&self, device: &DeviceId, up: bool, reason: &str) {
        let sink = self
            .line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(line, _)| &line.device == device)
            .map(|(_, sink)| sink.clone());
        tell(sink.into_iter().collect(), up, reason);
    }

    fn resync(&self) {
        let sink = self
            .line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, sink)| sink.clone());
        if let Some(sink) = sink {
            sink.resync();
        }
    }
}

struct OneLine {
    state: Arc<OneLineState>,
}

impl fmt::Debug for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneLine")
            .field("link", &self.state.link)
            .finish()
    }
}

#[async_trait]
impl Connector for OneLine {
    fn capabilities(&self) -> Capabilities {
        self.state.link.capabilities()
    }

    async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
        {
            let mut slot = self.state.line.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "this connector serves one line and was started already; create one per session",
                ));
            }
            *slot = Some((line.clone(), sink.clone()));
        }
        self.state.link.open_line(line, sink).await?;
        let target: Arc<dyn StatusTarget> = self.state.clone();
        self.state
            .link
            .start(LinkStatus::new(Arc::downgrade(&target)))
            .await
    }

    async fn submit(&self, request: Request) -> Result<()> {
        let line = self.state.line()?;
        self.state.link.submit(&line, request).await
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        let line = self.state.line()?;
        self.state
            .link
            .snapshot(std::slice::from_ref(&line))
            .await?
            .pop()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Other,
                    "the switch link read no state for the line",
                )
            })
    }

    fn resynced(&self) {
        if let Ok(line) = self.state.line() {
            self.state.link.resynced(&line);
        }
    }

    async fn stop(&self) -> Result<()> {
        if let Ok(line) = self.state.line() {
            self.state.link.close_line(&line).await?;
        }
        self.state.link.stop().await
    }
}
