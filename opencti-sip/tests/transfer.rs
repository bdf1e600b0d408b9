//! Attended transfer (consult, then complete): the transferee is a sipp scenario that
//! checks the REFER's `Replaces` (RFC 3891) and reports success by sipfrag; the
//! consultation target is a real baresip phone.

mod support;

use std::time::Duration;

use opencti_core::{Cause, DesktopInterface, DesktopInterfaceExt, Dialable, Event};
use support::{expect, require, Baresip, Kamailio, RunDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_then_complete_transfer_refers_with_replaces() {
    if !require(&["kamailio", "kamcmd", "baresip", "sipp"]) {
        return;
    }
    let run = RunDir::new("attended");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let b1003 = Baresip::start(&run, &kamailio, "1003");
    let mut target = b1003.control().await;
    kamailio.wait_registered("1003").await;
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;

    let port = support::free_port();
    let args: Vec<String> = [
        "-sf",
        &support::scenario("uas_transferee.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-timeout",
        "30s",
        "-nostdin",
        "-trace_err",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = run.0.clone();
    let transferee =
        tokio::spawn(async move { support::sipp(&args, &dir, Duration::from_secs(35)).await });
    tokio::time::sleep(Duration::from_millis(400)).await;

    let to = Dialable::new(format!("sip:x@127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
    let primary = session
        .make_call(to)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    expect(&mut events, "call_connected").await;

    let consult = session
        .consult(
            primary.clone(),
            Dialable::new("1003").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("consult: {e}"));
    let consult = consult
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no consult call"));
    assert_eq!(
        session.snapshot().call(&primary).map(|c| c.state.name()),
        Some("held")
    );
    assert_eq!(
        session
            .snapshot()
            .call(&consult)
            .and_then(|c| c.consult_of.clone()),
        Some(primary.clone())
    );
    expect(&mut events, "call_connected").await;
    target
        .wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;

    let done = session
        .complete_transfer(consult.clone())
        .await
        .unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(done.event.event.name(), "call_transferred");
    for _ in 0..2 {
        let ended = expect(&mut events, "call_ended").await;
        match &ended.event {
            Event::CallEnded { cause, .. } => assert_eq!(*cause, Cause::Transferred),
            other => panic!("{other:?}"),
        }
    }
    let (ok, out) = transferee.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok,
        "the transferee scenario failed (Replaces check, NOTIFY or BYE):\n{out}"
    );
    assert!(session.snapshot().calls.is_empty());
}
