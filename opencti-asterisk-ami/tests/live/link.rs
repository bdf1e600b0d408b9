//! Many agents on one AMI connection: a `SharedLink` over one `AmiLink` on the real PBX.

use std::sync::Arc;

use opencti_asterisk_ami::AmiLink;
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Dialable, SharedLink,
};

use super::pbx::{cli, local_agent_config, Desk, Pbx};

/// How many AMI sessions Asterisk has for the user `opencti`.
fn opencti_sessions() -> usize {
    cli("manager show connected")
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("opencti"))
        .count()
}

async fn desk_on(link: &SharedLink, agent: &str, device: &str) -> Desk {
    let session = link
        .session(
            AgentId::new(agent).unwrap_or_else(|e| panic!("{e}")),
            DeviceId::new(device).unwrap_or_else(|e| panic!("{e}")),
        )
        .command_timeout(super::pbx::WAIT)
        .start_timeout(super::pbx::WAIT)
        .start()
        .await
        .unwrap_or_else(|e| panic!("session for {device}: {e}"));
    Desk::new(session, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_agents_share_one_ami_session() {
    let Some(pbx) = Pbx::take().await else { return };
    let before = opencti_sessions();
    let link = SharedLink::start(Arc::new(
        AmiLink::new(local_agent_config(&["sales"])).unwrap_or_else(|e| panic!("{e}")),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut desks = Vec::new();
    for n in 1001..=1004 {
        desks.push(desk_on(&link, &format!("agent-{n}"), &format!("Local/{n}@agents")).await);
    }
    assert_eq!(
        opencti_sessions(),
        before + 1,
        "four agents, one AMI session: {}",
        cli("manager show connected")
    );
    // Agent 1003 calls agent 1004: both desks show the call.
    let (caller, callee) = (2, 3);
    let call = desks[caller]
        .session
        .make_call(Dialable::new("1004").unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("make_call: {e}"))
        .call()
        .cloned()
        .unwrap_or_else(|| panic!("no call"));
    desks[caller].expect("call_connected", Some(&call)).await;
    let offered = desks[callee].expect("call_offered", None).await;
    let theirs = offered.call().cloned().unwrap_or_else(|| panic!("no call"));
    desks[callee].expect("call_connected", Some(&theirs)).await;
    // The others saw nothing of it.
    for other in [0, 1] {
        assert!(desks[other].session.snapshot().calls.is_empty());
    }
    desks[caller]
        .session
        .hangup(call)
        .await
        .unwrap_or_else(|e| panic!("hangup: {e}"));
    desks[callee].until_idle().await;
    for desk in desks {
        desk.finish().await;
    }
    let _ = link.stop().await;
    pbx.clear().await;
}
