//! How a supervisor joins an agent's call.

use serde::{Deserialize, Serialize};

/// How a supervisor joins an agent's call (where the phone system can: Asterisk's
/// ChanSpy, for one).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MonitorMode {
    /// Hears both sides; nobody hears the supervisor.
    Listen,
    /// Hears both sides; only the agent hears the supervisor.
    Whisper,
    /// Joins the call: everyone hears everyone.
    Barge,
}

impl MonitorMode {
    /// `listen`, `whisper` or `barge`.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }
}
