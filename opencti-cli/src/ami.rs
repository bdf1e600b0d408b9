//! Asterisk over AMI from the command line: `opencti connect ami` (one agent's desktop
//! over the JSON-lines protocol, as `connect sim`) and the watch of a whole Asterisk
//! (every device's canonical events as JSON lines, `opencti watch ami`).
//!
//! The secret comes from `--secret-file` (its first line), or from `--secret` with a
//! warning: a command line is visible to every user of the machine. It is never
//! printed: the arguments' `Debug` shows `<redacted>`, and the connector's errors never
//! contain it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use opencti_asterisk_ami::{
    AmiConfig, AmiConnector, AmiWatch, AnswerMode, AuthMethod, HoldConfig, Secret, TlsConfig,
    WatchConfig, WatchItem,
};
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Event, Result, Session, Timestamp};
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How to reach and log in to Asterisk's AMI.
#[derive(Debug, Args)]
pub(crate) struct AmiLink {
    /// Asterisk's AMI as HOST:PORT (5038 for plain TCP, 5039 for TLS).
    #[arg(long, value_name = "HOST:PORT")]
    address: String,
    /// The AMI user (a section of manager.conf).
    #[arg(long)]
    username: String,
    /// A file whose first line is the user's secret (preferred over --secret).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "secret",
        required_unless_present = "secret"
    )]
    secret_file: Option<PathBuf>,
    /// The secret itself. Visible to every user of this machine in the process list:
    /// prefer --secret-file.
    #[arg(long, value_name = "SECRET", value_parser = parse_secret)]
    secret: Option<Secret>,
    /// Log in with the secret in clear text instead of the MD5 challenge (for an
    /// Asterisk without MD5 support; use it over --tls).
    #[arg(long)]
    plaintext_login: bool,
    /// Speak TLS (Asterisk's tlsenable, usually on port 5039); needs --ca-file or
    /// --system-roots.
    #[arg(long)]
    tls: bool,
    /// PEM file with the CA certificate(s) that signed Asterisk's certificate.
    #[arg(long, value_name = "PATH", requires = "tls")]
    ca_file: Option<PathBuf>,
    /// Also trust the system's CA certificates.
    #[arg(long, requires = "tls")]
    system_roots: bool,
    /// The name Asterisk's certificate must carry (default: the host of --address).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
    /// The dialplan context that holds the hold extensions (`moh`, `wait`).
    #[arg(long, value_name = "CONTEXT", default_value = "hold")]
    hold_context: String,
    /// Hold is not set up in the dialplan: no hold and retrieve.
    #[arg(long, conflicts_with = "hold_context")]
    no_hold: bool,
}

fn parse_secret(text: &str) -> std::result::Result<Secret, String> {
    if text.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(Secret::new(text))
}

impl AmiLink {
    /// The connector's config (device, queues and contexts left at their defaults), and
    /// warnings about how the secret is handled, on stderr.
    fn config(&self) -> Result<AmiConfig> {
        let secret = match (&self.secret_file, &self.secret) {
            (Some(path), _) => opencti_asterisk_ami::secret_from_file(path)?,
            (None, Some(secret)) => {
                eprintln!(
                    "opencti: warning: --secret is visible to every user of this machine in the process list; prefer --secret-file"
                );
                secret.clone()
            }
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "give the AMI secret with --secret-file PATH",
                ))
            }
        };
        let mut config = AmiConfig::new(self.address.clone(), self.username.clone(), secret);
        if self.tls {
            if self.ca_file.is_none() && !self.system_roots {
                return Err(Error::new(
                    ErrorKind::Config,
                    "--tls needs --ca-file PATH (the CA that signed Asterisk's certificate) or --system-roots",
                ));
            }
            config.tls = Some(TlsConfig {
                ca_file: self.ca_file.clone(),
                system_roots: self.system_roots,
                server_name: self.server_name.clone(),
            });
        }
        if self.plaintext_login {
            if !self.tls {
                eprintln!(
                    "opencti: warning: --plaintext-login without --tls sends the secret over the network in clear text"
                );
            }
            config.auth = AuthMethod::Plaintext;
        }
        config.hold = (!self.no_hold).then(|| HoldConfig {
            context: self.hold_context.clone(),
            ..HoldConfig::default()
        });
        Ok(config)
    }
}

