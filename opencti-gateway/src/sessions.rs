//! One session per agent, started on first use and shared by all of its connections.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::{Result, Session};
use tokio::sync::Mutex;

use crate::auth::Grant;
use crate::crm::{Crm, ScreenPop};

/// Starts the session for a grant: whatever connector the integrator chose (the
/// simulator, Asterisk, SIP, their own).
#[async_trait]
pub trait SessionFactory: Send + Sync {
    /// A started session for `grant`'s agent at its device.
    async fn start(&self, grant: &Grant) -> Result<Session>;
}

/// One agent's session, and the screen pops for its browsers.
#[derive(Clone)]
pub(crate) struct AgentSession {
    pub(crate) session: Session,
    pub(crate) pops: tokio::sync::broadcast::Sender<Arc<ScreenPop>>,
}

/// Sessions started so far, by grant. Browser reconnects get the same session, so its
/// state and its pending commands survive a page reload.
pub(crate) struct Sessions {
    factory: Arc<dyn SessionFactory>,
    pub(crate) crm: Arc<dyn Crm>,
    started: Mutex<HashMap<Grant, AgentSession>>,
}

impl Sessions {
    pub(crate) fn new(factory: Arc<dyn SessionFactory>, crm: Arc<dyn Crm>) -> Self {
        Sessions {
            factory,
            crm,
            started: Mutex::new(HashMap::new()),
        }
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
        crate::crm::watch(session.clone(), self.crm.clone(), pops.clone());
        log_links(&session, grant.clone());
        let desk = AgentSession { session, pops };
        started.insert(grant.clone(), desk.clone());
        Ok(desk)
    }
}

/// Logs the session's link going down, coming up and the resync after it.
fn log_links(session: &Session, grant: Grant) {
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
    async fn start(&self, grant: &Grant) -> Result<Session> {
        let connector = Arc::new(self.switch.connector(grant.device.clone()));
        Session::builder(connector, grant.agent.clone(), grant.device.clone())
            .start()
            .await
    }
}
