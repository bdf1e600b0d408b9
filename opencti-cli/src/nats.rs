//! A deployment spread over processes through NATS: the options both sides take, and
//! the gateway's lines reached in the link service.

use std::sync::Arc;

use clap::Args;
use opencti_core::{Error, ErrorKind, Result};
use opencti_gateway::{AgentLine, Grant, SessionFactory};
use opencti_nats::async_nats;
use opencti_nats::async_nats::jetstream;
use opencti_nats::{ensure_stream, RemoteLines, Site, StreamLimits};

/// Where the services of a site meet.
#[derive(Debug, Clone, Args)]
pub(crate) struct NatsArgs {
    /// Run as one service of several that meet on this NATS server (with JetStream):
    /// `opencti link` serves the agents' sessions there; `opencti serve --nats` serves
    /// browsers from it, with no phone system of its own.
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,
    /// The site's name on NATS (one contact centre: one stream, one subject tree): 1 to
    /// 64 ASCII letters, digits, `-` or `_`.
    #[arg(long, value_name = "NAME", default_value = "centre")]
    pub(crate) site: String,
}

/// A connection to the site's NATS server, and its stream made sure of.
pub(crate) async fn connect(url: &str, site: &str) -> Result<(async_nats::Client, Site)> {
    let site = Site::new(site)?;
    // Reconnects without end once connected; the first connection must succeed.
    let client = async_nats::ConnectOptions::new()
        .name(format!("opencti site {site}"))
        .connect(url)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::LinkDown,
                format!("cannot reach NATS at {url}: {e}"),
            )
        })?;
    ensure_stream(
        &jetstream::new(client.clone()),
        &site,
        &StreamLimits::default(),
    )
    .await?;
    Ok((client, site))
}

/// Agents' lines whose sessions run in the site's link service.
pub(crate) struct NatsLines(pub(crate) RemoteLines);

#[async_trait::async_trait]
impl SessionFactory for NatsLines {
    async fn start(&self, grant: &Grant) -> Result<AgentLine> {
        let line = self
            .0
            .open(grant.agent.clone(), grant.device.clone())
            .await?;
        Ok(Arc::new(line))
    }
}
