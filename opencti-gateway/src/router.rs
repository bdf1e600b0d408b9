//! The gateway: an axum router to mount in the integrator's web server, or to serve alone.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{Authenticator, Grant, Role, TokenStore};
use crate::crm::{Crm, NoCrm};
use crate::limits::Limits;
use crate::security::{CrmScripts, Security};
use crate::sessions::{SessionFactory, Sessions};
use crate::sign_in::{Failures, SignIn, SignInSettings};
use crate::tls::{ServedOverTls, Tls, STRICT_TRANSPORT_SECURITY};

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) limits: Limits,
    pub(crate) security: Arc<Security>,
    pub(crate) sign_in: Option<SignInSettings>,
    /// The Salesforce Voice library to serve, if the deployment gave it.
    pub(crate) salesforce_voice_library: Option<axum::body::Bytes>,
    /// The supervisors' feed, started by the first supervisor.
    pub(crate) centre: Arc<std::sync::OnceLock<Arc<crate::centre::Centre>>>,
}

/// Serves the Desktop Interface to browsers: the WebSocket endpoint, the browser client,
/// and the Call Control Panel.
///
/// Routes: `GET /ws` (the WebSocket; the first message authenticates), `GET /` (the
/// panel), `GET /opencti-client.js` (the client module), `GET /schema.json` (the JSON
/// Schema of every message, generated from the Rust types), `GET /panel.js`,
/// `GET /panel-view.js`, `GET /panel.css`, `GET /sign-in-request.js`; the Salesforce
/// Open CTI softphone under `GET /salesforce/`, the Salesforce Voice connector under
/// `/salesforce-voice/` and the Pega Call Desktop Implementation under `/pega/` (see each adapter's README in `adapters/`); the
/// supervisors' wallboard, `GET /wallboard` (with `/wallboard.js`,
/// `/wallboard-charts.js`, `/wallboard.css`); with
/// [`Gateway::with_sign_in`], `GET /sign-in` (the page), `GET /sign-in.js`,
/// `POST /api/sign-in`, `POST /api/sign-out`.
///
/// The WebSocket is open to pages of the gateway's own origin and to native clients that
/// send no `Origin`; [`Gateway::with_security`] lists more origins.
#[derive(Clone)]
pub struct Gateway {
    shared: Shared,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("limits", &self.shared.limits)
            .field("security", &self.shared.security)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway that authenticates with `authenticator` and starts sessions with
    /// `sessions`.
    pub fn new(authenticator: Arc<dyn Authenticator>, sessions: Arc<dyn SessionFactory>) -> Self {
        Gateway::with_limits(authenticator, sessions, Limits::default())
    }

    /// The same, with limits of your choosing.
    pub fn with_limits(
        authenticator: Arc<dyn Authenticator>,
        sessions: Arc<dyn SessionFactory>,
        limits: Limits,
    ) -> Self {
        Gateway::with_crm(authenticator, sessions, limits, Arc::new(NoCrm))
    }

    /// The same, with a CRM for screen pops and the call log.
    pub fn with_crm(
        authenticator: Arc<dyn Authenticator>,
        sessions: Arc<dyn SessionFactory>,
        limits: Limits,
        crm: Arc<dyn Crm>,
    ) -> Self {
        Gateway {
            shared: Shared {
                authenticator,
                sessions: Arc::new(Sessions::new(sessions, crm, None, None, true)),
                limits,
                security: Arc::new(Security::default()),
                sign_in: None,
                salesforce_voice_library: None,
                centre: Arc::default(),
            },
        }
    }

    /// The same gateway, serving the Salesforce Voice library its connector page loads
    /// (`/salesforce-voice/scv-connector-base.js`) from `path`: the npm package
    /// `@salesforce/scv-connector-base` 3.6.2's `dist/scv-connector-base.js`. Without it
    /// that address answers `404`, saying what to give.
    ///
    /// Fails with `config`, naming the file, when it cannot be read or is not a script.
    pub fn with_salesforce_voice_library(
        mut self,
        path: impl AsRef<std::path::Path>,
    ) -> opencti_core::Result<Self> {
        self.shared.salesforce_voice_library =
            Some(crate::salesforce_voice::read_library(path.as_ref())?);
        Ok(self)
    }

