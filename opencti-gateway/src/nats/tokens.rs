//! Sign-in's tokens in a NATS JetStream key-value bucket that every gateway of a site
//! shares: a token issued by one gateway works on all of them, and a revocation on one
//! holds on all of them at once.
//!
//! The bucket `opencti_<site>_tokens` holds two kinds of entry:
//!
//! - `token.<sha256 of the token, hex>`: the grant's agent, device and role, and when the
//!   token expires (wall-clock microseconds since the Unix epoch), as JSON. The token
//!   itself is never stored: what is in the bucket cannot be presented as a token.
//! - `agent.<sha256 of the agent id, hex>`: the agent's revocation marker, written by
//!   [`TokenStore::revoke_agent`]. A token entry older than the marker (a lower
//!   revision: the bucket's own order, not any gateway's clock) is refused.
//!
//! The bucket's max age bounds how long any entry stays; no token lasts longer.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, Result, Timestamp};
use opencti_nats::async_nats::jetstream::{self, kv};
use opencti_nats::Site;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{Authenticator, Grant, Role, Token, TokenStore};

/// The limits of a site's token bucket. The defaults keep an entry a day at most, on one
/// server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsTokenLimits {
    /// How long the bucket keeps an entry: no token lasts longer, whatever lifetime it
    /// was issued with. Longer than the sign-in's token lifetime. Not zero.
    pub max_age: Duration,
    /// Copies kept in a cluster (1 on a single server).
    pub replicas: usize,
}

impl Default for NatsTokenLimits {
    fn default() -> Self {
        NatsTokenLimits {
            max_age: Duration::from_secs(24 * 3600),
            replicas: 1,
        }
    }
}

impl NatsTokenLimits {
    /// The default limits with entries kept for `max_age`.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The same limits with `replicas` copies in a cluster.
    #[must_use]
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }
}

/// Tokens in the site's NATS JetStream key-value bucket, shared by every gateway of the
/// site: give each gateway its own connection and a `NatsTokens` for the same site, as
/// its authenticator and its sign-in's store.
///
/// Nothing is kept in the process: every authentication reads the bucket (two reads:
/// the token's entry, then its agent's revocation marker), so a revocation on one gateway
/// is refused by every other from then on. When NATS cannot be reached, authentication
/// refuses (`link_down`), as do issuing and revoking.
///
/// ```no_run
/// # async fn demo(check: std::sync::Arc<dyn opencti_gateway::SignIn>,
/// #     sessions: std::sync::Arc<dyn opencti_gateway::SessionFactory>)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use opencti_gateway::{Gateway, NatsTokenLimits, NatsTokens};
/// use opencti_nats::async_nats::{self, jetstream};
/// use opencti_nats::Site;
///
/// let jetstream = jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await?);
/// let tokens = Arc::new(
///     NatsTokens::open(&jetstream, &Site::new("paris")?, &NatsTokenLimits::default()).await?,
/// );
/// let gateway = Gateway::new(tokens.clone(), sessions)
///     .with_sign_in(check, tokens, Duration::from_secs(12 * 3600));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsTokens {
    kv: kv::Store,
    bucket: String,
    max_age: Duration,
}

impl fmt::Debug for NatsTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTokens")
            .field("bucket", &self.bucket)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// A token entry's value.
#[derive(Serialize, Deserialize)]
struct Stored {
    agent: AgentId,
    device: DeviceId,
    role: StoredRole,
    /// Wall-clock time, microseconds since the Unix epoch.
    expires: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredRole {
    Agent,
    Supervisor,
}

/// An agent's revocation marker: whose, and when (for people reading the bucket; the
/// order that counts is the entries' revisions).
#[derive(Serialize)]
struct Revoked<'a> {
    agent: &'a AgentId,
    revoked_at: Timestamp,
}

/// Hex digits in a token this store issues ([`Token::generate`]: 32 bytes as hex).
const TOKEN_HEX_LEN: usize = 64;

/// Longest entry value, in bytes: a grant's JSON is far shorter.
const MAX_VALUE_BYTES: i32 = 4096;

impl NatsTokens {
    /// The bucket of `site`'s tokens: `opencti_<site>_tokens` (a site's name is letters,
    /// digits, `-` and `_`, all allowed in a bucket name).
    pub fn bucket_name(site: &Site) -> String {
        format!("opencti_{}_tokens", site.as_str())
    }

