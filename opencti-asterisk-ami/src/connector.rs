//! [`AmiConnector`]: an [`AmiLink`] serving a single line, as an
//! `opencti_core::Connector` for `Session::builder`: for a tool or a test with one
//! agent. A contact centre shares one [`AmiLink`] between every agent's session with
//! `opencti_core::SharedLink`, so that Asterisk sees one AMI connection, not one per
//! agent.

use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::{Capabilities, Connector, EventSink, Line, Request, Result, SwitchState};

use crate::client::AmiClient;
use crate::config::AmiConfig;
use crate::link::AmiLink;

/// One agent's connection to Asterisk. Create one per session; clones share it.
///
/// ```no_run
/// # async fn demo() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use opencti_asterisk_ami::{AmiConfig, AmiConnector, Secret};
/// use opencti_core::{AgentId, DeviceId, Session};
///
/// let mut config = AmiConfig::new("127.0.0.1:5038", "opencti", opencti_asterisk_ami::secret_from_file("/run/secrets/ami")?);
/// config.queues = vec!["support".into()];
/// let connector = Arc::new(AmiConnector::new(config)?);
/// let session = Session::builder(connector, AgentId::new("alice")?, DeviceId::new("PJSIP/1001")?)
///     .start()
///     .await?;
/// # drop(session); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AmiConnector {
    link: AmiLink,
    line: Arc<dyn Connector>,
}

impl AmiConnector {
    /// A connector with this config (checked now; nothing connects before `start`).
    pub fn new(config: AmiConfig) -> Result<AmiConnector> {
        let link = AmiLink::new(config)?;
        let line = opencti_core::one_line(Arc::new(link.clone()));
        Ok(AmiConnector { link, line })
    }

    /// The config.
    pub fn config(&self) -> &AmiConfig {
        self.link.config()
    }

    /// The AMI client, once started.
    pub fn client(&self) -> Option<&AmiClient> {
        self.link.client()
    }
}

#[async_trait]
impl Connector for AmiConnector {
    fn capabilities(&self) -> Capabilities {
        self.line.capabilities()
    }

    async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
        self.line.start(line, sink).await
    }

    async fn submit(&self, request: Request) -> Result<()> {
        self.line.submit(request).await
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        self.line.snapshot().await
    }

    fn resynced(&self) {
        self.line.resynced();
    }

    async fn stop(&self) -> Result<()> {
        self.line.stop().await
    }
}
