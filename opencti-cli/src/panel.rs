//! `opencti panel`: the gateway and the Call Control Panel on a simulated centre.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use opencti_core::{Error, ErrorKind, Result};
use opencti_gateway::{Gateway, Limits, SessionFactory, SimSessions, SqliteCrm, TokenTable};

/// Options of `opencti panel`.
#[derive(Debug, Args)]
pub(crate) struct PanelArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The SQLite CRM for screen pops and the call log (default: a demo database in the
    /// temporary directory, seeded with the demo callers).
    #[arg(long)]
    crm: Option<PathBuf>,
    /// Log sign-ins, session starts, refusals and link changes on standard error, at
    /// this level and above: error, warn, info, debug or trace (default: no log).
    #[arg(long, value_name = "LEVEL")]
    log: Option<tracing::Level>,
    /// The phone system behind the panel (default: the simulated demo centre).
    #[command(subcommand)]
    backend: Option<PanelBackend>,
}

/// The phone system behind the panel.
#[derive(Debug, Subcommand)]
enum PanelBackend {
    /// A live simulated contact centre, with calls arriving for its agents.
    Sim {
        /// A scenario file (default: the built-in demo centre).
        scenario: Option<PathBuf>,
    },
    /// Asterisk over AMI, for one agent at one device.
    Ami(Box<crate::ami::ConnectArgs>),
    /// A SIP line registered to a PBX or registrar, for one agent.
    Sip(Box<crate::sip::SipArgs>),
}

pub(crate) async fn run(args: PanelArgs) -> Result<()> {
    if let Some(level) = args.log {
        crate::log::init(level);
    }
    let tokens = TokenTable::new();
    let mut logins = Vec::new();
    let mut issue =
        |agent: &opencti_core::AgentId, device: &opencti_core::DeviceId| -> Result<()> {
            let token = tokens.issue(agent.clone(), device.clone())?;
            logins.push((agent.clone(), device.clone(), token));
            Ok(())
        };
    let (sessions, title, play): (Arc<dyn SessionFactory>, String, Option<_>) = match args.backend {
        backend @ (None | Some(PanelBackend::Sim { .. })) => {
            let path = match backend {
                Some(PanelBackend::Sim { scenario }) => scenario,
                _ => None,
            };
            let mut scenario = crate::load_scenario(path.as_ref())?;
            // Call ids no earlier run used: the call log keeps every run's calls.
            scenario.centre.call_ids = opencti_sim::CentreConfig::unique_call_ids();
            let switch = scenario.switch()?;
            for agent in &scenario.centre.agents {
                issue(&agent.id, &agent.device)?;
            }
            let title = format!("{} on a simulated contact centre", scenario.name);
            (
                Arc::new(SimSessions::new(switch.clone())),
                title,
                Some((scenario, switch)),
            )
        }
        Some(PanelBackend::Ami(ami)) => {
            let grant = ami.grant()?;
            issue(&grant.agent, &grant.device)?;
            (
                Arc::new(crate::ami::AmiSessions::new(&ami)?),
                "Asterisk over AMI".to_string(),
                None,
            )
        }
        Some(PanelBackend::Sip(sip)) => {
            let grant = sip.grant()?;
            issue(&grant.agent, &grant.device)?;
            (
                Arc::new(crate::sip::SipSessions::new(*sip)),
                "a SIP line".to_string(),
                None,
            )
        }
    };
    let crm_path = args
        .crm
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("opencti-demo-crm.sqlite"));
    let crm = SqliteCrm::open(&crm_path)?;
    crm.seed_demo()?;
    let gateway = Gateway::with_crm(Arc::new(tokens), sessions, Limits::default(), Arc::new(crm));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot listen on {}: {}", args.listen, e),
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
    let _calls = play.map(|(scenario, switch)| scenario.play(&switch));
    println!("opencti panel: {}", title);
    for (agent, device, token) in &logins {
        println!(
            "  agent {} at {}: http://{}/#token={}",
            agent,
            device,
            address,
            token.expose()
        );
    }
    println!("CRM (contacts and call log): {}", crm_path.display());
    println!("Open the first link in a browser. Ctrl-C stops.");
    tokio::select! {
        served = gateway.serve(listener) => served.map_err(|e| Error::new(ErrorKind::Other, e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
