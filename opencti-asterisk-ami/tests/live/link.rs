//! Many agents on one AMI connection: a `SharedLink` over one `AmiLink` on the real PBX,
//! and the conformance kit's link cases on it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opencti_asterisk_ami::{AmiLink, Backoff};
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Dialable, SharedLink,
};
use opencti_sim::conformance::{Kit, LinkBackend, LinkFixture, LinkStimulus};

use super::pbx::{cli, local_agent_config, Panel, Pbx, Proxy};

/// How many AMI sessions Asterisk has for the user `opencti`.
fn opencti_sessions() -> usize {
    cli("manager show connected")
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("opencti"))
        .count()
}

async fn desk_on(link: &SharedLink, agent: &str, device: &str) -> Panel {
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
    Panel::new(session, device)
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

/// The members of `queue`, by interface, from the CLI's `queue show`.
fn members_of(queue: &str) -> Vec<String> {
    cli(&format!("queue show {queue}"))
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.find("(Local/")
                .and_then(|i| l.get(i + 1..))
                .and_then(|rest| rest.split([' ', ')']).next())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_one_link_log_into_their_own_queues() {
    let Some(pbx) = Pbx::take().await else { return };
    let link = AmiLink::new(local_agent_config(&[])).unwrap_or_else(|e| panic!("{e}"));
    link.set_queues(
        &DeviceId::new("Local/1003@agents").unwrap_or_else(|e| panic!("{e}")),
        vec!["sales".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    link.set_queues(
        &DeviceId::new("Local/1004@agents").unwrap_or_else(|e| panic!("{e}")),
        vec!["support".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let link = SharedLink::start(Arc::new(link))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let carol = desk_on(&link, "carol", "Local/1003@agents").await;
    let dave = desk_on(&link, "dave", "Local/1004@agents").await;
    for desk in [&carol, &dave] {
        desk.session
            .login()
            .await
            .unwrap_or_else(|e| panic!("login: {e}"));
    }
    let (sales, support) = (members_of("sales"), members_of("support"));
    assert!(sales.iter().any(|m| m == "Local/1003@agents"), "{sales:?}");
    assert!(!sales.iter().any(|m| m == "Local/1004@agents"), "{sales:?}");
    assert!(
        support.iter().any(|m| m == "Local/1004@agents"),
        "{support:?}"
    );
    assert!(
        !support.iter().any(|m| m == "Local/1003@agents"),
        "{support:?}"
    );
    for desk in [&carol, &dave] {
        desk.session
            .logout(None)
            .await
            .unwrap_or_else(|e| panic!("logout: {e}"));
    }
    assert!(!members_of("sales").iter().any(|m| m == "Local/1003@agents"));
    for desk in [carol, dave] {
        desk.finish().await;
    }
    let _ = link.stop().await;
    pbx.clear().await;
}

/// The far end, and the link cut through a proxy.
struct LinkLiveStimulus {
    proxy: Proxy,
}

#[async_trait]
impl LinkStimulus for LinkLiveStimulus {
    fn number_of(&self, device: &DeviceId) -> Dialable {
        // Local/1004@agents is reached by dialling 1004 from from-agents.
        let exten = device
            .as_str()
            .trim_start_matches("Local/")
            .split('@')
            .next()
            .unwrap_or_default();
        Dialable::new(exten).unwrap_or_else(|e| panic!("{e}"))
    }

    fn answering_number(&self) -> Dialable {
        Dialable::new("2000").unwrap_or_else(|e| panic!("{e}"))
    }

    async fn drop_link(&self) -> opencti_core::Result<()> {
        self.proxy.hold_reconnects(true);
        self.proxy.cut();
        Ok(())
    }

    async fn restore_link(&self) -> opencti_core::Result<()> {
        self.proxy.hold_reconnects(false);
        Ok(())
    }
}

struct LinkLiveBackend {
    pbx: Arc<Pbx>,
}

#[async_trait]
impl LinkBackend for LinkLiveBackend {
    async fn link_fixture(&self) -> opencti_core::Result<LinkFixture> {
        self.pbx.clear().await;
        let proxy = Proxy::start().await;
        let mut config = local_agent_config(&["sales"]);
        config.address = proxy.address.clone();
        config.backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
            ..Backoff::default()
        };
        let link = SharedLink::start(Arc::new(AmiLink::new(config)?)).await?;
        Ok(LinkFixture {
            link,
            // The cases act on 1003 and 1004; 1001 and 1002 share the link and must
            // see none of it.
            lines: [1003, 1004, 1001, 1002]
                .into_iter()
                .map(|n| {
                    Ok((
                        AgentId::new(format!("agent-{n}"))?,
                        DeviceId::new(format!("Local/{n}@agents"))?,
                    ))
                })
                .collect::<opencti_core::Result<_>>()?,
            stimulus: Arc::new(LinkLiveStimulus { proxy }),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_cases_pass_with_four_agents_on_one_ami_connection() {
    let Some(pbx) = Pbx::take().await else { return };
    let pbx = Arc::new(pbx);
    let report = Kit::new()
        .wait(super::pbx::WAIT)
        .run_links(&LinkLiveBackend { pbx: pbx.clone() })
        .await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.passed(), report.cases.len(), "{report}");
    pbx.clear().await;
}
