//! What one event changed in the tracker: the [`Change`] the translation reads.

use super::Channel;

/// What one event changed. Borrows the event's text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change<'m> {
    /// Nothing the tracker follows.
    None,
    /// A channel appeared (`Newchannel`, or a first event about an unknown channel).
    ChannelCreated {
        /// Its `Uniqueid`.
        uniqueid: &'m str,
    },
    /// A channel's state moved forward.
    StateChanged {
        /// Its `Uniqueid`.
        uniqueid: &'m str,
        /// The state before.
        from: u8,
        /// The state now.
        to: u8,
    },
    /// Caller id or connected line changed (`NewCallerid`, `NewConnectedLine`).
    CallerIdChanged {
        /// Its `Uniqueid`.
        uniqueid: &'m str,
    },
    /// A channel was renamed.
    Renamed {
        /// Its `Uniqueid`.
        uniqueid: &'m str,
    },
    /// `DialBegin`: `caller` (absent for an `Originate`) started dialling `dest`.
    DialBegin {
        /// The dialling channel's `Uniqueid`, if any.
        caller: Option<&'m str>,
        /// The dialled channel's `Uniqueid`.
        dest: &'m str,
        /// `DialString`.
        dial_string: &'m str,
    },
    /// `DialState`: progress of a dial (`RINGING`, `PROCEEDING`, ...).
    DialState {
        /// The dialling channel, if any.
        caller: Option<&'m str>,
        /// The dialled channel.
        dest: &'m str,
        /// `DialStatus`.
        status: &'m str,
    },
    /// `DialEnd` with its `DialStatus` (`ANSWER`, `BUSY`, `NOANSWER`, `CANCEL`, ...).
    DialEnd {
        /// The dialling channel, if any.
        caller: Option<&'m str>,
        /// The dialled channel.
        dest: &'m str,
        /// `DialStatus`.
        status: &'m str,
    },
    /// A channel entered a bridge.
    BridgeEntered {
        /// `BridgeUniqueid`.
        bridge: &'m str,
        /// The channel.
        uniqueid: &'m str,
    },
    /// A channel left a bridge.
    BridgeLeft {
        /// `BridgeUniqueid`.
        bridge: &'m str,
        /// The channel.
        uniqueid: &'m str,
    },
    /// Every member of `from` moved into `to`.
    BridgeMerged {
        /// `FromBridgeUniqueid`.
        from: &'m str,
        /// `ToBridgeUniqueid`.
        to: &'m str,
    },
    /// `Hold` (the channel put its call on hold) or `Unhold`.
    Hold {
        /// The channel.
        uniqueid: &'m str,
        /// `true` for `Hold`, `false` for `Unhold`.
        on: bool,
    },
    /// `MusicOnHoldStart` / `MusicOnHoldStop`.
    MusicOnHold {
        /// The channel.
        uniqueid: &'m str,
        /// Started or stopped.
        on: bool,
    },
    /// The channel hung up and was removed; here is its last state.
    Hungup {
        /// The removed channel.
        channel: Box<Channel>,
        /// The bridge it was still in, if any (it has been removed from it).
        bridge: Option<Box<str>>,
        /// `Cause` (Q.850).
        cause: u16,
    },
    /// `BlindTransfer` with `Result: Success`.
    BlindTransfer {
        /// `TransfererUniqueid`.
        transferer: &'m str,
        /// `Extension` the transferee was sent to.
        extension: &'m str,
    },
    /// `AttendedTransfer` with `Result: Success`.
    AttendedTransfer {
        /// `OrigTransfererUniqueid`.
        orig_transferer: &'m str,
        /// `SecondTransfererUniqueid`.
        second_transferer: &'m str,
        /// `TransferTargetUniqueid`, if present.
        target: Option<&'m str>,
    },
    /// `DTMFEnd`.
    Dtmf {
        /// The channel.
        uniqueid: &'m str,
        /// `Digit`.
        digit: &'m str,
        /// `Direction: Received` (from the channel's endpoint) rather than `Sent`.
        received: bool,
    },
    /// `MixMonitorStart` / `MixMonitorStop`.
    Recording {
        /// The channel.
        uniqueid: &'m str,
        /// Started or stopped.
        on: bool,
    },
}
