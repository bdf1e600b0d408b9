//! The JSON Schema shipped for browser clients is the one generated from the Rust types:
//! if a type changes, this test fails until the file is regenerated
//! (`OPENCTI_BLESS=1 cargo test -p opencti-gateway --test schema`).

use std::path::Path;

#[test]
fn the_shipped_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&opencti_gateway::schema()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/opencti-protocol.schema.json");
    if std::env::var("OPENCTI_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} is out of date: regenerate it with OPENCTI_BLESS=1 cargo test -p opencti-gateway --test schema",
        path.display()
    );
}

#[test]
fn the_schema_describes_every_command_and_event() {
    let schema = opencti_gateway::schema().to_string();
    for kind in opencti_core::CommandKind::ALL {
        assert!(
            schema.contains(&format!("\"const\":\"{}\"", kind)),
            "{}",
            kind
        );
    }
    assert!(schema.contains("\"screen_pop\""));
    assert!(schema.contains("\"contacts_request\""));
    assert!(schema.contains("\"contacts_reply\""));
    assert!(schema.contains("\"auth\""));
    for event in [
        "call_offered",
        "call_held",
        "agent_state_changed",
        "resynced",
        "command_failed",
        "dtmf_sent",
    ] {
        assert!(
            schema.contains(&format!("\"const\":\"{}\"", event)),
            "{}",
            event
        );
    }
}
