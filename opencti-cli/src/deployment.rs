//! The deployment file: one contact centre as its administrator writes it (where the
//! gateway listens, the phone system, the CRM, the agents with their password hashes).
//!
//! Loading checks everything it can without connecting anywhere, and a bad file gets an
//! error naming the file, the line and column, and what was expected there. Passwords
//! are never in the file: each agent has an Argon2id hash that `opencti hash-password`
//! prints.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use opencti_core::{AgentId, DeviceId, QueueId};
use serde::Deserialize;
use toml::Spanned;

/// Longest password accepted, in bytes (a longer one is refused before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A contact centre: see the module docs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Where the gateway listens and whom it lets in.
    pub listen: Listen,
    /// The phone system behind every agent.
    pub phone_system: PhoneSystem,
    /// The CRM's call log.
    #[serde(default)]
    pub crm: Crm,
    /// The Salesforce Voice connector's library, when agents work in Salesforce Voice.
    #[serde(default)]
    pub salesforce_voice: SalesforceVoice,
    /// The agents, each signing in with an id and a password.
    #[serde(rename = "agent")]
    pub agents: Vec<Agent>,
    /// The supervisors: they sign in the same way, and get the wallboard.
    #[serde(rename = "supervisor", default)]
    pub supervisors: Vec<Supervisor>,
    /// The file's directory: relative paths in the file are relative to it.
    #[serde(skip)]
    base: PathBuf,
}

/// `[listen]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// `address = "127.0.0.1:8080"`.
    pub address: Spanned<String>,
    /// Connections open at once, WebSockets included (default 1,024): at least one for
    /// each agent whose browser this gateway serves. Beyond it a new connection is closed.
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
    /// PEM certificate chain for HTTPS; with `tls_key`, or neither.
    #[serde(default)]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Browser origins allowed to open the WebSocket (`https://desk.example.com`);
    /// empty for the gateway's own origin only.
    #[serde(default)]
    pub allowed_origins: Vec<Spanned<String>>,
    /// CRM origins allowed to frame the panel (a softphone inside the CRM); empty for
    /// none. The Salesforce softphone also runs Salesforce's library from them.
    #[serde(default)]
    pub frame_ancestors: Vec<Spanned<String>>,
}

/// `[phone_system]`, chosen by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PhoneSystem {
    /// The embedded simulator.
    Simulator,
    /// Asterisk over AMI: one connection for every agent.
    Asterisk {
        /// `host:port` of the AMI (5038, or 5039 with TLS).
        address: String,
        /// The AMI user.
        username: String,
        /// A file holding the AMI secret (never the secret itself).
        secret_file: PathBuf,
        /// The CA that signed Asterisk's certificate, for AMI over TLS.
        #[serde(default)]
        tls_ca_file: Option<PathBuf>,
        /// The dialplan context the agents' own calls (make call, consult, transfer)
        /// go out from; the connector's default (`from-agents`) when left out.
        #[serde(default)]
        outbound_context: Option<String>,
        /// Whether the agents' phones answer offered calls by themselves.
        #[serde(default)]
        answer: PhoneAnswers,
        /// The dialplan context whose extensions are ConfBridge rooms: turns the
        /// conference commands on.
        #[serde(default)]
        conference_context: Option<String>,
    },
    /// A SIP registrar: each agent's line registers its own account.
    Sip {
        /// `host:port` of the registrar.
        registrar: String,
        /// The SIP domain.
        domain: String,
    },
}

/// `answer` of an Asterisk phone system: how the agents' phones answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneAnswers {
    /// The agent lifts the handset (or presses the phone's key): `answer` is not
    /// offered on the desk, since AMI cannot take a phone off hook. The default.
    #[default]
    ByHand,
    /// The phone answers by itself (auto-answer, for example asked for by the
    /// dialplan): `answer` is offered and confirmed by the phone's own answer.
    PhoneAnswersItself,
}

