//! What the connector needs to know: where Asterisk is, how to log in, the agent's device
//! and queues, the dialplan contexts it uses, timeouts and reconnect backoff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opencti_core::{Error, ErrorKind, Result};

use crate::action::AmiValue;
use crate::codec::DEFAULT_MAX_MESSAGE_BYTES;

/// The AMI user's secret: the core's [`Secret`](opencti_core::Secret), whose `Debug` and
/// `Display` print `<redacted>`.
pub use opencti_core::Secret;

/// Reads the AMI secret from a file: its first line. The error names the file, never the
/// content.
pub fn secret_from_file(path: impl AsRef<Path>) -> Result<Secret> {
    Secret::from_file(path, "AMI secret")
}

/// How the client proves it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// `Action: Challenge` (MD5), then `Login` with `Key: md5(challenge + secret)`: the
    /// secret never crosses the wire. The default.
    #[default]
    Md5Challenge,
    /// `Login` with `Secret:` in clear text (what the captures show). Use it over TLS, or
    /// for an Asterisk built without MD5 challenge support.
    Plaintext,
}

/// TLS to the AMI (Asterisk's `tlsenable = yes`, port 5039).
///
/// Asterisk's certificate is always verified: against the CA certificates in `ca_file`
/// (a PEM file; a self-signed Asterisk certificate can be its own CA), and, with
/// `system_roots`, the operating system's store. At least one must be given. The name
/// checked is `server_name`, or the host of the address (a DNS name or an IP address,
/// which must then be in the certificate's subject alternative names).
///
/// ```
/// use opencti_asterisk_ami::{AmiConfig, AuthMethod, Secret, TlsConfig};
///
/// let mut config = AmiConfig::new("pbx.example.com:5039", "opencti", Secret::new("s3cret"));
/// config.tls = Some(TlsConfig {
///     ca_file: Some("/etc/opencti/asterisk-ca.pem".into()),
///     ..TlsConfig::default()
/// });
/// // Over TLS the plaintext login is as safe as the MD5 challenge.
/// config.auth = AuthMethod::Plaintext;
/// config.validate()?; // checks the name; the CA file is read when the client starts
/// # Ok::<(), opencti_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed Asterisk's certificate (or
    /// Asterisk's self-signed certificate itself).
    pub ca_file: Option<PathBuf>,
    /// Also trust the operating system's CA certificates (for an Asterisk certificate
    /// from a public CA). Default `false`.
    pub system_roots: bool,
    /// The name to check Asterisk's certificate against (default: the address's host).
    pub server_name: Option<String>,
}

/// How `hold` and `retrieve` are carried out.
///
/// Plain AMI has no hold action. The captures show what works on Asterisk 22
/// (`06_hold_redirect_moh_and_unhold`): `Redirect` the far party to a music-on-hold
/// extension and (with `ExtraChannel`) the agent's leg to a silent one, then reconnect
/// them with `Action: Bridge`. Redirecting one leg only makes Asterisk hang up the other
/// (`07`), so both legs always move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldConfig {
    /// The dialplan context holding both extensions (`hold` in the captures).
    pub context: String,
    /// Extension that plays music on hold to the far party (`moh`: `Answer()`,
    /// `MusicOnHold(default)`).
    pub music_exten: String,
    /// Extension that keeps the agent's leg up in silence (`wait`: `Answer()`,
    /// `Wait(3600)`).
    pub wait_exten: String,
}

impl Default for HoldConfig {
    fn default() -> Self {
        HoldConfig {
            context: "hold".into(),
            music_exten: "moh".into(),
            wait_exten: "wait".into(),
        }
    }
}

/// How the agent's phone answers calls. AMI has no action that makes a phone go off
/// hook, so `answer` is only a capability when the phone answers by itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AnswerMode {
    /// The phone is answered by hand: `answer` is not a capability. The default.
    #[default]
    ByHand,
    /// The phone (or the dialplan in front of it) answers offered calls by itself, for
    /// example a PJSIP desk phone that honours `Call-Info: answer-after=N` added by the
    /// dialplan (`Set(PJSIP_HEADER(add,Call-Info)=<sip:pbx>\;answer-after=1)` in a
    /// pre-dial handler). `answer` is then accepted and sends nothing: it is confirmed by
    /// the `call_connected` that the phone's own answer produces.
    PhoneAnswersItself,
}

/// Timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, banner and login, each (default 10 s).
    pub connect: Duration,
    /// Waiting for an action's response (default 10 s).
    pub action: Duration,
    /// How long `make_call` lets the agent's own phone ring before Asterisk gives up
    /// (`Originate`'s `Timeout`, default 30 s).
    pub originate_ring: Duration,
    /// Idle time after which a `Ping` checks the link (default 20 s).
    pub keepalive: Duration,
    /// Writing one action to the socket (default 5 s).
    pub write: Duration,
    /// How often the dialplan is read again while the link is up, for the contexts
    /// the config names (default 10 s). A change (a context added or removed by a
    /// `dialplan reload`, or one not loaded yet when the link logged in to an Asterisk
    /// still starting) makes every line read its state again, so the commands withheld
    /// follow without a reconnect.
    pub dialplan_recheck: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            action: Duration::from_secs(10),
            originate_ring: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
            write: Duration::from_secs(5),
            dialplan_recheck: Duration::from_secs(10),
        }
    }
}

