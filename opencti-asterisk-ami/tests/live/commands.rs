//! Every row of the README's mapping table on the real Asterisk, with a Local-channel
//! agent (`Local/100X@agents`: the phone answers a second after it rings) unless a row
//! needs a SIP desk phone.

use opencti_core::{
    AgentState, CallData, CallState, Cause, DesktopInterface, DesktopInterfaceExt, Dialable,
    DtmfDigits, Event, ReasonCode,
};

use super::pbx::{desk, local_agent_config, Pbx};

/// A dynamic member of `sales` (Local/1003 is in no queue file).
const AGENT: &str = "Local/1003@agents";

fn dial(number: &str) -> Dialable {
    Dialable::new(number).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_ready_not_ready_with_a_reason_and_logout() {
    let Some(pbx) = Pbx::take().await else { return };
    let desk = desk(
        "agent-1003",
        AGENT,
        local_agent_config(&["support", "sales"]),
    )
    .await;
    assert_eq!(desk.session.snapshot().agent_state, AgentState::LoggedOut);

    desk.session
        .login()
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    for queue in ["support", "sales"] {
        let members = pbx.queue_members(queue).await;
        let me = members
            .iter()
            .find(|m| m.interface == AGENT)
            .unwrap_or_else(|| {
                panic!("{AGENT} is not a member of {queue} after login: {members:?}")
            });
        assert_eq!(me.membership, "dynamic");
        assert!(me.paused, "login leaves the agent not ready (paused)");
    }

    desk.session
        .ready()
        .await
        .unwrap_or_else(|e| panic!("ready: {e}"));
    assert_eq!(desk.session.snapshot().agent_state, AgentState::Ready);
    assert!(pbx.queue_members("sales").await.iter().all(|m| !m.paused));

    let lunch = ReasonCode::new("lunch").unwrap_or_else(|e| panic!("{e}"));
    desk.session
        .not_ready(Some(lunch.clone()))
        .await
        .unwrap_or_else(|e| panic!("not ready: {e}"));
    assert_eq!(
        desk.session.snapshot().agent_state,
        AgentState::NotReady {
            reason: Some(lunch)
        }
    );
    let status = pbx.list("QueueStatus", &[("Queue", "sales")]).await;
    let member = status
        .iter()
        .find(|m| m.event() == Some("QueueMember"))
        .unwrap_or_else(|| panic!("no member in sales"));
    assert_eq!(member.get("Paused"), Some("1"));
    assert_eq!(member.get("PausedReason"), Some("lunch"));

    desk.session
        .logout(None)
        .await
        .unwrap_or_else(|e| panic!("logout: {e}"));
    assert_eq!(desk.session.snapshot().agent_state, AgentState::LoggedOut);
    for queue in ["support", "sales"] {
        assert!(pbx
            .queue_members(queue)
            .await
            .iter()
            .all(|m| m.interface != AGENT));
    }
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_then_hang_up() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let made = desk
        .session
        .make_call(dial("2000"))
        .await
        .unwrap_or_else(|e| panic!("make_call: {e}"));
    let call = made.call().cloned().unwrap_or_else(|| panic!("no call"));
    desk.expect("call_connected", Some(&call)).await;
    let channels = pbx.channels().await;
    assert!(
        channels
            .iter()
            .any(|c| c.name.starts_with("Local/2000@customers")),
        "the customer's phone should be up: {channels:?}"
    );
    desk.session
        .hangup(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    assert!(desk.session.snapshot().calls.is_empty());
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_is_offered_answered_and_ended_by_the_far_end() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    pbx.customer_calls("from-customers", "1003", "+441632960111")
        .await;
    let offered = desk.expect("call_offered", None).await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    match &offered.event {
        Event::CallOffered { from, queue, .. } => {
            assert_eq!(from.as_ref().map(|a| a.as_str()), Some("+441632960111"));
            assert_eq!(queue, &None, "a direct call comes from no queue");
        }
        other => panic!("{other:?}"),
    }
    desk.session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("answer: {e}"));
    assert_eq!(
        desk.session.snapshot().call(&call).map(|c| c.state),
        Some(CallState::Connected)
    );
    pbx.far_end_hangs_up(AGENT, call.as_str()).await;
    let ended = desk.expect("call_ended", Some(&call)).await;
    assert!(
        matches!(
            ended.event,
            Event::CallEnded {
                cause: Cause::Normal,
                ..
            }
        ),
        "{:?}",
        ended.event
    );
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_retrieve() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let call = desk.call_out("2000").await;
    desk.session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold: {e}"));
    pbx.channels_once("the customer should hear music on hold", |channels| {
        channels.iter().any(|c| c.application == "MusicOnHold")
    })
    .await;
    desk.session
        .retrieve(call.clone())
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_and_call_data() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let data = CallData::from_pairs([("ticket", "T-42")]).unwrap_or_else(|e| panic!("{e}"));
    let call = desk
        .session
        .execute(opencti_core::Command::MakeCall {
            to: dial("2000"),
            data,
        })
        .await
        .unwrap_or_else(|e| panic!("make_call: {e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    desk.expect("call_connected", Some(&call)).await;
    let mine = pbx
        .channels()
        .await
        .into_iter()
        .find(|c| c.name.starts_with("Local/1003@agents") && c.name.ends_with(";1"))
        .unwrap_or_else(|| panic!("no agent channel"));
    let got = pbx
        .send(
            "Getvar",
            &[("Channel", &mine.name), ("Variable", "OPENCTI_ticket")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got.get("Value"),
        Some("T-42"),
        "make_call's data is on the channel"
    );

    let more = CallData::from_pairs([("case", "C-7")]).unwrap_or_else(|e| panic!("{e}"));
    desk.session
        .execute(opencti_core::Command::SetCallData {
            call: call.clone(),
            data: more,
        })
        .await
        .unwrap_or_else(|e| panic!("set_call_data: {e}"));
    let got = pbx
        .send(
            "Getvar",
            &[("Channel", &mine.name), ("Variable", "OPENCTI_case")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.get("Value"), Some("C-7"));

    let mut raw = pbx.raw_events();
    desk.session
        .send_dtmf(
            call.clone(),
            DtmfDigits::new("12#").unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("send_dtmf: {e}"));
    // The customer's phone receives every digit, in order.
    let mut digits = String::new();
    let deadline = tokio::time::Instant::now() + super::pbx::WAIT;
    while digits.len() < 3 {
        let event = tokio::time::timeout_at(deadline, raw.recv())
            .await
            .unwrap_or_else(|_| panic!("DTMF seen so far: {digits:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        if event.event() == Some("DTMFEnd")
            && event.get("Direction") == Some("Received")
            && event
                .get("Channel")
                .is_some_and(|c| c.starts_with("Local/2000@customers"))
        {
            digits.push_str(event.get("Digit").unwrap_or_default());
        }
    }
    assert_eq!(digits, "12#");
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

/// A consultation from `primary` to `number`, as the desk's `consult` confirms it.
async fn consulting(
    desk: &super::pbx::Panel,
    primary: &opencti_core::CallId,
    number: &str,
) -> opencti_core::CallId {
    desk.session
        .consult(primary.clone(), dial(number))
        .await
        .unwrap_or_else(|e| panic!("consult: {e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no consult call"))
}

/// Whether two channels whose names start with `a` and `b` share a bridge.
async fn bridged(pbx: &Pbx, a: &str, b: &str) -> bool {
    let channels = pbx.list("CoreShowChannels", &[]).await;
    let bridge_of = |prefix: &str| {
        channels
            .iter()
            .filter(|c| c.get("Channel").is_some_and(|n| n.starts_with(prefix)))
            .filter_map(|c| {
                c.get("BridgeId")
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
    };
    let (x, y) = (bridge_of(a), bridge_of(b));
    x.iter().any(|id| y.contains(id))
}

/// Waits (at most [`WAIT`](super::pbx::WAIT)) until `check` holds.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + super::pbx::WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_a_ringing_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    pbx.customer_calls("from-customers", "1003", "+441632960112")
        .await;
    let call = desk
        .expect("call_offered", None)
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    // The Local agent's phone answers after a second: reject before it does.
    desk.session
        .reject(call.clone())
        .await
        .unwrap_or_else(|e| panic!("reject: {e}"));
    assert!(desk.session.snapshot().calls.is_empty());
    assert!(
        !desk.seen.iter().any(|e| e.event.name() == "call_connected"),
        "{}",
        desk.names()
    );
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_of_a_connected_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let call = desk.call_out("2000").await;
    desk.session
        .blind_transfer(call.clone(), dial("2001"))
        .await
        .unwrap_or_else(|e| panic!("blind_transfer: {e}"));
    desk.until_idle().await;
    eventually("the customer is bridged to 2001", || {
        bridged(&pbx, "Local/2000@customers", "Local/2001@")
    })
    .await;
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_of_a_held_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let call = desk.call_out("2000").await;
    desk.session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold: {e}"));
    desk.session
        .blind_transfer(call.clone(), dial("2001"))
        .await
        .unwrap_or_else(|e| panic!("blind_transfer of a held call: {e}"));
    desk.until_idle().await;
    eventually("the customer is bridged to 2001", || {
        bridged(&pbx, "Local/2000@customers", "Local/2001@")
    })
    .await;
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_then_complete_the_transfer() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let primary = desk.call_out("2000").await;
    let consult = consulting(&desk, &primary, "2001").await;
    let snapshot = desk.session.snapshot();
    assert_eq!(
        snapshot.call(&primary).map(|c| c.state),
        Some(CallState::Held)
    );
    assert_eq!(
        snapshot.call(&consult).and_then(|c| c.consult_of.clone()),
        Some(primary.clone())
    );
    desk.expect("call_connected", Some(&consult)).await;
    desk.session
        .complete_transfer(consult.clone())
        .await
        .unwrap_or_else(|e| panic!("complete_transfer: {e}"));
    desk.until_idle().await;
    eventually("the customer is bridged to 2001", || {
        bridged(&pbx, "Local/2000@customers", "Local/2001@")
    })
    .await;
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_then_conference_then_drop_a_party() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let primary = desk.call_out("2000").await;
    let consult = consulting(&desk, &primary, "2001").await;
    desk.expect("call_connected", Some(&consult)).await;
    let conference = desk
        .session
        .complete_conference(consult.clone())
        .await
        .unwrap_or_else(|e| panic!("complete_conference: {e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no conference call"));
    // Both customers end up in the room with the agent, and the panel lists exactly
    // the parties that are in the room (by the PBX's own list of channels).
    let deadline = tokio::time::Instant::now() + super::pbx::WAIT;
    let parties = loop {
        let parties = desk
            .session
            .snapshot()
            .call(&conference)
            .map(|c| c.parties.clone())
            .unwrap_or_default();
        let in_room: Vec<String> = pbx
            .channels()
            .await
            .into_iter()
            .filter(|c| c.application == "ConfBridge" && !c.name.starts_with("Local/1003@agents"))
            .map(|c| c.uniqueid)
            .collect();
        if parties.len() >= 2
            && parties
                .iter()
                .all(|p| in_room.iter().any(|u| u == p.id.as_str()))
        {
            break parties;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the conference should list the customers in the room {in_room:?}, lists {parties:?}; saw {}",
            desk.names()
        );
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            desk.expect("party_joined", Some(&conference)),
        )
        .await;
    };
    // Drop the first customer: its channel stays the same for the whole call, while the
    // consultation's Local channel may be optimised away (replaced in the room by the
    // channel it dialled) at any moment.
    let first_customer = pbx
        .channels()
        .await
        .into_iter()
        .find(|c| c.application == "ConfBridge" && c.name.starts_with("Local/2000@customers"))
        .map(|c| c.uniqueid)
        .unwrap_or_else(|| panic!("the first customer is not in the room"));
    let dropped = parties
        .iter()
        .find(|p| p.id.as_str() == first_customer)
        .map(|p| p.id.clone())
        .unwrap_or_else(|| panic!("the panel does not list the first customer: {parties:?}"));
    desk.session
        .drop_party(conference.clone(), dropped.clone())
        .await
        .unwrap_or_else(|e| panic!("drop_party: {e}"));
    assert!(desk
        .session
        .snapshot()
        .call(&conference)
        .is_some_and(|c| c.parties.iter().all(|p| p.id != dropped)));
    desk.session
        .hangup(conference)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_call_is_offered_with_its_queue() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&["sales"])).await;
    desk.session
        .login()
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    desk.session
        .ready()
        .await
        .unwrap_or_else(|e| panic!("ready: {e}"));
    pbx.customer_calls("from-customers", "3001", "+441632960113")
        .await;
    let offered = desk.expect("call_offered", None).await;
    let call = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    match &offered.event {
        Event::CallOffered { queue, from, .. } => {
            assert_eq!(queue.as_ref().map(|q| q.as_str()), Some("sales"));
            assert_eq!(from.as_ref().map(|a| a.as_str()), Some("+441632960113"));
        }
        other => panic!("{other:?}"),
    }
    desk.session
        .answer(call.clone())
        .await
        .unwrap_or_else(|e| panic!("answer: {e}"));
    assert!(matches!(
        desk.session.snapshot().agent_state,
        AgentState::Busy { .. }
    ));
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    assert_eq!(desk.session.snapshot().agent_state, AgentState::Ready);
    desk.session
        .logout(None)
        .await
        .unwrap_or_else(|e| panic!("logout: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_two_calls_at_once() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", AGENT, local_agent_config(&[])).await;
    let first = desk.call_out("2000").await;
    pbx.customer_calls("from-customers", "1003", "+441632960114")
        .await;
    let second = desk
        .expect("call_offered", None)
        .await
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    assert_ne!(first, second);
    desk.expect("call_connected", Some(&second)).await;
    let calls = super::pbx::calls(&desk.session);
    assert!(
        calls.contains(&first) && calls.contains(&second),
        "{calls:?}"
    );
    desk.session
        .hangup(second)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    assert_eq!(super::pbx::calls(&desk.session), vec![first.clone()]);
    desk.session
        .hangup(first)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}
