//! The desk markup that the Call Control Panel and the Salesforce softphone share: one
//! copy in `static/desk.html`, put into each page in place of its `<!-- desk -->`.

use std::sync::LazyLock;

const DESK: &str = include_str!("../static/desk.html");
const MARK: &str = "<!-- desk -->";

/// `page` with the desk in place of its mark.
pub(crate) fn with_desk(page: &str) -> String {
    page.replacen(MARK, DESK, 1)
}

/// The Call Control Panel page.
pub(crate) static PANEL_PAGE: LazyLock<String> =
    LazyLock::new(|| with_desk(include_str!("../static/index.html")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_page_holds_the_desk_once() {
        assert!(include_str!("../static/index.html").contains(MARK));
        assert!(!PANEL_PAGE.contains(MARK));
        assert_eq!(PANEL_PAGE.matches(r#"<main id="desk""#).count(), 1);
        assert_eq!(PANEL_PAGE.matches(r#"id="call-template""#).count(), 1);
    }
}
