//! The Pega Call Desktop Implementation's files (`adapters/pega`), served under `/pega/`.
//!
//! They are ES modules a Pega desktop loads from the gateway, so they are served to any
//! origin (`Access-Control-Allow-Origin: *`, which a module script from another origin
//! needs). They are static files with nothing secret in them; the WebSocket they open is
//! still checked against the gateway's allowed origins and the agent's token.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The routes: the adapter's modules and the browser client they import.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/pega/pega-interface.js",
            get(|| module(include_str!("../adapters/pega/pega-interface.js"))),
        )
        .route(
            "/pega/pega-desktop.js",
            get(|| module(include_str!("../adapters/pega/pega-desktop.js"))),
        )
        .route(
            "/pega/pega-events.js",
            get(|| module(include_str!("../adapters/pega/pega-events.js"))),
        )
        .route(
            "/pega/pega-errors.js",
            get(|| module(include_str!("../adapters/pega/pega-errors.js"))),
        )
        .route(
            "/pega/opencti-client.js",
            get(|| module(include_str!("../static/opencti-client.js"))),
        )
}

async fn module(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}