    /// The same gateway, with live queue figures for supervisors and the wallboard
    /// (`/wallboard`): every agent's session follows into `board`, and supervisors get its
    /// figures. The board's queue events come from the phone system (the simulator's
    /// `SimSwitch::queue_events`, for one). Call it before any agent connects.
    #[must_use]
    pub fn with_queue_board(mut self, board: opencti_core::queue::QueueBoard) -> Self {
        let sessions = &self.shared.sessions;
        self.shared.sessions = Arc::new(Sessions::new(
            sessions.factory.clone(),
            sessions.crm.clone(),
            Some(board),
            None,
            sessions.log_calls,
        ));
        self
    }

    /// The same gateway, showing supervisors and agents the queue figures of `view`
    /// instead of a board of its own: a `QueueMirror` of the board a site's link service
    /// runs (`opencti serve --nats`). Call it before any agent connects.
    #[must_use]
    pub fn with_queue_view(mut self, view: Arc<dyn opencti_core::queue::QueueView>) -> Self {
        let sessions = &self.shared.sessions;
        self.shared.sessions = Arc::new(Sessions::new(
            sessions.factory.clone(),
            sessions.crm.clone(),
            sessions.board.clone(),
            Some(view),
            sessions.log_calls,
        ));
        self
    }

    /// The same gateway, leaving the CRM's call log to someone else: screen pops and
    /// contact search still use the CRM, but no call is written. For gateways of a site
    /// on NATS, where one follower of the site's stream writes the log for every
    /// gateway (`NatsCallLogger`, feature `nats`). Call it before any agent connects.
    #[must_use]
    pub fn without_call_log(mut self) -> Self {
        let sessions = &self.shared.sessions;
        self.shared.sessions = Arc::new(Sessions::new(
            sessions.factory.clone(),
            sessions.crm.clone(),
            sessions.board.clone(),
            sessions.view.clone(),
            false,
        ));
        self
    }

    /// The same gateway, trusting the origins in `security` besides its own (by default
    /// only its own origin may open the WebSocket, and no page may frame the panel).
    #[must_use]
    pub fn with_security(mut self, security: Security) -> Self {
        self.shared.security = Arc::new(security);
        self
    }

    /// The same gateway, where agents sign in with their id and password (`GET
    /// /sign-in`, `POST /api/sign-in`): `check` checks the password, and the token it
    /// answers goes into `tokens` (which should be this gateway's authenticator) and
    /// lasts `lifetime`. `POST /api/sign-out` revokes a token. A [`TokenTable`] keeps the
    /// tokens in this process; a store shared by several gateways (`NatsTokens`, feature
    /// `nats`) lets an agent sign in on one and connect to another.
    ///
    /// [`TokenTable`]: crate::TokenTable
    #[must_use]
    pub fn with_sign_in(
        mut self,
        check: Arc<dyn SignIn>,
        tokens: Arc<dyn TokenStore>,
        lifetime: std::time::Duration,
    ) -> Self {
        self.shared.sign_in = Some(SignInSettings {
            check,
            tokens,
            lifetime,
            failures: Failures::by_agent(),
            failures_by_address: Failures::by_address(),
        });
        self
    }

    /// The agent's session (the one their browsers share), started now if it was not:
    /// to start every agent's session before anyone signs in, so that supervisors see
    /// them all, or to drive an agent from code. Refused as `unauthorized` for a
    /// supervisor's grant, which has no desk.
    pub async fn session(&self, grant: &Grant) -> opencti_core::Result<crate::AgentLine> {
        if grant.role != Role::Agent {
            return Err(opencti_core::Error::new(
                opencti_core::ErrorKind::Unauthorized,
                "a supervisor has no desk of their own",
            ));
        }
        Ok(self.shared.sessions.for_grant(grant).await?.session)
    }

