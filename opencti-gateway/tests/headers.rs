//! Security headers on every page: where scripts, styles and connections may come from,
//! no type sniffing, and who may frame the panel.

use std::sync::Arc;
use std::time::Duration;

use opencti_gateway::{Gateway, Security, SimSessions, TokenTable};
use opencti_sim::SimSwitch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(security: Security) -> String {
    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let gateway = Gateway::new(
        Arc::new(TokenTable::new()),
        Arc::new(SimSessions::new(switch)),
    )
    .with_security(security);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { gateway.serve(listener).await });
    address
}

/// The status line and the headers (names in lower case) of `GET path`.
async fn head(address: &str, path: &str) -> (String, Vec<(String, String)>) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            path, address
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("a response within 5 s");
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {} header in {:?}", name, headers))
}

#[tokio::test]
async fn the_panel_and_its_assets_carry_the_security_headers() {
    let address = start(Security::default()).await;
    for path in [
        "/",
        "/panel.js",
        "/panel-view.js",
        "/panel.css",
        "/sign-in-request.js",
        "/opencti-client.js",
        "/schema.json",
    ] {
        let (status, headers) = head(&address, path).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{}: {}", path, status);
        let csp = header(&headers, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{}: {:?} lacks {}",
                path,
                csp,
                directive
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{}: {}", path, csp);
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        // HSTS is for HTTPS alone (tests/tls.rs): over plain HTTP it means nothing.
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n == "strict-transport-security"),
            "{}: {:?}",
            path,
            headers
        );
    }
    // A page that does not exist says the same.
    let (status, headers) = head(&address, "/nowhere").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{}", status);
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn only_the_panel_page_may_be_framed_by_a_configured_crm() {
    let security = Security::default()
        .frame_ancestor("https://*.lightning.force.com")
        .unwrap();
    let address = start(security).await;
    let (_, headers) = head(&address, "/").await;
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("frame-ancestors https://*.lightning.force.com"),
        "{}",
        csp
    );
    assert!(!headers.iter().any(|(n, _)| n == "x-frame-options"));
    let (_, headers) = head(&address, "/panel.js").await;
    let csp = header(&headers, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{}", csp);
}

#[tokio::test]
async fn the_salesforce_softphone_alone_runs_scripts_of_the_crm_that_frames_it() {
    let security = Security::default()
        .frame_ancestor("https://*.lightning.force.com")
        .unwrap();
    let address = start(security).await;
    let (status, headers) = head(&address, "/salesforce/softphone").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{}", status);
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("script-src 'self' https://*.lightning.force.com;"),
        "{}",
        csp
    );
    assert!(
        csp.contains("frame-ancestors https://*.lightning.force.com"),
        "{}",
        csp
    );
    assert!(csp.contains("connect-src 'self'"), "{}", csp);
    for path in [
        "/",
        "/salesforce/softphone.js",
        "/salesforce/call-center.xml",
    ] {
        let (status, headers) = head(&address, path).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{}: {}", path, status);
        let csp = header(&headers, "content-security-policy");
        assert!(csp.contains("script-src 'self';"), "{}: {}", path, csp);
    }
    // With no CRM configured, the softphone runs the gateway's scripts alone, and no
    // page may frame it.
    let address = start(Security::default()).await;
    let (_, headers) = head(&address, "/salesforce/softphone").await;
    let csp = header(&headers, "content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{}", csp);
    assert!(csp.contains("frame-ancestors 'none'"), "{}", csp);
}
