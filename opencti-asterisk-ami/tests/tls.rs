//! AMI over TLS, for real on 127.0.0.1: a CA and a server certificate made by the test
//! (rcgen), the scripted AMI server behind a rustls acceptor, and the client with the
//! CA file: login, a session, a wrong CA, a wrong name, plain text against the TLS port
//! and TLS against the plain-text port, broken CA files. Every test is bounded in time.

mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_asterisk_ami::{
    Action, AmiClient, AmiConfig, AmiConnector, AuthMethod, Banner, ClientEvents, Message, Secret,
    TlsConfig,
};
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, ErrorKind, Event, Session,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{Control, Script};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

const LIMIT: Duration = Duration::from_secs(20);
const SECRET: &str = "opencti-secret";

async fn bounded<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test took longer than {LIMIT:?}"),
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("opencti-ami-tls-{}", fastrand_u64()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()) << 32
}

/// A CA, and a server certificate it signed for `ami.test` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    (params, key, cert.pem())
}

fn pki() -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("opencti test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["ami.test".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "asterisk");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], PrivateKeyDer::from(key))
        .expect("server config");
    Pki {
        ca_pem,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    }
}

fn config(address: String, ca_file: Option<&Path>) -> AmiConfig {
    let mut c = AmiConfig::new(address, "opencti", Secret::new(SECRET));
    c.timeouts.action = Duration::from_secs(2);
    c.timeouts.connect = Duration::from_secs(2);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c.tls = ca_file.map(|path| TlsConfig {
        ca_file: Some(path.to_path_buf()),
        ..TlsConfig::default()
    });
    c
}

#[derive(Default)]
struct Count(AtomicUsize);

impl ClientEvents for Count {
    fn connected(&self, _: &Banner) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn event(&self, _: Message) -> bool {
        true
    }
    fn disconnected(&self, _: &str) {}
}

