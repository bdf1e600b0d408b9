//! The gateway over HTTPS, with a self-signed certificate for `localhost` made at run
//! time (rcgen) and a rustls client that trusts it: pages carry the security headers and
//! HSTS, the WebSocket opens over wss from the page's own https origin and no other,
//! plain HTTP to the TLS port gets no answer, a handshake that never comes and an idle
//! connection are closed, the handshake counts against the connection cap, and bad
//! certificate and key files are config errors that name the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use opencti_core::{AgentId, DeviceId, ErrorKind};
use opencti_gateway::{Gateway, Limits, SimSessions, Tls, Token, TokenTable};
use opencti_sim::SimSwitch;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "opencti-gateway-tls-{name}-{}-{unique}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A gateway served over TLS, and a client that trusts its certificate.
struct Served {
    address: String,
    /// `localhost:PORT`, the host a browser sends.
    host: String,
    connector: tokio_rustls::TlsConnector,
    alice: Token,
    _dir: TempDir,
}

async fn start(limits: Limits) -> Served {
    let dir = TempDir::new("serve");
    let (certificate, key) = self_signed();
    let certificate_file = dir.file("cert.pem", &certificate);
    let key_file = dir.file("key.pem", &key);
    let tls = Tls::from_pem_files(&certificate_file, &key_file).unwrap();

    let switch = SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .build()
        .unwrap();
    let tokens = TokenTable::new();
    let alice = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let gateway =
        Gateway::with_limits(Arc::new(tokens), Arc::new(SimSessions::new(switch)), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { gateway.serve_tls(listener, tls).await });

    let mut roots = rustls::RootCertStore::empty();
    let (trusted, _) = roots.add_parsable_certificates(
        CertificateDer::pem_slice_iter(certificate.as_bytes()).map(|c| c.unwrap()),
    );
    assert_eq!(trusted, 1);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // As a browser does.
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Served {
        address: format!("127.0.0.1:{port}"),
        host: format!("localhost:{port}"),
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        alice,
        _dir: dir,
    }
}

impl Served {
    /// A TLS connection to the gateway, checked against its certificate for `localhost`.
    async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(&self.address).await?;
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.connector.connect(name, tcp))
            .await
            .expect("a handshake within 5 s")
    }

    /// The status line and headers (names in lower case) of `GET path` over HTTPS.
    async fn get(&self, path: &str) -> (String, Vec<(String, String)>) {
        let mut stream = self.connect().await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        parse_head(&head)
    }

    /// Opens the WebSocket over wss with `origin` as the page's origin.
    async fn websocket(
        &self,
        origin: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
        tokio_tungstenite::tungstenite::Error,
    > {
        let mut request = format!("wss://{}/ws", self.host)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        let stream = self.connect().await.unwrap();
        let opening = tokio_tungstenite::client_async(request, stream);
        tokio::time::timeout(Duration::from_secs(5), opening)
            .await
            .expect("an answer within 5 s")
            .map(|(ws, _)| ws)
    }
}

/// A response's head, up to the blank line, within 5 s.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let reading = async {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("a response within 5 s")
}

