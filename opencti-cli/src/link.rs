//! `opencti link FILE --nats URL`: the link to a deployment's phone system as a service,
//! serving every agent's session to the site's gateways over NATS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Result, Timestamp};
use opencti_gateway::{NatsCallLogger, SqliteCrm};
use opencti_nats::async_nats::jetstream;
use opencti_nats::{leader, Lease, LineService, QueueFeed};

use crate::deployment::Deployment;
use crate::nats::{connect, NatsArgs};

/// Options of `opencti link`.
#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// The deployment file (see `examples/deployments/`): its phone system and agents.
    file: PathBuf,
    #[command(flatten)]
    nats: NatsArgs,
    /// This service's name among the site's link services (default: `link-<pid>`).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// How long the leader's lease lasts without renewal, in milliseconds: a standby
    /// takes over within about 1.25 times this after the leader dies.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    lease_ms: u64,
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
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("link-{}", std::process::id()));
    let jetstream = jetstream::new(client.clone());
    // One leader per site: the others wait, without touching the phone system.
    if let Some(leader) = leader(&jetstream, &site).await? {
        println!("opencti link: {name} stands by for site {site}: {leader} leads");
    }
    let lease = Lease::acquire(
        &jetstream,
        &site,
        &name,
        Duration::from_millis(args.lease_ms),
    )
    .await?;
    let (_, board, builder) = crate::serve::phone_system(&deployment).await?;
    // The call log, written once for the whole site by its leader, from the stream: a
    // leader that takes over goes on from where the last one stopped.
    let _call_log = match &deployment.crm.sqlite {
        Some(path) => {
            let crm = Arc::new(SqliteCrm::open(deployment.resolve(path))?);
            Some(NatsCallLogger::start(&jetstream, &site, "call-log", crm).await?)
        }
        None => None,
    };
    let service = LineService::new(client, site.clone());
    let mut served = Vec::new();
    for agent in &deployment.agents {
        let (agent, device) = (
            AgentId::new(agent.id.get_ref())?,
            DeviceId::new(agent.device.get_ref())?,
        );
        // Numbered on from what the site's desks last saw of the line.
        let previous = service.last_published(&agent, &device).await?;
        let from = previous.as_ref().map_or(0, |p| p.seq);
        let mut session = builder(agent, device);
        if let Some(previous) = previous {
            session = session.take_over(previous, format!("link service {name} took over"));
        }
        let (session, events) = session.start_with_events().await?;
        if let Some(board) = &board {
            board.follow(session.clone());
        }
        served.push(
            service
                .serve_events(session, events, from, Timestamp::now())
                .await?,
        );
    }
    // The queues' figures, where the phone system reports its queues.
    let _queues = board.map(|board| QueueFeed::start(jetstream.clone(), site.clone(), board));
    println!(
        "opencti link: {} agents on {}, served on {url} as site {site} by {name}. Ctrl-C stops.",
        served.len(),
        deployment.phone_system
    );
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => {
            // Handed over at once rather than when the lease runs out.
            lease.release().await;
            stopped.map_err(|e| Error::new(ErrorKind::Other, format!("waiting for Ctrl-C: {e}")))
        }
        _ = lease.lost() => Err(Error::new(
            ErrorKind::LinkDown,
            format!("{name} lost the lease of site {site}: another link service leads now; stopping"),
        )),
    }
}
