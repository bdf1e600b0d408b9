//! The Desktop Interface: what desktop code calls.

use async_trait::async_trait;

use crate::agent::ChosenState;
use crate::capabilities::Capabilities;
use crate::command::{Command, CommandSet};
use crate::ids::{CallId, PartyId};
use crate::session::{Confirmation, EventStream};
use crate::snapshot::Snapshot;
use crate::values::{CallData, Dialable, DtmfDigits, ReasonCode};
use crate::Result;

/// The Desktop Interface: send commands, receive canonical events, read the state.
///
/// [`Session`](crate::session::Session) implements it for any connector. Desktop code
/// that takes `&dyn DesktopInterface` (or `Arc<dyn DesktopInterface>`) runs unchanged on
/// the simulator, on Asterisk, on SIP, or on a test double. The one-call-per-button
/// conveniences live in [`DesktopInterfaceExt`].
///
/// # Behavior
///
/// - [`execute`](DesktopInterface::execute) checks the command against the current state
///   at once (refusing it with [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState)
///   and the allowed commands, or `Unsupported`, `NotFound`, `LinkDown`), hands it to the
///   switch, and resolves when the confirming event arrives, with that event; or fails
///   with the switch's refusal, a `command_failed`, or `Timeout`.
/// - [`subscribe`](DesktopInterface::subscribe) returns a stream of every event from now
///   on, in `seq` order. A subscriber that falls behind gets one `Lagged` error saying how
///   many events it missed, then continues; it should re-read
///   [`snapshot`](DesktopInterface::snapshot).
/// - [`snapshot`](DesktopInterface::snapshot) and
///   [`allowed_commands`](DesktopInterface::allowed_commands) answer from the session's
///   state without asking the switch.
#[async_trait]
pub trait DesktopInterface: Send + Sync {
    /// Carries out a command and waits for its confirmation.
    async fn execute(&self, command: Command) -> Result<Confirmation>;

    /// Every event from now on.
    fn subscribe(&self) -> EventStream;

    /// The agent, its calls and the link, as of the last event.
    fn snapshot(&self) -> Snapshot;

    /// What the connector can do.
    fn capabilities(&self) -> Capabilities;

    /// The commands allowed now, for the agent (`None`) or one call.
    fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet;
}

/// One method per button, on every [`DesktopInterface`].
///
/// ```no_run
/// # async fn demo(desk: &dyn opencti_core::DesktopInterface) -> opencti_core::Result<()> {
/// use opencti_core::DesktopInterfaceExt;
/// desk.login().await?;
/// desk.ready().await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DesktopInterfaceExt: DesktopInterface {
    /// Logs the agent in.
    async fn login(&self) -> Result<Confirmation> {
        self.execute(Command::Login {}).await
    }

    /// Logs the agent out.
    async fn logout(&self, reason: Option<ReasonCode>) -> Result<Confirmation> {
        self.execute(Command::Logout { reason }).await
    }

    /// Becomes ready for ACD calls.
    async fn ready(&self) -> Result<Confirmation> {
        self.execute(Command::SetAgentState {
            state: ChosenState::Ready,
            after_call: false,
        })
        .await
    }

    /// Becomes not ready, with an optional reason.
    async fn not_ready(&self, reason: Option<ReasonCode>) -> Result<Confirmation> {
        self.execute(Command::SetAgentState {
            state: ChosenState::NotReady { reason },
            after_call: false,
        })
        .await
    }

    /// Places a call.
    async fn make_call(&self, to: Dialable) -> Result<Confirmation> {
        self.execute(Command::MakeCall {
            to,
            data: CallData::new(),
        })
        .await
    }

    /// Answers an offered call.
    async fn answer(&self, call: CallId) -> Result<Confirmation> {
        self.execute(Command::Answer { call }).await
    }

    /// Rejects an offered call.
    async fn reject(&self, call: CallId) -> Result<Confirmation> {
        self.execute(Command::Reject { call }).await
    }

    /// Hangs up a call.
    async fn hangup(&self, call: CallId) -> Result<Confirmation> {
        self.execute(Command::Hangup { call }).await
    }

    /// Holds a call.
    async fn hold(&self, call: CallId) -> Result<Confirmation> {
        self.execute(Command::Hold { call }).await
    }

    /// Retrieves a held call.
    async fn retrieve(&self, call: CallId) -> Result<Confirmation> {
        self.execute(Command::Retrieve { call }).await
    }

    /// Consults about a call.
    async fn consult(&self, call: CallId, to: Dialable) -> Result<Confirmation> {
        self.execute(Command::Consult { call, to }).await
    }

    /// Transfers a call without consulting.
    async fn blind_transfer(&self, call: CallId, to: Dialable) -> Result<Confirmation> {
        self.execute(Command::BlindTransfer { call, to }).await
    }

    /// Completes a transfer from a consult call.
    async fn complete_transfer(&self, consult: CallId) -> Result<Confirmation> {
        self.execute(Command::CompleteTransfer { call: consult })
            .await
    }

    /// Completes a conference from a consult call.
    async fn complete_conference(&self, consult: CallId) -> Result<Confirmation> {
        self.execute(Command::CompleteConference { call: consult })
            .await
    }

    /// Drops a party from a conference.
    async fn drop_party(&self, call: CallId, party: PartyId) -> Result<Confirmation> {
        self.execute(Command::DropParty { call, party }).await
    }

    /// Sends DTMF digits.
    async fn send_dtmf(&self, call: CallId, digits: DtmfDigits) -> Result<Confirmation> {
        self.execute(Command::SendDtmf { call, digits }).await
    }

    /// Ends wrap-up.
    async fn complete_wrap_up(&self, disposition: Option<ReasonCode>) -> Result<Confirmation> {
        self.execute(Command::CompleteWrapUp { disposition }).await
    }
}

impl<T: DesktopInterface + ?Sized> DesktopInterfaceExt for T {}

/// A shared desktop is a desktop: `Arc<dyn DesktopInterface>` (or an `Arc` of any
/// implementation) goes wherever one is taken by value.
#[async_trait]
impl<T: DesktopInterface + ?Sized> DesktopInterface for std::sync::Arc<T> {
    async fn execute(&self, command: Command) -> Result<Confirmation> {
        (**self).execute(command).await
    }

    fn subscribe(&self) -> EventStream {
        (**self).subscribe()
    }

    fn snapshot(&self) -> Snapshot {
        (**self).snapshot()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet {
        (**self).allowed_commands(call)
    }
}
