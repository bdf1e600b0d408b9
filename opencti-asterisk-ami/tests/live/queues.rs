//! Queue statistics on the real PBX: two agents at auto-answering PJSIP phones on one
//! `AmiLink` keeping a `QueueBoard` for queue `sales`; customers answered, one hanging
//! up while it waits, one the queue gives up on, the AMI connection cut while callers
//! wait. The board's figures are checked against Asterisk's own (`QueueStatus`,
//! `QueueSummary`), read before and after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use opencti_asterisk_ami::{AmiConfig, AmiLink, AnswerMode, Backoff};
use opencti_core::queue::{QueueBoard, QueueEnvelope, QueueEvent, QueueFigures, QueueStats};
use opencti_core::{
    AgentId, DesktopInterfaceExt, DeviceId, LinkState, QueueId, Session, SharedLink, Timestamp,
};

use super::pbx::{config, Pbx, Proxy, WAIT};
use super::phone::{baresip_installed, Answer, Phone};

const QUEUE: &str = "sales";

/// What Asterisk counts for the queue itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asterisk {
    /// `QueueParams`: answered calls whose talk ended.
    completed: u64,
    /// `QueueParams`: callers who hung up, and callers the queue gave up on.
    abandoned: u64,
    /// `QueueParams`: callers in the queue now.
    calls: u64,
    /// `QueueEntry`: their channels' `Uniqueid`s.
    entries: Vec<String>,
    /// `QueueSummary`: members logged in, members available, callers.
    logged_in: u64,
    available: u64,
    callers: u64,
}

async fn asterisk(pbx: &Pbx) -> Asterisk {
    let status = pbx.list("QueueStatus", &[("Queue", QUEUE)]).await;
    let params = status
        .iter()
        .find(|m| m.event() == Some("QueueParams"))
        .unwrap_or_else(|| panic!("no QueueParams for {QUEUE}"));
    let number = |m: &opencti_asterisk_ami::Message, key: &str| -> u64 {
        m.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {}", m.as_str()))
    };
    let summary = pbx.list("QueueSummary", &[("Queue", QUEUE)]).await;
    let summary = summary
        .iter()
        .find(|m| m.event() == Some("QueueSummary"))
        .unwrap_or_else(|| panic!("no QueueSummary for {QUEUE}"));
    Asterisk {
        completed: number(params, "Completed"),
        abandoned: number(params, "Abandoned"),
        calls: number(params, "Calls"),
        entries: status
            .iter()
            .filter(|m| m.event() == Some("QueueEntry"))
            .filter_map(|m| m.get("Uniqueid").map(str::to_owned))
            .collect(),
        logged_in: number(summary, "LoggedIn"),
        available: number(summary, "Available"),
        callers: number(summary, "Callers"),
    }
}

fn figures(board: &QueueBoard) -> Option<QueueFigures> {
    let queue = QueueId::new(QUEUE).unwrap_or_else(|e| panic!("{e}"));
    board
        .snapshot()
        .queues
        .into_iter()
        .find(|f| f.queue == queue)
}

