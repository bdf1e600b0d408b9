#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod auth;
mod call_log;
mod centre;
mod contacts;
mod crm;
mod desk;
mod limits;
#[cfg(feature = "nats")]
mod nats;
mod pega;
mod request_text;
mod router;
mod salesforce;
mod salesforce_voice;
mod security;
mod serve;
mod sessions;
mod sign_in;
mod socket;
#[cfg(feature = "sqlite")]
mod sqlite;
mod supervisor;
mod tls;

pub use auth::{Authenticator, Grant, Role, Token, TokenStore, TokenTable};
pub use call_log::{CallLog, CallLogWrite};
pub use centre::{SAMPLE_EVERY, UPDATE_EVERY};
pub use contacts::{MAX_CONTACTS, MAX_SEARCH_CHARS};
pub use crm::{CallLogEntry, Contact, Crm, NoCrm, PhoneContact, ScreenPop};
pub use limits::Limits;
#[cfg(feature = "nats")]
pub use nats::{NatsCallLogger, NatsTokenLimits, NatsTokens};
pub use opencti_core::MonitorMode;
pub use router::Gateway;
pub use security::Security;
pub use sessions::{AgentLine, SessionFactory, SimSessions};
pub use sign_in::{
    SignIn, FAILURE_WINDOW, MAX_FAILED_SIGN_INS, MAX_FAILED_SIGN_INS_PER_ADDRESS, MAX_SIGN_IN_BYTES,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{CallLogRow, SqliteCrm};
pub use tls::Tls;

/// The JSON Schema of everything a browser exchanges with the gateway: the desktop
/// protocol (`client_to_server`, `server_to_client`), the first message that
/// authenticates (`auth`), and what the gateway adds: screen pops (`screen_pop`) and the
/// contact search (`contacts_request`, `contacts_reply`), the callers waiting in an
/// agent's queues (`queue_waiting`); and a supervisor's messages
/// (`centre`, `centre_update`, `supervisor_request`, `supervisor_reply`). Generated from
/// the Rust types; served at `/schema.json`.
pub fn schema() -> serde_json::Value {
    let mut schema = opencti_core::protocol::json_schema();
    schema["auth"] = serde_json::json!({
        "type": "object",
        "properties": {
            "auth": {
                "type": "object",
                "properties": { "token": { "type": "string" } },
                "required": ["token"],
                "additionalProperties": false
            }
        },
        "required": ["auth"],
        "additionalProperties": false
    });
    schema["contacts_request"] =
        serde_json::json!(schemars::schema_for!(contacts::ContactsRequest));
    schema["contacts_reply"] = serde_json::json!(schemars::schema_for!(contacts::ContactsReply));
    schema["supervisor_request"] =
        serde_json::json!(schemars::schema_for!(supervisor::SupervisorRequest));
    schema["supervisor_reply"] =
        serde_json::json!(schemars::schema_for!(supervisor::SupervisorReply));
    schema["centre"] = serde_json::json!(schemars::schema_for!(centre::Whole));
    schema["centre_update"] = serde_json::json!(schemars::schema_for!(centre::Update));
    schema["queue_waiting"] = serde_json::json!(schemars::schema_for!(centre::QueueWaiting));
    schema["screen_pop"] = serde_json::json!({
        "type": "object",
        "properties": { "screen_pop": schemars::schema_for!(ScreenPop) },
        "required": ["screen_pop"]
    });
    schema
}