impl fmt::Display for PhoneSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneSystem::Simulator => f.write_str("the embedded simulator"),
            PhoneSystem::Asterisk {
                address,
                username,
                tls_ca_file,
                ..
            } => {
                let tls = if tls_ca_file.is_some() {
                    " over TLS"
                } else {
                    ""
                };
                write!(f, "Asterisk AMI at {address}{tls}, user {username}")
            }
            PhoneSystem::Sip { registrar, domain } => {
                write!(f, "the SIP registrar {registrar} (domain {domain})")
            }
        }
    }
}

/// `[crm]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crm {
    /// The SQLite file of the contacts and the call log; without it, no screen pops
    /// and no call log.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
}

/// `[salesforce_voice]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceVoice {
    /// `@salesforce/scv-connector-base` 3.6.2's `dist/scv-connector-base.js` (from npm:
    /// it is Salesforce's, not part of opencti), served where the connector page loads it.
    #[serde(default)]
    pub library: Option<PathBuf>,
}

/// One `[[agent]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The id the agent signs in with.
    pub id: Spanned<String>,
    /// The name shown on the panel.
    pub name: String,
    /// The agent's device at the phone system (`PJSIP/1001`, `Local/1001@agents`).
    pub device: Spanned<String>,
    /// The queues the agent works in.
    #[serde(default)]
    pub queues: Vec<Spanned<String>>,
    /// The Argon2id hash of the agent's password, as `opencti hash-password` prints it.
    pub password_hash: Spanned<String>,
    /// For a SIP phone system: a file holding the agent's SIP password.
    #[serde(default)]
    pub sip_password_file: Option<PathBuf>,
}

/// One `[[supervisor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervisor {
    /// The id the supervisor signs in with (no agent's).
    pub id: Spanned<String>,
    /// The supervisor's own phone, where listening in on a call rings.
    pub device: Spanned<String>,
    /// The Argon2id hash of the supervisor's password.
    pub password_hash: Spanned<String>,
}

