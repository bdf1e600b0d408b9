//! One session per agent, started on first use and shared by all of its connections.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::queue::{QueueBoard, QueueView};
use opencti_core::{AgentId, Error, ErrorKind, LineAccess, MonitorMode, Result, Session, Snapshot};
use tokio::sync::{broadcast, Mutex};

use crate::auth::Grant;
use crate::crm::{Crm, ScreenPop};

/// How far a supervisor's view may fall behind the agents' changes before it reads
/// everything again.
const ROSTER_BUFFER: usize = 4096;

/// One agent's line as the gateway serves it: a [`Session`] in this process, or a session
/// that runs elsewhere reached through a transport (see [`LineAccess`]).
pub type AgentLine = Arc<dyn LineAccess>;

/// Starts the session for a grant: whatever connector the integrator chose (the
/// simulator, Asterisk, SIP, their own), in this process or, through a transport, in
/// another one.
#[async_trait]
pub trait SessionFactory: Send + Sync {
    /// The started session for `grant`'s agent at its device.
    async fn start(&self, grant: &Grant) -> Result<AgentLine>;

    /// Whether [`monitor`](SessionFactory::monitor) can work here: supervisors are
    /// offered listening in only where it does. The default says no.
    fn can_monitor(&self) -> bool {
        false
    }

    /// Rings `supervisor`'s device and joins it to the call on `agent`'s device, as
    /// `mode` says. Phone systems that cannot keep the default, which refuses as
    /// `unsupported`.
    async fn monitor(&self, supervisor: &Grant, agent: &Snapshot, mode: MonitorMode) -> Result<()> {
        let _ = (supervisor, agent);
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "this phone system cannot {} on an agent's call",
                mode.as_str()
            ),
        ))
    }
}

/// One agent's session, and the screen pops for its browsers.
#[derive(Clone)]
pub(crate) struct AgentSession {
    pub(crate) session: AgentLine,
    pub(crate) pops: tokio::sync::broadcast::Sender<Arc<ScreenPop>>,
}

/// Sessions started so far, by grant. Browser reconnects get the same session, so its
/// state and its pending commands survive a page reload.
pub(crate) struct Sessions {
    pub(crate) factory: Arc<dyn SessionFactory>,
    pub(crate) crm: Arc<dyn Crm>,
    started: Mutex<HashMap<Grant, AgentSession>>,
    /// Every session's snapshot after each of its events, for supervisors.
    roster: broadcast::Sender<Arc<Snapshot>>,
    /// The queue board every session's agent state goes to, if it runs here.
    pub(crate) board: Option<QueueBoard>,
    /// The queues' figures supervisors and agents read: the board's, or a copy of a
    /// board that runs elsewhere.
    pub(crate) view: Option<Arc<dyn QueueView>>,
    /// Whether this gateway writes its sessions' calls to the CRM's call log.
    pub(crate) log_calls: bool,
}

impl Sessions {
    pub(crate) fn new(
        factory: Arc<dyn SessionFactory>,
        crm: Arc<dyn Crm>,
        board: Option<QueueBoard>,
        view: Option<Arc<dyn QueueView>>,
        log_calls: bool,
    ) -> Self {
        // A board that runs here is what its readers read, unless told otherwise.
        let view = view.or_else(|| {
            board
                .clone()
                .map(|board| Arc::new(board) as Arc<dyn QueueView>)
        });
        Sessions {
            factory,
            crm,
            started: Mutex::new(HashMap::new()),
            roster: broadcast::channel(ROSTER_BUFFER).0,
            board,
            view,
            log_calls,
        }
    }

    /// The queues' figures, if the gateway has them.
    pub(crate) fn queues(&self) -> Option<&Arc<dyn QueueView>> {
        self.view.as_ref()
    }

    /// Every agent's session now, by agent id.
    pub(crate) async fn snapshots(&self) -> Vec<Snapshot> {
        let started = self.started.lock().await;
        let mut all: Vec<Snapshot> = started
            .values()
            .map(|desk| opencti_core::DesktopInterface::snapshot(&desk.session))
            .collect();
        all.sort_by(|a, b| a.agent.cmp(&b.agent));
        all
    }

