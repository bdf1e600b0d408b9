//! [`AmiLink`]: one AMI connection to an Asterisk serving every line (an agent at a
//! device) of a contact centre: the `opencti_core::SwitchLink` for Asterisk.
//!
//! The link owns the [`AmiClient`]; each open line has its own translator, fed from the
//! link's one reader. Link up and down are reported once, for every line; after a
//! (re)connect one `CoreShowChannels`, one `BridgeList` and one `QueueStatus` per queue
//! serve every line's resynchronisation, and restore the queue board if one was given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use async_trait::async_trait;
use opencti_core::queue::{QueueBoard, QueueEvent, ReportedQueues};
use opencti_core::{
    Capabilities, CommandId, Error, ErrorKind, Event, EventSink, Line, LinkStatus, Request, Result,
    SwitchLink, SwitchState, Timestamp, Withheld,
};

use crate::client::{AmiClient, ClientEvents};
use crate::config::AmiConfig;
use crate::device::LineId;
use crate::frame::Banner;
use crate::line::{self, action, hangup_action, AmiLine};
use crate::message::Message;
use crate::switchboard::{Outputs, Switchboard};
use crate::translate::{EventOut, FollowUp, QueueOut};

/// What the link's reader and its lines' commands share: the switchboard, and where
/// each line's events go.
pub(crate) struct Board {
    pub(crate) switchboard: Switchboard,
    pub(crate) sinks: Sinks,
}

/// Each line's session sink, by its place on the switchboard, and the queue board.
#[derive(Default)]
pub(crate) struct Sinks {
    sinks: Vec<Option<EventSink>>,
    discard: Discard,
    board: Option<QueueBoard>,
}

impl Sinks {
    fn set(&mut self, line: LineId, sink: Option<EventSink>) {
        let i = line as usize;
        if self.sinks.len() <= i {
            self.sinks.resize(i + 1, None);
        }
        self.sinks[i] = sink;
    }
}

impl Outputs for Sinks {
    fn output(&mut self, line: LineId) -> &mut dyn EventOut {
        match self.sinks.get_mut(line as usize) {
            Some(Some(sink)) => sink,
            _ => &mut self.discard,
        }
    }

    fn queues(&mut self) -> Option<&mut dyn QueueOut> {
        self.board.as_mut().map(|board| board as &mut dyn QueueOut)
    }
}

impl QueueOut for QueueBoard {
    fn apply(&mut self, event: QueueEvent) {
        QueueBoard::apply(self, event);
    }

    fn restore(&mut self, report: ReportedQueues) {
        QueueBoard::restore(self, report);
    }

    fn now(&self) -> Timestamp {
        QueueBoard::now(self)
    }
}

/// Swallows the events of a line with no session.
#[derive(Default)]
struct Discard;

impl EventOut for Discard {
    fn emit(&mut self, _: Event, _: Option<CommandId>) {}

    fn view(&self, _: &mut dyn FnMut(&opencti_core::machine::Desk)) {}
}