/// Options of `opencti connect ami`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    link: AmiLink,
    /// The agent to serve (the queue member name).
    #[arg(long, value_name = "ID")]
    agent: String,
    /// The agent's device as an Asterisk interface, such as PJSIP/1001.
    #[arg(long, value_name = "INTERFACE")]
    device: String,
    /// A queue the agent logs in to (repeat for several; none: no login, logout or
    /// agent states).
    #[arg(long = "queue", value_name = "QUEUE")]
    queues: Vec<String>,
    /// The dialplan context for calls the agent places, transfers and consultations.
    #[arg(long, value_name = "CONTEXT", default_value = "from-agents")]
    context: String,
    /// Caller id for calls the agent places, such as "Agent 1001" <1001>.
    #[arg(long, value_name = "CALLERID")]
    caller_id: Option<String>,
    /// The phone answers offered calls by itself (auto-answer), so `answer` is offered.
    #[arg(long)]
    auto_answer: bool,
    /// The dialplan context that puts a call into a ConfBridge room (see the AMI crate's
    /// README); turns conferences and drop party on.
    #[arg(long, value_name = "CONTEXT")]
    conference_context: Option<String>,
}

impl ConnectArgs {
    fn config(&self) -> Result<AmiConfig> {
        let mut config = self.link.config()?;
        config.device = Some(self.device.clone());
        config.queues = self.queues.clone();
        config.outbound_context = self.context.clone();
        config.caller_id = self.caller_id.clone();
        if self.auto_answer {
            config.answer = AnswerMode::PhoneAnswersItself;
        }
        config.conference_context = self.conference_context.clone();
        config.validate()?;
        Ok(config)
    }
}

impl ConnectArgs {
    /// The agent and device these options name.
    pub(crate) fn grant(&self) -> Result<opencti_gateway::Grant> {
        Ok(opencti_gateway::Grant::agent(
            AgentId::new(self.agent.clone())?,
            DeviceId::new(self.device.clone())?,
        ))
    }
}

/// Sessions over Asterisk for the browser gateway (`opencti panel ami`): each agent's
/// session gets its own AMI connection for its device.
pub(crate) struct AmiSessions {
    config: AmiConfig,
}

impl AmiSessions {
    pub(crate) fn new(args: &ConnectArgs) -> Result<Self> {
        Ok(AmiSessions {
            config: args.config()?,
        })
    }
}

#[async_trait::async_trait]
impl opencti_gateway::SessionFactory for AmiSessions {
    async fn start(&self, grant: &opencti_gateway::Grant) -> Result<opencti_gateway::AgentLine> {
        let mut config = self.config.clone();
        config.device = Some(grant.device.as_str().to_string());
        let connector = Arc::new(AmiConnector::new(config)?);
        let session = Session::builder(connector, grant.agent.clone(), grant.device.clone())
            .start()
            .await?;
        Ok(Arc::new(session))
    }
}

/// `opencti connect ami`: serves one agent's desktop over JSON lines on stdin/stdout.
pub(crate) async fn connect(args: ConnectArgs) -> Result<()> {
    let config = args.config()?;
    let address = config.address.clone();
    let agent = AgentId::new(args.agent.clone())?;
    let device = DeviceId::new(args.device.clone())?;
    let connector = Arc::new(AmiConnector::new(config)?);
    let session = Session::builder(connector.clone(), agent, device)
        .start()
        .await?;
    if !connector.client().is_some_and(|c| c.is_up()) {
        eprintln!(
            "opencti: the Asterisk AMI at {address} cannot be reached yet; retrying in the background (the link is down until then)"
        );
    }
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    crate::lines::serve(session, input, tokio::io::stdout())
        .await
        .map_err(|e| Error::new(ErrorKind::Other, format!("stdin/stdout: {e}")))
}

/// Options of `opencti watch ami`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    link: AmiLink,
    /// Devices to follow: an interface (PJSIP/1001) or a prefix ending in * (PJSIP/*);
    /// repeat for several (default: every device).
    #[arg(long = "device", value_name = "PATTERN")]
    devices: Vec<String>,
    /// Queues whose memberships give agent states; repeat for several (default: every
    /// queue Asterisk lists when the watch connects).
    #[arg(long = "queue", value_name = "QUEUE")]
    queues: Vec<String>,
}

impl WatchArgs {
    fn configs(&self) -> Result<(AmiConfig, WatchConfig)> {
        let mut config = self.link.config()?;
        config.queues = self.queues.clone();
        config.validate()?;
        let mut watch = WatchConfig::from_ami(&config);
        watch.devices = self.devices.clone();
        Ok((config, watch))
    }
}

/// `opencti watch ami`: every canonical event of every device as JSON lines on stdout,
/// until interrupted (Ctrl-C) or stdout is closed.
///
/// Lines: `{"at":…,"device":"PJSIP/1001","event":{"type":"call_offered",…}}` for
/// events, `{"at":…,"device":…,"state":{"agent":…,"calls":[…]}}` for each busy device's
/// state after every (re)connect, then `{"at":…,"synced":{"devices":N}}` once they have
/// all been given, and `{"at":…,"event":{"type":"link_up"},"banner":…}` or
/// `{"at":…,"event":{"type":"link_down","reason":…}}` for the link.
pub(crate) async fn watch(args: WatchArgs) -> Result<()> {
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    watch_to(args, tokio::io::stdout(), interrupted).await
}

