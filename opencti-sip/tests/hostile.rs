//! Malformed and hostile input, error responses and a far end that vanishes: each gives
//! a clear outcome (a SIP error back, `call_failed`/`call_ended` with a cause), never a
//! panic, a hang, or a call stuck on the panel.

mod support;

use std::time::Duration;

use opencti_core::{Cause, DesktopInterface, DesktopInterfaceExt, Dialable, Event};
use support::{expect, require, Kamailio, RunDir};
use tokio::net::UdpSocket;

fn cause(e: &Event) -> Cause {
    match e {
        Event::CallEnded { cause, .. } | Event::CallFailed { cause, .. } => *cause,
        other => panic!("no cause in {other:?}"),
    }
}

async fn responses(socket: &UdpSocket, within: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

fn invite(to: &str, from_port: u16, call_id: &str, body: &str) -> String {
    format!(
        "INVITE sip:1001@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:evil@127.0.0.1:{from_port}>;tag=t-{call_id}\r\nTo: <sip:1001@{to}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:evil@127.0.0.1:{from_port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_datagrams_neither_crash_nor_reach_the_panel_and_retransmissions_are_one_call() {
    if !require(&["kamailio"]) {
        return;
    }
    let run = RunDir::new("hostile");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, mut events, connector) =
        support::session(support::config(&kamailio, "1001")).await;
    let target = connector
        .local_addr()
        .unwrap_or_else(|| panic!("not started"));
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
    let to = target.to_string();

    let mut garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02garbage".to_vec(),
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnone\r\nCSeq: 1 INVITE\r\nCall-ID: none\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
        format!("INVITE sip:1001@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKx\r\nContent-Length: 99999\r\n\r\nv=0").into_bytes(),
        format!("BYE sip:1001@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbye\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1001@b>;tag=nope\r\nCall-ID: nosuchcall\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").into_bytes(),
    ];
    // Header names and values with NUL and bare CR.
    garbage.push(format!("OPTIONS sip:1001@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKo\r\nX-Evil: a\0b\rc\r\nContent-Length: 0\r\n\r\n").into_bytes());
    for g in &garbage {
        socket
            .send_to(g, target)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let answers = responses(&socket, Duration::from_millis(800)).await;
    assert!(
        answers.iter().any(|r| r.starts_with("SIP/2.0 481")),
        "a BYE for no dialog gets 481: {answers:?}"
    );

    // An INVITE whose SDP is not SDP is refused with 488 and never rings.
    socket
        .send_to(
            invite(&to, port, "badsdp-1", "this is not sdp").as_bytes(),
            target,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answers = responses(&socket, Duration::from_millis(800)).await;
    assert!(
        answers.iter().any(|r| r.starts_with("SIP/2.0 488")),
        "{answers:?}"
    );

    // The same INVITE three times (UDP retransmissions) is one call.
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let good = invite(&to, port, "retrans-1", sdp);
    for _ in 0..3 {
        socket
            .send_to(good.as_bytes(), target)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offered = expect(&mut events, "call_offered").await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    let answers = responses(&socket, Duration::from_millis(500)).await;
    assert!(
        answers.iter().any(|r| r.starts_with("SIP/2.0 180")),
        "{answers:?}"
    );
    assert_eq!(
        session.snapshot().calls.len(),
        1,
        "retransmissions made more than one call"
    );
    let rejected = session.reject(call).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cause(&rejected.event.event), Cause::Rejected);
    let answers = responses(&socket, Duration::from_millis(500)).await;
    assert!(
        answers.iter().any(|r| r.starts_with("SIP/2.0 603")),
        "{answers:?}"
    );

    assert!(connector.is_registered());
    assert!(session.snapshot().calls.is_empty());
    assert_eq!(session.stats().rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_from_a_sipp_far_end_fail_the_call_with_their_cause() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let run = RunDir::new("errors");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;
    for (status, expected) in [
        (486, Cause::Busy),
        (503, Cause::Congestion),
        (404, Cause::InvalidNumber),
        (603, Cause::Rejected),
    ] {
        let port = support::free_port();
        // sipp checks status codes when it loads a scenario, so the code is written in.
        let template = std::fs::read_to_string(support::scenario("uas_error.xml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let scenario = run.0.join(format!("uas_{status}.xml"));
        std::fs::write(&scenario, template.replace("[status]", &status.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        let args: Vec<String> = [
            "-sf",
            &scenario.display().to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-timeout",
            "20s",
            "-nostdin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let dir = run.0.clone();
        let far =
            tokio::spawn(async move { support::sipp(&args, &dir, Duration::from_secs(25)).await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let to = Dialable::new(format!("sip:x@127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
        let call = session
            .make_call(to)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .call()
            .cloned();
        let failed = expect(&mut events, "call_failed").await;
        assert_eq!(failed.call(), call.as_ref());
        assert_eq!(cause(&failed.event), expected, "{status}");
        let ended = expect(&mut events, "call_ended").await;
        assert_eq!(cause(&ended.event), expected, "{status}");
        let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(ok, "sipp {status}: {out}");
    }
    assert!(session.snapshot().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_end_that_vanishes_mid_call_does_not_leave_the_call_on_the_panel() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let run = RunDir::new("vanish");
    let kamailio = Kamailio::start(&run, &["WITH_AUTH"]);
    let (session, mut events, _) = support::session(support::config(&kamailio, "1001")).await;
    let port = support::free_port();
    let args: Vec<String> = [
        "-sf",
        &support::scenario("uac_vanishes.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-s",
        "1001",
        &format!("127.0.0.1:{}", kamailio.port),
        "-m",
        "1",
        "-timeout",
        "20s",
        "-nostdin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = run.0.clone();
    let far =
        tokio::spawn(async move { support::sipp(&args, &dir, Duration::from_secs(25)).await });
    let offered = expect(&mut events, "call_offered").await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = far.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(ok, "{out}");
    // sipp is gone: the BYE goes nowhere, and the call still ends here.
    let begun = std::time::Instant::now();
    let ended = session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ended.call(), Some(&call));
    assert_eq!(cause(&ended.event.event), Cause::Normal);
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );
    assert!(session.snapshot().calls.is_empty());
}
