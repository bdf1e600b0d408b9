//! Which web origins may use the gateway: who may open its WebSocket, and who may frame
//! its panel.

use opencti_core::{Error, ErrorKind, Result};

/// Web origins the gateway trusts beyond its own.
///
/// By default the WebSocket accepts only its own origin (the `Origin` header names the
/// host the request was sent to, with `https` when the gateway serves TLS) and requests with no `Origin` header at all (native
/// clients; browsers always send one), and no page may be framed. List a CRM's origin
/// here when its pages open the gateway's WebSocket or frame the panel.
///
/// An origin is `scheme://host` or `scheme://host:port`, as browsers send it; a host may
/// start with `*.` to match every subdomain (`https://*.my.salesforce.com`).
///
/// ```
/// use opencti_gateway::Security;
/// let security = Security::default()
///     .allow_origin("https://crm.example.com")?
///     .frame_ancestor("https://*.lightning.force.com")?;
/// assert!(Security::default().allow_origin("https://a.example; script-src *").is_err());
/// # Ok::<(), opencti_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    allowed_origins: Vec<String>,
    frame_ancestors: Vec<String>,
}

impl Security {
    /// Origins, besides the gateway's own, whose pages may open the WebSocket.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Origins whose pages may show the panel in a frame (CSP `frame-ancestors`); empty
    /// means none may.
    pub fn frame_ancestors(&self) -> &[String] {
        &self.frame_ancestors
    }

    /// Lets pages of `origin` open the WebSocket.
    pub fn allow_origin(mut self, origin: impl AsRef<str>) -> Result<Self> {
        self.allowed_origins.push(checked(origin.as_ref())?);
        Ok(self)
    }

    /// Lets pages of `origin` show the panel in a frame, and the Salesforce softphone
    /// (`/salesforce/softphone`), which also runs scripts from `origin`: Salesforce's
    /// `opencti_min.js` comes from the page that frames it.
    pub fn frame_ancestor(mut self, origin: impl AsRef<str>) -> Result<Self> {
        self.frame_ancestors.push(checked(origin.as_ref())?);
        Ok(self)
    }

    /// Whether a WebSocket request with this `Origin` header, sent to `host` (its `Host`
    /// header) on a connection of `scheme`, may be upgraded.
    ///
    /// The own origin is `scheme://host`. With no scheme (plain HTTP, perhaps behind a
    /// TLS proxy that the gateway cannot see) any scheme is taken; over TLS (`https`),
    /// only `https`: a page of `http://host` is not the gateway's.
    pub(crate) fn origin_allowed(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
        scheme: Option<&str>,
    ) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.trim().to_ascii_lowercase();
        let Some((origin_scheme, authority)) = origin.split_once("://") else {
            // `null` (a sandboxed frame, a file) and anything else that is not an origin.
            return false;
        };
        let same_scheme = scheme.is_none_or(|scheme| scheme == origin_scheme);
        if let Some(host) = host {
            if same_scheme && authority == host.trim().to_ascii_lowercase() {
                return true;
            }
        }
        self.allowed_origins
            .iter()
            .any(|allowed| matches(allowed, &origin))
    }

    /// The `script-src` sources for a page that loads its CRM's library: its own origin
    /// and the origins that may frame it.
    pub(crate) fn script_sources(&self) -> String {
        std::iter::once("'self'")
            .chain(self.frame_ancestors.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `frame-ancestors` sources for the panel page.
    pub(crate) fn frame_sources(&self) -> String {
        if self.frame_ancestors.is_empty() {
            "'none'".to_string()
        } else {
            self.frame_ancestors.join(" ")
        }
    }
}

/// Marks a response (in its extensions) as a page that loads its CRM's library from the
/// CRM's origin, which is also the origin that frames it: the Salesforce softphone loads
/// `opencti_min.js` from the Salesforce page that shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrmScripts;

/// Whether `origin` (lower case) is `pattern` or, for a `*.` pattern, one of its
/// subdomains.
fn matches(pattern: &str, origin: &str) -> bool {
    if pattern == origin {
        return true;
    }
    let (Some((scheme, host)), Some((origin_scheme, origin_host))) =
        (pattern.split_once("://"), origin.split_once("://"))
    else {
        return false;
    };
    match host.strip_prefix("*.") {
        Some(suffix) => {
            scheme == origin_scheme
                && origin_host.len() > suffix.len() + 1
                && origin_host.ends_with(suffix)
                && origin_host[..origin_host.len() - suffix.len()].ends_with('.')
        }
        None => false,
    }
}

/// The origin in lower case without a trailing `/`, or a config error: it goes into a
/// response header, so nothing but an origin's characters may pass.
fn checked(origin: &str) -> Result<String> {
    let refuse = |why: &str| {
        Error::new(
            ErrorKind::Config,
            format!(
                "{:?} is not an origin ({}): write scheme://host or scheme://host:port",
                origin, why
            ),
        )
    };
    let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = lower.split_once("://").ok_or_else(|| refuse("no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !scheme_ok {
        return Err(refuse("bad scheme"));
    }
    let host = authority.strip_prefix("*.").unwrap_or(authority);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !host_ok {
        return Err(refuse("bad host"));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_and_listed_origins_pass_others_do_not() -> Result<()> {
        let default = Security::default();
        let plain = |origin, host| default.origin_allowed(origin, host, None);
        assert!(plain(None, Some("127.0.0.1:8080")));
        assert!(plain(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(plain(Some("https://Gw.Example"), Some("gw.example")));
        assert!(!plain(Some("http://evil.example"), Some("127.0.0.1:8080")));
        assert!(!plain(Some("null"), Some("127.0.0.1:8080")));
        assert!(!plain(Some("http://127.0.0.1:8080"), None));
        let crm = Security::default().allow_origin("https://*.crm.example/")?;
        assert!(crm.origin_allowed(Some("https://eu.crm.example"), None, None));
        assert!(!crm.origin_allowed(Some("https://crm.example"), None, None));
        assert!(!crm.origin_allowed(Some("https://evilcrm.example"), None, None));
        assert!(!crm.origin_allowed(Some("http://eu.crm.example"), None, None));
        Ok(())
    }

    #[test]
    fn over_tls_the_own_origin_is_https_only() -> Result<()> {
        let tls = |security: &Security, origin, host| {
            security.origin_allowed(origin, host, Some("https"))
        };
        let default = Security::default();
        assert!(tls(
            &default,
            Some("https://gw.example"),
            Some("gw.example")
        ));
        assert!(tls(
            &default,
            Some("https://GW.example:8443"),
            Some("gw.example:8443")
        ));
        assert!(tls(&default, None, Some("gw.example")));
        assert!(!tls(
            &default,
            Some("http://gw.example"),
            Some("gw.example")
        ));
        assert!(!tls(
            &default,
            Some("https://evil.example"),
            Some("gw.example")
        ));
        // Listed origins keep their own scheme.
        let crm = Security::default().allow_origin("http://crm.example")?;
        assert!(tls(&crm, Some("http://crm.example"), Some("gw.example")));
        Ok(())
    }

    #[test]
    fn only_origins_are_accepted_as_settings() {
        for bad in [
            "crm.example",
            "https://",
            "https://a b",
            "https://a;b",
            "https://a'",
            "https://a\r\nX: y",
            "https://a/path",
            "*://a",
        ] {
            assert!(Security::default().frame_ancestor(bad).is_err(), "{bad:?}");
        }
    }
}
