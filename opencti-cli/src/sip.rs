//! `opencti connect sip` and `opencti panel sip`: the agent's line as a SIP user agent.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use opencti_core::{AgentId, DeviceId, Dialable, Error, ErrorKind, Result, Session};
use opencti_sip::{
    DtmfMode, NotReadyPolicy, Secret, SipConfig, SipConnector, Transport, WavPlayer, WavRecorder,
};

/// The SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    /// UDP with rport.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (needs --ca-file).
    Tls,
}

/// How DTMF digits are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DtmfArg {
    /// RFC 4733 telephone-events in RTP.
    Rfc4733,
    /// SIP INFO.
    Info,
}

/// Options of `opencti connect sip` and `opencti panel sip`.
#[derive(Debug, Args)]
pub(crate) struct SipArgs {
    /// The registrar (or proxy) as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    registrar: String,
    /// The SIP user (the line's extension), e.g. 1001.
    #[arg(long)]
    user: String,
    /// The SIP domain (default: the registrar's host).
    #[arg(long)]
    domain: Option<String>,
    /// The user name for digest authentication, if it differs from --user.
    #[arg(long)]
    auth_user: Option<String>,
    /// A file whose first line is the password (preferred over --password).
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// The password itself. Visible to every user of this machine in the process list:
    /// prefer --password-file.
    #[arg(long)]
    password: Option<String>,
    /// The transport to the registrar.
    #[arg(long, value_enum, default_value_t = TransportArg::Udp)]
    transport: TransportArg,
    /// PEM file with the CA certificate(s) that signed the registrar's certificate (TLS).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// The name the registrar's certificate must carry (TLS; default: the domain's host).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// The local address to bind (default: 127.0.0.1, any port; use the host's address on
    /// a real network).
    #[arg(long, value_name = "IP:PORT")]
    local: Option<SocketAddr>,
    /// The address RTP binds to and announces (default: the local address's IP).
    #[arg(long, value_name = "IP")]
    rtp_ip: Option<IpAddr>,
    /// The agent (default: the SIP user).
    #[arg(long)]
    agent: Option<String>,
    /// How DTMF is sent.
    #[arg(long, value_enum, default_value_t = DtmfArg::Rfc4733)]
    dtmf: DtmfArg,
    /// While not ready, divert new calls to this number instead of refusing them as busy.
    #[arg(long, value_name = "NUMBER")]
    not_ready_divert: Option<String>,
    /// Play this WAV file (8 kHz, 16-bit mono) on every call instead of silence.
    #[arg(long, value_name = "WAV")]
    play: Option<PathBuf>,
    /// Record what every call hears as a WAV file in this folder.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
}

impl SipArgs {
    async fn config(&self) -> Result<SipConfig> {
        let password = match (&self.password_file, &self.password) {
            (Some(path), _) => opencti_sip::password_from_file(path)?,
            (None, Some(password)) => {
                eprintln!(
                    "opencti: warning: --password is visible in the process list; prefer --password-file"
                );
                Secret::new(password.clone())
            }
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "give the SIP password with --password-file (or --password)",
                ))
            }
        };
        let registrar = tokio::net::lookup_host(&self.registrar)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "--registrar {} is not HOST:PORT that resolves",
                        self.registrar
                    ),
                )
            })?;
        let mut config = SipConfig::new(registrar, self.user.clone(), password);
        if let Some(domain) = &self.domain {
            config.domain = domain.clone();
        } else if let Some((host, _)) = self.registrar.rsplit_once(':') {
            config.domain = host.to_string();
        }
        config.auth_user = self.auth_user.clone();
        config.transport = match self.transport {
            TransportArg::Udp => Transport::Udp,
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Tls => Transport::Tls,
        };
        config.tls_ca_file = self.ca_file.clone();
        if self.server_name.is_some() {
            config.tls_server_name = self.server_name.clone();
        }
        if let Some(local) = self.local {
            config.local = local;
            config.media.rtp_ip = local.ip();
        }
        if let Some(ip) = self.rtp_ip {
            config.media.rtp_ip = ip;
        }
        config.dtmf = match self.dtmf {
            DtmfArg::Rfc4733 => DtmfMode::Rfc4733,
            DtmfArg::Info => DtmfMode::Info,
        };
        if let Some(number) = &self.not_ready_divert {
            config.not_ready = NotReadyPolicy::Divert(Dialable::new(number)?);
        }
        if let Some(wav) = &self.play {
            config.media.audio = Arc::new(WavPlayer::open(wav)?);
        }
        if let Some(dir) = &self.record {
            config.media.audio =
                Arc::new(WavRecorder::new(dir.clone(), config.media.audio.clone()));
        }
        config.validate()?;
        Ok(config)
    }

    fn agent(&self) -> Result<AgentId> {
        AgentId::new(self.agent.clone().unwrap_or_else(|| self.user.clone()))
    }

    fn device(&self) -> Result<DeviceId> {
        DeviceId::new(self.user.clone())
    }

    /// The agent and device these options name.
    pub(crate) fn grant(&self) -> Result<opencti_gateway::Grant> {
        Ok(opencti_gateway::Grant::agent(self.agent()?, self.device()?))
    }
}

async fn start(args: &SipArgs) -> Result<Session> {
    let connector = Arc::new(SipConnector::new(args.config().await?)?);
    Session::builder(connector, args.agent()?, args.device()?)
        .start()
        .await
}

/// `opencti connect sip`: serves the line's desktop over JSON lines on stdin/stdout.
pub(crate) async fn connect(args: SipArgs) -> Result<()> {
    let session = start(&args).await?;
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    crate::lines::serve(session, input, tokio::io::stdout())
        .await
        .map_err(|e| Error::new(ErrorKind::Other, format!("stdin/stdout: {e}")))
}

/// Sessions over SIP for the browser gateway (`opencti panel sip`): the one line the
/// options describe.
pub(crate) struct SipSessions {
    args: SipArgs,
}

impl SipSessions {
    pub(crate) fn new(args: SipArgs) -> Self {
        SipSessions { args }
    }
}

#[async_trait::async_trait]
impl opencti_gateway::SessionFactory for SipSessions {
    async fn start(&self, _grant: &opencti_gateway::Grant) -> Result<opencti_gateway::AgentLine> {
        Ok(std::sync::Arc::new(start(&self.args).await?))
    }
}
