//! [`SipConfig`]: where to register, as whom, and how the line behaves.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opencti_core::{Dialable, Error, ErrorKind, Result};

use crate::media::{AudioFactory, Silence};

/// The SIP password: the core's [`Secret`](opencti_core::Secret), whose `Debug` and
/// `Display` print `<redacted>`.
pub use opencti_core::Secret;

/// Reads the SIP password from a file: its first line. The error names the file, never
/// the content.
pub fn password_from_file(path: impl AsRef<Path>) -> Result<Secret> {
    Secret::from_file(path, "SIP password")
}

/// The SIP transport to the registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// UDP (the default), with rport (RFC 3581).
    #[default]
    Udp,
    /// TCP, one connection to the registrar.
    Tcp,
    /// TLS over TCP (`sip:...;transport=tls`), one connection to the registrar, whose
    /// certificate must chain to [`SipConfig::tls_ca_file`] and name
    /// [`SipConfig::tls_server_name`]. The registrar binding and every request this UA
    /// sends use it; requests *to* this UA (an incoming call) arrive only if the
    /// registrar sends them back on that connection (this UA does not listen for TLS).
    Tls,
}

/// What happens to a new call while the agent is `not_ready`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NotReadyPolicy {
    /// Refuse it with `486 Busy Here` (the default). No event: the call never reached
    /// the desk.
    #[default]
    Busy,
    /// Redirect it with `302 Moved Temporarily` to this destination.
    Divert(Dialable),
}

/// How `send_dtmf` sends digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DtmfMode {
    /// RFC 4733 telephone-event packets in the RTP stream (the default).
    #[default]
    Rfc4733,
    /// SIP INFO with `application/dtmf-relay`, one request per digit.
    Info,
}

/// Time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// How long a REGISTER (with its digest retry) may take before the registrar counts
    /// as unreachable (default 5 s).
    pub register: Duration,
    /// How often the registrar is pinged with OPTIONS to notice that it went away or
    /// restarted (default 30 s; `None` turns it off).
    pub keepalive: Option<Duration>,
    /// The longest wait between attempts to register again after a failure (default
    /// 30 s; attempts start at 250 ms and double).
    pub max_backoff: Duration,
    /// How long an outbound call may ring before it is cancelled (default 60 s).
    pub ring: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            register: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(30)),
            max_backoff: Duration::from_secs(30),
            ring: Duration::from_secs(60),
        }
    }
}

/// Media: where RTP goes and what the line plays and records.
#[derive(Clone)]
#[non_exhaustive]
pub struct MediaConfig {
    /// The address RTP sockets bind to and SDP announces (default 127.0.0.1; set it to
    /// the host's address on a real network).
    pub rtp_ip: IpAddr,
    /// What each call plays and where what it hears goes (default: silence, nothing
    /// recorded). See [`WavPlayer`](crate::WavPlayer) and [`WavRecorder`](crate::WavRecorder).
    pub audio: Arc<dyn AudioFactory>,
    /// How long a connected call may receive no RTP before the far end counts as gone
    /// (default 30 s; `None` turns it off; at least 1 s). Only while RTP is expected:
    /// not while the call is held by either side (sendonly, recvonly or inactive). The
    /// call then ends with cause `vanished` (a BYE is sent, best effort), so a far end
    /// that disappeared without a BYE does not stay on the panel.
    pub inactivity_timeout: Option<Duration>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            audio: Arc::new(Silence),
            inactivity_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaConfig")
            .field("rtp_ip", &self.rtp_ip)
            .field("audio", &self.audio)
            .field("inactivity_timeout", &self.inactivity_timeout)
            .finish()
    }
}

/// How the connector registers the agent's line and behaves as its user agent.
///
/// ```
/// use opencti_sip::{Secret, SipConfig, Transport};
/// let mut config = SipConfig::new("127.0.0.1:5060".parse().unwrap(), "1001", Secret::new("secret"));
/// config.transport = Transport::Tcp;
/// assert_eq!(config.domain, "127.0.0.1");
/// // The password never shows.
/// assert!(!format!("{config:?}").contains("secret\""));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SipConfig {
    /// The registrar (and outbound proxy) address.
    pub registrar: SocketAddr,
    /// The SIP domain of the agent's address of record (default: the registrar's IP).
    pub domain: String,
    /// The user part of the address of record: the extension (`1001`).
    pub user: String,
    /// The digest user name, where it differs from `user`.
    pub auth_user: Option<String>,
    /// The digest password.
    pub password: Secret,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// With [`Transport::Tls`]: the PEM file of the CA certificate(s) the registrar's
    /// certificate must chain to (required: the system's roots are not used). Read when
    /// the connector starts.
    pub tls_ca_file: Option<PathBuf>,
    /// With [`Transport::Tls`]: the name the registrar's certificate must carry (and the
    /// SNI sent). Default: the host of [`domain`](Self::domain) when it is a DNS name,
    /// else the registrar's IP address (the certificate then needs that IP).
    pub tls_server_name: Option<String>,
    /// The local SIP address to bind (default `127.0.0.1:0`: loopback, any port).
    pub local: SocketAddr,
    /// The registration lifetime to ask for, in seconds (default 300). It is refreshed
    /// at about 80 % of what the registrar grants.
    pub register_expires: u32,
    /// What a new call meets while the agent is not ready.
    pub not_ready: NotReadyPolicy,
    /// How DTMF is sent.
    pub dtmf: DtmfMode,
    /// RFC 4028 session timer to ask for on outbound calls, in seconds (`None`: none
    /// asked; default 1800; at least 90). The far end's 2xx decides: this side
    /// re-INVITEs at half the interval the 2xx **grants** when it names this side the
    /// refresher, and not at all when the 2xx has no `Session-Expires`.
    pub session_expires: Option<u32>,
    /// Time limits.
    pub timeouts: Timeouts,
    /// RTP and audio.
    pub media: MediaConfig,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl fmt::Debug for SipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipConfig")
            .field("registrar", &self.registrar)
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("auth_user", &self.auth_user)
            .field("password", &self.password)
            .field("transport", &self.transport)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("local", &self.local)
            .field("register_expires", &self.register_expires)
            .field("not_ready", &self.not_ready)
            .field("dtmf", &self.dtmf)
            .field("session_expires", &self.session_expires)
            .field("timeouts", &self.timeouts)
            .field("media", &self.media)
            .finish()
    }
}

