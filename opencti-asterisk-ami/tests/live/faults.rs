//! Link faults on the real PBX. Each ends with `link_down`, `link_up` and `resynced`,
//! the calls Asterisk still has on the desk with their ids, no phantom call, and every
//! command sent during the outage answered `link_down`.

use std::time::Duration;

use opencti_asterisk_ami::{AmiConfig, Backoff};
use opencti_core::{CallId, CommandKind, DesktopInterface, DesktopInterfaceExt, ErrorKind, Event};

use super::pbx::{
    cli, desk, kit, local_agent_config, prefix, wait_fully_booted, Panel, Pbx, Proxy, AMI_ADDRESS,
};

/// A Local agent's config that reconnects quickly, through `address`.
fn quick(address: &str) -> AmiConfig {
    let mut config = local_agent_config(&[]);
    config.address = address.to_owned();
    config.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        ..Backoff::default()
    };
    config.timeouts.dialplan_recheck = Duration::from_secs(1);
    config
}

/// During the outage: a command is answered `link_down` at once.
async fn refused_while_down(desk: &Panel, call: &CallId) {
    let refused = desk
        .session
        .hold(call.clone())
        .await
        .err()
        .unwrap_or_else(|| panic!("hold during the outage must be refused"));
    assert_eq!(refused.kind(), ErrorKind::LinkDown, "{refused}");
}

/// After the link is back: `link_up` then `resynced`, and the panel shows exactly the
/// calls Asterisk has for the device.
async fn back_and_right(pbx: &Pbx, desk: &mut Panel, expect_calls: &[&CallId]) {
    desk.expect("link_up", None).await;
    let resynced = desk.expect("resynced", None).await;
    assert!(matches!(resynced.event, Event::Resynced { .. }));
    let on_panel = super::pbx::calls(&desk.session);
    let wanted: Vec<CallId> = expect_calls.iter().map(|c| (*c).clone()).collect();
    assert_eq!(on_panel, wanted, "calls on the panel after the resync");
    let agent_channels = pbx
        .channels()
        .await
        .into_iter()
        .filter(|c| c.name.starts_with("Local/1003@agents") && c.name.ends_with(";1"))
        .count();
    assert_eq!(agent_channels, wanted.len(), "the PBX and the panel agree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ami_connection_killed_during_a_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let proxy = Proxy::start().await;
    let mut desk = desk("agent-1003", "Local/1003@agents", quick(&proxy.address)).await;
    let call = desk.call_out("2000").await;
    proxy.cut();
    desk.expect("link_down", None).await;
    refused_while_down(&desk, &call).await;
    back_and_right(&pbx, &mut desk, &[&call]).await;
    // The call goes on as before.
    desk.session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold after the reconnect: {e}"));
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_ended_while_the_link_was_down_leaves_no_phantom() {
    let Some(pbx) = Pbx::take().await else { return };
    let proxy = Proxy::start().await;
    let mut desk = desk("agent-1003", "Local/1003@agents", quick(&proxy.address)).await;
    let call = desk.call_out("2000").await;
    proxy.hold_reconnects(true);
    proxy.cut();
    desk.expect("link_down", None).await;
    // The customer hangs up while the desk cannot see it.
    pbx.far_end_hangs_up("Local/1003@agents", call.as_str())
        .await;
    pbx.clear().await;
    proxy.hold_reconnects(false);
    desk.expect("link_up", None).await;
    let ended = desk.expect("call_ended", Some(&call)).await;
    assert!(
        matches!(
            ended.event,
            Event::CallEnded {
                cause: opencti_core::Cause::Vanished,
                ..
            }
        ),
        "{:?}",
        ended.event
    );
    desk.expect("resynced", None).await;
    assert!(desk.session.snapshot().calls.is_empty());
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_reload_during_a_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", "Local/1003@agents", quick(AMI_ADDRESS)).await;
    let call = desk.call_out("2000").await;
    cli("manager reload");
    // Asterisk keeps logged-in sessions across a reload of manager.conf: the link
    // stays up and the call with it. Prove the link still works end to end.
    desk.session
        .hold(call.clone())
        .await
        .unwrap_or_else(|e| panic!("hold after manager reload: {e}"));
    desk.session
        .retrieve(call.clone())
        .await
        .unwrap_or_else(|e| panic!("retrieve after manager reload: {e}"));
    desk.expect("call_retrieved", Some(&call)).await;
    assert!(
        !desk.seen.iter().any(|e| e.event.name() == "link_down"),
        "{}",
        desk.names()
    );
    assert_eq!(super::pbx::calls(&desk.session), vec![call.clone()]);
    desk.session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    pbx.clear().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_restart_now_during_a_call() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", "Local/1003@agents", quick(AMI_ADDRESS)).await;
    let call = desk.call_out("2000").await;
    cli("core restart now");
    desk.expect("link_down", None).await;
    refused_while_down(&desk, &call).await;
    desk.expect("link_up", None).await;
    desk.expect("resynced", None).await;
    // A restart hangs up every channel: the call left the panel visibly, either as
    // Asterisk reported it while shutting down or, missed, at the resync (vanished).
    assert_ended_once(&desk, &call);
    assert!(desk.session.snapshot().calls.is_empty());
    wait_fully_booted().await;
    // And the desk works again.
    let again = desk.call_out("2000").await;
    desk.session
        .hangup(again)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    drop(pbx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asterisk_stopped_for_30_seconds_then_started() {
    let Some(pbx) = Pbx::take().await else { return };
    let mut desk = desk("agent-1003", "Local/1003@agents", quick(AMI_ADDRESS)).await;
    let call = desk.call_out("2000").await;
    run_script("stop-asterisk.sh");
    desk.expect("link_down", None).await;
    let stopped = tokio::time::Instant::now();
    while stopped.elapsed() < Duration::from_secs(30) {
        refused_while_down(&desk, &call).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    run_script("start-asterisk.sh");
    desk.expect("link_up", None).await;
    desk.expect("resynced", None).await;
    assert_ended_once(&desk, &call);
    assert!(desk.session.snapshot().calls.is_empty());
    // The link may have logged in before Asterisk loaded its dialplan, and so withheld
    // make_call; the dialplan's re-check gives it back, as a panel would see.
    if !desk.session.capabilities().supports(CommandKind::MakeCall) {
        desk.expect("resynced", None).await;
        assert!(desk.session.capabilities().supports(CommandKind::MakeCall));
    }
    let again = desk.call_out("2000").await;
    desk.session
        .hangup(again)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desk.finish().await;
    drop(pbx);
}

/// The desk saw `call` end exactly once.
fn assert_ended_once(desk: &Panel, call: &CallId) {
    let ended = desk
        .seen
        .iter()
        .filter(|e| e.event.name() == "call_ended" && e.call() == Some(call))
        .count();
    assert_eq!(ended, 1, "call_ended for {call}: {}", desk.names());
}

/// Runs one of the kit's scripts on the test build.
fn run_script(script: &str) {
    let mut command = std::process::Command::new(kit().join(script));
    command.arg(prefix());
    if let Some(run) = std::env::var_os("OPENCTI_ASTERISK_RUNDIR") {
        command.arg(run);
    }
    let out = command.output().unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
