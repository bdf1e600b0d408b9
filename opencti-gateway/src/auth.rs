//! Who may connect, and as which agent: tokens the integrator's code issues per agent.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Result};

/// What an authenticated connection may do: act as one agent at one device, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The agent.
    pub agent: AgentId,
    /// The agent's device.
    pub device: DeviceId,
}

/// Checks the token a browser presents. Implement it over your own sign-on (a JWT, a
/// session table); [`TokenTable`] is a ready one for tokens issued in process.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The grant for `token`, or an [`ErrorKind::Unauthorized`] error. The error's message
    /// goes to the browser and to the log: it must not contain the token.
    async fn authenticate(&self, token: &str) -> Result<Grant>;
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
    grants: Arc<RwLock<HashMap<Token, Grant>>>,
}

impl TokenTable {
    /// An empty table.
    pub fn new() -> Self {
        TokenTable::default()
    }

    /// Issues a new token for `agent` at `device`.
    pub fn issue(&self, agent: AgentId, device: DeviceId) -> Result<Token> {
        let token = Token::generate()?;
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), Grant { agent, device });
        Ok(token)
    }

    /// Withdraws a token; connections already open stay open.
    pub fn revoke(&self, token: &Token) {
        self.grants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

#[async_trait]
impl Authenticator for TokenTable {
    async fn authenticate(&self, token: &str) -> Result<Grant> {
        // A keyed-hash lookup: the time taken does not reveal how much of a guess matched.
        self.grants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Token(token.to_string()))
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "unknown or revoked token"))
    }
}
