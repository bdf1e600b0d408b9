//! `opencti serve FILE`: a whole contact centre from a deployment file. On the embedded
//! simulator: agents sign in with their id and password, get a token, and their desk
//! over the WebSocket, over plain HTTP and over HTTPS with the file's certificate and
//! key; a wrong password is refused; a bad file is refused naming the file and the line,
//! and a bad TLS key naming the key file. On the real Asterisk (the test PBX that `.ci/run` starts): each
//! agent logs into its own queues, and all of them share one AMI session; skipped with a
//! printed reason when no Asterisk answers on 127.0.0.1:5038, except under `CI=true`,
//! where that is a failure.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{command, desk, hash, post, Killed};

fn deployment(dir: &std::path::Path) -> std::path::PathBuf {
    deployment_listening(dir, "")
}

/// The deployment file, with `listen` added to its `[listen]` section.
fn deployment_listening(dir: &std::path::Path, listen: &str) -> std::path::PathBuf {
    let file = dir.join("centre.toml");
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\n{listen}\n[phone_system]\nkind = \"simulator\"\n\n\
         [[agent]]\nid = \"alice\"\nname = \"Alice\"\ndevice = \"1001\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n\n\
         [[agent]]\nid = \"bob\"\nname = \"Bob\"\ndevice = \"1002\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n",
        hash("alice-pw"),
        hash("bob-pw")
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `opencti serve` and returns its address.
fn serve(file: &std::path::Path) -> (Killed, String) {
    serve_with(file, "http")
}

/// Starts `opencti serve`, checks that it serves `scheme`, and returns its address.
fn serve_with(file: &std::path::Path, scheme: &str) -> (Killed, String) {
    let (served, url) = common::serve(file, &[], None);
    let (printed, rest) = url.split_once("://").unwrap();
    assert_eq!(printed, scheme, "{url}");
    let address = rest.split('/').next().unwrap().to_string();
    (served, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_with_a_password_and_get_their_desk() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let (_served, address) = serve(&file);

    let (status, _) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"alice","password":"bob-pw"}"#,
    );
    assert_eq!(status, 401, "someone else's password");
    let (status, body) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"bob","password":"bob-pw"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["token"].as_str().unwrap().to_string();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .unwrap();
    let text = first.into_text().unwrap().to_string();
    assert!(
        text.contains("\"bob\"") && text.contains("1002"),
        "bob's desk: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_signs_in_to_the_wallboard_and_sees_every_agent_and_queue() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-sup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment(&dir);
    let supervisor = format!(
        "\n[[supervisor]]\nid = \"sam\"\ndevice = \"1009\"\npassword_hash = \"{}\"\n",
        hash("sam-pw")
    );
    let text = std::fs::read_to_string(&file).unwrap() + &supervisor;
    std::fs::write(&file, text).unwrap();
    let (_served, address) = serve(&file);

    let (status, body) = post(
        &address,
        "/api/sign-in",
        r#"{"agent":"sam","password":"sam-pw"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["role"], "supervisor");
    let token = json["token"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let whole: serde_json::Value = serde_json::from_str(&common::next_text(&mut ws).await).unwrap();
    let agents: Vec<&str> = whole["centre"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(
        agents,
        ["alice", "bob"],
        "every agent, before any signed in: {whole}"
    );
    assert_eq!(
        whole["centre"]["queues"]["queues"][0]["queue"], "support",
        "{whole}"
    );

    // An agent's sign-in still gives the desk, and the supervisor sees them log in.
    let mut alice = desk(&address, "alice", "alice-pw").await;
    command(&mut alice, "1", serde_json::json!({"type": "login"})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no update for alice's login"
        );
        let update: serde_json::Value =
            serde_json::from_str(&common::next_text(&mut ws).await).unwrap();
        let logged_in = update["update"]["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["agents"]["logged_in"] == 1));
        if logged_in {
            break;
        }
    }
    let (status, page) = common::get(&address, "/wallboard");
    assert_eq!(status, 200);
    assert!(page.contains("wallboard.js"), "{page}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_deployment_file_is_refused_with_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("centre.toml");
    std::fs::write(
        &file,
        "[listen]\naddress = \"127.0.0.1:0\"\n\n[phone_system]\nkind = \"pbx\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .arg("serve")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("centre.toml:5:"), "{error}");
    assert!(error.contains("pbx"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- over HTTPS -----

/// A self-signed certificate for `localhost` in `dir` (`cert.pem`, `key.pem`), and a
/// client that trusts it.
fn certificate(dir: &Path) -> tokio_rustls::TlsConnector {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(client))
}

const TLS_FILES: &str = "tls_certificate = \"cert.pem\"\ntls_key = \"key.pem\"\n";

/// A TLS connection to `address`, checked against the certificate for `localhost`.
async fn connect_tls(
    connector: &tokio_rustls::TlsConnector,
    address: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("a handshake within 10 s")
        .unwrap()
}

async fn post_tls(
    connector: &tokio_rustls::TlsConnector,
    address: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = connect_tls(connector, address).await;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    common::status_and_body(&response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_over_https_and_get_their_desk_over_wss() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let connector = certificate(&dir);
    let file = deployment_listening(&dir, TLS_FILES);
    let (_served, address) = serve_with(&file, "https");
    let port = address.rsplit(':').next().unwrap();

    let (status, _) = post_tls(
        &connector,
        &address,
        "/api/sign-in",
        r#"{"agent":"alice","password":"bob-pw"}"#,
    )
    .await;
    assert_eq!(status, 401, "someone else's password");
    let (status, body) = post_tls(
        &connector,
        &address,
        "/api/sign-in",
        r#"{"agent":"bob","password":"bob-pw"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["token"].as_str().unwrap().to_string();

    // The desk over wss, from the sign-in page's own origin.
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "origin",
        format!("https://localhost:{port}").parse().unwrap(),
    );
    let stream = connect_tls(&connector, &address).await;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let hello = serde_json::json!({"auth": {"token": token}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .unwrap();
    let text = first.into_text().unwrap().to_string();
    assert!(
        text.contains("\"bob\"") && text.contains("1002"),
        "bob's desk: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `opencti` with `args` to its end (within 30 s): its status and standard error.
fn run_to_end(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("opencti {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut error = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut error)
        .unwrap();
    (status.success(), error)
}

#[test]
fn a_bad_tls_key_is_refused_with_the_file_named() {
    let dir = std::env::temp_dir().join(format!("opencti-serve-bad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = deployment_listening(&dir, TLS_FILES);
    let key = dir.join("key.pem");
    // The deployment's certificate, then in its key file the key of another certificate,
    // and then a certificate instead of a key.
    let _ = certificate(&dir);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    for (key_text, expected) in [
        (
            other.signing_key.serialize_pem(),
            "does not hold the private key",
        ),
        (other.cert.pem(), "holds no private key"),
    ] {
        std::fs::write(&key, key_text).unwrap();
        for command in ["serve", "check-deployment"] {
            let (ok, error) = run_to_end(&[command.as_ref(), file.as_os_str()]);
            assert!(!ok, "{command}: {error}");
            assert!(
                error.contains(&key.display().to_string()),
                "{command}: the key file is not named: {error}"
            );
            assert!(error.contains(expected), "{command}: {error}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- on the real Asterisk -----

const AMI: &str = "127.0.0.1:5038";

fn asterisk_answers() -> bool {
    let Ok(mut socket) = TcpStream::connect_timeout(&AMI.parse().unwrap(), Duration::from_secs(2))
    else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 21];
    socket.read_exact(&mut banner).is_ok() && banner.starts_with(b"Asterisk Call Manager")
}

/// The test PBX is shared with the AMI crate's live tests: take it as they do.
fn lock_the_pbx() -> std::fs::File {
    let path = std::env::temp_dir().join("opencti-asterisk-live.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    file
}

fn cli(command: &str) -> String {
    let prefix = std::env::var_os("OPENCTI_ASTERISK_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/opencti/asterisk"));
    let rundir = std::env::var_os("OPENCTI_ASTERISK_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| prefix.join("run"));
    let out = Command::new(prefix.join("sbin/asterisk"))
        .arg("-C")
        .arg(rundir.join("etc/asterisk/asterisk.conf"))
        .arg("-rx")
        .arg(command)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opencti_sessions() -> usize {
    cli("manager show connected")
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("opencti"))
        .count()
}

fn in_queue(queue: &str, interface: &str) -> bool {
    cli(&format!("queue show {queue}")).contains(&format!("({interface}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_on_the_real_asterisk_signs_agents_in_on_one_ami_session() {
    if !asterisk_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Asterisk answers AMI on {AMI}"
        );
        eprintln!("SKIPPED: no Asterisk answers AMI on {AMI} (start opencti-asterisk-ami/peers/asterisk/start-asterisk.sh)");
        return;
    }
    let _pbx = tokio::task::spawn_blocking(lock_the_pbx).await.unwrap();
    let dir = std::env::temp_dir().join(format!("opencti-serve-ami-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ami-secret"), "opencti-secret\n").unwrap();
    let file = dir.join("centre.toml");
    std::fs::write(
        &file,
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\n\n\
             [phone_system]\nkind = \"asterisk\"\naddress = \"{AMI}\"\nusername = \"opencti\"\nsecret_file = \"ami-secret\"\n\n\
             [[agent]]\nid = \"carol\"\nname = \"Carol\"\ndevice = \"Local/1003@agents\"\nqueues = [\"sales\"]\npassword_hash = \"{}\"\n\n\
             [[agent]]\nid = \"dave\"\nname = \"Dave\"\ndevice = \"Local/1004@agents\"\nqueues = [\"support\"]\npassword_hash = \"{}\"\n",
            hash("carol-pw"),
            hash("dave-pw")
        ),
    )
    .unwrap();
    let before = opencti_sessions();
    let (_served, address) = serve(&file);

    assert_eq!(
        post(
            &address,
            "/api/sign-in",
            r#"{"agent":"carol","password":"dave-pw"}"#
        )
        .0,
        401
    );
    let mut carol = desk(&address, "carol", "carol-pw").await;
    let mut dave = desk(&address, "dave", "dave-pw").await;
    assert_eq!(
        opencti_sessions(),
        before + 1,
        "two agents, one AMI session: {}",
        cli("manager show connected")
    );
    let login = serde_json::json!({"type": "login"});
    let reply = command(&mut carol, "c1", login.clone()).await;
    assert!(!reply.contains("\"error\""), "{reply}");
    let reply = command(&mut dave, "d1", login).await;
    assert!(!reply.contains("\"error\""), "{reply}");
    // Each in the queues the file gives them, and only those.
    assert!(in_queue("sales", "Local/1003@agents") && !in_queue("sales", "Local/1004@agents"));
    assert!(in_queue("support", "Local/1004@agents") && !in_queue("support", "Local/1003@agents"));
    let logout = serde_json::json!({"type": "logout"});
    command(&mut carol, "c2", logout.clone()).await;
    command(&mut dave, "d2", logout).await;
    assert!(!in_queue("sales", "Local/1003@agents"));
    assert!(!in_queue("support", "Local/1004@agents"));
    let _ = std::fs::remove_dir_all(&dir);
}
