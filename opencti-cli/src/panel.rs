//! `opencti panel`: the gateway and the Call Control Panel on a simulated centre.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use opencti_core::{Error, ErrorKind, Result};
use opencti_gateway::{Gateway, Limits, SimSessions, SqliteCrm, TokenTable};

/// Options of `opencti panel`.
#[derive(Debug, Args)]
pub(crate) struct PanelArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The phone system behind the panel.
    #[arg(long, value_enum, default_value_t = PanelBackend::Sim)]
    backend: PanelBackend,
    /// The scenario for the simulator (default: the built-in demo centre).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// The SQLite CRM for screen pops and the call log (default: a demo database in the
    /// temporary directory, seeded with the demo callers).
    #[arg(long)]
    crm: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PanelBackend {
    /// A live simulated contact centre, with calls arriving for the demo agents.
    Sim,
}

pub(crate) async fn run(args: PanelArgs) -> Result<()> {
    let PanelBackend::Sim = args.backend;
    let scenario = crate::load_scenario(args.scenario.as_ref())?;
    let switch = scenario.switch()?;
    let tokens = TokenTable::new();
    let mut logins = Vec::new();
    for agent in &scenario.centre.agents {
        let token = tokens.issue(agent.id.clone(), agent.device.clone())?;
        logins.push((agent.id.clone(), agent.device.clone(), token));
    }
    let crm_path = args
        .crm
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("opencti-demo-crm.sqlite"));
    let crm = SqliteCrm::open(&crm_path)?;
    crm.seed_demo()?;
    let gateway = Gateway::with_crm(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(crm),
    );
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
    let _calls = scenario.play(&switch);
    println!(
        "opencti panel: {} on a simulated contact centre",
        scenario.name
    );
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
