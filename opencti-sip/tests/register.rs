//! Registration against a real kamailio with digest auth: success, a wrong password, an
//! unreachable registrar, and re-registration after the registrar restarts.

mod support;

use std::time::Duration;

use opencti_core::{AgentId, DeviceId, ErrorKind, Session};
use opencti_sip::{Secret, SipConnector};
use support::{expect, require, Kamailio, RunDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_digest_auth_and_unregisters_on_stop() {
    if !require(&["kamailio", "kamcmd"]) {
        return;
    }
    let run = RunDir::new("register");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, _events, connector) = support::session(support::config(&kamailio, "1001")).await;
    assert!(connector.is_registered());
    let registered = kamailio.registered();
    assert!(
        registered.contains("AoR: 1001"),
        "kamailio has no 1001:\n{registered}"
    );
    session.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let registered = kamailio.registered();
    assert!(
        !registered.contains("AoR: 1001"),
        "still registered after stop:\n{registered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_unauthorized_error_that_never_shows_it() {
    if !require(&["kamailio"]) {
        return;
    }
    let run = RunDir::new("badpass");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let mut config = support::config(&kamailio, "1001");
    config.password = Secret::new("not-the-secret-xyzzy");
    let connector =
        std::sync::Arc::new(SipConnector::new(config).unwrap_or_else(|e| panic!("{e}")));
    assert!(!format!("{connector:?}").contains("xyzzy"));
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
    .unwrap_or_else(|_| panic!("a wrong password must not hang the start"));
    let err = started.expect_err("a wrong password must fail the start");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("password"), "{err}");
    assert!(err.message().contains("1001"), "{err}");
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{connector:?}"),
    ] {
        assert!(!text.contains("xyzzy"), "the password leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registrar_is_a_link_down_error_within_the_timeout() {
    let run = RunDir::new("unreachable");
    // Nothing listens on this port.
    let port = support::free_port();
    let fake = Kamailio::not_started(&run, port);
    let mut config = support::config(&fake, "1001");
    config.timeouts.register = Duration::from_secs(2);
    let connector =
        std::sync::Arc::new(SipConnector::new(config).unwrap_or_else(|e| panic!("{e}")));
    let begun = std::time::Instant::now();
    let err = Session::builder(
        connector,
        AgentId::new("a").unwrap_or_else(|e| panic!("{e}")),
        DeviceId::new("1001").unwrap_or_else(|e| panic!("{e}")),
    )
    .start()
    .await
    .expect_err("nobody answers");
    assert_eq!(err.kind(), ErrorKind::LinkDown, "{err}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_again_after_the_registrar_restarts() {
    if !require(&["kamailio", "kamcmd"]) {
        return;
    }
    let run = RunDir::new("restart");
    let mut kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_session, mut events, connector) =
        support::session(support::config(&kamailio, "1001")).await;
    kamailio.stop();
    let down = expect(&mut events, "link_down").await;
    assert!(!connector.is_registered(), "{down:?}");
    kamailio.restart();
    expect(&mut events, "link_up").await;
    expect(&mut events, "resynced").await;
    assert!(connector.is_registered());
    let registered = kamailio.registered();
    assert!(
        registered.contains("AoR: 1001"),
        "not registered again:\n{registered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_and_places_a_call_over_tcp() {
    if !require(&["kamailio", "kamcmd"]) {
        return;
    }
    let run = RunDir::new("tcp");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let mut config = support::config(&kamailio, "1001");
    config.transport = opencti_sip::Transport::Tcp;
    let (session, mut events, connector) = support::session(config).await;
    assert!(connector.is_registered());
    let registered = kamailio.registered();
    assert!(registered.contains("AoR: 1001"), "{registered}");
    let full = kamailio.registrations();
    assert!(full.contains("Socket: tcp:"), "not a TCP binding:\n{full}");
    // A call over the TCP flow: kamailio answers 404 for an unknown user.
    use opencti_core::DesktopInterfaceExt;
    session
        .make_call(opencti_core::Dialable::new("1999").unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failed = expect(&mut events, "call_failed").await;
    assert!(
        format!("{:?}", failed.event).contains("InvalidNumber"),
        "{failed:?}"
    );
}
