//! `opencti`: simulated contact centres, planner figures, and the desktop protocol over
//! JSON lines.

#![forbid(unsafe_code)]

mod ami;
mod connect;
mod lines;
mod log;
mod panel;
mod sim;
mod sip;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// opencti: computer-telephony integration from the command line.
#[derive(Debug, Parser)]
#[command(name = "opencti", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Serve one agent's desktop over the JSON-lines protocol on stdin/stdout.
    Connect {
        #[command(subcommand)]
        backend: connect::Backend,
    },
    /// Start the browser gateway with the Call Control Panel on a live simulated centre.
    Panel(panel::PanelArgs),
    /// The simulated contact centre: planner figures for a whole day.
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// Print every canonical event of every device of a phone system as JSON lines,
    /// until interrupted (for debugging an integration and recording sessions).
    Watch {
        #[command(subcommand)]
        backend: WatchBackend,
    },
}

/// The phone system to watch.
#[derive(Debug, Subcommand)]
enum WatchBackend {
    /// Asterisk over the Asterisk Manager Interface (AMI), plain TCP or TLS.
    Ami(Box<ami::WatchArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Top::Sim { command } = cli.command {
        // Pure computation: no runtime needed.
        return match sim::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("opencti: {}", e);
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opencti: cannot start the runtime: {}", e);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Top::Connect { backend } => connect::run(backend).await,
            Top::Panel(args) => panel::run(args).await,
            Top::Sim { .. } => Ok(()),
            Top::Watch {
                backend: WatchBackend::Ami(args),
            } => ami::watch(*args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opencti: {}", e);
            ExitCode::FAILURE
        }
    }
}

/// A scenario file, or the built-in demo centre.
pub(crate) fn load_scenario(
    path: Option<&PathBuf>,
) -> opencti_core::Result<opencti_sim::scenario::Scenario> {
    match path {
        Some(path) => opencti_sim::scenario::Scenario::from_path(path),
        None => opencti_sim::scenario::Scenario::from_toml(
            include_str!("../../scenarios/demo.toml"),
            "built-in demo scenario",
        ),
    }
}