/// Who signed in.
#[derive(Debug, Clone, Copy)]
pub enum SignedIn<'a> {
    /// An agent, to their desk.
    Agent(&'a Agent),
    /// A supervisor, to the wallboard.
    Supervisor(&'a Supervisor),
}

/// A deployment file that cannot be used: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem is at a place in the file.
    pub at: Option<(usize, usize)>,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for DeploymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for DeploymentError {}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Deployment {
    /// Reads and checks the deployment file at `path`.
    pub fn load(path: &Path) -> Result<Deployment, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeploymentError {
            file: path.to_owned(),
            at: None,
            message: format!("cannot read the deployment file: {e}"),
        })?;
        Deployment::parse(path, &text)
    }

    /// Parses and checks `text`, the contents of `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Deployment, DeploymentError> {
        let error = |span: Option<Range<usize>>, message: String| DeploymentError {
            file: file.to_owned(),
            at: span.map(|s| line_and_column(text, s.start)),
            message,
        };
        let mut deployment: Deployment =
            toml::from_str(text).map_err(|e| error(e.span(), e.message().to_owned()))?;
        deployment.base = file.parent().map(Path::to_owned).unwrap_or_default();
        deployment
            .check()
            .map_err(|(span, message)| error(span, message))?;
        // Made now, so that the first sign-in of an unknown agent is not the slow one.
        decoy_hash();
        Ok(deployment)
    }

    /// `path` as written in the file, relative to the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// The certificate chain and private key for HTTPS, relative to the file's
    /// directory, when `[listen]` gives them (both or neither, checked when loaded).
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        match (&self.listen.tls_certificate, &self.listen.tls_key) {
            (Some(certificate), Some(key)) => Some((self.resolve(certificate), self.resolve(key))),
            _ => None,
        }
    }

    /// The files the deployment names that cannot be read now (secrets, certificates,
    /// the CA), each with why.
    pub fn unreadable_files(&self) -> Vec<String> {
        let mut files: Vec<(&str, &PathBuf)> = Vec::new();
        if let Some(f) = &self.listen.tls_certificate {
            files.push(("listen.tls_certificate", f));
        }
        if let Some(f) = &self.listen.tls_key {
            files.push(("listen.tls_key", f));
        }
        if let Some(f) = &self.salesforce_voice.library {
            files.push(("salesforce_voice.library", f));
        }
        if let PhoneSystem::Asterisk {
            secret_file,
            tls_ca_file,
            ..
        } = &self.phone_system
        {
            files.push(("phone_system.secret_file", secret_file));
            if let Some(f) = tls_ca_file {
                files.push(("phone_system.tls_ca_file", f));
            }
        }
        for agent in &self.agents {
            if let Some(f) = &agent.sip_password_file {
                files.push(("agent.sip_password_file", f));
            }
        }
        files
            .into_iter()
            .filter_map(|(what, file)| {
                let path = self.resolve(file);
                std::fs::metadata(&path)
                    .err()
                    .map(|e| format!("{what} {}: {e}", path.display()))
            })
            .collect()
    }

    /// How many connections the gateway keeps open at once, when `[listen]` says.
    pub fn max_connections(&self) -> Option<usize> {
        self.listen.max_connections.as_ref().map(|m| *m.get_ref())
    }

    /// The listen address (checked when the file was loaded).
    pub fn address(&self) -> Option<SocketAddr> {
        self.listen.address.get_ref().parse().ok()
    }

    /// The agent `id` if `password` is theirs. An unknown agent and a wrong password are
    /// refused alike, and take as long (a hash is checked either way), so that a refusal
    /// does not tell whether the agent exists.
    pub fn sign_in(&self, id: &str, password: &str) -> Option<SignedIn<'_>> {
        let person = self
            .agents
            .iter()
            .find(|a| a.id.get_ref() == id)
            .map(SignedIn::Agent)
            .or_else(|| {
                self.supervisors
                    .iter()
                    .find(|s| s.id.get_ref() == id)
                    .map(SignedIn::Supervisor)
            });
        let hash: &str = match person {
            Some(SignedIn::Agent(a)) => a.password_hash.get_ref(),
            Some(SignedIn::Supervisor(s)) => s.password_hash.get_ref(),
            None => decoy_hash(),
        };
        let matches = password.len() <= MAX_PASSWORD_BYTES && verify(password, hash);
        person.filter(|_| matches)
    }

    fn check(&self) -> Result<(), (Option<Range<usize>>, String)> {
        let at = |s: &Spanned<String>| Some(s.span());
        if self.address().is_none() {
            return Err((
                at(&self.listen.address),
                format!(
                    "listen.address {:?} is not an address: expected host:port with an IP, such as \"127.0.0.1:8080\"",
                    self.listen.address.get_ref()
                ),
            ));
        }
        if let Some(max) = &self.listen.max_connections {
            if *max.get_ref() == 0 {
                return Err((
                    Some(max.span()),
                    "listen.max_connections: expected at least 1".into(),
                ));
            }
        }
        if self.listen.tls_certificate.is_some() != self.listen.tls_key.is_some() {
            return Err((
                None,
                "listen: expected both tls_certificate and tls_key, or neither".into(),
            ));
        }
        for origin in self
            .listen
            .allowed_origins
            .iter()
            .chain(&self.listen.frame_ancestors)
        {
            if !is_origin(origin.get_ref()) {
                return Err((
                    at(origin),
                    format!(
                        "{:?} is not an origin: expected a scheme and a host, with a port if not the default, and nothing after (such as \"https://crm.example.com\")",
                        origin.get_ref()
                    ),
                ));
            }
        }
        if self.agents.is_empty() {
            return Err((
                None,
                "no agent: expected at least one [[agent]] with id, name, device and password_hash"
                    .into(),
            ));
        }
        let mut ids = HashMap::new();
        let mut devices = HashMap::new();
        for agent in &self.agents {
            if let Err(e) = AgentId::new(agent.id.get_ref()) {
                return Err((at(&agent.id), format!("agent id: {e}")));
            }
            if let Err(e) = DeviceId::new(agent.device.get_ref()) {
                return Err((at(&agent.device), format!("agent device: {e}")));
            }
            if ids.insert(agent.id.get_ref().clone(), ()).is_some() {
                return Err((
                    at(&agent.id),
                    format!(
                        "agent id {:?} is there twice: expected one [[agent]] per id",
                        agent.id.get_ref()
                    ),
                ));
            }
            if devices
                .insert(agent.device.get_ref().to_ascii_lowercase(), ())
                .is_some()
            {
                return Err((
                    at(&agent.device),
                    format!(
                        "device {:?} belongs to two agents: expected one agent per device",
                        agent.device.get_ref()
                    ),
                ));
            }
            for queue in &agent.queues {
                if let Err(e) = QueueId::new(queue.get_ref()) {
                    return Err((at(queue), format!("queue: {e}")));
                }
            }
            if !is_password_hash(agent.password_hash.get_ref()) {
                return Err((
                    at(&agent.password_hash),
                    "password_hash: expected an Argon2id hash as `opencti hash-password` prints it ($argon2id$v=19$...)".into(),
                ));
            }
            if matches!(self.phone_system, PhoneSystem::Sip { .. })
                && agent.sip_password_file.is_none()
            {
                return Err((
                    at(&agent.id),
                    format!(
                        "agent {:?}: a SIP phone system needs sip_password_file for each agent",
                        agent.id.get_ref()
                    ),
                ));
            }
        }
        for supervisor in &self.supervisors {
            if let Err(e) = AgentId::new(supervisor.id.get_ref()) {
                return Err((at(&supervisor.id), format!("supervisor id: {e}")));
            }
            if let Err(e) = DeviceId::new(supervisor.device.get_ref()) {
                return Err((at(&supervisor.device), format!("supervisor device: {e}")));
            }
            if ids.insert(supervisor.id.get_ref().clone(), ()).is_some() {
                return Err((
                    at(&supervisor.id),
                    format!(
                        "id {:?} is there twice: expected each agent and supervisor to have an id of their own",
                        supervisor.id.get_ref()
                    ),
                ));
            }
            if !is_password_hash(supervisor.password_hash.get_ref()) {
                return Err((
                    at(&supervisor.password_hash),
                    "password_hash: expected an Argon2id hash as `opencti hash-password` prints it ($argon2id$v=19$...)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `text` is an origin: `scheme://host[:port]`, nothing after.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| {
        if port.parse::<u16>().is_ok() {
            host
        } else {
            rest
        }
    });
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
}

fn is_password_hash(text: &str) -> bool {
    PasswordHash::new(text).is_ok_and(|h| h.algorithm.as_str() == "argon2id")
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of no one's password, checked for unknown agents.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hash_password(&format!("{now:x}")).unwrap_or_default()
    })
}

