//! The Salesforce Voice connector's files (`adapters/salesforce-voice`), served under
//! `/salesforce-voice/`: the page Salesforce loads as the contact center's adapter URL,
//! its modules and the browser client they import.
//!
//! Salesforce loads the page in a frame of its own origin and the modules come from the
//! gateway's, so they are served to any origin (`Access-Control-Allow-Origin: *`); they
//! are static files with nothing secret in them. The WebSocket they open is still checked
//! against the gateway's allowed origins and the agent's token. The library the connector
//! extends, `@salesforce/scv-connector-base`, is Salesforce's and not part of opencti: it
//! is served from the file a deployment gives
//! ([`Gateway::with_salesforce_voice_library`](crate::Gateway::with_salesforce_voice_library)),
//! at `/salesforce-voice/scv-connector-base.js`, where the page loads it.

use std::path::Path;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use opencti_core::{Error, ErrorKind, Result};

/// The largest library file taken (3.6.2's build is about 0.3 MB).
const MAX_LIBRARY_BYTES: u64 = 8 * 1024 * 1024;

/// Reads the library's build (`dist/scv-connector-base.js` of the npm package) to serve.
pub(crate) fn read_library(path: &Path) -> Result<Bytes> {
    let shown = path.display();
    let refuse = |what: String| {
        Error::new(
            ErrorKind::Config,
            format!("the Salesforce Voice library {shown}: {what}"),
        )
    };
    let size = std::fs::metadata(path)
        .map_err(|e| refuse(format!("cannot read it ({e})")))?
        .len();
    if size > MAX_LIBRARY_BYTES {
        return Err(refuse(format!(
            "{size} bytes is more than a script library has (at most {MAX_LIBRARY_BYTES})"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read it ({e})")))?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(refuse("not a script: not UTF-8 text".into()));
    }
    Ok(Bytes::from(bytes))
}

/// The routes: the page, the connector's modules, the browser client, and `library`
/// (the Salesforce Voice library), when the deployment gave it.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(library: Option<Bytes>) -> Router<S> {
    Router::new()
        .route(
            "/salesforce-voice/scv-connector-base.js",
            get(move || {
                let library = library.clone();
                async move {
                    match library {
                        Some(body) => (
                            [
                                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                                (header::CACHE_CONTROL, "no-cache"),
                                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                            ],
                            body,
                        )
                            .into_response(),
                        None => (
                            StatusCode::NOT_FOUND,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            "this gateway serves no Salesforce Voice library: give it \
                             @salesforce/scv-connector-base's dist/scv-connector-base.js \
                             ([salesforce_voice] library in the deployment file)",
                        )
                            .into_response(),
                    }
                }
            }),
        )
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