/// Reconnect delays: exponential from `initial` to `max`, each with up to `jitter`
/// (a fraction, 0 to 1) taken off at random so that many desks do not reconnect in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First delay (default 500 ms).
    pub initial: Duration,
    /// Longest delay (default 30 s).
    pub max: Duration,
    /// Growth factor per failed attempt (default 2).
    pub multiplier: f64,
    /// Random fraction taken off each delay, 0 to 1 (default 0.2).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 for the first retry), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(attempt.min(64) as i32);
        let base = self.initial.as_secs_f64() * factor;
        let capped = base.min(self.max.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0) * fastrand::f64();
        Duration::from_secs_f64(capped * (1.0 - jitter))
    }
}

/// Bounds on what the connection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest inbound message, in bytes (default 1 MiB); a bigger one drops the
    /// connection (see the crate docs).
    pub max_message_bytes: usize,
    /// Actions waiting for their response at once (default 256).
    pub max_pending_actions: usize,
    /// Items one list action (`CoreShowChannels`, `QueueStatus`) may return (default
    /// 100,000).
    pub max_list_items: usize,
    /// Events held while the state is rebuilt after a (re)connect (default 100,000);
    /// more drops the connection, and the next one starts over.
    pub max_held_events: usize,
    /// Channels and bridges the tracker keeps (default 100,000 each).
    pub max_channels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_pending_actions: 256,
            max_list_items: 100_000,
            max_held_events: 100_000,
            max_channels: 100_000,
        }
    }
}

/// Everything the AMI connector needs. Build it with [`AmiConfig::new`] and adjust the
/// public fields; [`AmiConfig::validate`] checks it (the connector does too).
///
/// ```
/// use opencti_asterisk_ami::{AmiConfig, Secret};
///
/// let mut config = AmiConfig::new("127.0.0.1:5038", "opencti", Secret::new("s3cret"));
/// config.device = Some("PJSIP/1001".into());
/// config.queues = vec!["support".into()];
/// config.outbound_context = "from-agents".into();
/// config.validate()?;
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), opencti_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AmiConfig {
    /// `host:port` of the AMI (TCP 5038 by default in Asterisk).
    pub address: String,
    /// The `manager.conf` user.
    pub username: String,
    /// Its secret.
    pub secret: Secret,
    /// How to log in.
    pub auth: AuthMethod,
    /// TLS settings, `None` for plain TCP (see [`TlsConfig`]).
    pub tls: Option<TlsConfig>,
    /// The agent's device as an Asterisk interface (`PJSIP/1001`, `Local/1001@agents`).
    /// `None` uses the session's device id, which must then be such an interface.
    pub device: Option<String>,
    /// The queues the agent logs into; empty means the agent is no queue member and
    /// `login`, `logout` and `set_agent_state` are not capabilities.
    pub queues: Vec<String>,
    /// Dialplan context for calls the agent places, blind transfers and consultations.
    pub outbound_context: String,
    /// Caller id for `make_call` (`"Agent 1001" <1001>`), if any.
    pub caller_id: Option<String>,
    /// How hold works; `None` makes `hold` and `retrieve` unsupported.
    pub hold: Option<HoldConfig>,
    /// The dialplan context whose extensions join a ConfBridge room named by the
    /// extension (`exten => _X.,1,ConfBridge(${EXTEN})`); `None` (the default) makes
    /// `complete_conference` and `drop_party` unsupported. See the crate docs for why
    /// it is off by default and the dialplan lines to add.
    pub conference_context: Option<String>,
    /// Whether the phone answers by itself (see [`AnswerMode`]).
    pub answer: AnswerMode,
    /// Event classes asked for at login (`Events:`); the default `call,agent,dtmf` leaves
    /// out the `dialplan` class (`Newexten`, `VarSet`), most of a busy system's traffic.
    pub event_mask: String,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Bounds.
    pub limits: Limits,
}

impl AmiConfig {
    /// A configuration with the defaults: MD5 login, no TLS, device from the session,
    /// no queues, outbound context `from-agents`, hold through context `hold`
    /// (`moh`/`wait`), answer by hand.
    pub fn new(address: impl Into<String>, username: impl Into<String>, secret: Secret) -> Self {
        AmiConfig {
            address: address.into(),
            username: username.into(),
            secret,
            auth: AuthMethod::default(),
            tls: None,
            device: None,
            queues: Vec::new(),
            outbound_context: "from-agents".into(),
            caller_id: None,
            hold: Some(HoldConfig::default()),
            conference_context: None,
            answer: AnswerMode::default(),
            event_mask: "call,agent,dtmf".into(),
            timeouts: Timeouts::default(),
            backoff: Backoff::default(),
            limits: Limits::default(),
        }
    }

