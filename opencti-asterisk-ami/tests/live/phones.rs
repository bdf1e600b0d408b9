//! Rows that need a real SIP desk phone: baresip registered to Asterisk as a PJSIP
//! endpoint, answering by itself or by hand, and using its own hold and transfer keys.

use opencti_asterisk_ami::{AmiConfig, AnswerMode};
use opencti_core::{CallState, DesktopInterface, DesktopInterfaceExt, Event};

use super::pbx::{config, desk, local_agent_config, Panel, Pbx};
use super::phone::{baresip_installed, Answer, Phone};

/// The connector's config for an agent whose device is a PJSIP phone.
fn phone_config(answer: Answer, queues: &[&str]) -> AmiConfig {
    let mut config = config();
    config.queues = queues.iter().map(|q| q.to_string()).collect();
    config.outbound_context = "pjsip-agents".into();
    config.answer = match answer {
        Answer::Auto | Answer::AfterRing(_) => AnswerMode::PhoneAnswersItself,
        Answer::Manual => AnswerMode::ByHand,
    };
    config
}

/// Baresip registered as endpoint `ext` and a desk for agent `agent-<ext>` at it.
async fn phone_and_desk(ext: &str, answer: Answer) -> (Phone, Panel) {
    let phone = Phone::start(ext, answer).await;
    let desk = desk(
        &format!("agent-{ext}"),
        &phone.device(),
        phone_config(answer, &[]),
    )
    .await;
    (phone, desk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_on_an_auto_answering_phone() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let (mut phone, mut desk) =
        phone_and_desk("1001", Answer::AfterRing(std::time::Duration::from_secs(1))).await;
    pbx.customer_calls("pjsip-customers", "1001", "+441632960121")
        .await;
    let call = desk
        .expect("call_offered", None)
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    phone.expect("CALL_INCOMING").await;
    // The phone rings for a second, then answers by itself: the desk's answer is
    // confirmed by that.
    let answered = desk
        .session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("answer: {e}"));
    assert_eq!(answered.event.event.name(), "call_connected");
    phone.expect("CALL_ESTABLISHED").await;
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    phone.expect("CALL_CLOSED").await;
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hangs_up_while_the_phone_rings() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let (mut phone, mut desk) = phone_and_desk("1002", Answer::Manual).await;
    pbx.customer_calls("pjsip-customers", "1002", "+441632960122")
        .await;
    let call = desk
        .expect("call_offered", None)
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    phone.expect("CALL_INCOMING").await;
    assert!(pbx.far_end_hangs_up("PJSIP/1002", call.as_str()).await > 0);
    desk.expect("call_ended", Some(&call)).await;
    assert!(
        !desk.seen.iter().any(|e| e.event.name() == "call_connected"),
        "the call was never connected: {}",
        desk.names()
    );
    assert!(desk.session.snapshot().calls.is_empty());
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_call_rings_out_at_one_agent_and_moves_to_another() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    // Queue rollover rings one member at a time, in the order they logged in, 4 s each.
    let mut phone = Phone::start("1002", Answer::Manual).await;
    let mut first = desk(
        "agent-1002",
        &phone.device(),
        phone_config(Answer::Manual, &["rollover"]),
    )
    .await;
    let mut second = desk(
        "agent-1004",
        "Local/1004@agents",
        local_agent_config(&["rollover"]),
    )
    .await;
    for desk in [&first, &second] {
        desk.session
            .login()
            .await
            .unwrap_or_else(|e| panic!("login: {e}"));
        desk.session
            .ready()
            .await
            .unwrap_or_else(|e| panic!("ready: {e}"));
    }
    pbx.customer_calls("from-customers", "3002", "+441632960123")
        .await;
    let offered = first.expect("call_offered", None).await;
    let rang_out = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    phone.expect("CALL_INCOMING").await;
    // Nobody answers the phone: after 4 s the queue takes the call back.
    let ended = first.expect("call_ended", Some(&rang_out)).await;
    assert!(
        !matches!(
            ended.event,
            Event::CallEnded {
                cause: opencti_core::Cause::Normal,
                ..
            }
        ),
        "{:?}",
        ended.event
    );
    let moved = second.expect("call_offered", None).await;
    match &moved.event {
        Event::CallOffered { queue, .. } => {
            assert_eq!(queue.as_ref().map(|q| q.as_str()), Some("rollover"))
        }
        other => panic!("{other:?}"),
    }
    let call = moved.call().cloned().unwrap_or_else(|| panic!("no call"));
    second.expect("call_connected", Some(&call)).await;
    assert!(first.session.snapshot().calls.is_empty());
    second
        .session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    for desk in [&first, &second] {
        desk.session
            .logout(None)
            .await
            .unwrap_or_else(|e| panic!("logout: {e}"));
    }
    first.finish().await;
    second.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_resume_and_transfer_pressed_on_the_phone_show_on_the_desk() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let (mut phone, mut desk) = phone_and_desk("1001", Answer::Auto).await;
    let call = desk.call_out("2000").await;
    phone.expect("CALL_ESTABLISHED").await;

    phone.press("hold", None).await;
    desk.expect("call_held", Some(&call)).await;
    assert_eq!(
        desk.session.snapshot().call(&call).map(|c| c.state),
        Some(CallState::Held)
    );
    phone.press("resume", None).await;
    desk.expect("call_retrieved", Some(&call)).await;

    phone
        .press("transfer", Some("sip:2005@127.0.0.1:5080"))
        .await;
    desk.expect("call_transferred", Some(&call)).await;
    desk.until_idle().await;
    desk.finish().await;
    pbx.clear().await;
}
