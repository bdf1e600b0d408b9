//! The Salesforce Open CTI softphone (Lightning): the page Salesforce frames in its
//! softphone utility, with its scripts and the call center definition to import. The
//! files are in `adapters/salesforce-open-cti/`; its README says how to set it up.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, LazyLock};

use crate::router::{file, Shared};
use crate::security::CrmScripts;

static SOFTPHONE_PAGE: LazyLock<String> = LazyLock::new(|| {
    crate::desk::with_desk(include_str!(
        "../adapters/salesforce-open-cti/softphone.html"
    ))
});

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// `GET /salesforce/softphone` (the adapter URL), its scripts and style, and
/// `GET /salesforce/call-center.xml`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/salesforce/softphone", get(softphone))
        .route(
            "/salesforce/softphone.js",
            get(|| {
                file(
                    JAVASCRIPT,
                    include_str!("../adapters/salesforce-open-cti/softphone.js"),
                )
            }),
        )
        .route(
            "/salesforce/open-cti.js",
            get(|| {
                file(
                    JAVASCRIPT,
                    include_str!("../adapters/salesforce-open-cti/open-cti.js"),
                )
            }),
        )
        .route(
            "/salesforce/open-cti-unconfirmed.js",
            get(|| {
                file(
                    JAVASCRIPT,
                    include_str!("../adapters/salesforce-open-cti/open-cti-unconfirmed.js"),
                )
            }),
        )
        .route(
            "/salesforce/call-log.js",
            get(|| {
                file(
                    JAVASCRIPT,
                    include_str!("../adapters/salesforce-open-cti/call-log.js"),
                )
            }),
        )
        .route(
            "/salesforce/softphone.css",
            get(|| {
                file(
                    "text/css; charset=utf-8",
                    include_str!("../adapters/salesforce-open-cti/softphone.css"),
                )
            }),
        )
        .route(
            "/salesforce/call-center.xml",
            get(|| {
                file(
                    "application/xml; charset=utf-8",
                    include_str!("../adapters/salesforce-open-cti/call-center.xml"),
                )
            }),
        )
}

/// The page loads `opencti_min.js` from the Salesforce page that frames it: the response
/// says so, and the security headers let that origin's scripts run on this page alone.
async fn softphone() -> Response {
    let mut response = file("text/html; charset=utf-8", SOFTPHONE_PAGE.as_str()).await;
    response.extensions_mut().insert(CrmScripts);
    response.into_response()
}