/// One agent's SIP account on a [`SipLink`](crate::SipLink): the user part of its
/// address of record (the extension) and its digest credentials. Everything else
/// (registrar, domain, transport, media, timeouts, the not-ready policy) is the link's
/// [`SipConfig`].
///
/// ```
/// use opencti_sip::{Secret, SipAccount};
/// let account = SipAccount::new("1002", Secret::new("s3cret")).with_auth_user("agent-1002");
/// assert_eq!(account.user, "1002");
/// assert!(!format!("{account:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SipAccount {
    /// The user part of the address of record: the extension (`1002`). New INVITEs
    /// whose Request-URI (or To) user is this one ring on the account's line.
    pub user: String,
    /// The digest user name, where it differs from `user`.
    pub auth_user: Option<String>,
    /// The digest password.
    pub password: Secret,
}

impl SipAccount {
    /// The account of `user` with `password`.
    pub fn new(user: impl Into<String>, password: Secret) -> SipAccount {
        SipAccount {
            user: user.into(),
            auth_user: None,
            password,
        }
    }

    /// With a digest user name that differs from the user.
    #[must_use]
    pub fn with_auth_user(mut self, auth_user: impl Into<String>) -> SipAccount {
        self.auth_user = Some(auth_user.into());
        self
    }
}

