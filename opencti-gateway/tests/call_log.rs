//! The call log keeps every call: ids no earlier run used, and a row never replaced by
//! another call that happens to have the same id.

use opencti_core::{AgentId, CallId, DeviceId, Direction, ErrorKind, Timestamp};
use opencti_gateway::{CallLogEntry, Crm, SqliteCrm};
use opencti_sim::CentreConfig;

fn entry(call: &str, started_at: Timestamp, outcome: &str) -> CallLogEntry {
    CallLogEntry {
        agent: AgentId::new("alice").unwrap(),
        device: DeviceId::new("1001").unwrap(),
        call: CallId::new(call).unwrap(),
        direction: Direction::Inbound,
        number: Some("+441632960001".into()),
        queue: None,
        started_at,
        answered_at: None,
        ended_at: started_at,
        outcome: outcome.into(),
        parties: Vec::new(),
    }
}

#[tokio::test]
async fn a_row_is_never_replaced_by_another_call() {
    let path = std::env::temp_dir().join(format!("opencti-call-log-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let crm = SqliteCrm::open(&path).unwrap();
    let first = Timestamp::now();
    crm.log_call(&entry("call-1", first, "normal"))
        .await
        .unwrap();
    // The same call logged again (later news of it) updates its row.
    crm.log_call(&entry("call-1", first, "transferred"))
        .await
        .unwrap();
    // Another call with the same id (a restarted switch counting from 1 again) is
    // refused, and the first call's row stays.
    let later = first.saturating_add(std::time::Duration::from_secs(60));
    let refused = crm
        .log_call(&entry("call-1", later, "busy"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidState, "{refused}");
    let log = crm.call_log().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, "transferred");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn each_run_of_a_centre_numbers_its_calls_apart() {
    let a = CentreConfig::unique_call_ids();
    let b = CentreConfig::unique_call_ids();
    assert_ne!(a, b);
    assert!(CallId::new(format!("{a}-1")).is_ok(), "{a}");
    assert!(opencti_sim::SimSwitch::builder()
        .queue("support")
        .agent("alice", "1001", &["support"])
        .call_ids(&a)
        .build()
        .is_ok());
    let refused = opencti_sim::SimSwitch::builder()
        .agent("alice", "1001", &[])
        .call_ids("no spaces here")
        .build();
    assert!(refused.is_err(), "call ids must make valid call ids");
}
