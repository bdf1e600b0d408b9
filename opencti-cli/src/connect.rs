//! `opencti connect`: one agent's desktop over the JSON-lines protocol.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use opencti_core::{AgentId, Error, ErrorKind, Result, Session};

use crate::ami;

/// The phone system behind the desktop.
#[derive(Debug, Subcommand)]
pub(crate) enum Backend {
    /// A live simulated contact centre on the real clock.
    Sim {
        /// A scenario file (default: the built-in demo centre).
        scenario: Option<PathBuf>,
        /// The agent to serve (default: the scenario's first agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Asterisk over the Asterisk Manager Interface (AMI), plain TCP or TLS.
    Ami(Box<ami::ConnectArgs>),
    /// The agent's line as a SIP user agent registered to a PBX or registrar.
    Sip(Box<crate::sip::SipArgs>),
}

pub(crate) async fn run(backend: Backend) -> Result<()> {
    match backend {
        Backend::Sim { scenario, agent } => {
            let scenario = crate::load_scenario(scenario.as_ref())?;
            let agent = match agent {
                Some(a) => AgentId::new(a)?,
                None => scenario
                    .centre
                    .agents
                    .first()
                    .map(|a| a.id.clone())
                    .ok_or_else(|| Error::new(ErrorKind::Config, "the scenario has no agents"))?,
            };
            let device = scenario
                .centre
                .agents
                .iter()
                .find(|a| a.id == agent)
                .map(|a| a.device.clone())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!("agent {} is not in scenario {}", agent, scenario.name),
                    )
                })?;
            let switch = scenario.switch()?;
            let session =
                Session::builder(Arc::new(switch.connector(device.clone())), agent, device)
                    .start()
                    .await?;
            let _calls = scenario.play(&switch);
            let input = tokio::io::BufReader::new(tokio::io::stdin());
            crate::lines::serve(session, input, tokio::io::stdout())
                .await
                .map_err(|e| Error::new(ErrorKind::Other, format!("stdin/stdout: {}", e)))
        }
        Backend::Ami(args) => ami::connect(*args).await,
        Backend::Sip(args) => crate::sip::connect(*args).await,
    }
}