    /// The routes, to mount (with `Router::nest` or `merge`) or serve.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(upgrade))
            .route(
                "/",
                get(|| file("text/html; charset=utf-8", crate::desk::PANEL_PAGE.as_str())),
            )
            .route(
                "/opencti-client.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/opencti-client.js"),
                    )
                }),
            )
            .route(
                "/panel.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/panel.js"),
                    )
                }),
            )
            .route(
                "/panel-view.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/panel-view.js"),
                    )
                }),
            )
            .route(
                "/sign-in-request.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/sign-in-request.js"),
                    )
                }),
            )
            .route(
                "/wallboard",
                get(|| {
                    file(
                        "text/html; charset=utf-8",
                        include_str!("../static/wallboard.html"),
                    )
                }),
            )
            .route(
                "/wallboard.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/wallboard.js"),
                    )
                }),
            )
            .route(
                "/wallboard-charts.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/wallboard-charts.js"),
                    )
                }),
            )
            .route(
                "/wallboard.css",
                get(|| {
                    file(
                        "text/css; charset=utf-8",
                        include_str!("../static/wallboard.css"),
                    )
                }),
            )
            .route("/schema.json", get(schema))
            .route("/api/sign-in", post(crate::sign_in::sign_in))
            .route("/api/sign-out", post(crate::sign_in::sign_out))
            .route(
                "/sign-in",
                get(|| {
                    file(
                        "text/html; charset=utf-8",
                        include_str!("../static/sign-in.html"),
                    )
                }),
            )
            .route(
                "/sign-in.js",
                get(|| {
                    file(
                        "text/javascript; charset=utf-8",
                        include_str!("../static/sign-in.js"),
                    )
                }),
            )
            .route(
                "/panel.css",
                get(|| {
                    file(
                        "text/css; charset=utf-8",
                        include_str!("../static/panel.css"),
                    )
                }),
            )
            .merge(crate::pega::routes())
            .merge(crate::salesforce::routes())
            .merge(crate::salesforce_voice::routes(
                self.shared.salesforce_voice_library.clone(),
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.shared.security.clone(),
                security_headers,
            ))
            .with_state(Arc::new(self.shared.clone()))
    }

    /// Serves the gateway on `listener` until the future is dropped, within the
    /// [`Limits`] on connections: a deadline for each request's headers and for idling,
    /// and a cap on connections open at once (beyond it a new one is closed at once).
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        crate::serve::serve(listener, self.router(), self.shared.limits, None).await
    }

    /// Serves the gateway over HTTPS on `listener`, with the certificate and key in
    /// `tls`, within the same [`Limits`]: the TLS handshake counts against the cap on
    /// connections and must be done within `header_read_timeout`.
    ///
    /// Over TLS every response carries `Strict-Transport-Security`, and the gateway's
    /// own origin for the WebSocket is `https://` and the host the request was sent to.
    /// A plain HTTP request sent to this port gets no answer: the socket is closed.
    pub async fn serve_tls(
        &self,
        listener: tokio::net::TcpListener,
        tls: Tls,
    ) -> std::io::Result<()> {
        crate::serve::serve(listener, self.router(), self.shared.limits, Some(tls)).await
    }
}

/// Every response says where its scripts, styles and connections may come from (the
/// gateway alone: the pages have no inline script or style), that its type is not to be
/// guessed, and who may frame it: the panel's HTML only the configured frame ancestors,
/// anything else no one. Served over TLS, it also tells the browser to keep to HTTPS.
async fn security_headers(
    State(security): State<Arc<Security>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let over_tls = request.extensions().get::<ServedOverTls>().is_some();
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let ancestors = if html {
        security.frame_sources()
    } else {
        "'none'".to_string()
    };
    // A page that loads its CRM's own library (the Salesforce softphone) may take scripts
    // from the origins that may frame it, and from no other.
    let scripts = if html && response.extensions().get::<CrmScripts>().is_some() {
        security.script_sources()
    } else {
        "'self'".to_string()
    };
    let policy = format!(
        "default-src 'none'; script-src {}; style-src 'self'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        scripts, ancestors
    );
    let headers = response.headers_mut();
    // The origins were checked when configured; a value that still is not a header
    // leaves the strictest policy instead.
    let policy = HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'",
    ));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if ancestors == "'none'" {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if over_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    response
}

pub(crate) async fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        crate::schema().to_string(),
    )
        .into_response()
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    // Known when served with connect info; a router mounted elsewhere may not have it.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    // A page of another origin must not drive an agent's desk, even with a stolen token:
    // refuse it before the upgrade. A header that is not text is no origin either.
    let origin = headers
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or("?"));
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let scheme = extensions.get::<ServedOverTls>().map(|_| "https");
    if !shared.security.origin_allowed(origin, host, scheme) {
        tracing::warn!(?peer, ?origin, "WebSocket refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this origin may not open the gateway's WebSocket\n",
        )
            .into_response();
    }
    // Frames are allowed a little over the protocol limit, so that an oversized request
    // gets a typed refusal instead of a dropped connection.
    let max = shared.limits.max_message_bytes.saturating_mul(4);
    // Desktop messages are small: modest socket buffers keep a session's memory low
    // (the library defaults are 128 KiB each way).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| crate::socket::serve(socket, shared, peer))
}