    /// Opens `site`'s token bucket, creating it or updating its limits: safe to call from
    /// every gateway at start. Fails with `config` for a zero max age, and with
    /// `link_down` when JetStream cannot be reached or refuses the bucket.
    pub async fn open(
        jetstream: &jetstream::Context,
        site: &Site,
        limits: &NatsTokenLimits,
    ) -> Result<NatsTokens> {
        let bucket = Self::bucket_name(site);
        if limits.max_age.is_zero() {
            // Zero would mean "kept for ever" to JetStream.
            return Err(Error::new(
                ErrorKind::Config,
                format!("the max age of token bucket {bucket} must be more than zero"),
            ));
        }
        let config = kv::Config {
            bucket: bucket.clone(),
            description: format!("opencti: the sign-in tokens of site {site}, by hash"),
            max_value_size: MAX_VALUE_BYTES,
            history: 1,
            max_age: limits.max_age,
            storage: jetstream::stream::StorageType::File,
            num_replicas: limits.replicas,
            ..Default::default()
        };
        let kv = jetstream
            .create_or_update_key_value(config)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::LinkDown,
                    format!("could not create or open the token bucket {bucket} on NATS: {e}"),
                )
                .with_source(e)
            })?;
        Ok(NatsTokens {
            kv,
            bucket,
            max_age: limits.max_age,
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn unreachable(&self, doing: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::new(
            ErrorKind::LinkDown,
            format!(
                "the token store (NATS bucket {}) could not be reached to {doing}: {e}",
                self.bucket
            ),
        )
        .with_source(e)
    }

    /// The latest value of `key` and its revision, or `None` if it has none (never put,
    /// deleted, or aged out).
    async fn read(&self, key: &str, doing: &str) -> Result<Option<kv::Entry>> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| self.unreachable(doing, e))?;
        Ok(entry.filter(|entry| entry.operation == kv::Operation::Put))
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of a token's entry, or `None` for text that is no token this store issues.
fn token_key(token: &str) -> Option<String> {
    let plausible = token.len() == TOKEN_HEX_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    plausible.then(|| format!("token.{}", sha256_hex(token)))
}

fn agent_key(agent: &AgentId) -> String {
    format!("agent.{}", sha256_hex(agent.as_str()))
}

fn unknown() -> Error {
    Error::new(ErrorKind::Unauthorized, "unknown or revoked token")
}

#[async_trait]
impl Authenticator for NatsTokens {
    async fn authenticate(&self, token: &str) -> Result<Grant> {
        let Some(key) = token_key(token) else {
            return Err(unknown());
        };
        let entry = self
            .read(&key, "check a token")
            .await?
            .ok_or_else(unknown)?;
        let stored: Stored = serde_json::from_slice(&entry.value).map_err(|e| {
            Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "the token's entry in bucket {} is not a grant ({e}): sign in again",
                    self.bucket
                ),
            )
        })?;
        if stored.expires <= Timestamp::now() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "the token has expired: sign in again",
            ));
        }
        let marker = self
            .read(&agent_key(&stored.agent), "check an agent's revocation")
            .await?;
        if marker.is_some_and(|marker| marker.revision > entry.revision) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "every token of this agent was revoked: sign in again",
            ));
        }
        Ok(match stored.role {
            StoredRole::Agent => Grant::agent(stored.agent, stored.device),
            StoredRole::Supervisor => Grant::supervisor(stored.agent, stored.device),
        })
    }
}

#[async_trait]
impl TokenStore for NatsTokens {
    /// Lasts `lifetime`, and never longer than the bucket's max age (`None` too).
    async fn issue_grant(&self, grant: Grant, lifetime: Option<Duration>) -> Result<Token> {
        let token = Token::generate()?;
        let lasts = lifetime.map_or(self.max_age, |l| l.min(self.max_age));
        let stored = Stored {
            role: match grant.role {
                Role::Agent => StoredRole::Agent,
                Role::Supervisor => StoredRole::Supervisor,
            },
            agent: grant.agent,
            device: grant.device,
            expires: Timestamp::now().saturating_add(lasts),
        };
        let value = serde_json::to_vec(&stored).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("a grant could not be written as JSON: {e}"),
            )
        })?;
        let key = token_key(token.expose()).ok_or_else(|| {
            Error::new(ErrorKind::Other, "a generated token is not 64 hex digits")
        })?;
        self.kv
            .put(key, value.into())
            .await
            .map_err(|e| self.unreachable("issue a token", e))?;
        Ok(token)
    }

    async fn revoke_text(&self, token: &str) -> Result<()> {
        let Some(key) = token_key(token) else {
            return Ok(());
        };
        // Only a token that is there leaves a deletion marker: sign-outs with made-up
        // tokens write nothing.
        if self.read(&key, "revoke a token").await?.is_some() {
            self.kv
                .delete(&key)
                .await
                .map_err(|e| self.unreachable("revoke a token", e))?;
        }
        Ok(())
    }

    async fn revoke_agent(&self, agent: &AgentId) -> Result<()> {
        let marker = Revoked {
            agent,
            revoked_at: Timestamp::now(),
        };
        let value = serde_json::to_vec(&marker).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("a revocation could not be written as JSON: {e}"),
            )
        })?;
        self.kv
            .put(agent_key(agent), value.into())
            .await
            .map_err(|e| self.unreachable("revoke an agent's tokens", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_hashes_never_the_token() {
        let token = "ab".repeat(32);
        let key = token_key(&token).expect("a plausible token");
        assert!(key.starts_with("token.") && key.len() == "token.".len() + 64);
        assert!(!key.contains(&token));
        assert_eq!(Some(key), token_key(&token), "the same token, the same key");
        for garbage in [
            "",
            "guess",
            &"ab".repeat(33),
            &"AB".repeat(32),
            &"zz".repeat(32),
        ] {
            assert_eq!(token_key(garbage), None, "{garbage:?}");
        }
        let agent = AgentId::new("j.doe").expect("an agent id");
        assert!(agent_key(&agent).starts_with("agent.") && !agent_key(&agent).contains("doe"));
    }

    #[test]
    fn bucket_names_are_per_site() {
        let site = Site::new("paris-2_b").expect("a site");
        assert_eq!(NatsTokens::bucket_name(&site), "opencti_paris-2_b_tokens");
    }
}