impl SipConfig {
    /// A config for `user` at `registrar`, with defaults for everything else.
    pub fn new(registrar: SocketAddr, user: impl Into<String>, password: Secret) -> SipConfig {
        SipConfig {
            registrar,
            domain: registrar.ip().to_string(),
            user: user.into(),
            auth_user: None,
            password,
            transport: Transport::Udp,
            tls_ca_file: None,
            tls_server_name: None,
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            register_expires: 300,
            not_ready: NotReadyPolicy::Busy,
            dtmf: DtmfMode::Rfc4733,
            session_expires: Some(1800),
            timeouts: Timeouts::default(),
            media: MediaConfig::default(),
            user_agent: format!("opencti-sip/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Checks the config; the error says which field is wrong.
    pub fn validate(&self) -> Result<()> {
        let token = |what: &str, value: &str| -> Result<()> {
            let ok = !value.is_empty()
                && value.len() <= 128
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c));
            if ok {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Config,
                    format!("{what} {value:?} is not a valid SIP user or host (1 to 128 characters, no spaces or separators)"),
                ))
            }
        };
        token("user", &self.user)?;
        if let Some(auth) = &self.auth_user {
            token("auth_user", auth)?;
        }
        let host_ok = !self.domain.is_empty()
            && self.domain.len() <= 253
            && self
                .domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok {
            return Err(Error::new(
                ErrorKind::Config,
                format!("domain {:?} is not a host name or address", self.domain),
            ));
        }
        if self
            .password
            .expose_secret()
            .chars()
            .any(|c| c.is_control())
        {
            return Err(Error::new(
                ErrorKind::Config,
                "the password holds a control character",
            ));
        }
        if self.register_expires < 10 {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "register_expires {} is too short (at least 10 s)",
                    self.register_expires
                ),
            ));
        }
        if matches!(self.session_expires, Some(s) if s < 90) {
            return Err(Error::new(
                ErrorKind::Config,
                "session_expires must be at least 90 s (RFC 4028 Min-SE)",
            ));
        }
        if matches!(self.media.inactivity_timeout, Some(t) if t < Duration::from_secs(1)) {
            return Err(Error::new(
                ErrorKind::Config,
                "media.inactivity_timeout must be at least 1 s (or None to turn it off)",
            ));
        }
        if self.transport == Transport::Tls && self.tls_ca_file.is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "transport TLS needs tls_ca_file: the CA certificate(s) the registrar's certificate chains to",
            ));
        }
        if let Some(name) = &self.tls_server_name {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
            if !ok {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("tls_server_name {name:?} is not a host name or address"),
                ));
            }
        }
        if self.user_agent.chars().any(|c| c.is_control()) {
            return Err(Error::new(
                ErrorKind::Config,
                "user_agent holds a control character",
            ));
        }
        Ok(())
    }

    /// With [`Transport::Tls`]: the CA certificates (PEM) read from `tls_ca_file`, and
    /// the server name to verify (`None`: the registrar's IP address). The error names
    /// the file, never its content.
    pub(crate) fn tls_trust(&self) -> Result<Option<(Vec<u8>, Option<String>)>> {
        if self.transport != Transport::Tls {
            return Ok(None);
        }
        let Some(path) = &self.tls_ca_file else {
            return Err(Error::new(
                ErrorKind::Config,
                "transport TLS needs tls_ca_file",
            ));
        };
        let pem = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read tls_ca_file {}: {e}", path.display()),
            )
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::new(
                ErrorKind::Config,
                format!("tls_ca_file {} holds no PEM certificate", path.display()),
            ));
        }
        let name = self.tls_server_name.clone().or_else(|| {
            let host = match self.domain.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default(),
                None if self.domain.matches(':').count() == 1 => {
                    self.domain.split(':').next().unwrap_or_default()
                }
                None => self.domain.as_str(),
            };
            (!host.is_empty() && host.parse::<IpAddr>().is_err()).then(|| host.to_owned())
        });
        Ok(Some((pem, name)))
    }

    /// The account this config names (its `user`, `auth_user` and `password`).
    pub(crate) fn account(&self) -> SipAccount {
        SipAccount {
            user: self.user.clone(),
            auth_user: self.auth_user.clone(),
            password: self.password.clone(),
        }
    }

    /// This config with `account`'s user and credentials instead of its own.
    pub(crate) fn for_account(&self, account: &SipAccount) -> SipConfig {
        let mut config = self.clone();
        config.user = account.user.clone();
        config.auth_user = account.auth_user.clone();
        config.password = account.password.clone();
        config
    }

    /// The agent's address of record, `sip:user@domain`.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// The SIP URI for a dialled destination: a URI as given, a number at the domain.
    pub fn target_uri(&self, to: &Dialable) -> String {
        let to = to.as_str();
        if to.starts_with("sip:") || to.starts_with("sips:") {
            to.to_owned()
        } else if to.contains('@') {
            format!("sip:{to}")
        } else {
            format!("sip:{to}@{}", self.domain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SipConfig {
        SipConfig::new(
            "127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!()),
            "1001",
            Secret::new("topsecret"),
        )
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = config();
        let text = format!("{c:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = config();
        assert!(c.validate().is_ok());
        c.user = "10 01".into();
        let e = c.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("user"), "{e}");
        let mut c = config();
        c.domain = "a\r\nb".into();
        assert!(c.validate().unwrap_err().message().contains("domain"));
        let mut c = config();
        c.register_expires = 1;
        assert!(c.validate().is_err());
        let mut c = config();
        assert_eq!(c.media.inactivity_timeout, Some(Duration::from_secs(30)));
        c.media.inactivity_timeout = Some(Duration::from_millis(500));
        assert!(c
            .validate()
            .unwrap_err()
            .message()
            .contains("inactivity_timeout"));
        c.media.inactivity_timeout = None;
        assert!(c.validate().is_ok());
        let mut c = config();
        c.transport = Transport::Tls;
        assert!(c.validate().unwrap_err().message().contains("tls_ca_file"));
        c.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert!(c.validate().is_ok());
        let e = c.tls_trust().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("/nonexistent/ca.pem"), "{e}");
        c.tls_server_name = Some("a b".into());
        assert!(c
            .validate()
            .unwrap_err()
            .message()
            .contains("tls_server_name"));
    }

    #[test]
    fn tls_server_name_defaults_to_the_domain_host() {
        let dir = std::env::temp_dir().join(format!("opencti-sip-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut c = config();
        c.transport = Transport::Tls;
        c.tls_ca_file = Some(ca.clone());
        let name = |c: &SipConfig| {
            c.tls_trust()
                .unwrap_or_else(|e| panic!("{e}"))
                .and_then(|t| t.1)
        };
        assert_eq!(
            name(&c),
            None,
            "an IP domain: the registrar's IP is verified"
        );
        c.domain = "pbx.example:5061".into();
        assert_eq!(name(&c).as_deref(), Some("pbx.example"));
        c.domain = "pbx.example".into();
        assert_eq!(name(&c).as_deref(), Some("pbx.example"));
        c.domain = "[::1]:5061".into();
        assert_eq!(name(&c), None);
        c.tls_server_name = Some("sip.example".into());
        assert_eq!(name(&c).as_deref(), Some("sip.example"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn targets() {
        let c = config();
        let d = |s: &str| Dialable::new(s).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.target_uri(&d("1002")), "sip:1002@127.0.0.1");
        assert_eq!(c.target_uri(&d("sip:x@h:5070")), "sip:x@h:5070");
        assert_eq!(c.target_uri(&d("x@h")), "sip:x@h");
    }
}
