//! `Transport::Tls` against kamailio's TLS listener (package kamailio-tls-modules), with
//! a CA and a server certificate made for the test: registration with digest auth over
//! TLS, an outbound call whose signalling goes over that TLS connection, and a registrar
//! whose certificate does not chain to the configured CA refused as `link_down`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opencti_core::{
    AgentId, Cause, DesktopInterfaceExt, DeviceId, Dialable, ErrorKind, Event, Session,
};
use opencti_sip::{SipConnector, Transport};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{expect, Kamailio, RunDir};

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost: writes
/// `<run>/tls/server.pem`, `server.key` (for kamailio) and returns the CA's PEM file.
fn make_certificates(run: &RunDir, ca_name: &str) -> PathBuf {
    let dir = run.0.join("tls");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap_or_else(|e| panic!("{e}"));
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    server
        .distinguished_name
        .push(DnType::CommonName, "opencti test registrar");
    let cert = server
        .signed_by(&key, &issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    };
    write("server.pem", cert.pem());
    write("server.key", key.serialize_pem());
    write("ca.pem", ca_cert.pem())
}

fn kamailio_tls(run: &RunDir) -> Kamailio {
    Kamailio::start_with_tls(
        run,
        support::free_port(),
        support::free_port(),
        &["WITH_AUTH", "WITH_TLS"],
    )
}

fn tls_config(kamailio: &Kamailio, ca: &Path) -> opencti_sip::SipConfig {
    let mut config = support::config(kamailio, "1001");
    config.registrar = ([127, 0, 0, 1], kamailio.tls_port).into();
    config.transport = Transport::Tls;
    config.tls_ca_file = Some(ca.to_owned());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_over_tls_and_calls_through_it() {
    if !support::require_kamailio_tls() || !support::require(&["sipp"]) {
        return;
    }
    let run = RunDir::new("tls");
    let ca = make_certificates(&run, "opencti test CA");
    let kamailio = kamailio_tls(&run);
    let mut config = tls_config(&kamailio, &ca);
    config.dtmf = opencti_sip::DtmfMode::Info;
    let (session, mut events, connector) = support::session(config).await;
    assert!(connector.is_registered());
    // kamailio took the REGISTER on its TLS socket. (The binding's Contact is this UA's
    // address without `transport=tls`: requests to this UA come back over UDP.)
    let registrations = kamailio.registrations();
    assert!(
        registrations.contains("AoR: 1001"),
        "kamailio has no 1001:\n{registrations}"
    );
    assert!(
        registrations.contains(&format!("tls:127.0.0.1:{}", kamailio.tls_port)),
        "1001 is not bound on the TLS socket:\n{registrations}"
    );

    // An outbound call: INVITE, ACK and BYE over TLS to kamailio, which relays them to
    // a sipp far end over UDP.
    let port = support::free_port();
    let args: Vec<String> = [
        "-sf",
        &support::scenario("uas_dtmf_info.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-timeout",
        "15s",
        "-nostdin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = run.0.clone();
    let far =
        tokio::spawn(async move { support::sipp(&args, &dir, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let to = Dialable::new(format!("sip:x@127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
    let call = session
        .make_call(to)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    let connected = expect(&mut events, "call_connected").await;
    assert_eq!(connected.call(), Some(&call));
    // One established TLS connection carries the REGISTER, the pings and the call.
    let tls = kamailio.kamcmd(&["tls.list"]);
    assert_eq!(tls.matches("state: established").count(), 1, "{tls}");
    assert!(tls.contains("TLSv1."), "{tls}");
    // The far end is the DTMF scenario: in-dialog INFOs (1 and #) over TLS too.
    let sent = session
        .send_dtmf(
            call.clone(),
            opencti_core::DtmfDigits::new("1#").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("dtmf: {e}"));
    assert_eq!(sent.event.event.name(), "dtmf_sent");
    let ended = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ended.event.event,
        Event::CallEnded {
            cause: Cause::Normal,
            ..
        }
    ));
    let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(ok, "sipp (answer, INFO 1, INFO #, BYE): {out}");
    session.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let registrations = kamailio.registered();
    assert!(
        !registrations.contains("AoR: 1001"),
        "still registered after stop:\n{registrations}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_certificate_from_another_ca_is_refused() {
    if !support::require_kamailio_tls() {
        return;
    }
    let run = RunDir::new("tls-wrong-ca");
    make_certificates(&run, "the registrar's CA");
    let kamailio = kamailio_tls(&run);
    // A CA that did not sign kamailio's certificate.
    let other = RunDir::new("tls-other-ca");
    let wrong_ca = make_certificates(&other, "some other CA");
    let connector = std::sync::Arc::new(
        SipConnector::new(tls_config(&kamailio, &wrong_ca)).unwrap_or_else(|e| panic!("{e}")),
    );
    let started = tokio::time::timeout(
        Duration::from_secs(20),
        Session::builder(
            connector.clone(),
            AgentId::new("a").unwrap_or_else(|e| panic!("{e}")),
            DeviceId::new("1001").unwrap_or_else(|e| panic!("{e}")),
        )
        .start(),
    )
    .await
    .unwrap_or_else(|_| panic!("an untrusted certificate must not hang the start"));
    let err = started.expect_err("an untrusted registrar certificate must fail the start");
    assert_eq!(err.kind(), ErrorKind::LinkDown, "{err}");
    assert!(!connector.is_registered());
    assert!(!kamailio.registered().contains("AoR: 1001"));
}
