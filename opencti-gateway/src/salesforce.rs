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

#[cfg(test)]
mod tests {
    // These tests read the call center file shipped in this repository, not outside
    // input: a malformed line there should fail the test loudly, hence the unwraps.

    /// `(section, sortOrder, name, value)` of each `<item>` line of the call center file.
    fn items() -> Vec<(String, u32, String, String)> {
        let attribute = |line: &str, name: &str| -> String {
            let start = line
                .find(&format!("{name}=\""))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                + name.len()
                + 2;
            let length = line[start..].find('"').unwrap();
            line[start..start + length].to_string()
        };
        let mut section = String::new();
        let mut items = Vec::new();
        for line in include_str!("../adapters/salesforce-open-cti/call-center.xml").lines() {
            let line = line.trim();
            if line.starts_with("<section") {
                section = attribute(line, "name");
            }
            if line.starts_with("<item") {
                let value =
                    line[line.find('>').unwrap() + 1..line.rfind("</item>").unwrap()].to_string();
                let order = attribute(line, "sortOrder").parse().unwrap();
                items.push((section.clone(), order, attribute(line, "name"), value));
            }
        }
        items
    }

    #[test]
    fn the_call_center_file_has_the_required_items_in_order() {
        let items = items();
        let general: Vec<_> = items
            .iter()
            .filter(|(section, ..)| section == "reqGeneralInfo")
            .collect();
        let value = |name: &str| {
            general
                .iter()
                .find(|item| item.2 == name)
                .map(|item| item.3.as_str())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        // The first two have fixed places; the sort orders have no gaps.
        assert_eq!(general[0].2, "reqInternalName");
        assert_eq!(general[1].2, "reqDisplayName");
        for section in ["reqGeneralInfo", "reqDialingOptions"] {
            let orders: Vec<u32> = items
                .iter()
                .filter(|item| item.0 == section)
                .map(|item| item.1)
                .collect();
            assert_eq!(orders, (0..orders.len() as u32).collect::<Vec<_>>());
        }
        assert!(value("reqInternalName").len() <= 40);
        assert!(value("reqAdapterUrl").starts_with("https://"));
        assert!(value("reqAdapterUrl").ends_with("/salesforce/softphone"));
        assert_eq!(value("reqUseApi"), "true");
        assert_eq!(value("reqSalesforceCompatibilityMode"), "Lightning");
        let height: u32 = value("reqSoftphoneHeight").parse().unwrap();
        let width: u32 = value("reqSoftphoneWidth").parse().unwrap();
        assert!((240..=2560).contains(&height));
        assert!((200..=1920).contains(&width));
    }
}
