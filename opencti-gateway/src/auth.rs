//! Who may connect, and as which agent: tokens the integrator's code issues per agent.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Result};

/// What an authenticated connection may do: act as one agent at one device, or
/// supervise, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Grant {
    /// The agent, or the supervisor's own id.
    pub agent: AgentId,
    /// The agent's device, or the supervisor's (where listening in rings).
    pub device: DeviceId,
    /// Agent or supervisor.
    pub role: Role,
}

impl Grant {
    /// An agent at a device: their own desk and nothing else.
    pub fn agent(agent: AgentId, device: DeviceId) -> Self {
        Grant {
            agent,
            device,
            role: Role::Agent,
        }
    }

    /// A supervisor, with the device they listen in on: every agent's state and calls,
    /// every queue, and the supervisor commands; no desk of their own.
    pub fn supervisor(id: AgentId, device: DeviceId) -> Self {
        Grant {
            agent: id,
            device,
            role: Role::Supervisor,
        }
    }
}

/// What a signed-in person is to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Works calls at their desk.
    Agent,
    /// Watches the centre and steps in.
    Supervisor,
}

impl Role {
    /// `agent` or `supervisor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }
}

/// Checks the token a browser presents. Implement it over your own sign-on (a JWT, a
/// session table); [`TokenTable`] is a ready one for tokens issued in process.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The grant for `token`, or an error: [`ErrorKind::Unauthorized`] for a token that is
    /// unknown, revoked or expired, another kind (such as [`ErrorKind::LinkDown`]) when
    /// the authenticator cannot tell; the connection is refused either way. The error's
    /// message goes to the browser and to the log: it must not contain the token.
    async fn authenticate(&self, token: &str) -> Result<Grant>;
}

/// Where the tokens of signed-in agents live: issued at sign-in, checked on every
/// WebSocket, withdrawn at sign-out. [`TokenTable`] keeps them in this process (one
/// gateway); with the feature `nats`, `NatsTokens` keeps them in a NATS JetStream
/// key-value bucket that every gateway of a site shares.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use opencti_core::{AgentId, DeviceId};
/// use opencti_gateway::{Grant, TokenStore, TokenTable};
/// let tokens: Arc<dyn TokenStore> = Arc::new(TokenTable::new());
/// let alice = AgentId::new("alice")?;
/// let grant = Grant::agent(alice.clone(), DeviceId::new("1001")?);
/// let token = tokens.issue_grant(grant, Some(Duration::from_secs(3600))).await?;
/// assert_eq!(tokens.authenticate(token.expose()).await?.agent, alice);
/// tokens.revoke_agent(&alice).await?;
/// assert!(tokens.authenticate(token.expose()).await.is_err());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TokenStore: Authenticator {
    /// Issues a new token for `grant`, good until revoked (`None`) or for `lifetime`. A
    /// store may bound how long any token lasts (`NatsTokens` by its bucket's age).
    async fn issue_grant(&self, grant: Grant, lifetime: Option<Duration>) -> Result<Token>;

    /// Withdraws the token with this text, if there is one (an unknown one is no error);
    /// connections already open stay open. Fails only when the store cannot be reached.
    async fn revoke_text(&self, token: &str) -> Result<()>;

    /// Withdraws every token of `agent` issued so far (signed out everywhere, or no
    /// longer an agent). Fails only when the store cannot be reached.
    async fn revoke_agent(&self, agent: &AgentId) -> Result<()>;
}

/// A secret a browser presents; never shown in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A fresh random token: 32 bytes from the operating system, as hex.
    pub fn generate() -> Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("the operating system gave no random bytes: {}", e),
            )
        })?;
        Ok(Token(bytes.iter().map(|b| format!("{:02x}", b)).collect()))
    }

    /// The token's text, to hand to the browser.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Tokens issued in process, each for one agent at one device.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> opencti_core::Result<()> {
/// use opencti_core::{AgentId, DeviceId};
/// use opencti_gateway::{Authenticator, TokenTable};
/// let tokens = TokenTable::new();
/// let token = tokens.issue(AgentId::new("alice")?, DeviceId::new("1001")?)?;
/// let grant = tokens.authenticate(token.expose()).await?;
/// assert_eq!(grant.agent.as_str(), "alice");
/// assert!(tokens.authenticate("guess").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    grants: Arc<RwLock<HashMap<Token, Issued>>>,
}

/// A grant, and when its token stops working (never, for `None`).
#[derive(Debug, Clone)]
struct Issued {
    grant: Grant,
    expires: Option<Instant>,
}

impl TokenTable {
    /// An empty table.
    pub fn new() -> Self {
        TokenTable::default()
    }

    /// Issues a new token for `agent` at `device`, good until revoked.
    pub fn issue(&self, agent: AgentId, device: DeviceId) -> Result<Token> {
        self.insert(Grant::agent(agent, device), None)
    }

    /// Issues a new token for `agent` at `device` that stops working after `lifetime`
    /// (a sign-in's). Expired tokens are forgotten as new ones are issued.
    pub fn issue_for(&self, agent: AgentId, device: DeviceId, lifetime: Duration) -> Result<Token> {
        self.issue_grant(Grant::agent(agent, device), Some(lifetime))
    }

    /// Issues a new token for `grant` (an agent's or a supervisor's), good until revoked
    /// (`None`) or for `lifetime`.
    pub fn issue_grant(&self, grant: Grant, lifetime: Option<Duration>) -> Result<Token> {
        let expires = lifetime.and_then(|l| Instant::now().checked_add(l));
        self.insert(grant, expires)
    }

    fn insert(&self, grant: Grant, expires: Option<Instant>) -> Result<Token> {
        let token = Token::generate()?;
        let mut grants = self.grants.write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        grants.retain(|_, issued| issued.expires.is_none_or(|at| at > now));
        grants.insert(token.clone(), Issued { grant, expires });
        Ok(token)
    }

    /// Withdraws a token; connections already open stay open.
    pub fn revoke(&self, token: &Token) {
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Withdraws the token with this text, if there is one.
    pub fn revoke_text(&self, token: &str) {
        self.revoke(&Token(token.to_owned()));
    }

    /// Withdraws every token of `agent` (signed out everywhere, or no longer an agent).
    pub fn revoke_agent(&self, agent: &AgentId) {
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, issued| &issued.grant.agent != agent);
    }
}

/// The same as the table's own methods, which never fail to reach the table.
#[async_trait]
impl TokenStore for TokenTable {
    async fn issue_grant(&self, grant: Grant, lifetime: Option<Duration>) -> Result<Token> {
        TokenTable::issue_grant(self, grant, lifetime)
    }

    async fn revoke_text(&self, token: &str) -> Result<()> {
        TokenTable::revoke_text(self, token);
        Ok(())
    }

    async fn revoke_agent(&self, agent: &AgentId) -> Result<()> {
        TokenTable::revoke_agent(self, agent);
        Ok(())
    }
}

#[async_trait]
impl Authenticator for TokenTable {
    async fn authenticate(&self, token: &str) -> Result<Grant> {
        // A keyed-hash lookup: the time taken does not reveal how much of a guess matched.
        let issued = self
            .grants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Token(token.to_string()))
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "unknown or revoked token"))?;
        if issued.expires.is_some_and(|at| at <= Instant::now()) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "the token has expired: sign in again",
            ));
        }
        Ok(issued.grant)
    }
}
