//! Honest capabilities: what the desk offers is what this Asterisk carries out. Queue
//! membership written in queues.conf cannot be logged in or out; a context the config
//! names but the dialplan lacks withholds the commands that need it.

use std::time::Duration;

use opencti_core::{
    AgentState, CommandKind, DesktopInterface, DesktopInterfaceExt, Dialable, ErrorKind, Event,
    ReasonCode,
};

use super::pbx::{desk, local_agent_config, Pbx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_is_never_offered_login_or_logout_and_can_pause() {
    let Some(pbx) = Pbx::take().await else { return };
    // queues.conf: member => Local/1001@agents in queue support.
    let desk = desk(
        "agent-1001",
        "Local/1001@agents",
        local_agent_config(&["support"]),
    )
    .await;
    let caps = desk.session.capabilities();
    assert!(!caps.supports(CommandKind::Login) && !caps.supports(CommandKind::Logout));
    assert!(caps.supports(CommandKind::SetAgentState));
    assert_eq!(desk.session.snapshot().agent_state, AgentState::Ready);
    let allowed = desk.session.allowed_commands(None);
    assert!(!allowed.contains(CommandKind::Logout), "{allowed}");
    assert!(allowed.contains(CommandKind::SetAgentState), "{allowed}");
    let refused = desk
        .session
        .logout(None)
        .await
        .err()
        .unwrap_or_else(|| panic!("logout of a static member must be refused"));
    assert_eq!(refused.kind(), ErrorKind::Unsupported);
    assert!(
        refused.message().contains("static member of queue support")
            && refused.message().contains("ready and not ready still work"),
        "the refusal says why and what to do: {refused}"
    );
    let lunch = ReasonCode::new("lunch").unwrap_or_else(|e| panic!("{e}"));
    desk.session
        .not_ready(Some(lunch))
        .await
        .unwrap_or_else(|e| panic!("not ready: {e}"));
    let members = pbx.queue_members("support").await;
    assert!(members
        .iter()
        .any(|m| m.interface == "Local/1001@agents" && m.paused));
    desk.session
        .ready()
        .await
        .unwrap_or_else(|e| panic!("ready: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_missing_from_the_dialplan_withhold_what_needs_them() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut config = local_agent_config(&[]);
    config.conference_context = Some("no-such-conference".into());
    if let Some(hold) = config.hold.as_mut() {
        hold.music_exten = "no-such-music".into();
    }
    let mut desk = desk("agent-1003", "Local/1003@agents", config).await;
    let caps = desk.session.capabilities();
    for kind in [
        CommandKind::Hold,
        CommandKind::Retrieve,
        CommandKind::CompleteConference,
        CommandKind::DropParty,
    ] {
        assert!(!caps.supports(kind), "{kind} should be withheld");
    }
    assert!(caps.supports(CommandKind::MakeCall) && caps.supports(CommandKind::Consult));
    let call = desk.call_out("2000").await;
    let allowed = desk.session.allowed_commands(Some(&call));
    assert!(!allowed.contains(CommandKind::Hold), "{allowed}");
    let refused = desk
        .session
        .hold(call.clone())
        .await
        .err()
        .unwrap_or_else(|| panic!("hold into a missing extension must be refused"));
    assert_eq!(refused.kind(), ErrorKind::Unsupported);
    assert!(
        refused.message().contains("\"no-such-music\""),
        "the refusal names what is missing: {refused}"
    );
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;

    let mut config = local_agent_config(&[]);
    config.outbound_context = "no-such-outbound".into();
    let desk = super::pbx::desk("agent-1003", "Local/1003@agents", config).await;
    let refused = desk
        .session
        .make_call(Dialable::new("2000").unwrap_or_else(|e| panic!("{e}")))
        .await
        .err()
        .unwrap_or_else(|| panic!("make_call into a missing context must be refused"));
    assert_eq!(refused.kind(), ErrorKind::Unsupported);
    assert!(refused.message().contains("no-such-outbound"), "{refused}");
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_added_later_gives_the_command_back_without_a_reconnect() {
    let Some(pbx) = Pbx::take().await else { return };
    let context = "opencti-added-later";
    let mut config = local_agent_config(&[]);
    config.outbound_context = context.into();
    config.timeouts.dialplan_recheck = Duration::from_millis(300);
    let mut desk = desk("agent-1003", "Local/1003@agents", config).await;
    assert!(!desk.session.capabilities().supports(CommandKind::MakeCall));
    // What an administrator's `dialplan reload` does, or what an Asterisk still
    // starting does once it has loaded extensions.conf.
    pbx.cli(&format!(
        "dialplan add extension _X.,1,Goto(from-agents,${{EXTEN}},1) into {context}"
    ));
    let resynced = desk.expect("resynced", None).await;
    let Event::Resynced { changes } = &resynced.event else {
        unreachable!("expect returns the event named")
    };
    assert!(changes.capabilities_changed, "{changes:?}");
    assert!(desk.session.capabilities().supports(CommandKind::MakeCall));
    assert!(
        !desk
            .seen
            .iter()
            .any(|e| matches!(e.event.name(), "link_up" | "link_down")),
        "the link never dropped: {}",
        desk.names()
    );
    let call = desk.call_out("2000").await;
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    pbx.cli(&format!("dialplan remove context {context}"));
    // Removed again: withheld again, on the next re-check.
    desk.expect("resynced", None).await;
    assert!(!desk.session.capabilities().supports(CommandKind::MakeCall));
    desk.finish().await;
    pbx.clear().await;
}