fn parse_head(head: &str) -> (String, Vec<(String, String)>) {
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
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// Whether the server closes `stream` within `within` (an end of file or a reset).
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn pages_over_https_carry_the_security_headers_and_hsts() {
    let served = start(Limits::default()).await;
    for path in ["/", "/panel.js", "/nowhere"] {
        let (status, headers) = served.get(path).await;
        let expected = if path == "/nowhere" { "404" } else { "200" };
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected}")),
            "{path}: {status}"
        );
        assert_eq!(
            header(&headers, "strict-transport-security"),
            "max-age=31536000",
            "{path}"
        );
        let csp = header(&headers, "content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
    }
    // A browser that offers HTTP/2 first is answered with HTTP/1.1, the one it speaks.
    let stream = served.connect().await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn the_websocket_opens_over_wss_from_the_pages_own_https_origin_only() {
    let served = start(Limits::default()).await;
    let own = format!("https://{}", served.host);
    let mut ws = served.websocket(&own).await.unwrap();
    let hello = json!({"auth": {"token": served.alice.expose()}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a first message within 5 s")
        .expect("the WebSocket stays open")
        .unwrap();
    let first: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(first["snapshot"]["agent"], "alice", "{first}");

    let plain_http_page = format!("http://{}", served.host);
    for foreign in ["https://evil.example", plain_http_page.as_str()] {
        match served.websocket(foreign).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{foreign}");
            }
            Err(other) => panic!("{foreign}: refused, but not with 403: {other}"),
            Ok(_) => panic!("{foreign}: the WebSocket was opened"),
        }
    }
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_answer_and_the_gateway_keeps_serving() {
    let served = start(Limits::default()).await;
    let mut plain = TcpStream::connect(&served.address).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", served.host);
    plain.write_all(request.as_bytes()).await.unwrap();
    let reading = async {
        let mut answer = Vec::new();
        // Closed, perhaps after a TLS alert, perhaps with a reset: the end either way.
        let _ = plain.read_to_end(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("closed within 5 s");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let (status, _) = served.get("/panel.css").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[tokio::test]
async fn a_socket_that_never_says_hello_is_closed_after_the_header_timeout() {
    let limits = Limits::default()
        .with_connection_timeouts(Duration::from_millis(500), Duration::from_secs(30));
    let served = start(limits).await;
    let opened = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(&served.address).await.unwrap();
    // While it waits, others are served: the handshake is not done in the accept loop.
    let (status, _) = served.get("/panel.css").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "a socket with no ClientHello stayed open"
    );
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_millis(450),
        "closed before its time: {lasted:?}"
    );
}

#[tokio::test]
async fn an_idle_tls_connection_is_closed() {
    let limits = Limits::default()
        .with_connection_timeouts(Duration::from_secs(30), Duration::from_millis(500));
    let served = start(limits).await;
    let mut stream = served.connect().await.unwrap();
    let request = format!("GET /panel.css HTTP/1.1\r\nHost: {}\r\n\r\n", served.host);
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, headers) = parse_head(&read_head(&mut stream).await);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let length: usize = header(&headers, "content-length").parse().unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    // Kept alive, then idle: closed by the idle timeout, long before the header one.
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "an idle TLS connection stayed open"
    );
}

#[tokio::test]
async fn a_connection_in_its_handshake_counts_against_the_cap() {
    let served = start(Limits::default().with_max_connections(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&served.address).await.unwrap());
    }
    // The gateway takes them in the order they came: a fourth finds no room and is
    // closed before its handshake.
    assert!(
        served.connect().await.is_err(),
        "a fourth connection was served beyond the cap of three"
    );
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served.connect().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after the connections closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = served.get("/panel.css").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[test]
fn bad_certificate_and_key_files_are_config_errors_naming_the_file() {
    let dir = TempDir::new("files");
    let (certificate, key) = self_signed();
    let (_, other_key) = self_signed();
    let certificate_file = dir.file("cert.pem", &certificate);
    let key_file = dir.file("key.pem", &key);
    let other_key_file = dir.file("other-key.pem", &other_key);
    let garbled_file = dir.file(
        "garbled.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let missing_file = dir.0.join("missing.pem");
    assert!(Tls::from_pem_files(&certificate_file, &key_file).is_ok());

    let cases = [
        (
            &certificate_file,
            &other_key_file,
            &other_key_file,
            "does not hold the private key",
        ),
        (&key_file, &key_file, &key_file, "holds no certificate"),
        (
            &certificate_file,
            &certificate_file,
            &certificate_file,
            "holds no private key",
        ),
        (&garbled_file, &key_file, &garbled_file, "not valid PEM"),
        (&missing_file, &key_file, &missing_file, "cannot read"),
        (
            &certificate_file,
            &missing_file,
            &missing_file,
            "cannot read",
        ),
    ];
    for (certificate, key, named, what) in cases {
        let error = Tls::from_pem_files(certificate, key)
            .map(|_| ())
            .expect_err(what);
        assert_eq!(error.kind(), ErrorKind::Config, "{error}");
        assert!(
            error.message().contains(&named.display().to_string()),
            "{what}: the file is not named in {error}"
        );
        assert!(error.message().contains(what), "{what}: {error}");
        assert!(
            !error.message().contains(&other_key[40..80]),
            "no key material in {error}"
        );
    }
}