/// Waits until the board's figures pass `check`.
async fn until(board: &QueueBoard, what: &str, check: impl Fn(&QueueFigures) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if figures(board).is_some_and(|f| check(&f)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board did not show {what} within {WAIT:?}: {:?}",
            figures(board)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Asterisk lists these callers in the queue, in any order.
async fn until_waiting_at_asterisk(pbx: &Pbx, callers: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut entries = asterisk(pbx).await.entries;
        entries.sort();
        let mut wanted: Vec<String> = callers.iter().map(|c| c.to_string()).collect();
        wanted.sort();
        if entries == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Asterisk lists {entries:?} in {QUEUE}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The connector's config for agents at PJSIP phones in `sales`, through `address`,
/// reconnecting quickly.
fn agents_config(address: &str) -> AmiConfig {
    let mut config = config();
    config.address = address.to_owned();
    config.queues = vec![QUEUE.into()];
    config.outbound_context = "pjsip-agents".into();
    config.answer = AnswerMode::PhoneAnswersItself;
    config.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        ..Backoff::default()
    };
    config
}

async fn agent_on(link: &SharedLink, agent: &str, device: &str) -> Session {
    link.session(
        AgentId::new(agent).unwrap_or_else(|e| panic!("{e}")),
        DeviceId::new(device).unwrap_or_else(|e| panic!("{e}")),
    )
    .command_timeout(WAIT)
    .start_timeout(WAIT)
    .start()
    .await
    .unwrap_or_else(|e| panic!("session for {device}: {e}"))
}

/// A caller the queue gives up on after `secs` (`Queue()`'s timeout): a Local customer
/// whose `;1` half runs `Queue(sales,,,,secs)`. Returns its `Uniqueid`.
async fn caller_with_timeout(pbx: &Pbx, secs: u32) -> String {
    let id = format!("cust-{}", fastrand::u64(..));
    pbx.send(
        "Originate",
        &[
            ("Channel", "Local/2005@customers"),
            ("Application", "Queue"),
            ("Data", &format!("{QUEUE},,,,{secs}")),
            ("CallerID", "\"Customer\" <+441632960299>"),
            ("ChannelId", &id),
            ("OtherChannelId", &format!("{id}-2")),
            ("Async", "true"),
            ("Timeout", "30000"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("originate a caller with a timeout: {e}"));
    id
}

/// Customer `id` puts the phone down: its own half (`;1`) hangs up, and Asterisk
/// hangs up the half in the queue as a caller's hang-up (a `HangupRequest`), as a
/// trunk does when the caller hangs up.
async fn customer_hangs_up(pbx: &Pbx, id: &str) {
    let channel = pbx
        .channels()
        .await
        .into_iter()
        .find(|c| c.uniqueid == id)
        .unwrap_or_else(|| panic!("customer {id} has no channel"));
    pbx.send("Hangup", &[("Channel", &channel.name)])
        .await
        .unwrap_or_else(|e| panic!("hang up {}: {e}", channel.name));
}

/// Every queue event the board publishes, as it comes.
fn record(board: &QueueBoard) -> Arc<Mutex<Vec<Arc<QueueEnvelope>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (_, mut events) = board.snapshot_and_subscribe();
    let into = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(envelope)) = events.next().await {
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(envelope);
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_figures_match_asterisk_across_a_dropped_link() {
    let Some(pbx) = Pbx::take().await else { return };
    if !baresip_installed() {
        return;
    }
    let began = tokio::time::Instant::now();
    let before = asterisk(&pbx).await;
    let _phones = [
        Phone::start("1001", Answer::Auto).await,
        Phone::start("1002", Answer::Auto).await,
    ];
    let proxy = Proxy::start().await;
    let sales = QueueId::new(QUEUE).unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    let board = QueueBoard::new(
        QueueStats::new(now).with_queue(sales, Duration::from_secs(20)),
        now,
    );
    let seen = record(&board);
    let link = AmiLink::new(agents_config(&proxy.address))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_queue_board(board.clone());
    let link = SharedLink::start(Arc::new(link))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let agents = [
        agent_on(&link, "alice", "PJSIP/1001").await,
        agent_on(&link, "bob", "PJSIP/1002").await,
    ];
    for agent in &agents {
        board.follow(agent.clone());
        agent.login().await.unwrap_or_else(|e| panic!("login: {e}"));
        agent.ready().await.unwrap_or_else(|e| panic!("ready: {e}"));
    }
    until(&board, "both agents ready", |f| {
        (f.agents.logged_in, f.agents.ready) == (2, 2)
    })
    .await;
    let ready = asterisk(&pbx).await;
    assert_eq!((ready.logged_in, ready.available), (2, 2), "{ready:?}");

    // Two customers, answered by the phones.
    let a = pbx
        .customer_calls("from-customers", "3001", "+441632960201")
        .await;
    until(&board, "the first caller answered", |f| f.answered == 1).await;
    let b = pbx
        .customer_calls("from-customers", "3001", "+441632960202")
        .await;
    until(&board, "the second caller answered", |f| f.answered == 2).await;
    // Both agents talk: a third waits, then hangs up.
    let c = pbx
        .customer_calls("from-customers", "3001", "+441632960203")
        .await;
    until(&board, "a caller waiting", |f| f.waiting == 1).await;
    let waiting = asterisk(&pbx).await;
    assert_eq!(
        (waiting.callers, waiting.entries.clone()),
        (1, vec![format!("{c}-2")])
    );
    customer_hangs_up(&pbx, &c).await;
    until(&board, "the abandon", |f| f.abandoned == 1).await;
    // The first two customers hang up.
    for call in [&a, &b] {
        assert!(pbx.far_end_hangs_up("PJSIP/", call).await > 0);
    }
    until(&board, "two calls completed", |f| f.completed == 2).await;

    // Nobody ready: a caller the queue gives up on after 2 s.
    for agent in &agents {
        agent
            .not_ready(None)
            .await
            .unwrap_or_else(|e| panic!("not ready: {e}"));
    }
    let d = caller_with_timeout(&pbx, 2).await;
    until(&board, "the caller the queue gave up on", |f| {
        f.overflowed == 1
    })
    .await;

    // Two callers wait; the AMI connection is cut. While it is down one of them hangs
    // up and another caller joins.
    let e = pbx
        .customer_calls("from-customers", "3001", "+441632960205")
        .await;
    let f = pbx
        .customer_calls("from-customers", "3001", "+441632960206")
        .await;
    until(&board, "two callers waiting", |f| f.waiting == 2).await;
    proxy.hold_reconnects(true);
    proxy.cut();
    let deadline = tokio::time::Instant::now() + WAIT;
    while board.snapshot().link != LinkState::Down {
        assert!(tokio::time::Instant::now() < deadline, "no link_down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    customer_hangs_up(&pbx, &f).await;
    let g = pbx
        .customer_calls("from-customers", "3001", "+441632960207")
        .await;
    let (e2, g2) = (format!("{e}-2"), format!("{g}-2"));
    until_waiting_at_asterisk(&pbx, &[&e2, &g2]).await;
    proxy.hold_reconnects(false);
    until(&board, "the figures restored", |f| f.left_unseen == 1).await;
    let restored = figures(&board).unwrap_or_else(|| panic!("no {QUEUE}"));
    let at_asterisk = asterisk(&pbx).await;
    assert_eq!(board.snapshot().link, LinkState::Up);
    assert_eq!(
        (u64::from(restored.waiting), restored.left_unseen),
        (2, 1),
        "{restored:?}"
    );
    assert_eq!(
        u64::from(restored.waiting + restored.ringing),
        at_asterisk.callers
    );
    {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = seen.iter().map(|e| e.event.name()).collect();
        // The first `resynced` is the board's restore when the link first came up.
        let down = names
            .iter()
            .position(|n| *n == "link_down")
            .unwrap_or_else(|| panic!("no link_down: {names:?}"));
        assert!(
            names[down..].contains(&"resynced"),
            "no resynced after the link_down: {names:?}"
        );
    }

    // Ready again: the two callers Asterisk kept are answered.
    for agent in &agents {
        agent.ready().await.unwrap_or_else(|e| panic!("ready: {e}"));
    }
    until(&board, "the waiting callers answered", |f| f.answered == 4).await;
    for call in [&e, &g] {
        assert!(pbx.far_end_hangs_up("PJSIP/", call).await > 0);
    }
    until(&board, "every call completed", |f| f.completed == 4).await;
    // Callers are named by their channel's Uniqueid (the `;2` half of a Local customer).
    let mut answered: Vec<String> = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|e| match &e.event {
            QueueEvent::CallerAnswered { call, .. } => Some(call.to_string()),
            _ => None,
        })
        .collect();
    answered.sort();
    let mut wanted = vec![format!("{a}-2"), format!("{b}-2"), e2, g2];
    wanted.sort();
    assert_eq!(answered, wanted);

    let after = asterisk(&pbx).await;
    let board_now = figures(&board).unwrap_or_else(|| panic!("no {QUEUE}"));
    println!("Asterisk before: {before:?}");
    println!("Asterisk after:  {after:?}");
    println!("board: {board_now:?}");
    println!(
        "caller with a timeout: {d}; live test took {:?}",
        began.elapsed()
    );
    assert_eq!(after.completed - before.completed, board_now.completed);
    assert_eq!(board_now.completed, board_now.answered);
    // Asterisk counts a caller the queue gave up on as abandoned too, and one that hung
    // up while the link was down (left unseen on the board).
    assert_eq!(
        after.abandoned - before.abandoned,
        board_now.abandoned + board_now.overflowed + board_now.left_unseen
    );
    assert_eq!(
        (
            board_now.abandoned,
            board_now.overflowed,
            board_now.left_unseen
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (after.calls, after.callers),
        (
            u64::from(board_now.waiting + board_now.ringing),
            u64::from(board_now.waiting + board_now.ringing)
        )
    );
    assert_eq!(board_now.offered, 7);
    assert_eq!(
        board_now.offered,
        board_now.answered
            + board_now.abandoned
            + board_now.overflowed
            + board_now.left_unseen
            + u64::from(board_now.waiting + board_now.ringing)
    );

    for agent in &agents {
        agent
            .logout(None)
            .await
            .unwrap_or_else(|e| panic!("logout: {e}"));
    }
    until(&board, "nobody logged in", |f| f.agents.logged_in == 0).await;
    for agent in agents {
        assert_eq!(agent.stats().rejected, 0, "events the session refused");
        let _ = agent.stop().await;
    }
    let _ = link.stop().await;
    pbx.clear().await;
}