/// Locks `board` (nothing panics while holding it; a poisoned lock still guards a
/// consistent board).
pub(crate) fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the dialplan again every `dialplan_recheck` while the link is up; when what it
/// withholds changed since the last read (a context was added or removed by a `dialplan
/// reload`, or Asterisk finished loading its dialplan after the link logged in to an
/// Asterisk still starting), every line reads its state again and so gets the new list,
/// without a reconnect. Ends when the link stops or is dropped.
async fn recheck_dialplan(shared: Weak<Shared>) {
    loop {
        let every = match shared.upgrade() {
            Some(shared) => shared.config.timeouts.dialplan_recheck,
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Some(client) = shared.client.get().filter(|c| c.is_up()) else {
            continue;
        };
        let now = crate::withheld::by_dialplan(client, &shared.config).await;
        if *shared.dialplan() == now {
            continue;
        }
        tracing::info!(
            withheld = now.len(),
            "AMI: the dialplan changed what it allows; every line reads its state again"
        );
        *shared.dialplan() = now;
        if let Some(status) = shared.status.get() {
            status.resync();
        }
    }
}

/// What a read of the switch's state gives: channels, bridges, the queues' status (its
/// `QueueParams`, `QueueMember` and `QueueEntry` items), and what the dialplan withholds.
type Lists = (Vec<Message>, Vec<Message>, Vec<Message>, Vec<Withheld>);

struct Shared {
    config: Arc<AmiConfig>,
    client: Arc<OnceLock<AmiClient>>,
    board: Arc<Mutex<Board>>,
    /// Open lines by device id.
    lines: Mutex<HashMap<String, AmiLine>>,
    /// Queues of lines that work in others than the config's, by device id.
    line_queues: Mutex<HashMap<String, Vec<String>>>,
    status: OnceLock<LinkStatus>,
    stopped: AtomicBool,
    /// What the dialplan withheld when last read.
    dialplan: Mutex<Vec<Withheld>>,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, HashMap<String, AmiLine>> {
        // Nothing panics while holding it; a poisoned lock still guards a valid map.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dialplan(&self) -> MutexGuard<'_, Vec<Withheld>> {
        self.dialplan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn line_queues(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.line_queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queues line `device` works in.
    fn queues_of(&self, device: &str) -> Vec<String> {
        self.line_queues()
            .get(device)
            .cloned()
            .unwrap_or_else(|| self.config.queues.clone())
    }

    /// Every queue any line works in, each once.
    fn all_queues(&self) -> Vec<String> {
        let mut queues = self.config.queues.clone();
        for more in self.line_queues().values() {
            for queue in more {
                if !queues.contains(queue) {
                    queues.push(queue.clone());
                }
            }
        }
        queues
    }

    /// Sends the hang-ups the lines asked for.
    fn follow_up(&self, follow_ups: Vec<FollowUp>) {
        let Some(client) = self.client.get() else {
            return;
        };
        for f in follow_ups {
            let FollowUp::Hangup { channel } = f;
            if let Ok(a) = hangup_action(&channel, 16) {
                client.send_detached(a);
            }
        }
    }

    /// Runs `f` on the switchboard and the sinks, then sends the follow-ups wanted.
    fn with_board<T>(&self, f: impl FnOnce(&mut Switchboard, &mut Sinks) -> T) -> T {
        let (result, follow_ups) = {
            let mut board = lock(&self.board);
            let Board { switchboard, sinks } = &mut *board;
            let result = f(switchboard, sinks);
            (result, switchboard.take_follow_ups())
        };
        self.follow_up(follow_ups);
        result
    }
}

/// The reader's side: every event goes through the switchboard to the lines it
/// concerns.
struct Events(Arc<Shared>);

impl ClientEvents for Events {
    fn connected(&self, banner: &Banner) {
        if self.0.stopped.load(Ordering::SeqCst) {
            return;
        }
        tracing::info!(banner = %banner, "AMI: logged in");
        // Nothing is translated until the state has been read from the lists.
        lock(&self.0.board).switchboard.connected();
        if let Some(status) = self.0.status.get() {
            status.up();
        }
    }

    fn event(&self, event: Message) -> bool {
        self.0
            .with_board(|switchboard, sinks| switchboard.on_event(&event, sinks))
    }

    fn events(&self, events: &mut Vec<Message>) -> bool {
        // One lock for a read's worth of events.
        self.0.with_board(|switchboard, sinks| {
            events
                .drain(..)
                .all(|event| switchboard.on_event(&event, sinks))
        })
    }

    fn disconnected(&self, reason: &str) {
        if self.0.stopped.load(Ordering::SeqCst) {
            return;
        }
        let reason = format!("Asterisk AMI: {reason}");
        {
            let mut board = lock(&self.0.board);
            let Board { switchboard, sinks } = &mut *board;
            switchboard.link_down(&reason, sinks.queues());
        }
        if let Some(status) = self.0.status.get() {
            status.down(&reason);
        }
    }
}

/// One AMI connection serving any number of lines: share it between the sessions of a
/// contact centre with `opencti_core::SharedLink`, or run it for a single line with
/// [`AmiConnector`](crate::AmiConnector). Cheap to clone; clones share the connection.
///
/// Every line uses the config's agent settings (`outbound_context`, `hold`,
/// `conference_context`, `answer`, `caller_id`) and its queues, unless
/// [`set_queues`](AmiLink::set_queues) gave the line queues of its own; its device is the
/// session's device id (`PJSIP/1001`, `Local/1001@agents`).
///
/// ```no_run
/// # async fn centre() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use opencti_asterisk_ami::{AmiConfig, AmiLink};
/// use opencti_core::{AgentId, DesktopInterfaceExt, DeviceId, SharedLink};
///
/// let mut config = AmiConfig::new("127.0.0.1:5038", "opencti", opencti_asterisk_ami::secret_from_file("/run/secrets/ami")?);
/// config.queues = vec!["support".into()];
/// let link = SharedLink::start(Arc::new(AmiLink::new(config)?)).await?;
/// let alice = link.session(AgentId::new("alice")?, DeviceId::new("PJSIP/1001")?).start().await?;
/// let bob = link.session(AgentId::new("bob")?, DeviceId::new("PJSIP/1002")?).start().await?;
/// alice.login().await?;
/// bob.login().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AmiLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AmiLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiLink")
            .field("address", &self.shared.config.address)
            .field("username", &self.shared.config.username)
            .field("lines", &self.shared.lines().len())
            .finish_non_exhaustive()
    }
}

impl AmiLink {
    /// A link with this config (checked now; nothing connects before `start`).
    pub fn new(config: AmiConfig) -> Result<AmiLink> {
        config.validate()?;
        let mut switchboard =
            Switchboard::new(config.limits.max_channels, config.limits.max_held_events);
        switchboard.report_queues(config.queues.clone());
        Ok(AmiLink {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                client: Arc::new(OnceLock::new()),
                board: Arc::new(Mutex::new(Board {
                    switchboard,
                    sinks: Sinks::default(),
                })),
                lines: Mutex::new(HashMap::new()),
                line_queues: Mutex::new(HashMap::new()),
                status: OnceLock::new(),
                stopped: AtomicBool::new(false),
                dialplan: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The config.
    pub fn config(&self) -> &AmiConfig {
        &self.shared.config
    }

    /// The AMI client, once started.
    pub fn client(&self) -> Option<&AmiClient> {
        self.shared.client.get()
    }

    /// The same link, keeping `board`'s figures for the link's queues (the config's
    /// `queues` and those given to lines with [`set_queues`](AmiLink::set_queues)): it
    /// applies Asterisk's queue events to it, `link_down` when the connection drops (or
    /// the link stops), and after every (re)connect restores it from `QueueStatus`, read
    /// once for the link with the lines' state. The agents' states are the sessions'
    /// (follow each with [`QueueBoard::follow`]). See
    /// [Queue statistics](crate#queue-statistics).
    ///
    /// Give it before the link starts; given later, every line reads its state again so
    /// that the board is restored.
    ///
    /// ```no_run
    /// # async fn centre() -> opencti_core::Result<()> {
    /// use std::sync::Arc;
    /// use opencti_asterisk_ami::{AmiConfig, AmiLink};
    /// use opencti_core::queue::{QueueBoard, QueueStats};
    /// use opencti_core::{AgentId, DeviceId, SharedLink, Timestamp};
    ///
    /// let mut config = AmiConfig::new("127.0.0.1:5038", "opencti", opencti_asterisk_ami::secret_from_file("/run/secrets/ami")?);
    /// config.queues = vec!["support".into()];
    /// let now = Timestamp::now();
    /// let board = QueueBoard::new(QueueStats::new(now), now);
    /// let link = SharedLink::start(Arc::new(AmiLink::new(config)?.with_queue_board(board.clone()))).await?;
    /// let alice = link.session(AgentId::new("alice")?, DeviceId::new("PJSIP/1001")?).start().await?;
    /// board.follow(alice);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_queue_board(self, board: QueueBoard) -> AmiLink {
        lock(&self.shared.board).sinks.board = Some(board);
        if let Some(status) = self.shared.status.get() {
            status.resync();
        }
        self
    }

    /// Rings `supervisor`'s device and joins it to the call on `agent`'s device, as
    /// `mode` says: Asterisk's `ChanSpy` with `q` (quiet), `E` (ends with the agent's
    /// call) and `w` (whisper) or `B` (barge). Answered once Asterisk has queued the
    /// `Originate`; the supervisor's phone then rings. Refused as `bad_input` for a
    /// device that is not `TECH/resource`, and as `link_down` while the link is down.
    pub async fn monitor(
        &self,
        supervisor: &opencti_core::DeviceId,
        agent: &opencti_core::DeviceId,
        mode: opencti_core::MonitorMode,
    ) -> Result<()> {
        let client = match self.shared.client.get() {
            Some(c) if c.is_up() => c,
            _ => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    "the link to the Asterisk AMI is down",
                ))
            }
        };
        crate::monitor::monitor(client, supervisor, agent, mode).await
    }

    /// Reads the switch's state: `CoreShowChannels`, `BridgeList`, `QueueStatus` of
    /// each queue (its `QueueParams`, `QueueMember` and `QueueEntry` items), and what
    /// the dialplan withholds.
    async fn read_lists(&self, client: &AmiClient) -> Result<Lists> {
        let channels = client
            .send_list(action("CoreShowChannels", &[])?)
            .await?
            .items;
        // Bridge types only; membership comes with each channel's BridgeId, so a user
        // without the class BridgeList needs is not fatal.
        let bridges = match client.send_list(action("BridgeList", &[])?).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "AMI: BridgeList failed; bridge types unknown");
                Vec::new()
            }
        };
        let mut status = Vec::new();
        for queue in &self.shared.all_queues() {
            let list = client
                .send_list(action("QueueStatus", &[("Queue", queue)])?)
                .await?;
            status.extend(list.items.into_iter().filter(|m| {
                matches!(
                    m.event(),
                    Some("QueueMember" | "QueueParams" | "QueueEntry")
                )
            }));
        }
        let withheld = crate::withheld::by_dialplan(client, &self.shared.config).await;
        *self.shared.dialplan() = withheld.clone();
        Ok((channels, bridges, status, withheld))
    }

    /// Line `device` works in `queues` rather than the config's (the agents of a contact
    /// centre work in different queues). Takes effect for a line opened afterwards.
    pub fn set_queues(&self, device: &opencti_core::DeviceId, queues: Vec<String>) -> Result<()> {
        for queue in &queues {
            crate::action::AmiValue::new(queue.as_str()).map_err(|e| {
                Error::new(ErrorKind::Config, format!("queue {queue:?}: {e}")).with_source(e)
            })?;
        }
        self.shared
            .line_queues()
            .insert(device.as_str().to_owned(), queues);
        let all = self.shared.all_queues();
        lock(&self.shared.board).switchboard.report_queues(all);
        Ok(())
    }

    fn line(&self, line: &Line) -> Result<AmiLine> {
        self.shared
            .lines()
            .get(line.device.as_str())
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("line {} is not open on this AMI link", line.device),
                )
            })
    }
}