/// The Argon2id hash of `password` (with a fresh random salt), for a deployment file.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "a password must have 1 to {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Deployment, DeploymentError> {
        Deployment::parse(Path::new("centre.toml"), text)
    }

    fn centre(agents: &str) -> String {
        format!(
            "[listen]\naddress = \"127.0.0.1:8080\"\n\n[phone_system]\nkind = \"simulator\"\n\n{agents}"
        )
    }

    fn agent(id: &str, device: &str, hash: &str) -> String {
        format!(
            "[[agent]]\nid = \"{id}\"\nname = \"Agent {id}\"\ndevice = \"{device}\"\nqueues = [\"support\"]\npassword_hash = \"{hash}\"\n\n"
        )
    }

    #[test]
    fn a_gateway_for_many_agents_keeps_as_many_connections_as_the_file_says() {
        let hash = hash_password("pw").unwrap_or_default();
        let plain = parse(&centre(&agent("a", "PJSIP/1", &hash))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.max_connections(), None);
        let many = centre(&agent("a", "PJSIP/1", &hash)).replace(
            "address = \"127.0.0.1:8080\"",
            "address = \"127.0.0.1:8080\"\nmax_connections = 6000",
        );
        let d = parse(&many).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.max_connections(), Some(6000));
    }

    #[test]
    fn the_shipped_examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deployments");
        for name in ["simulator.toml", "asterisk.toml"] {
            let d = Deployment::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
            assert!(d.agents.len() >= 2, "{name}");
            assert!(d.address().is_some(), "{name}");
        }
    }

    #[test]
    fn sign_in_takes_the_right_password_only_and_says_nothing_of_who_exists() {
        let hash = hash_password("correct horse").unwrap_or_default();
        let d =
            parse(&centre(&agent("alice", "PJSIP/1001", &hash))).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            d.sign_in("alice", "correct horse"),
            Some(SignedIn::Agent(a)) if a.id.get_ref() == "alice"
        ));
        assert!(d.sign_in("alice", "wrong").is_none());
        assert!(d.sign_in("mallory", "correct horse").is_none());
        assert!(d
            .sign_in("alice", &"x".repeat(MAX_PASSWORD_BYTES + 1))
            .is_none());
        assert!(hash_password("").is_err());
    }

    #[test]
    fn supervisors_sign_in_as_supervisors_and_share_no_id_with_an_agent() {
        let hash = hash_password("watch").unwrap_or_default();
        let supervisor = |id: &str| {
            format!(
                "[[supervisor]]\nid = \"{id}\"\ndevice = \"1009\"\npassword_hash = \"{hash}\"\n"
            )
        };
        let file = centre(&agent("alice", "1001", &hash)) + &supervisor("sam");
        let d = parse(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            d.sign_in("sam", "watch"),
            Some(SignedIn::Supervisor(s)) if s.device.get_ref() == "1009"
        ));
        assert!(d.sign_in("sam", "wrong").is_none());
        let twice = centre(&agent("alice", "1001", &hash)) + &supervisor("alice");
        let error = parse(&twice).unwrap_err();
        assert!(
            error.message.contains("\"alice\" is there twice"),
            "{error}"
        );
        assert!(error.at.is_some(), "{error}");
    }

    #[test]
    fn a_bad_file_names_the_line_and_what_was_expected() {
        let hash = hash_password("pw").unwrap_or_default();
        // A TOML syntax error.
        let e = parse("[listen]\naddress = 127.0.0.1:8080\n")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(2), "{e}");
        assert!(e.to_string().starts_with("centre.toml:2:"), "{e}");
        // A field that does not exist.
        let e = parse(&centre(&agent("a", "PJSIP/1", &hash)).replace("name =", "nmae ="))
            .map(|_| ())
            .unwrap_err();
        assert!(e.message.contains("nmae"), "{e}");
        // The same agent twice: the line of the second.
        let text = centre(&(agent("a", "PJSIP/1", &hash) + &agent("a", "PJSIP/2", &hash)));
        let e = parse(&text).map(|_| ()).unwrap_err();
        let second = text
            .match_indices("id = \"a\"")
            .nth(1)
            .map(|(i, _)| i)
            .unwrap_or(0);
        assert_eq!(e.at, Some(line_and_column(&text, second + 5)), "{e}");
        assert!(e.message.contains("twice"), "{e}");
        // One device for two agents.
        let e = parse(&centre(
            &(agent("a", "PJSIP/1", &hash) + &agent("b", "pjsip/1", &hash)),
        ))
        .map(|_| ())
        .unwrap_err();
        assert!(e.message.contains("two agents"), "{e}");
        // A password instead of its hash.
        let e = parse(&centre(&agent("a", "PJSIP/1", "hunter2")))
            .map(|_| ())
            .unwrap_err();
        assert!(e.message.contains("opencti hash-password"), "{e}");
        assert!(
            !e.to_string().contains("hunter2"),
            "the password is not repeated: {e}"
        );
        // An address, an origin, a lone certificate, no agent, a bad id.
        let bad = [
            (centre(&agent("a", "PJSIP/1", &hash)).replace("127.0.0.1:8080", "localhost"), "not an address"),
            (
                centre(&agent("a", "PJSIP/1", &hash)).replace(
                    "address = \"127.0.0.1:8080\"",
                    "address = \"127.0.0.1:8080\"\nallowed_origins = [\"https://crm.example.com/path\"]",
                ),
                "not an origin",
            ),
            (
                centre(&agent("a", "PJSIP/1", &hash)).replace(
                    "address = \"127.0.0.1:8080\"",
                    "address = \"127.0.0.1:8080\"\ntls_certificate = \"cert.pem\"",
                ),
                "both tls_certificate and tls_key",
            ),
            (centre(""), "missing field"),
            (
                centre(&agent("a", "PJSIP/1", &hash)).replace(
                    "kind = \"simulator\"",
                    "kind = \"asterisk\"\naddress = \"127.0.0.1:5038\"\nusername = \"u\"\nsecret_file = \"s\"\nanswer = \"always\"",
                ),
                "unknown variant `always`, expected `by_hand` or `phone_answers_itself`",
            ),
            (centre(&agent("a b", "PJSIP/1", &hash)), "agent id"),
            (
                centre(&agent("a", "PJSIP/1", &hash)).replace(
                    "address = \"127.0.0.1:8080\"",
                    "address = \"127.0.0.1:8080\"\nmax_connections = 0",
                ),
                "listen.max_connections: expected at least 1",
            ),
        ];
        for (text, expected) in bad {
            let e = parse(&text).map(|_| ()).unwrap_err();
            assert!(e.message.contains(expected), "{expected:?} in {e}");
        }
        // Markup in a name stays text (the panel shows it as text).
        let d = parse(&centre(&agent("a", "PJSIP/1", &hash)).replace("Agent a", "<b>a</b>"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.agents[0].name, "<b>a</b>");
    }

    #[test]
    fn the_tls_files_are_relative_to_the_deployment_file() {
        let hash = hash_password("pw").unwrap_or_default();
        let text = centre(&agent("a", "PJSIP/1", &hash));
        let file = Path::new("/etc/opencti/centre.toml");
        let plain = Deployment::parse(file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.tls_files(), None);
        let text = text.replace(
            "address = \"127.0.0.1:8080\"",
            "address = \"127.0.0.1:8443\"\ntls_certificate = \"tls/cert.pem\"\ntls_key = \"/keys/key.pem\"",
        );
        let https = Deployment::parse(file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            https.tls_files(),
            Some((
                PathBuf::from("/etc/opencti/tls/cert.pem"),
                PathBuf::from("/keys/key.pem")
            ))
        );
    }

    #[test]
    fn a_salesforce_voice_library_that_is_not_there_is_named() {
        let hash = hash_password("pw").unwrap_or_default();
        let text = centre(&agent("a", "PJSIP/1", &hash))
            + "[salesforce_voice]\nlibrary = \"no-such-dir/scv-connector-base.js\"\n";
        let d = Deployment::parse(Path::new("/nonexistent/centre.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        let problems = d.unreadable_files();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("salesforce_voice.library")
                    && p.contains("/nonexistent/no-such-dir/scv-connector-base.js")),
            "{problems:?}"
        );
        let bad = text.replace("library =", "libary =");
        let e = parse(&bad).map(|_| ()).unwrap_err();
        assert!(e.message.contains("unknown field `libary`"), "{e}");
    }

    #[test]
    fn origins() {
        for good in [
            "https://crm.example.com",
            "http://127.0.0.1:8080",
            "https://[::1]:8443",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "crm.example.com",
            "https://",
            "https://crm.example.com/",
            "ftp://x",
            "https://a b",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
