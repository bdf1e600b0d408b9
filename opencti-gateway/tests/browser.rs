//! End to end in a real headless browser: the Call Control Panel, driven by Playwright in
//! Debian's Chromium, against the gateway on a simulated centre with the SQLite CRM.
//!
//! Needs `chromium`, `node` and `e2e/node_modules` (`npm ci` in `opencti-gateway/e2e`);
//! `.ci/run` installs them. Without them the test is skipped with the reason printed,
//! except under `CI=true`, where a missing browser is a failure.
//! `OPENCTI_SCREENSHOTS=<dir>` keeps the screenshots there (the docs' come from this).

use std::sync::Arc;
use std::time::Duration;

use opencti_core::queue::{QueueBoard, QueueStats};
use opencti_core::{AgentId, DeviceId};
use opencti_gateway::{Gateway, Limits, SimSessions, SqliteCrm, TokenTable};
use opencti_sim::{FarEnd, SimSwitch};

mod e2e;

use e2e::Driver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_two_calls_in_the_panel_and_they_are_logged() {
    if !e2e::can_run("the browser test", true, &["playwright-core"]) {
        return;
    }

    let switch = SimSwitch::builder()
        .queue("support")
        .wrap_up("support", Duration::from_secs(600))
        .agent("alice", "1001", &["support"])
        .extension(
            "1900",
            FarEnd::Answer {
                after: Duration::from_secs(1),
            },
        )
        .build()
        .unwrap();
    let control = switch.control();
    let db = std::env::temp_dir().join(format!("opencti-e2e-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let crm = SqliteCrm::open(&db).unwrap();
    crm.seed_demo().unwrap();
    let tokens = TokenTable::new();
    let token = tokens
        .issue(
            AgentId::new("alice").unwrap(),
            DeviceId::new("1001").unwrap(),
        )
        .unwrap();
    let start = switch.now();
    let board = QueueBoard::new(QueueStats::new(start), start);
    board.feed_stamped(switch.queue_events());
    let gateway = Gateway::with_crm(
        Arc::new(tokens),
        Arc::new(SimSessions::new(switch.clone())),
        Limits::default(),
        Arc::new(crm.clone()),
    )
    .with_queue_board(board);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/#token={}",
        listener.local_addr().unwrap(),
        token.expose()
    );
    tokio::spawn(async move { gateway.serve(listener).await });

    let shots = e2e::screenshots("opencti-e2e-shots");
    let mut driver = Driver::start(&[], "panel.mjs", &[&url, &shots.display().to_string()]);

    let mut seen = Vec::new();
    loop {
        let Some(line) = driver.next().await else {
            break;
        };
        seen.push(line.clone());
        match line.as_str() {
            "READY" => control
                .customer_calls("support", "+441632960003")
                .call()
                .unwrap(),
            "NEXT" => control
                .customer_calls("support", "+441632960001")
                .call()
                .unwrap(),
            "DONE" => break,
            _ => {}
        }
    }
    assert!(
        driver.succeeded(),
        "the browser script failed after {:?}",
        seen
    );
    assert_eq!(seen, ["READY", "NEXT", "DONE"]);

    // Both calls are in the SQLite call log, with their outcomes and dispositions.
    let mut log = Vec::new();
    for _ in 0..100 {
        log = crm.call_log().unwrap();
        if log.len() == 2 && log.iter().all(|row| row.disposition.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary: Vec<(Option<String>, String, Option<String>)> = log
        .into_iter()
        .map(|row| (row.number, row.outcome, row.disposition))
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("+441632960003".into()),
                "transferred".into(),
                Some("resolved".into())
            ),
            (
                Some("+441632960001".into()),
                "normal".into(),
                Some("follow-up".into())
            ),
        ]
    );
    let _ = std::fs::remove_file(&db);
}