#[async_trait]
impl SwitchLink for AmiLink {
    fn capabilities(&self) -> Capabilities {
        line::capabilities(&self.shared.config, !self.shared.line_queues().is_empty())
    }

    async fn start(&self, status: LinkStatus) -> Result<()> {
        if self.shared.status.set(status).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "this AMI link was started already",
            ));
        }
        let handler = Arc::new(Events(self.shared.clone()));
        let client = AmiClient::start((*self.shared.config).clone(), handler).await?;
        let _ = self.shared.client.set(client);
        tokio::spawn(recheck_dialplan(Arc::downgrade(&self.shared)));
        Ok(())
    }

    async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()> {
        let queues = self.shared.queues_of(line.device.as_str());
        let book = AmiLine::book(&self.shared.config, line, &queues)?;
        let device = book.interface().to_owned();
        let taken = || {
            Error::new(
                ErrorKind::InvalidState,
                format!("line {} is open on this AMI link already", line.device),
            )
        };
        let mut lines = self.shared.lines();
        if lines.contains_key(line.device.as_str()) {
            return Err(taken());
        }
        let id = {
            let mut board = lock(&self.shared.board);
            let id = board.switchboard.add(book, false).ok_or_else(taken)?;
            board.switchboard.set_agent(id, line.agent.clone());
            board.sinks.set(id, Some(sink));
            id
        };
        let opened = AmiLine::new(
            self.shared.config.clone(),
            self.shared.client.clone(),
            self.shared.board.clone(),
            id,
            line,
            device,
            queues,
        );
        lines.insert(line.device.as_str().to_owned(), opened);
        Ok(())
    }

    async fn close_line(&self, line: &Line) -> Result<()> {
        let closed = self.shared.lines().remove(line.device.as_str());
        if let Some(closed) = closed {
            closed.close();
            self.shared.with_board(|switchboard, sinks| {
                switchboard.remove(closed.id(), sinks);
                sinks.set(closed.id(), None);
            });
        }
        Ok(())
    }

    async fn submit(&self, line: &Line, request: Request) -> Result<()> {
        self.line(line)?.submit(request).await
    }

    async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>> {
        let client = match self.shared.client.get() {
            Some(c) if c.is_up() => c,
            _ => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    "the link to the Asterisk AMI is down",
                ))
            }
        };
        let open: Vec<AmiLine> = lines.iter().map(|l| self.line(l)).collect::<Result<_>>()?;
        lock(&self.shared.board).switchboard.begin_read();
        let read = self.read_lists(client).await;
        let mut board = lock(&self.shared.board);
        let Board { switchboard, sinks } = &mut *board;
        switchboard.end_read();
        let (channels, bridges, status, withheld) = read?;
        switchboard.rebuild_tracker(&channels, &bridges);
        if let Some(queues) = sinks.queues() {
            let first_read: Vec<LineId> = open
                .iter()
                .map(AmiLine::id)
                .filter(|&id| switchboard.is_unread(id))
                .collect();
            switchboard.restore_queues(&status, &first_read, queues);
        }
        open.iter()
            .map(|line| {
                let id = line.id();
                let mut state = switchboard
                    .rebuild_line(id, &status, sinks.output(id))
                    .ok_or_else(|| Error::new(ErrorKind::InvalidState, "the line is closed"))?;
                state.withheld.extend(withheld.iter().cloned());
                Ok(state)
            })
            .collect()
    }

    fn resynced(&self, line: &Line) {
        if let Ok(line) = self.line(line) {
            self.shared
                .with_board(|switchboard, sinks| switchboard.resynced(line.id(), sinks));
        }
    }

    async fn stop(&self) -> Result<()> {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(client) = self.shared.client.get() {
            client.stop().await;
        }
        for line in self.shared.lines().drain().map(|(_, l)| l) {
            line.close();
        }
        // The board's figures stop following Asterisk, as the sessions hear `link_down`.
        let mut board = lock(&self.shared.board);
        let Board { switchboard, sinks } = &mut *board;
        switchboard.link_down("Asterisk AMI: the link was stopped", sinks.queues());
        Ok(())
    }
}