    /// The session of `agent`, if it has one here.
    pub(crate) async fn of_agent(&self, agent: &AgentId) -> Option<AgentLine> {
        let started = self.started.lock().await;
        started
            .iter()
            .find(|(grant, _)| &grant.agent == agent)
            .map(|(_, desk)| desk.session.clone())
    }

    /// Each session's snapshot after every change, from now on.
    pub(crate) fn follow_roster(&self) -> broadcast::Receiver<Arc<Snapshot>> {
        self.roster.subscribe()
    }

    pub(crate) async fn for_grant(&self, grant: &Grant) -> Result<AgentSession> {
        let mut started = self.started.lock().await;
        if let Some(desk) = started.get(grant) {
            return Ok(desk.clone());
        }
        let session = match self.factory.start(grant).await {
            Ok(session) => session,
            Err(error) => {
                tracing::warn!(agent = %grant.agent, device = %grant.device, %error, "the session did not start");
                return Err(error);
            }
        };
        tracing::info!(agent = %grant.agent, device = %grant.device, "session started");
        let (pops, _) = tokio::sync::broadcast::channel(64);
        crate::crm::watch(
            session.clone(),
            self.crm.clone(),
            pops.clone(),
            self.log_calls,
        );
        log_links(&session, grant.clone());
        publish_changes(&session, self.roster.clone());
        if let Some(board) = &self.board {
            board.follow(session.clone());
        }
        let desk = AgentSession { session, pops };
        started.insert(grant.clone(), desk.clone());
        Ok(desk)
    }
}

/// Publishes the session's snapshot after each of its events (and once now).
fn publish_changes(session: &AgentLine, roster: broadcast::Sender<Arc<Snapshot>>) {
    use futures::StreamExt;
    let mut events = opencti_core::DesktopInterface::subscribe(session);
    let session = session.clone();
    let _ = roster.send(Arc::new(opencti_core::DesktopInterface::snapshot(&session)));
    tokio::spawn(async move {
        // After a lag the snapshot is whole all the same.
        while events.next().await.is_some() {
            // Nobody following (no supervisor yet): no snapshot to make.
            if roster.receiver_count() == 0 {
                continue;
            }
            let snapshot = opencti_core::DesktopInterface::snapshot(&session);
            let _ = roster.send(Arc::new(snapshot));
        }
    });
}

/// Logs the session's link going down, coming up and the resync after it.
fn log_links(session: &AgentLine, grant: Grant) {
    use futures::StreamExt;
    use opencti_core::Event;
    let mut events = opencti_core::DesktopInterface::subscribe(session);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // A lag only loses log lines: the session itself resynchronises its browsers.
            let Ok(event) = event else { continue };
            let (agent, device) = (&grant.agent, &grant.device);
            match &event.event {
                Event::LinkUp => tracing::info!(%agent, %device, "link up"),
                Event::LinkDown { reason } => {
                    tracing::warn!(%agent, %device, reason = %reason, "link down")
                }
                Event::Resynced { .. } => tracing::info!(%agent, %device, "resynced"),
                _ => {}
            }
        }
    });
}

/// Sessions over a simulated switch: each agent's desktop gets the simulator's connector
/// for its device.
#[derive(Debug, Clone)]
pub struct SimSessions {
    switch: opencti_sim::SimSwitch,
}

impl SimSessions {
    /// Sessions on `switch`.
    pub fn new(switch: opencti_sim::SimSwitch) -> Self {
        SimSessions { switch }
    }
}

#[async_trait]
impl SessionFactory for SimSessions {
    async fn start(&self, grant: &Grant) -> Result<AgentLine> {
        let connector = Arc::new(self.switch.connector(grant.device.clone()));
        let session = Session::builder(connector, grant.agent.clone(), grant.device.clone())
            .start()
            .await?;
        Ok(Arc::new(session))
    }
}
