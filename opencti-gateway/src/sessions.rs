//! One session per agent, started on first use and shared by all of its connections.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::{Result, Session};
use tokio::sync::Mutex;

use crate::auth::Grant;

/// Starts the session for a grant: whatever connector the integrator chose (the
/// simulator, Asterisk, SIP, their own).
#[async_trait]
pub trait SessionFactory: Send + Sync {
    /// A started session for `grant`'s agent at its device.
    async fn start(&self, grant: &Grant) -> Result<Session>;
}

/// Sessions started so far, by grant. Browser reconnects get the same session, so its
/// state and its pending commands survive a page reload.
pub(crate) struct Sessions {
    factory: Arc<dyn SessionFactory>,
    started: Mutex<HashMap<Grant, Session>>,
}

impl Sessions {
    pub(crate) fn new(factory: Arc<dyn SessionFactory>) -> Self {
        Sessions {
            factory,
            started: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn for_grant(&self, grant: &Grant) -> Result<Session> {
        let mut started = self.started.lock().await;
        if let Some(session) = started.get(grant) {
            return Ok(session.clone());
        }
        let session = self.factory.start(grant).await?;
        started.insert(grant.clone(), session.clone());
        Ok(session)
    }
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