/// The watch, writing to `output` until `stop` completes or `output` is closed.
async fn watch_to(
    args: WatchArgs,
    mut output: impl AsyncWrite + Unpin,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let (config, watch_config) = args.configs()?;
    let address = config.address.clone();
    let mut watch = AmiWatch::start(config, watch_config).await?;
    if !watch.client().is_up() {
        eprintln!(
            "opencti: the Asterisk AMI at {address} cannot be reached yet; retrying in the background"
        );
    }
    tokio::pin!(stop);
    let result = loop {
        let item = tokio::select! {
            item = watch.next() => item,
            () = &mut stop => break Ok(()),
        };
        let Some(item) = item else {
            break Ok(());
        };
        let mut line = match serde_json::to_vec(&watch_line(item)) {
            Ok(line) => line,
            Err(e) => break Err(Error::new(ErrorKind::Other, format!("JSON: {e}"))),
        };
        line.push(b'\n');
        let written = async {
            output.write_all(&line).await?;
            output.flush().await
        };
        if let Err(e) = written.await {
            // A closed stdout (`| head`) ends the watch quietly.
            break if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::Other, format!("stdout: {e}")))
            };
        }
    };
    watch.stop().await;
    result
}

/// One watch item as a JSON line's value.
fn watch_line(item: WatchItem) -> serde_json::Value {
    let at = Timestamp::now();
    match item {
        WatchItem::Event(e) => json!({"at": at, "device": e.device, "event": e.event}),
        WatchItem::State { device, state } => json!({"at": at, "device": device, "state": state}),
        WatchItem::LinkUp { banner } => {
            json!({"at": at, "event": Event::LinkUp, "banner": banner})
        }
        WatchItem::LinkDown { reason } => json!({"at": at, "event": Event::LinkDown { reason }}),
        WatchItem::Synced { devices } => json!({"at": at, "synced": {"devices": devices}}),
        other => json!({"at": at, "other": format!("{other:?}")}),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{Parser, Subcommand};
    use opencti_asterisk_ami::test_support::{Control, Script};
    use opencti_core::machine::Desk;
    use opencti_core::{Capabilities, SwitchState};
    use serde_json::Value;
    use tokio::io::AsyncBufReadExt;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Connect {
            #[command(subcommand)]
            backend: crate::connect::Backend,
        },
        Watch {
            #[command(subcommand)]
            backend: WatchBackend,
        },
    }

    #[derive(Debug, Subcommand)]
    enum WatchBackend {
        Ami(WatchArgs),
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("opencti").chain(args.iter().copied()))
    }

    fn connect_args(args: &[&str]) -> ConnectArgs {
        match parse(args).expect("parses").command {
            Top::Connect {
                backend: crate::connect::Backend::Ami(args),
            } => *args,
            other => panic!("{other:?}"),
        }
    }

    fn watch_args(args: &[&str]) -> WatchArgs {
        match parse(args).expect("parses").command {
            Top::Watch {
                backend: WatchBackend::Ami(args),
            } => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_options_make_the_config_and_never_show_the_secret() {
        let args = connect_args(&[
            "connect",
            "ami",
            "--address",
            "pbx:5039",
            "--username",
            "opencti",
            "--secret",
            "hunter2-s3cret",
            "--tls",
            "--ca-file",
            "/etc/ca.pem",
            "--server-name",
            "pbx.example.com",
            "--plaintext-login",
            "--agent",
            "alice",
            "--device",
            "PJSIP/1001",
            "--queue",
            "support",
            "--queue",
            "sales",
            "--context",
            "agents-out",
            "--auto-answer",
            "--no-hold",
        ]);
        assert!(!format!("{args:?}").contains("hunter2"), "{args:?}");
        let config = args.config().expect("config");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.device.as_deref(), Some("PJSIP/1001"));
        assert_eq!(config.queues, ["support", "sales"]);
        assert_eq!(config.outbound_context, "agents-out");
        assert_eq!(config.auth, AuthMethod::Plaintext);
        assert_eq!(config.answer, AnswerMode::PhoneAnswersItself);
        assert_eq!(config.hold, None);
        let tls = config.tls.expect("tls");
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("pbx.example.com"));
        // Defaults.
        let args = connect_args(&[
            "connect",
            "ami",
            "--address",
            "pbx:5038",
            "--username",
            "u",
            "--secret-file",
            "/dev/null",
            "--agent",
            "a",
            "--device",
            "PJSIP/1",
        ]);
        assert_eq!(args.context, "from-agents");
        assert_eq!(args.link.hold_context, "hold");
        assert!(!args.link.tls);
    }

    #[test]
    fn bad_option_combinations_are_refused() {
        let base = [
            "connect",
            "ami",
            "--address",
            "pbx:5038",
            "--username",
            "u",
            "--agent",
            "a",
            "--device",
            "PJSIP/1",
        ];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            parse(&v).map(|_| ())
        };
        assert!(with(&[]).is_err(), "a secret is required");
        assert!(with(&["--secret", "x", "--secret-file", "/f"]).is_err());
        assert!(
            with(&["--secret-file", "/f", "--ca-file", "/ca.pem"]).is_err(),
            "needs --tls"
        );
        assert!(with(&["--secret", ""]).is_err(), "empty secret");
        let args = connect_args(&[&base[..], &["--secret-file", "/f", "--tls"]].concat());
        let err = args.config().expect_err("a missing secret file");
        assert_eq!(err.kind(), ErrorKind::Config);
        let args = connect_args(&[&base[..], &["--secret", "x", "--tls"]].concat());
        let err = args.config().expect_err("TLS without a CA");
        assert!(err.message().contains("--ca-file"), "{err}");
    }

    #[test]
    fn watch_options() {
        let args = watch_args(&[
            "watch",
            "ami",
            "--address",
            "pbx:5038",
            "--username",
            "u",
            "--secret",
            "x",
            "--device",
            "PJSIP/*",
            "--queue",
            "support",
        ]);
        let (config, watch) = args.configs().expect("configs");
        assert_eq!(config.queues, ["support"]);
        assert_eq!(watch.queues, ["support"]);
        assert_eq!(watch.devices, ["PJSIP/*"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_prints_every_device_as_json_lines_until_stopped() {
        let run = async {
            let server = Control::start(Script::default()).await;
            let dir =
                std::env::temp_dir().join(format!("opencti-cli-watch-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let secret = dir.join("secret");
            std::fs::write(&secret, "opencti-secret\n").expect("secret");
            let address = server.address();
            let args = watch_args(&[
                "watch",
                "ami",
                "--address",
                &address,
                "--username",
                "opencti",
                "--secret-file",
                secret.to_str().expect("utf-8"),
            ]);
            let (writer, reader) = tokio::io::duplex(64 * 1024);
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(watch_to(args, writer, async {
                let _ = stop_rx.await;
            }));
            let mut lines = tokio::io::BufReader::new(reader).lines();
            async fn next(
                lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::DuplexStream>>,
            ) -> Value {
                let line = lines.next_line().await.expect("read").expect("a line");
                serde_json::from_str::<Value>(&line).expect("JSON")
            }
            let first = next(&mut lines).await;
            assert_eq!(first["event"]["type"], "link_up", "{first}");
            assert_eq!(first["banner"], "Asterisk Call Manager/11.0.0");
            assert!(first["at"].as_u64().is_some(), "{first}");
            let synced = next(&mut lines).await;
            assert_eq!(synced["synced"]["devices"], 0, "{synced}");
            server.call_device("+441632960001");
            let mut desks: std::collections::BTreeMap<String, Desk> = Default::default();
            let mut seen = Vec::new();
            while !(seen.contains(&"PJSIP/7001 call_connected".to_string())
                && seen.contains(&"PJSIP/trunk call_connected".to_string()))
            {
                let line = next(&mut lines).await;
                let device = line["device"].as_str().expect("a device").to_string();
                let desk = desks.entry(device.clone()).or_insert_with(|| {
                    let mut d = Desk::new(
                        AgentId::new("w").expect("id"),
                        DeviceId::new(device.clone()).expect("id"),
                        Capabilities::all().with_wrap_up(false),
                    );
                    let _ = d.apply(&mut Event::LinkUp);
                    d
                });
                if let Some(state) = line.get("state") {
                    let state: SwitchState = serde_json::from_value(state.clone()).expect("state");
                    desk.resync(state, 0);
                    continue;
                }
                let mut event: Event =
                    serde_json::from_value(line["event"].clone()).expect("an event");
                let _ = desk
                    .apply(&mut event)
                    .unwrap_or_else(|e| panic!("{device} refused {event:?}: {e}"));
                seen.push(format!("{device} {}", event.name()));
            }
            assert!(
                seen.contains(&"PJSIP/7001 call_offered".to_string()),
                "{seen:?}"
            );
            let _ = stop_tx.send(());
            task.await.expect("joined").expect("the watch ends cleanly");
            let _ = std::fs::remove_dir_all(&dir);
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("within 20 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_with_a_wrong_secret_fails_without_showing_it() {
        let server = Control::start(Script::default()).await;
        let address = server.address();
        let args = watch_args(&[
            "watch",
            "ami",
            "--address",
            &address,
            "--username",
            "opencti",
            "--secret",
            "wrong-S3cret-77",
        ]);
        let err = watch_to(args, tokio::io::sink(), std::future::pending())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(!format!("{err} {err:?}").contains("wrong-S3cret-77"));
    }
}
