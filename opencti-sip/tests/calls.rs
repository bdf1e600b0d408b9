//! Calls between this connector (extension 1001) and real baresip phones (1002, 1003)
//! through a real kamailio with digest auth: make, answer, reject, hang up, hold and
//! retrieve, DTMF, blind transfer, not-ready refusal, and holds by the far end.

mod support;

use std::time::Duration;

use futures::StreamExt;

use opencti_core::{
    CallId, Cause, DesktopInterface, DesktopInterfaceExt, Dialable, DtmfDigits, Event,
};
use support::{expect, require, Baresip, BaresipCtl, Kamailio, RunDir};

fn dial(s: &str) -> Dialable {
    Dialable::new(s).unwrap_or_else(|e| panic!("{e}"))
}

async fn phone(run: &RunDir, kamailio: &Kamailio, user: &str) -> (Baresip, BaresipCtl) {
    let b = Baresip::start(run, kamailio, user);
    let ctl = b.control().await;
    kamailio.wait_registered(user).await;
    (b, ctl)
}

fn peers() -> bool {
    require(&["kamailio", "kamcmd", "baresip"])
}

fn ended_cause(e: &Event) -> Cause {
    match e {
        Event::CallEnded { cause, .. } => *cause,
        other => panic!("not call_ended: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_hold_retrieve_dtmf_and_hang_up_with_baresip() {
    if !peers() {
        return;
    }
    let run = RunDir::new("outbound");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_b, mut far) = phone(&run, &kamailio, "1002").await;
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;

    let made = session
        .make_call(dial("1002"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(made.event.event.name(), "call_initiated");
    let call = made.call().cloned().unwrap_or_else(|| panic!("no call"));
    expect(&mut events, "call_connected").await;
    far.wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;
    let snap = session.snapshot();
    let c = snap
        .call(&call)
        .unwrap_or_else(|| panic!("call not on the panel"));
    assert_eq!(c.state.name(), "connected");
    assert_eq!(c.to.as_ref().map(|a| a.as_str()), Some("1002"));

    let held = session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold: {e}"));
    assert_eq!(held.event.event.name(), "call_held");
    assert_eq!(
        session.snapshot().call(&call).map(|c| c.state.name()),
        Some("held")
    );
    let back = session
        .retrieve(call.clone())
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(back.event.event.name(), "call_retrieved");

    let dtmf = session
        .send_dtmf(
            call.clone(),
            DtmfDigits::new("12#").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("dtmf: {e}"));
    assert_eq!(dtmf.event.event.name(), "dtmf_sent");
    // baresip heard each digit, in order, as RFC 4733 events.
    for digit in ["1", "2", "#"] {
        let heard = far
            .wait_event("CALL_DTMF_START", Duration::from_secs(5))
            .await;
        assert_eq!(heard["param"], digit, "{heard}");
    }

    let hung = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    assert_eq!(ended_cause(&hung.event.event), Cause::Normal);
    far.wait_event("CALL_CLOSED", Duration::from_secs(10)).await;
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_call_from_baresip_is_offered_answered_and_ended_by_the_far_end() {
    if !peers() {
        return;
    }
    let run = RunDir::new("inbound");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_b, mut far) = phone(&run, &kamailio, "1002").await;
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;

    far.send(
        "dial",
        Some(&format!("sip:1001@127.0.0.1:{}", kamailio.port)),
    )
    .await;
    let offered = expect(&mut events, "call_offered").await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    match &offered.event {
        Event::CallOffered { from, .. } => {
            assert_eq!(from.as_ref().map(|a| a.as_str()), Some("1002"))
        }
        other => panic!("{other:?}"),
    }
    let answered = session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("answer: {e}"));
    assert_eq!(answered.event.event.name(), "call_connected");
    far.wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;

    // The far end holds and resumes: shown as call data, the call stays connected.
    far.send("hold", None).await;
    let data = expect(&mut events, "call_data_changed").await;
    assert!(
        format!("{:?}", data.event).contains("\"true\"")
            || format!("{:?}", data.event).contains("true")
    );
    assert_eq!(
        session
            .snapshot()
            .call(&call)
            .and_then(|c| c.data.get("sip.far_end_hold"))
            .map(|v| v.as_str().to_owned()),
        Some("true".into())
    );
    far.send("resume", None).await;
    expect(&mut events, "call_data_changed").await;

    far.send("hangup", None).await;
    let ended = expect(&mut events, "call_ended").await;
    assert_eq!(ended.call(), Some(&call));
    assert_eq!(ended_cause(&ended.event), Cause::Normal);
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_cancel_and_not_ready_refusal() {
    if !peers() {
        return;
    }
    let run = RunDir::new("reject");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_b, mut far) = phone(&run, &kamailio, "1002").await;
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;
    let me = format!("sip:1001@127.0.0.1:{}", kamailio.port);

    // Reject: 603 to the caller, call_ended rejected on the panel.
    far.send("dial", Some(&me)).await;
    let call = expect(&mut events, "call_offered")
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    let rejected = session
        .reject(call)
        .await
        .unwrap_or_else(|e| panic!("reject: {e}"));
    assert_eq!(ended_cause(&rejected.event.event), Cause::Rejected);
    far.wait_event("CALL_CLOSED", Duration::from_secs(10)).await;

    // The caller gives up: call_ended cancelled.
    far.send("dial", Some(&me)).await;
    let call = expect(&mut events, "call_offered")
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    far.send("hangup", None).await;
    let ended = expect(&mut events, "call_ended").await;
    assert_eq!(ended.call(), Some(&call));
    assert_eq!(ended_cause(&ended.event), Cause::Cancelled);
    far.wait_event("CALL_CLOSED", Duration::from_secs(10)).await;

    // Not ready: new calls meet 486 and never reach the panel.
    session.login().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(session.snapshot().agent_state.name(), "not_ready");
    far.send("dial", Some(&me)).await;
    let closed = far.wait_event("CALL_CLOSED", Duration::from_secs(10)).await;
    assert!(closed.to_string().contains("486"), "{closed}");
    assert!(session.snapshot().calls.is_empty());

    // Ready again: calls ring.
    session.ready().await.unwrap_or_else(|e| panic!("{e}"));
    far.send("dial", Some(&me)).await;
    let call = expect(&mut events, "call_offered")
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    let hung = session.reject(call).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hung.event.event.name(), "call_ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_to_a_second_phone_completes_on_a_2xx_sipfrag() {
    if !peers() {
        return;
    }
    let run = RunDir::new("blind");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_b2, mut transferee) = phone(&run, &kamailio, "1002").await;
    let (_b3, mut target) = phone(&run, &kamailio, "1003").await;
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;

    let call = session
        .make_call(dial("1002"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    expect(&mut events, "call_connected").await;
    transferee
        .wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;

    let done = session
        .blind_transfer(call.clone(), dial("1003"))
        .await
        .unwrap_or_else(|e| panic!("blind transfer: {e}"));
    match &done.event.event {
        Event::CallTransferred { to, .. } => {
            assert_eq!(to.as_ref().map(|a| a.as_str()), Some("1003"))
        }
        other => panic!("{other:?}"),
    }
    let ended = expect(&mut events, "call_ended").await;
    assert_eq!(ended_cause(&ended.event), Cause::Transferred);
    target
        .wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_reports_its_cause() {
    if !peers() {
        return;
    }
    let run = RunDir::new("failed");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;
    // Nobody is registered as 1999: kamailio answers 404.
    let call: CallId = session
        .make_call(dial("1999"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    let failed = expect(&mut events, "call_failed").await;
    assert_eq!(failed.call(), Some(&call));
    match &failed.event {
        Event::CallFailed { cause, .. } => assert_eq!(*cause, Cause::InvalidNumber),
        other => panic!("{other:?}"),
    }
    let ended = expect(&mut events, "call_ended").await;
    assert_eq!(ended_cause(&ended.event), Cause::InvalidNumber);
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_plays_a_wav_file_and_records_what_the_far_end_sends() {
    if !peers() {
        return;
    }
    let run = RunDir::new("media");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (_b, mut far) = phone(&run, &kamailio, "1002").await;
    let prompt = run.0.join("prompt.wav");
    support::write_silence(&prompt, 1);
    let recordings = run.0.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap_or_else(|e| panic!("{e}"));
    let player = opencti_sip::WavPlayer::open(&prompt).unwrap_or_else(|e| panic!("{e}"));
    let recorder = opencti_sip::WavRecorder::new(&recordings, std::sync::Arc::new(player));
    let mut config = support::config(&kamailio, "1001");
    config.media.audio = std::sync::Arc::new(recorder.clone());
    let (session, mut events, _) = support::session(config).await;

    let call = session
        .make_call(dial("1002"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    expect(&mut events, "call_connected").await;
    far.wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let path = recorder.path_for(&call);
    let reader =
        hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16)
    );
    // baresip sends 20 ms of G.711 every 20 ms: 1.5 s is about 12,000 samples.
    assert!(
        reader.duration() >= 4000,
        "only {} samples recorded",
        reader.duration()
    );
    // A WAV that is not 8 kHz mono 16-bit is refused with a clear error.
    let bad = run.0.join("bad.wav");
    std::fs::write(&bad, b"RIFF....WAVE").unwrap_or_else(|e| panic!("{e}"));
    let err = opencti_sip::WavPlayer::open(&bad).expect_err("not a WAV");
    assert!(err.message().contains("bad.wav"), "{err}");
}

/// Waits up to `within` for `call_ended`, returning it and how long it took.
async fn ended_within(
    events: &mut opencti_core::EventStream,
    within: Duration,
) -> Option<(std::sync::Arc<opencti_core::EventEnvelope>, Duration)> {
    let begun = std::time::Instant::now();
    tokio::time::timeout(within, async {
        loop {
            match events.next().await {
                Some(Ok(e)) if e.event.name() == "call_ended" => return e,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("event stream error: {e}"),
                None => panic!("event stream closed"),
            }
        }
    })
    .await
    .ok()
    .map(|e| (e, begun.elapsed()))
}

/// An inbound call from baresip answered here, and what keeps it up.
struct Answered {
    _run: RunDir,
    _kamailio: Kamailio,
    baresip: Baresip,
    _far: BaresipCtl,
    session: opencti_core::Session,
    events: opencti_core::EventStream,
    call: CallId,
}

/// An inbound call from baresip, answered here, with a short media inactivity timeout.
async fn answered_inbound_call(name: &str, timeout: Duration) -> Answered {
    let run = RunDir::new(name);
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (b, mut far) = phone(&run, &kamailio, "1002").await;
    let mut config = support::config(&kamailio, "1001");
    config.media.inactivity_timeout = Some(timeout);
    let (session, mut events, _) = support::session(config).await;
    far.send(
        "dial",
        Some(&format!("sip:1001@127.0.0.1:{}", kamailio.port)),
    )
    .await;
    let offered = expect(&mut events, "call_offered").await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    let answered = session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("answer: {e}"));
    assert_eq!(answered.event.event.name(), "call_connected");
    far.wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .await;
    Answered {
        _run: run,
        _kamailio: kamailio,
        baresip: b,
        _far: far,
        session,
        events,
        call,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_end_killed_mid_call_ends_the_call_as_vanished_after_the_media_inactivity_timeout() {
    if !peers() {
        return;
    }
    let timeout = Duration::from_secs(2);
    // Bound whole: kamailio and the run directory live until the end of the test.
    let mut up = answered_inbound_call("inactivity", timeout).await;
    let (session, call) = (&up.session, up.call.clone());

    // baresip sends RTP: the call outlives the timeout twice over.
    assert!(
        ended_within(&mut up.events, timeout * 2).await.is_none(),
        "a call with RTP flowing was ended"
    );
    assert_eq!(
        session.snapshot().call(&call).map(|c| c.state.name()),
        Some("connected")
    );

    // SIGKILL: no BYE, no more RTP.
    up.baresip.kill();
    let (ended, took) = ended_within(&mut up.events, timeout + Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("no call_ended within the timeout + 3 s after baresip died"));
    assert_eq!(ended.call(), Some(&call));
    assert_eq!(ended_cause(&ended.event), Cause::Vanished);
    assert!(
        took >= timeout - Duration::from_millis(300),
        "ended after {took:?}, before the {timeout:?} timeout"
    );
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_is_not_ended_by_the_silence_of_a_dead_far_end() {
    if !peers() {
        return;
    }
    let timeout = Duration::from_secs(2);
    // Bound whole: kamailio and the run directory live until the end of the test.
    let mut up = answered_inbound_call("inactivity-held", timeout).await;
    let (session, call) = (&up.session, up.call.clone());
    let held = session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold: {e}"));
    assert_eq!(held.event.event.name(), "call_held");

    // Held: no RTP is expected, so even a far end that is surely silent (killed) does
    // not end the call.
    up.baresip.kill();
    assert!(
        ended_within(&mut up.events, timeout * 3).await.is_none(),
        "a held call was ended by silence"
    );
    assert_eq!(
        session.snapshot().call(&call).map(|c| c.state.name()),
        Some("held")
    );

    // The agent hangs up: the BYE goes nowhere, the call ends here all the same.
    let hung = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    assert_eq!(ended_cause(&hung.event.event), Cause::Normal);
    assert!(session.snapshot().calls.is_empty());
}
