//! Signing in with an agent id and a password: the page, and `POST /api/sign-in`, which
//! answers a token that expires.
//!
//! The gateway does not know the passwords: a [`SignIn`] (the deployment's agents, a
//! directory) checks them. A refusal says the same for an unknown agent and a wrong
//! password. Checking a password is slow on purpose (a password hash), so it runs on a
//! blocking thread, and a request body is small and bounded.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opencti_core::ErrorKind;
use serde::Deserialize;

use crate::auth::{Grant, TokenTable};
use crate::router::Shared;

/// Longest sign-in request body, in bytes.
pub const MAX_SIGN_IN_BYTES: usize = 4096;

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
    pub(crate) tokens: TokenTable,
    pub(crate) lifetime: Duration,
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
pub(crate) async fn sign_in(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
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
    let check = settings.check.clone();
    let grant = tokio::task::spawn_blocking(move || check.sign_in(&form.agent, &form.password))
        .await
        .ok()
        .flatten();
    let Some(grant) = grant else {
        tracing::info!(agent = %agent.escape_debug(), "gateway: sign-in refused");
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "unknown agent or wrong password",
        );
    };
    let issued =
        settings
            .tokens
            .issue_for(grant.agent.clone(), grant.device.clone(), settings.lifetime);
    match issued {
        Ok(token) => {
            tracing::info!(agent = %grant.agent, device = %grant.device, "gateway: signed in");
            let body = serde_json::json!({
                "token": token.expose(),
                "agent": grant.agent.as_str(),
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
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.kind(),
            "no token could be made",
        ),
    }
}

/// `POST /api/sign-out` with the token as the body: the token stops working (open
/// connections stay open until they close).
pub(crate) async fn sign_out(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(settings) = &shared.sign_in {
        if let Ok(token) = std::str::from_utf8(&body) {
            settings.tokens.revoke_text(token.trim());
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
