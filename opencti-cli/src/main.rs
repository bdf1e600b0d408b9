//! `opencti`: simulated contact centres, planner figures, and the desktop protocol over
//! JSON lines.

#![forbid(unsafe_code)]

mod ami;
mod connect;
mod deployment;
mod lines;
mod link;
mod log;
mod nats;
mod panel;
mod serve;
mod sim;
mod sip;
mod staffing;

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
    /// Serve a whole contact centre from a deployment file: every agent signs in with
    /// an id and a password, on one link to the phone system.
    Serve(serve::ServeArgs),
    /// Run a deployment's link to its phone system as a service: every agent's session,
    /// served over NATS to the gateways of `opencti serve FILE --nats URL`.
    Link(link::LinkArgs),
    /// The simulated contact centre: planner figures for a whole day, and staffing
    /// over a range of agent counts.
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// Print the hash of a password (read from standard input, one line) for an agent's
    /// `password_hash` in a deployment file.
    HashPassword,
    /// Check a deployment file (the phone system, the agents, where to listen) and say
    /// what is wrong with it, if anything.
    CheckDeployment {
        /// The deployment file.
        file: PathBuf,
        /// Also check that the password on standard input (one line) signs this agent in.
        #[arg(long, value_name = "AGENT")]
        sign_in: Option<String>,
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
    match &cli.command {
        Top::HashPassword => return hash_password(),
        Top::CheckDeployment { file, sign_in } => {
            return check_deployment(file, sign_in.as_deref())
        }
        _ => {}
    }
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
            Top::Serve(args) => serve::run(args).await,
            Top::Link(args) => link::run(args).await,
            Top::Sim { .. } | Top::HashPassword | Top::CheckDeployment { .. } => Ok(()),
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

/// `opencti hash-password`: one line from standard input, its hash on standard output.
fn hash_password() -> ExitCode {
    let password = match read_line() {
        Ok(line) => line,
        Err(e) => {
            eprintln!("opencti: {e}");
            return ExitCode::FAILURE;
        }
    };
    match deployment::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("opencti: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line from standard input, without its line ending.
fn read_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `opencti check-deployment FILE [--sign-in AGENT]`.
fn check_deployment(file: &std::path::Path, sign_in: Option<&str>) -> ExitCode {
    match deployment::Deployment::load(file) {
        Ok(d) => {
            let log = match &d.crm.sqlite {
                Some(path) => format!("the call log in {}", path.display()),
                None => "no CRM".to_owned(),
            };
            let https = if d.tls_files().is_some() {
                " over HTTPS"
            } else {
                ""
            };
            println!(
                "{}: {} agents on {}, listening on {}{https}, {log}",
                file.display(),
                d.agents.len(),
                d.phone_system,
                d.listen.address.get_ref()
            );
            for agent in &d.agents {
                println!(
                    "  {} ({}) at {}",
                    agent.id.get_ref(),
                    agent.name,
                    agent.device.get_ref()
                );
            }
            let mut problems = d.unreadable_files();
            // Files that are there must also hold a certificate and its key (one that is
            // missing is reported above already).
            if let Some((certificate, key)) = d.tls_files() {
                if certificate.exists() && key.exists() {
                    if let Err(e) = opencti_gateway::Tls::from_pem_files(certificate, key) {
                        problems.push(format!("listen: {}", e.message()));
                    }
                }
            }
            for problem in &problems {
                eprintln!("opencti: {}: {problem}", file.display());
            }
            let mut ok = problems.is_empty();
            if let Some(agent) = sign_in {
                let signed_in =
                    read_line().is_ok_and(|password| d.sign_in(agent, &password).is_some());
                // Like the sign-in page: the same answer for an unknown agent.
                println!(
                    "sign-in as {agent}: {}",
                    if signed_in { "accepted" } else { "refused" }
                );
                ok &= signed_in;
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("opencti: {e}");
            ExitCode::FAILURE
        }
    }
}
