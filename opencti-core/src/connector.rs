//! The trait a connector implements: the small, vendor-facing side of opencti.

use std::fmt;

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::command::Command;
use crate::ids::{AgentId, CommandId, DeviceId};
use crate::session::EventSink;
use crate::snapshot::SwitchState;
use crate::Result;

/// The agent and device a session serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The agent.
    pub agent: AgentId,
    /// The agent's device.
    pub device: DeviceId,
}

/// A command on its way to the switch: already checked against the state and the
/// capabilities, and numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The session's id for the command. Events the connector emits in answer may carry it
    /// (see [`EventSink::emit_for`]).
    pub id: CommandId,
    /// What to do.
    pub command: Command,
}

/// A Desktop Implementation: translates between one phone switch and the canonical model.
///
/// A connector does protocol and translation only. The session that owns it validates
/// commands, correlates confirmations, tracks state, fans events out, and resynchronises
/// after the link comes back: none of that is the connector's job.
///
/// Dyn-compatible: sessions hold connectors as `Arc<dyn Connector>`.
///
/// # Behavior
///
/// - [`start`](Connector::start) connects (or begins to) and keeps the sink; from then on
///   every switch event for the line is translated and emitted into the sink, in order.
///   The connector emits [`Event::LinkUp`](crate::Event::LinkUp) whenever the link comes
///   up (the first time too) and [`Event::LinkDown`](crate::Event::LinkDown) when it
///   drops; it reconnects by itself. Emitting never blocks.
/// - [`submit`](Connector::submit) hands a request to the switch and returns once the
///   switch has accepted it (`Ok`) or refused it (`Err`, usually
///   [`ErrorKind::Rejected`](crate::ErrorKind::Rejected)). Accepted is not done: the
///   command takes effect when its confirming event is emitted. A failure found later is
///   reported with [`EventSink::command_failed`].
/// - [`snapshot`](Connector::snapshot) asks the switch for the line's current state; the
///   session calls it after every `link_up` and whenever its state has diverged.
/// - Agent state: the connector reports chosen states (`logged_out`, `not_ready`, `ready`)
///   in `agent_state_changed`, and `next_state_queued`; the session derives `reserved`,
///   `busy` and `wrap_up` from the calls (see [`Capabilities::wrap_up`]).
/// - [`stop`](Connector::stop) disconnects; no events follow.
///
/// # Confirmations
///
/// The session registers a command as waiting *before* it calls `submit`, so a
/// confirming event may be emitted at any time after `submit` is called: from inside
/// `submit` itself, or from the connector's reader before `submit` has returned. The
/// first event that fits confirms the command; emitting it with
/// [`EventSink::emit_for`] and the request's id makes the match exact, otherwise the
/// oldest waiting command of that kind on that call is taken.
///
/// | command | confirmed by |
/// |---|---|
/// | `login` | `agent_state_changed` to a logged-in state |
/// | `logout` | `agent_state_changed` to `logged_out` |
/// | `set_agent_state` | `agent_state_changed` to that chosen state, or `next_state_queued` (after the call) |
/// | `make_call` | `call_initiated` of a new call, whose id the connector picks (the switch's own id for the call where it has one, so that it survives a reconnect) |
/// | `consult` | `call_initiated` of a new call with `consult_of` set to the consulted call |
/// | `answer` | `call_connected` on the call |
/// | `reject` | `call_ended` or `call_diverted` on the call |
/// | `hangup` | `call_ended` on the call |
/// | `hold` | `call_held` on the call |
/// | `retrieve`, `alternate` | `call_retrieved` on the call |
/// | `blind_transfer` | `call_transferred` on the call |
/// | `complete_transfer` | `call_transferred` on the consultation or the call it consults about |
/// | `complete_conference` | `call_conferenced` on either of those |
/// | `drop_party` | `party_left` of that party on the call |
/// | `send_dtmf` | `dtmf_sent` on the call |
/// | `set_call_data` | `call_data_changed` on the call |
/// | `complete_wrap_up` | `agent_state_changed` out of `wrap_up` |
///
/// A command whose call ends first fails as `invalid_state`; one the switch refuses
/// later is failed with [`EventSink::command_failed`].
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// What this connector can do.
    fn capabilities(&self) -> Capabilities;

    /// Starts serving `line`, emitting into `sink`.
    async fn start(&self, line: &Line, sink: EventSink) -> Result<()>;

    /// Hands a checked command to the switch.
    async fn submit(&self, request: Request) -> Result<()>;

    /// The switch's current view of the line, for resynchronisation.
    async fn snapshot(&self) -> Result<SwitchState>;

    /// The session has applied the state the last [`snapshot`](Connector::snapshot)
    /// returned. A connector that held back switch events while it read that state
    /// translates them now, against the session's new state (see
    /// [`EventSink::view`]). The default does nothing.
    fn resynced(&self) {}

    /// Disconnects.
    async fn stop(&self) -> Result<()>;
}
