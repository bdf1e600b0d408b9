//! The Salesforce Voice connector's files (`adapters/salesforce-voice`), served under
//! `/salesforce-voice/`: the page Salesforce loads as the contact center's adapter URL,
//! its modules and the browser client they import.
//!
//! Salesforce loads the page in a frame of its own origin and the modules come from the
//! gateway's, so they are served to any origin (`Access-Control-Allow-Origin: *`); they
//! are static files with nothing secret in them. The WebSocket they open is still checked
//! against the gateway's allowed origins and the agent's token. The library the connector
//! extends, `@salesforce/scv-connector-base`, is not served: see the adapter's README.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The routes: the page, the connector's modules and the browser client.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/salesforce-voice/connector.html",
            get(|| {
                file(
                    "text/html; charset=utf-8",
                    include_str!("../adapters/salesforce-voice/connector.html"),
                )
            }),
        )
        .route(
            "/salesforce-voice/connector-page.js",
            get(|| {
                module(include_str!(
                    "../adapters/salesforce-voice/connector-page.js"
                ))
            }),
        )
        .route(
            "/salesforce-voice/connector.js",
            get(|| module(include_str!("../adapters/salesforce-voice/connector.js"))),
        )
        .route(
            "/salesforce-voice/scv-library.js",
            get(|| module(include_str!("../adapters/salesforce-voice/scv-library.js"))),
        )
        .route(
            "/salesforce-voice/scv-unconfirmed.js",
            get(|| {
                module(include_str!(
                    "../adapters/salesforce-voice/scv-unconfirmed.js"
                ))
            }),
        )
        .route(
            "/salesforce-voice/voice-call-records.js",
            get(|| {
                module(include_str!(
                    "../adapters/salesforce-voice/voice-call-records.js"
                ))
            }),
        )
        .route(
            "/salesforce-voice/opencti-client.js",
            get(|| module(include_str!("../static/opencti-client.js"))),
        )
}

async fn module(body: &'static str) -> Response {
    file("text/javascript; charset=utf-8", body).await
}

async fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}
