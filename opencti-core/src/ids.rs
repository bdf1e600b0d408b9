//! Typed identifiers: a call, an agent, a device, a queue, a party, a command.
//!
//! Ids that come from the switch (calls, parties) or from configuration (agents, devices,
//! queues) are validated text; command ids are minted by the session.

use std::fmt;
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

use crate::text::{identifier, validated_text};

validated_text!(
    /// Identifies one call as the agent's device sees it, for the call's whole life.
    ///
    /// The connector chooses it (Asterisk's `Linkedid`, a SIP dialog's Call-ID, a
    /// simulator counter). Printable, no white space, at most 256 bytes.
    ///
    /// ```
    /// use opencti_core::CallId;
    /// let id = CallId::new("1795238123.45").unwrap();
    /// assert_eq!(id.as_str(), "1795238123.45");
    /// assert!(CallId::new("bad id").is_err());
    /// ```
    CallId, what = "call id", max = 256, check = identifier
);

validated_text!(
    /// Identifies an agent (a person who logs in). Printable, no white space, at most
    /// 128 bytes.
    AgentId, what = "agent id", max = 128, check = identifier
);

validated_text!(
    /// Identifies a device: the extension, phone or line the agent works on
    /// (`PJSIP/1001`, `sip:1001@pbx`, `1001`). Printable, no white space, at most 128 bytes.
    DeviceId, what = "device id", max = 128, check = identifier
);

validated_text!(
    /// Identifies an ACD queue (skill group, split, hunt group). Printable, no white
    /// space, at most 128 bytes.
    QueueId, what = "queue id", max = 128, check = identifier
);

validated_text!(
    /// Identifies one party on a call (a leg, a channel), as the connector names it.
    /// Printable, no white space, at most 256 bytes.
    PartyId, what = "party id", max = 256, check = identifier
);

/// Identifies one command within a session; minted by the session, never zero.
///
/// Events that confirm a command carry its id. On the wire it is a positive integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(NonZeroU64);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for CommandId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CommandId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "minimum": 1 })
    }
}

impl CommandId {
    /// Wraps a raw id.
    pub fn new(id: NonZeroU64) -> Self {
        CommandId(id)
    }

    /// The raw id.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandId({})", self.0)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_whitespace_control_and_overlong() {
        assert!(CallId::new("").is_err());
        assert!(CallId::new("a b").is_err());
        assert!(CallId::new("a\r\nAction: Originate").is_err());
        assert!(AgentId::new("x".repeat(129)).is_err());
        assert!(AgentId::new("x".repeat(128)).is_ok());
        let err = DeviceId::new("PJSIP/10\u{0}01").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadInput);
        assert!(err.message().contains("device id"), "{}", err);
    }

    #[test]
    fn ids_round_trip_through_json_and_refuse_bad_json() {
        let id = CallId::new("c-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"c-1\"");
        assert_eq!(serde_json::from_str::<CallId>(&json).unwrap(), id);
        let err = serde_json::from_str::<CallId>("\"c 1\"").unwrap_err();
        assert!(err.to_string().contains("call id"), "{}", err);
        assert!(serde_json::from_str::<CommandId>("0").is_err());
        assert_eq!(serde_json::from_str::<CommandId>("7").unwrap().get(), 7);
    }

    #[test]
    fn long_values_are_shortened_in_messages_without_splitting_characters() {
        let long = "é".repeat(200);
        let err = CallId::new(format!("{} x", &long[..100])).unwrap_err();
        assert!(err.message().len() < 200, "{}", err);
    }
}