    /// Checks that every name that reaches the wire is a valid AMI value, that the
    /// limits are sane, and that a TLS config names a CA and a valid server name (the CA
    /// file itself is read when the client starts). Errors are of kind `config` and never
    /// quote the secret.
    pub fn validate(&self) -> Result<()> {
        let value = |what: &str, text: &str| -> Result<()> {
            AmiValue::new(text).map(|_| ()).map_err(|e| {
                Error::new(ErrorKind::Config, format!("AMI config: {what}: {e}")).with_source(e)
            })
        };
        let name = |what: &str, text: &str| -> Result<()> {
            if text.is_empty() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("AMI config: {what} must not be empty"),
                ));
            }
            value(what, text)
        };
        name("address", &self.address)?;
        name("username", &self.username)?;
        if self.secret.expose_secret().is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "AMI config: the secret is empty",
            ));
        }
        if AmiValue::secret(self.secret.expose_secret()).is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "AMI config: the secret contains CR, LF or NUL, which AMI cannot carry",
            ));
        }
        if let Some(device) = &self.device {
            name("device", device)?;
        }
        for queue in &self.queues {
            name("queue", queue)?;
        }
        name("outbound_context", &self.outbound_context)?;
        if let Some(caller_id) = &self.caller_id {
            value("caller_id", caller_id)?;
        }
        if let Some(hold) = &self.hold {
            name("hold.context", &hold.context)?;
            name("hold.music_exten", &hold.music_exten)?;
            name("hold.wait_exten", &hold.wait_exten)?;
        }
        if let Some(context) = &self.conference_context {
            name("conference_context", context)?;
        }
        name("event_mask", &self.event_mask)?;
        if let Some(tls) = &self.tls {
            if tls.ca_file.is_none() && !tls.system_roots {
                return Err(Error::new(
                    ErrorKind::Config,
                    "AMI config: TLS needs a CA to check Asterisk's certificate against: set tls.ca_file (or tls.system_roots)",
                ));
            }
            crate::transport::server_name(tls, &self.address)?;
        }
        if self.limits.max_pending_actions == 0 || self.limits.max_list_items == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "AMI config: limits must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AmiConfig {
        AmiConfig::new("127.0.0.1:5038", "opencti", Secret::new("top-s3cret"))
    }

    #[test]
    fn secrets_never_show() {
        let c = config();
        let debug = format!("{c:?} {c:#?} {}", c.secret);
        assert!(!debug.contains("top-s3cret"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let mut bad = config();
        bad.secret = Secret::new("top-s3cret\r\nAction: Originate");
        let err = bad.validate().expect_err("CRLF in the secret");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!format!("{err} {err:?}").contains("top-s3cret"), "{err:?}");
    }

    #[test]
    fn secret_from_file_reads_the_first_line_and_errors_name_the_file_only() {
        let dir = std::env::temp_dir().join(format!("opencti-ami-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\nignored\n").expect("write");
        let secret = secret_from_file(&path).expect("read");
        assert_eq!(secret.expose_secret(), "from-file");
        std::fs::write(&path, "").expect("write");
        let err = secret_from_file(&path).expect_err("empty");
        assert!(err.message().contains("is empty"), "{err}");
        let err = secret_from_file(dir.join("missing")).expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::Config);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn validation() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.queues = vec!["sup\nport".into()];
        assert_eq!(c.validate().map_err(|e| e.kind()), Err(ErrorKind::Config));
        let mut c = config();
        c.tls = Some(TlsConfig::default());
        let err = c.validate().expect_err("tls without a CA");
        assert!(err.message().contains("tls.ca_file"), "{err}");
        c.tls = Some(TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        });
        assert!(
            c.validate().is_ok(),
            "the file is read when the client starts"
        );
        c.tls = Some(TlsConfig {
            system_roots: true,
            server_name: Some("bad name".into()),
            ..TlsConfig::default()
        });
        assert_eq!(c.validate().map_err(|e| e.kind()), Err(ErrorKind::Config));
        let mut c = config();
        c.outbound_context = String::new();
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
        };
        for _ in 0..100 {
            let d0 = b.delay(0);
            assert!(d0 <= Duration::from_millis(100) && d0 >= Duration::from_millis(50));
            let d3 = b.delay(3);
            assert!(d3 <= Duration::from_millis(800) && d3 >= Duration::from_millis(400));
            let d20 = b.delay(20);
            assert!(d20 <= Duration::from_secs(1) && d20 >= Duration::from_millis(500));
        }
    }
}
