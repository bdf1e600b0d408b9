//! The documented JSON forms of commands, events, snapshots and errors, and the refusal of
//! bad input.

use opencti_core::{
    AgentId, AgentState, CallId, ChosenState, Command, DeviceId, Error, ErrorBody, ErrorKind,
    Event, EventEnvelope, ReasonCode, Timestamp,
};
use serde_json::json;

#[test]
fn commands_have_a_stable_json_form() {
    let cases = [
        (json!({"type": "login"}), Command::Login {}),
        (
            json!({"type": "set_agent_state", "state": {"state": "not_ready", "reason": "lunch"}, "after_call": true}),
            Command::SetAgentState {
                state: ChosenState::NotReady {
                    reason: Some(ReasonCode::new("lunch").unwrap()),
                },
                after_call: true,
            },
        ),
        (
            json!({"type": "make_call", "to": "+441632960001"}),
            Command::MakeCall {
                to: opencti_core::Dialable::new("+441632960001").unwrap(),
                data: Default::default(),
            },
        ),
        (
            json!({"type": "send_dtmf", "call": "c1", "digits": "12#"}),
            Command::SendDtmf {
                call: CallId::new("c1").unwrap(),
                digits: opencti_core::DtmfDigits::new("12#").unwrap(),
            },
        ),
    ];
    for (json, command) in cases {
        assert_eq!(serde_json::to_value(&command).unwrap(), json);
        assert_eq!(serde_json::from_value::<Command>(json).unwrap(), command);
    }
}

#[test]
fn bad_commands_are_refused_with_a_message_naming_the_problem() {
    let cases = [
        (
            r#"{"type":"hold","call":"c1","extra":1}"#,
            "unknown field `extra`",
        ),
        (r#"{"type":"hold"}"#, "missing field `call`"),
        (r#"{"type":"explode"}"#, "unknown variant `explode`"),
        (r#"{"type":"hold","call":"c 1"}"#, "call id"),
        (
            r#"{"type":"make_call","to":"1\r\nAction: Originate"}"#,
            "not dialable",
        ),
        (
            r#"{"type":"send_dtmf","call":"c1","digits":"12x"}"#,
            "not a DTMF digit",
        ),
        (
            r#"{"type":"set_call_data","call":"c1","data":{"k":"a\u0000b"}}"#,
            "control character",
        ),
        (
            r#"{"type":"set_agent_state","state":{"state":"ready","reason":"x"}}"#,
            "unknown field `reason`",
        ),
        (r#"{"type":"login","as":"root"}"#, "unknown field `as`"),
    ];
    for (input, expected) in cases {
        let err = serde_json::from_str::<Command>(input)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{} gave {:?}", input, err);
    }
}

#[test]
fn events_are_flat_envelopes_with_the_event_fields_inlined() {
    let envelope = EventEnvelope {
        seq: 7,
        at: Timestamp::from_micros(1_795_238_123_000_000),
        agent: AgentId::new("alice").unwrap(),
        device: DeviceId::new("1001").unwrap(),
        command: Some(opencti_core::CommandId::new(3.try_into().unwrap())),
        event: Event::AgentStateChanged {
            state: AgentState::Busy {
                next: ChosenState::Ready,
            },
        },
    };
    let value = serde_json::to_value(&envelope).unwrap();
    assert_eq!(
        value,
        json!({
            "seq": 7, "at": 1_795_238_123_000_000u64, "agent": "alice", "device": "1001",
            "command": 3, "type": "agent_state_changed",
            "state": {"state": "busy", "next": {"state": "ready"}}
        })
    );
    assert_eq!(
        serde_json::from_value::<EventEnvelope>(value).unwrap(),
        envelope
    );
}

#[test]
fn errors_travel_as_kind_message_and_allowed() {
    let err = Error::new(ErrorKind::InvalidState, "hold refused: call c1 is offered")
        .with_allowed([opencti_core::CommandKind::Answer].into_iter().collect());
    let body = err.to_body();
    let json = serde_json::to_value(&body).unwrap();
    assert_eq!(
        json,
        json!({"kind": "invalid_state", "message": "hold refused: call c1 is offered", "allowed": ["answer"]})
    );
    let back: ErrorBody = serde_json::from_value(json).unwrap();
    assert_eq!(Error::from(back).kind(), ErrorKind::InvalidState);
}

#[test]
fn hostile_json_never_panics() {
    let long = "9".repeat(10_000);
    let inputs = [
        "".to_string(),
        "{".to_string(),
        "[]".to_string(),
        "null".to_string(),
        format!(r#"{{"type":"make_call","to":"{}"}}"#, long),
        r#"{"type":"drop_party","call":"c","party":""}"#.to_string(),
        "{\"type\":\"hold\",\"call\":\"\u{202e}\"}".to_string(),
    ];
    for input in inputs {
        assert!(
            serde_json::from_str::<Command>(&input).is_err(),
            "{}",
            input
        );
    }
}

mod arbitrary_input {
    use opencti_core::protocol::parse_request;
    use opencti_core::{Command, EventEnvelope};
    use proptest::prelude::*;

    fn jsonish() -> impl Strategy<Value = String> {
        // Fragments of real messages, shuffled and cut, find the parser's corners faster
        // than uniform noise.
        let pieces = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"type\"",
            "\"call\"",
            "\"hold\"",
            "\"id\"",
            "\"command\"",
            "\"query\"",
            "\"data\"",
            "\"state\"",
            "\"ready\"",
            "\"\\u0000\"",
            "\"\\r\\n\"",
            "1",
            "-1",
            "1e999",
            "null",
            "true",
            "\"x\"",
            "\"\u{202e}\"",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parsing_never_panics(text in prop_oneof![jsonish(), ".{0,200}"]) {
            let _ = serde_json::from_str::<Command>(&text);
            let _ = serde_json::from_str::<EventEnvelope>(&text);
            let _ = parse_request(&text);
        }
    }
}
