//! An `AmiLink` keeping a `QueueBoard`, against the scripted AMI server: members and
//! callers from the queue events, the agent's state from its session, `link_down` when
//! the connection drops, and after the reconnect the callers `QueueStatus` lists.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_asterisk_ami::test_support::{Control, Script};
use opencti_asterisk_ami::{AmiConfig, AmiLink, Secret};
use opencti_core::queue::{QueueBoard, QueueFigures, QueueStats};
use opencti_core::{
    AgentId, DesktopInterfaceExt, DeviceId, LinkState, QueueId, SharedLink, Timestamp,
};

const LIMIT: Duration = Duration::from_secs(10);

fn config(address: String) -> AmiConfig {
    let mut c = AmiConfig::new(address, "opencti", Secret::new("opencti-secret"));
    c.queues = vec!["support".into()];
    c.timeouts.action = Duration::from_secs(2);
    c.timeouts.connect = Duration::from_secs(2);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c
}

fn support(board: &QueueBoard) -> Option<QueueFigures> {
    let support = QueueId::new("support").unwrap_or_else(|e| panic!("{e}"));
    board
        .snapshot()
        .queues
        .into_iter()
        .find(|f| f.queue == support)
}

/// Waits until the board's `support` figures pass `check`.
async fn until(board: &QueueBoard, what: &str, check: impl Fn(&QueueFigures) -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if support(board).is_some_and(|f| check(&f)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            support(board)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_queue_and_is_restored_after_a_drop() {
    let server = Control::start(Script::default()).await;
    let now = Timestamp::now();
    let board = QueueBoard::new(QueueStats::new(now), now);
    let link = AmiLink::new(config(server.address()))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_queue_board(board.clone());
    let link = SharedLink::start(Arc::new(link))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alice = link
        .session(
            AgentId::new("alice").unwrap_or_else(|e| panic!("{e}")),
            DeviceId::new("PJSIP/7001").unwrap_or_else(|e| panic!("{e}")),
        )
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board.follow(alice.clone());
    alice.login().await.unwrap_or_else(|e| panic!("login: {e}"));
    alice.ready().await.unwrap_or_else(|e| panic!("ready: {e}"));
    until(&board, "alice ready in support", |f| {
        (f.agents.logged_in, f.agents.ready) == (1, 1)
    })
    .await;

    server.queue_caller_joins("support", "1795239000.1");
    server.queue_caller_joins("support", "1795239000.2");
    until(&board, "two callers waiting", |f| f.waiting == 2).await;

    let (_, mut followed) = board.snapshot_and_subscribe();
    // The connection drops and stays down a while; meanwhile one caller gives up and
    // another joins.
    server.set_accept_login(false);
    server.drop_connections();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while board.snapshot().link != LinkState::Down {
        assert!(tokio::time::Instant::now() < deadline, "no link_down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.queue_caller_hangs_up("1795239000.1");
    server.queue_caller_joins("support", "1795239000.3");
    server.set_accept_login(true);
    until(&board, "the figures restored", |f| f.left_unseen == 1).await;

    let f = support(&board).unwrap_or_else(|| panic!("no support"));
    assert_eq!(board.snapshot().link, LinkState::Up);
    assert_eq!(
        (f.offered, f.waiting, f.left_unseen, f.abandoned),
        (3, 2, 1, 0),
        "{f:?}"
    );
    assert_eq!(
        (f.agents.logged_in, f.agents.ready),
        (1, 1),
        "the member listed again"
    );
    let mut names = Vec::new();
    while let Ok(Some(Ok(envelope))) =
        tokio::time::timeout(Duration::from_millis(200), followed.next()).await
    {
        names.push(envelope.event.name());
    }
    assert_eq!(names.first(), Some(&"link_down"), "{names:?}");
    assert!(names.contains(&"resynced"), "{names:?}");

    // The board follows again: the restored callers leave as the events say.
    server.queue_caller_hangs_up("1795239000.2");
    until(&board, "an abandon after the reconnect", |f| {
        f.abandoned == 1
    })
    .await;
    let f = support(&board).unwrap_or_else(|| panic!("no support"));
    assert_eq!((f.offered, f.waiting, f.abandoned), (3, 1, 1));
    let _ = link.stop().await;
    assert_eq!(board.snapshot().link, LinkState::Down, "stopped");
}
