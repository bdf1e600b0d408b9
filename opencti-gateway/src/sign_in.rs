//! Signing in with an agent id and a password: the page, and `POST /api/sign-in`, which
//! answers a token that expires.
//!
//! The gateway does not know the passwords: a [`SignIn`] (the deployment's agents, a
//! directory) checks them. A refusal says the same for an unknown agent and a wrong
//! password. Checking a password is slow on purpose (a password hash), so it runs on a
//! blocking thread, and a request body is small and bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opencti_core::ErrorKind;
use serde::Deserialize;

use crate::auth::{Grant, TokenStore};
use crate::router::Shared;

/// Longest sign-in request body, in bytes.
pub const MAX_SIGN_IN_BYTES: usize = 4096;

/// Failed sign-ins for one agent id within [`FAILURE_WINDOW`] after which further
/// attempts for that id are refused (`429`) until the window has passed.
pub const MAX_FAILED_SIGN_INS: u32 = 5;

/// Failed sign-ins from one network address within [`FAILURE_WINDOW`] after which
/// further attempts from there are refused (`429`) until the window has passed: caps
/// guessing across many agent ids, and the password hashing it costs. Generous, since
/// a whole contact centre may sign in from behind one address.
pub const MAX_FAILED_SIGN_INS_PER_ADDRESS: u32 = 50;

/// How long failed sign-ins count against an agent id or an address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Most agent ids or addresses whose failures are remembered at once (the oldest go
/// first).
const MAX_TRACKED: usize = 10_000;

/// Checks an agent's password: implement it over the deployment's agents or a directory.
pub trait SignIn: Send + Sync {
    /// The grant of agent `agent` if `password` is theirs; `None` otherwise, whether the
    /// agent exists or not. May be slow (a password hash): the gateway calls it on a
    /// blocking thread.
    fn sign_in(&self, agent: &str, password: &str) -> Option<Grant>;
}

/// What signing in needs: the check, where tokens go, and how long they last.
#[derive(Clone)]
pub(crate) struct SignInSettings {
    pub(crate) check: Arc<dyn SignIn>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) lifetime: Duration,
    /// By agent id (known or not: the same for both, so throttling tells nothing of
    /// who exists).
    pub(crate) failures: Failures,
    /// By the network address the attempts come from.
    pub(crate) failures_by_address: Failures,
}

/// Recent failed sign-ins by key (an agent id, or an address), at most `limit` within
/// [`FAILURE_WINDOW`].
#[derive(Clone)]
pub(crate) struct Failures {
    limit: u32,
    map: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

impl Failures {
    pub(crate) fn by_agent() -> Self {
        Self::new(MAX_FAILED_SIGN_INS)
    }

    pub(crate) fn by_address() -> Self {
        Self::new(MAX_FAILED_SIGN_INS_PER_ADDRESS)
    }

    fn new(limit: u32) -> Self {
        Failures {
            limit,
            map: Arc::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` has failed too often lately.
    fn throttled(&self, key: &str) -> bool {
        self.map()
            .get(key)
            .is_some_and(|(count, first)| *count >= self.limit && first.elapsed() < FAILURE_WINDOW)
    }

    fn failed(&self, key: &str) {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, (_, first)| first.elapsed() < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (_, first))| *first)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    fn succeeded(&self, key: &str) {
        self.map().remove(key);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    agent: String,
    password: String,
}

fn error(status: StatusCode, kind: ErrorKind, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "kind": kind.as_str(), "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /api/sign-in` with `{"agent": "...", "password": "..."}`: `200` with
/// `{"token", "agent", "expires_in"}` (seconds), or `401` for an unknown agent or a
/// wrong password alike, `400` for a body that is not that form, `404` when the gateway
/// has no sign-in.
pub(crate) async fn sign_in(
    State(shared): State<Arc<Shared>>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let Some(settings) = shared.sign_in.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            "this gateway has no sign-in: agents connect with a token",
        );
    };
    if body.len() > MAX_SIGN_IN_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadInput,
            "a sign-in request has at most 4096 bytes",
        );
    }
    let form: Form = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorKind::BadInput,
                "expected a JSON object with the fields agent and password",
            )
        }
    };
    let agent = form.agent.clone();
    // Known when served with connect info; a router mounted elsewhere may not have it.
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    if let Some(address) = address
        .as_deref()
        .filter(|a| settings.failures_by_address.throttled(a))
    {
        tracing::warn!(%address, "gateway: sign-in refused, too many failures from this address");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unauthorized,
            "too many failed sign-ins from this address: try again in a minute",
        );
    }
    if settings.failures.throttled(&agent) {
        tracing::warn!(agent = %agent.escape_debug(), "gateway: sign-in refused, too many failures");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unauthorized,
            "too many failed sign-ins for this agent id: try again in a minute",
        );
    }
    let check = settings.check.clone();
    let grant = tokio::task::spawn_blocking(move || check.sign_in(&form.agent, &form.password))
        .await
        .ok()
        .flatten();
    let Some(grant) = grant else {
        settings.failures.failed(&agent);
        if let Some(address) = &address {
            settings.failures_by_address.failed(address);
        }
        tracing::info!(agent = %agent.escape_debug(), ?address, "gateway: sign-in refused");
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "unknown agent or wrong password",
        );
    };
    settings.failures.succeeded(&agent);
    let issued = settings
        .tokens
        .issue_grant(grant.clone(), Some(settings.lifetime))
        .await;
    match issued {
        Ok(token) => {
            tracing::info!(agent = %grant.agent, device = %grant.device, "gateway: signed in");
            let body = serde_json::json!({
                "token": token.expose(),
                "agent": grant.agent.as_str(),
                "role": grant.role.as_str(),
                "expires_in": settings.lifetime.as_secs(),
            });
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(agent = %grant.agent, error = %e.message(), "gateway: no token could be made");
            error(
                unavailable_or_internal(e.kind()),
                e.kind(),
                "no token could be made",
            )
        }
    }
}

/// `503` when the token store cannot be reached (worth trying again), `500` otherwise.
fn unavailable_or_internal(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::LinkDown | ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /api/sign-out` with the token as the body: `204`, and the token stops working
/// (open connections stay open until they close); `503` with a typed error when the
/// token store cannot be reached, so that the token may still work.
pub(crate) async fn sign_out(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(settings) = &shared.sign_in {
        if let Ok(token) = std::str::from_utf8(&body) {
            if let Err(e) = settings.tokens.revoke_text(token.trim()).await {
                tracing::warn!(error = %e.message(), "gateway: sign-out failed");
                return error(
                    unavailable_or_internal(e.kind()),
                    e.kind(),
                    "the token could not be revoked: try signing out again",
                );
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
