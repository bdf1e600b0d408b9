//! Behaviour checked against a sipp far end that verifies what it receives: RFC 4028
//! session timers (the interval the far end grants in its 2xx, refreshed by re-INVITE at
//! half of it; a refused refresh ends the call) and DTMF by SIP INFO
//! (`application/dtmf-relay`). Each test is bounded (about 5 to 10 s).

mod support;

use std::time::{Duration, Instant};

use opencti_core::{
    CallId, Cause, DesktopInterface, DesktopInterfaceExt, Dialable, DtmfDigits, Event, EventStream,
    Session,
};
use opencti_sip::DtmfMode;
use support::{expect, require, Kamailio, RunDir};
use tokio::task::JoinHandle;

fn cause(e: &Event) -> Cause {
    match e {
        Event::CallEnded { cause, .. } | Event::CallFailed { cause, .. } => *cause,
        other => panic!("no cause in {other:?}"),
    }
}

/// Starts sipp with `scenario` as the far end on a free port (bounded by `limit`).
fn far_end(run: &RunDir, scenario: &str, limit: Duration) -> (u16, JoinHandle<(bool, String)>) {
    let port = support::free_port();
    let args: Vec<String> = [
        "-sf",
        &support::scenario(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-timeout",
        &format!("{}s", limit.as_secs()),
        "-nostdin",
        "-trace_err",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = run.0.clone();
    let far =
        tokio::spawn(
            async move { support::sipp(&args, &dir, limit + Duration::from_secs(5)).await },
        );
    (port, far)
}

/// Calls the sipp far end on `port` through kamailio and waits for `call_connected`.
async fn connect(session: &Session, events: &mut EventStream, port: u16) -> CallId {
    tokio::time::sleep(Duration::from_millis(400)).await;
    let to = Dialable::new(format!("sip:x@127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
    let call = session
        .make_call(to)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    let connected = expect(events, "call_connected").await;
    assert_eq!(connected.call(), Some(&call));
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_timer_the_far_end_grants_is_refreshed_in_time() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let run = RunDir::new("session-timer");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    // The connector asks for the default 1800 s; the far end grants 4 s, refresher=uac.
    let config = support::config(&kamailio, "1001");
    assert_eq!(config.session_expires, Some(1800));
    let (session, mut events, _) = support::session(config).await;
    let (port, far) = far_end(&run, "uas_session_timer.xml", Duration::from_secs(15));
    let call = connect(&session, &mut events, port).await;
    // The scenario takes two refresh re-INVITEs, each carrying `Session-Expires: 4` and
    // due 2 s after the previous exchange (it fails one that is over 3 s late), then
    // expects the BYE: a third, early refresh arrives where the BYE is due and fails it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        session.snapshot().call(&call).is_some(),
        "refreshed calls stay up"
    );
    let ended = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cause(&ended.event.event), Cause::Normal);
    let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok,
        "sipp (two refreshes of the granted 4 s timer, then BYE): {out}"
    );
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_refresh_ends_the_call_as_vanished() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let run = RunDir::new("session-refresh-481");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;
    let (port, far) = far_end(&run, "uas_refresh_481.xml", Duration::from_secs(12));
    let call = connect(&session, &mut events, port).await;
    let connected_at = Instant::now();
    // The refresh is due 2 s after the answer; the far end answers it 481.
    let ended = expect(&mut events, "call_ended").await;
    assert_eq!(ended.call(), Some(&call));
    assert_eq!(cause(&ended.event), Cause::Vanished);
    let after = connected_at.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(8),
        "ended {after:?} after the answer"
    );
    assert!(session.snapshot().calls.is_empty());
    let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(ok, "sipp (refresh answered 481, then the BYE): {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_by_sip_info_reaches_the_far_end_one_request_per_digit() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let run = RunDir::new("dtmf-info");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let mut config = support::config(&kamailio, "1001");
    config.dtmf = DtmfMode::Info;
    let (session, mut events, _) = support::session(config).await;
    // The far end offers telephone-event too: only `DtmfMode::Info` makes this INFO.
    let (port, far) = far_end(&run, "uas_dtmf_info.xml", Duration::from_secs(15));
    let call = connect(&session, &mut events, port).await;
    let sent = session
        .send_dtmf(
            call.clone(),
            DtmfDigits::new("1#").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("dtmf: {e}"));
    assert_eq!(sent.event.event.name(), "dtmf_sent");
    let ended = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cause(&ended.event.event), Cause::Normal);
    // sipp checked each INFO: Content-Type application/dtmf-relay, Signal=1 then Signal=#.
    let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(ok, "sipp (INFO 1, INFO #, BYE): {out}");
    assert!(session.snapshot().calls.is_empty());
}