fn assert_no_secret(err: &opencti_core::Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_actions_over_tls() {
    bounded(async {
        let pki = pki();
        let dir = TempDir::new();
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let server = Control::start_tls(Script::default(), pki.acceptor.clone()).await;
        // By IP address (checked against the IP SAN), then by name; both logins.
        for (server_name, auth) in [
            (None, AuthMethod::Md5Challenge),
            (Some("ami.test"), AuthMethod::Plaintext),
        ] {
            let mut c = config(server.address(), Some(&ca_file));
            c.auth = auth;
            if let Some(tls) = c.tls.as_mut() {
                tls.server_name = server_name.map(String::from);
            }
            let banner = AmiClient::check(&c).await.expect("check over TLS");
            assert_eq!(banner.version(), "11.0.0");
            let count = Arc::new(Count::default());
            let client = AmiClient::start(c, count.clone()).await.expect("login");
            assert!(client.is_up());
            let pong = client
                .send(Action::new("Ping").expect("ping"))
                .await
                .expect("pong over TLS");
            assert_eq!(pong.get("Ping"), Some("Pong"));
            client.stop().await;
        }
        let actions = server.actions();
        assert_eq!(
            actions.iter().filter(|a| *a == "Login").count(),
            4,
            "{actions:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_tls_logs_the_agent_in_and_sees_a_call() {
    bounded(async {
        let pki = pki();
        let dir = TempDir::new();
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let server = Control::start_tls(Script::default(), pki.acceptor.clone()).await;
        let mut c = config(server.address(), Some(&ca_file));
        c.queues = vec!["support".into()];
        let connector = Arc::new(AmiConnector::new(c).expect("config"));
        let session = Session::builder(
            connector,
            AgentId::new("alice").expect("id"),
            DeviceId::new("PJSIP/7001").expect("id"),
        )
        .start()
        .await
        .expect("session over TLS");
        let mut events = session.subscribe();
        session.login().await.expect("login confirmed over TLS");
        server.call_device("+441632960001");
        let mut seen = Vec::new();
        while let Some(Ok(e)) = events.next().await {
            seen.push(e.event.name().to_string());
            if matches!(e.event, Event::CallConnected { .. }) {
                break;
            }
        }
        assert!(seen.contains(&"call_offered".to_string()), "{seen:?}");
        session.stop().await.expect("stop");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_clearly() {
    bounded(async {
        let pki = pki();
        let (_, _, other_ca) = ca("someone else's CA");
        let dir = TempDir::new();
        let wrong = dir.file("other-ca.pem", &other_ca);
        let server = Control::start_tls(Script::default(), pki.acceptor.clone()).await;
        let c = config(server.address(), Some(&wrong));
        let err = AmiClient::check(&c).await.expect_err("untrusted");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(err.message().contains("TLS certificate"), "{err}");
        assert!(err.message().contains("UnknownIssuer"), "{err}");
        assert!(err.message().contains("tls.ca_file"), "{err}");
        assert_no_secret(&err);
        // `start` fails at once too, rather than retrying an untrusted server forever.
        let err = AmiClient::start(c.clone(), Arc::new(Count::default()))
            .await
            .expect_err("untrusted");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        // And so does a session.
        let connector = Arc::new(AmiConnector::new(c).expect("config"));
        let err = Session::builder(
            connector,
            AgentId::new("alice").expect("id"),
            DeviceId::new("PJSIP/7001").expect("id"),
        )
        .start()
        .await
        .expect_err("untrusted");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert_no_secret(&err);
        // Nothing reached the AMI: no login over an untrusted link.
        assert!(server.actions().is_empty(), "{:?}", server.actions());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    bounded(async {
        let pki = pki();
        let dir = TempDir::new();
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let server = Control::start_tls(Script::default(), pki.acceptor.clone()).await;
        let mut c = config(server.address(), Some(&ca_file));
        if let Some(tls) = c.tls.as_mut() {
            tls.server_name = Some("pbx.example.com".into());
        }
        let err = AmiClient::check(&c).await.expect_err("wrong name");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(err.message().contains("pbx.example.com"), "{err}");
        assert!(err.message().contains("not valid for name"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_the_tls_port_fails_cleanly() {
    bounded(async {
        let pki = pki();
        let server = Control::start_tls(Script::default(), pki.acceptor.clone()).await;
        let mut c = config(server.address(), None);
        c.timeouts.connect = Duration::from_millis(500);
        let err = AmiClient::check(&c).await.expect_err("no banner in clear");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.message().contains("waiting for the banner"), "{err}");
        assert!(err.message().contains("TLS port"), "{err}");
        assert_no_secret(&err);
        // `start` keeps trying in the background, never up, and stops cleanly.
        let count = Arc::new(Count::default());
        let client = AmiClient::start(c, count.clone()).await.expect("retrying");
        assert!(!client.is_up());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        client.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_plain_text_port_fails_cleanly() {
    bounded(async {
        let pki = pki();
        let dir = TempDir::new();
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let server = Control::start(Script::default()).await;
        let c = config(server.address(), Some(&ca_file));
        let err = AmiClient::check(&c).await.expect_err("banner is not TLS");
        assert_eq!(err.kind(), ErrorKind::LinkDown, "{err}");
        assert!(err.message().contains("TLS handshake"), "{err}");
        assert!(err.message().contains("does not speak TLS"), "{err}");
        assert_no_secret(&err);
        assert!(server.actions().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_invalid_ca_files_are_config_errors() {
    bounded(async {
        let dir = TempDir::new();
        let server = Control::start(Script::default()).await;
        let missing = dir.0.join("missing.pem");
        let empty = dir.file("empty.pem", "");
        let key_only = dir.file(
            "key.pem",
            &KeyPair::generate().expect("key").serialize_pem(),
        );
        let garbage = dir.file(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        );
        let not_der = dir.file(
            "not-der.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        for (path, says) in [
            (&missing, "cannot read the TLS CA file"),
            (&empty, "holds no PEM certificate"),
            (&key_only, "holds no PEM certificate"),
            (&garbage, "is not valid PEM"),
            (&not_der, "is not a usable CA certificate"),
        ] {
            let c = config(server.address(), Some(path));
            let err = AmiClient::start(c.clone(), Arc::new(Count::default()))
                .await
                .expect_err("bad CA file");
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.message().contains(says), "{err}");
            assert!(
                err.message().contains(&path.display().to_string()),
                "names the file: {err}"
            );
            assert_no_secret(&err);
            let err = AmiClient::check(&c).await.expect_err("bad CA file");
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        }
        // No CA at all is refused by validation.
        let mut c = config(server.address(), None);
        c.tls = Some(TlsConfig::default());
        let err = AmiConnector::new(c).expect_err("no CA");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(server.actions().is_empty());
    })
    .await;
}
