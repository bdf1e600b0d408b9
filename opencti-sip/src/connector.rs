//! [`SipConnector`]: the `opencti_core::Connector` that is one agent's SIP phone: a
//! [`SipLink`] run for exactly one line.

use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::{
    one_line, Capabilities, Connector, Dialable, Error, ErrorKind, EventSink, Line, Request,
    Result, SwitchState,
};

use crate::config::SipConfig;
use crate::link::SipLink;
use crate::monitor::DeviceEvents;

/// The SIP connector: registers the agent's line and acts as its phone. Cheap to clone;
/// clones share the line. One connector serves one session; a contact centre shares one
/// [`SipLink`] between its agents instead.
///
/// The line's account is the config's, whatever the session's device id.
///
/// ```no_run
/// # async fn demo() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use opencti_core::{AgentId, DeviceId, Session};
/// use opencti_sip::{Secret, SipConfig, SipConnector};
///
/// let config = SipConfig::new("10.0.0.5:5060".parse().unwrap(), "1001", opencti_sip::password_from_file("/run/secrets/sip")?);
/// let connector = Arc::new(SipConnector::new(config)?);
/// let session = Session::builder(connector, AgentId::new("alice")?, DeviceId::new("1001")?)
///     .start()
///     .await?;
/// # drop(session); Ok(()) }
/// ```
#[derive(Clone)]
pub struct SipConnector {
    link: SipLink,
    connector: Arc<dyn Connector>,
}

impl std::fmt::Debug for SipConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipConnector")
            .field("config", self.link.config())
            .field("registered", &self.is_registered())
            .finish_non_exhaustive()
    }
}

impl SipConnector {
    /// A connector with this config (checked now; nothing is sent before `start`).
    pub fn new(config: SipConfig) -> Result<SipConnector> {
        let link = SipLink::single(config)?;
        let connector = one_line(Arc::new(link.clone()));
        Ok(SipConnector { link, connector })
    }

    /// The config.
    pub fn config(&self) -> &SipConfig {
        self.link.config()
    }

    /// Whether the line is registered now.
    pub fn is_registered(&self) -> bool {
        self.link.is_up() && self.link.only_line().is_some_and(|l| l.is_registered())
    }

    /// The local SIP address, once started.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.link.local_addr()
    }

    /// Watches other extensions (busy lamp field): subscribes to the dialog event
    /// package (RFC 4235) of each and reports their state changes on the returned
    /// stream. Needs a started connector and a registrar with a presence server.
    pub async fn monitor(&self, extensions: &[Dialable]) -> Result<DeviceEvents> {
        let line = self.link.only_line().ok_or_else(|| {
            Error::new(
                ErrorKind::LinkDown,
                "the SIP connector is not started (or stopped)",
            )
        })?;
        line.monitor(extensions).await
    }
}

#[async_trait]
impl Connector for SipConnector {
    fn capabilities(&self) -> Capabilities {
        self.connector.capabilities()
    }

    async fn start(&self, line: &Line, sink: EventSink) -> Result<()> {
        self.connector.start(line, sink).await
    }

    async fn submit(&self, request: Request) -> Result<()> {
        self.connector.submit(request).await
    }

    async fn snapshot(&self) -> Result<SwitchState> {
        self.connector.snapshot().await
    }

    fn resynced(&self) {
        self.connector.resynced();
    }

    async fn stop(&self) -> Result<()> {
        self.connector.stop().await
    }
}
