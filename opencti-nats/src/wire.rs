//! What travels on a line's request subject and its replies: the one place their JSON
//! is defined.
//!
//! ```text
//! request  {"snapshot":{}}
//! reply    {"snapshot":{"seq":4,...},"capabilities":{...}}
//!
//! request  {"command":{"type":"answer","call":"call-3"}}
//! reply 1  {"accepted":7}                       (or {"error":{...}}: refused)
//! reply 2  {"confirmed":{"command":7,"event":{"seq":9,...}}}   (or {"error":{...}})
//! ```

use opencti_core::{
    Capabilities, Command, CommandId, Confirmation, Error, ErrorBody, ErrorKind, EventEnvelope,
    Result, Snapshot,
};
use serde::{Deserialize, Serialize};

/// The most bytes a request or reply may have: a snapshot of a full desk with call data
/// fits many times over.
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// A request to a line's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum LineRequest {
    /// The session's snapshot and capabilities.
    Snapshot {},
    /// A command to check and hand to the switch.
    Command(Command),
}

/// The answer to a snapshot request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum SnapshotReply {
    /// The request could not be answered.
    Error(ErrorBody),
    /// The session's state and capabilities (untagged: the reply is the two fields).
    #[serde(untagged)]
    State {
        snapshot: Box<Snapshot>,
        capabilities: Capabilities,
    },
}

/// One of the two answers to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum CommandReply {
    /// The session accepted the command under this id; its outcome follows.
    Accepted(CommandId),
    /// The command took effect: its id and the confirming event.
    Confirmed {
        command: CommandId,
        event: Box<EventEnvelope>,
    },
    /// Refused, or failed after it was accepted.
    Error(ErrorBody),
}

impl CommandReply {
    pub(crate) fn outcome(outcome: Result<Confirmation>) -> Self {
        match outcome {
            Ok(confirmation) => CommandReply::Confirmed {
                command: confirmation.command,
                event: Box::new((*confirmation.event).clone()),
            },
            Err(error) => CommandReply::Error(error.to_body()),
        }
    }
}

/// Serialises a message; the types above always serialise.
pub(crate) fn to_json<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_else(|e| {
        // Unreachable for these types; an error reply beats a panic.
        serde_json::to_vec(&CommandReply::Error(
            Error::new(
                ErrorKind::Other,
                format!("could not serialise a reply: {e}"),
            )
            .to_body(),
        ))
        .unwrap_or_default()
    })
}

/// Reads a message, refusing what is too large or not the expected JSON, and naming
/// `what` it should have been.
pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(what: &str, payload: &[u8]) -> Result<T> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::new(
            ErrorKind::BadInput,
            format!(
                "{what} of {} bytes; at most {MAX_PAYLOAD} are accepted",
                payload.len()
            ),
        ));
    }
    serde_json::from_slice(payload).map_err(|e| {
        Error::new(ErrorKind::BadInput, format!("not a valid {what}: {e}")).with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencti_core::CallId;

    #[test]
    fn requests_and_replies_read_as_documented() {
        let snapshot: LineRequest = from_json("request", br#"{"snapshot":{}}"#).unwrap();
        assert_eq!(snapshot, LineRequest::Snapshot {});
        let answer: LineRequest = from_json(
            "request",
            br#"{"command":{"type":"answer","call":"call-3"}}"#,
        )
        .unwrap();
        assert_eq!(
            answer,
            LineRequest::Command(Command::Answer {
                call: CallId::new("call-3").unwrap()
            })
        );
        let accepted: CommandReply = from_json("reply", br#"{"accepted":7}"#).unwrap();
        assert!(matches!(accepted, CommandReply::Accepted(id) if id.to_string() == "7"));
        let refused: CommandReply = from_json(
            "reply",
            br#"{"error":{"kind":"invalid_state","message":"no call"}}"#,
        )
        .unwrap();
        assert!(
            matches!(refused, CommandReply::Error(body) if body.kind == ErrorKind::InvalidState)
        );
    }

    #[test]
    fn bad_requests_are_named() {
        for bad in [
            &br#"{"snapshot":{},"x":1}"#[..],
            br#"{"command":{"type":"fly"}}"#,
            b"not json",
            br#"{"reboot":{}}"#,
        ] {
            let error = from_json::<LineRequest>("line request", bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BadInput);
            assert!(
                error.message().contains("not a valid line request"),
                "{error}"
            );
        }
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        let error = from_json::<LineRequest>("line request", &huge).unwrap_err();
        assert!(error.message().contains("at most"), "{error}");
    }
}
