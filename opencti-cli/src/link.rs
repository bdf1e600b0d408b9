//! `opencti link FILE --nats URL`: the link to a deployment's phone system as a service,
//! serving every agent's session to the site's gateways over NATS.

use std::path::PathBuf;

use clap::Args;
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Result, Timestamp};
use opencti_gateway::Grant;
use opencti_nats::LineService;

use crate::deployment::Deployment;
use crate::nats::{connect, NatsArgs};

/// Options of `opencti link`.
#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// The deployment file (see `examples/deployments/`): its phone system and agents.
    file: PathBuf,
    #[command(flatten)]
    nats: NatsArgs,
    /// Log session starts, refusals and link changes on standard error, at this level
    /// and above: error, warn, info, debug or trace (default: no log).
    #[arg(long, value_name = "LEVEL")]
    log: Option<tracing::Level>,
}

pub(crate) async fn run(args: LinkArgs) -> Result<()> {
    if let Some(level) = args.log {
        crate::log::init(level);
    }
    let url = args.nats.nats.as_deref().ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "opencti link serves the agents' sessions on NATS: give --nats URL",
        )
    })?;
    let deployment =
        Deployment::load(&args.file).map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
    let (client, site) = connect(url, &args.nats.site).await?;
    let (sessions, _board) = crate::serve::sessions(&deployment).await?;
    let service = LineService::new(client, site.clone());
    let mut served = Vec::new();
    for agent in &deployment.agents {
        let grant = Grant::agent(
            AgentId::new(agent.id.get_ref())?,
            DeviceId::new(agent.device.get_ref())?,
        );
        let line = sessions.start(&grant).await?;
        served.push(service.serve(line, Timestamp::now()).await?);
    }
    println!(
        "opencti link: {} agents on {}, served on {url} as site {site}. Ctrl-C stops.",
        served.len(),
        deployment.phone_system
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::new(ErrorKind::Other, format!("waiting for Ctrl-C: {e}")))
}
