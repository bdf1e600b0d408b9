//! The channel and bridge tracker: Asterisk's live channels keyed by `Uniqueid`, and its
//! bridges with their members, kept up to date from AMI events.
//!
//! Pure state, no I/O and nothing canonical: [`ChannelTracker::apply`] takes one event,
//! updates the channels and bridges it names, and says what changed as a [`Change`] that
//! borrows from the message (no allocation for events about known channels). The
//! translator ([`crate::Translator`]) decides what that means for the agent's desk.
//!
//! Rules that come from the Asterisk 22 captures:
//! - a channel lives from `Newchannel` to `Hangup`; its `Uniqueid` never changes, its
//!   name can (`Rename`) and so can its `Linkedid` (the tracker follows it);
//! - `BridgeEnter`/`BridgeLeave` say who talks to whom; `BridgeMerge` moves everyone;
//! - state regressions are ignored (`ChannelState` only moves forward for a channel), so
//!   that events re-applied after a rebuild from `CoreShowChannels` do no harm;
//! - entries are removed when the channel hangs up or the bridge is destroyed, so the
//!   tracker's size follows the number of live channels, never the number of events.

use crate::device::{LineId, Owners};
use crate::message::{Known, Message};

pub use bridges::Bridge;
pub use change::Change;
pub use channel::Channel;
use channel::{set, Refresh, DEST, PLAIN};
pub(crate) use ids::same_text;
pub use ids::IdMap;

mod bridges;
mod change;
mod channel;
mod ids;

/// Asterisk's channel states (`ChannelState` header).
pub mod state {
    /// Channel is down and available.
    pub const DOWN: u8 = 0;
    /// The line is off hook, dialling (a phone placing a call).
    pub const RING: u8 = 4;
    /// The far end is alerting (or this channel is ringing a phone).
    pub const RINGING: u8 = 5;
    /// Answered.
    pub const UP: u8 = 6;
}

/// Asterisk's `<unknown>` placeholder counts as no value.
#[inline]
pub(crate) fn known(value: &str) -> Option<&str> {
    (!value.is_empty() && value != "<unknown>").then_some(value)
}

/// How many channels that hung up the tracker keeps for reuse: enough for the calls
/// ending around the same time, few enough that their text stays small.
const SPARE_CHANNELS: usize = 64;

/// Where the tracker keeps Asterisk's channels and bridges. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ChannelTracker {
    /// Boxed, so that a hangup hands the channel over without a copy, and a channel
    /// that hung up can be [recycled](ChannelTracker::recycle) for the next one.
    channels: IdMap<Box<str>, Box<Channel>>,
    /// Channels that hung up, kept for their allocations (at most [`SPARE_CHANNELS`]):
    /// the boxes too, which go back into `channels` as they are.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Channel>>,
    bridges: IdMap<Box<str>, Bridge>,
    owners: Owners,
    max_entries: usize,
    refused: u64,
}

impl ChannelTracker {
    /// An empty tracker that keeps at most `max_entries` channels (and as many bridges).
    pub fn new(max_entries: usize) -> Self {
        ChannelTracker {
            channels: IdMap::default(),
            bridges: IdMap::default(),
            owners: Owners::default(),
            spare: Vec::new(),
            max_entries: max_entries.max(1),
            refused: 0,
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.channels.clear();
        self.bridges.clear();
    }

    /// `interface` is `line`'s device from now on (its channels, live and future, are
    /// that line's). Returns `false` if it is another line's already.
    pub(crate) fn add_owner(&mut self, interface: &str, line: LineId) -> bool {
        if !self.owners.insert(interface, line) {
            return false;
        }
        self.reassign_owners();
        true
    }

    /// `interface` is no line's device any more.
    pub(crate) fn remove_owner(&mut self, interface: &str) {
        self.owners.remove(interface);
        self.reassign_owners();
    }

    fn reassign_owners(&mut self) {
        for channel in self.channels.values_mut() {
            channel.owner = self.owners.of_channel(&channel.name);
        }
    }

    /// The line whose device is `interface` (a queue member's `Interface`).
    pub(crate) fn owner_of_interface(&mut self, interface: &str) -> Option<LineId> {
        self.owners.of_interface(interface)
    }

    /// The line that holds channel `uniqueid` on music on hold is `line` (or none).
    pub(crate) fn set_held_by(&mut self, uniqueid: &str, line: Option<LineId>) {
        if let Some(channel) = self.channels.get_mut(uniqueid) {
            channel.held_by = line;
        }
    }

    /// The channel with this `Uniqueid`.
    pub fn channel(&self, uniqueid: &str) -> Option<&Channel> {
        self.channels.get(uniqueid).map(|c| &**c)
    }

    /// The bridge with this id.
    pub fn bridge(&self, id: &str) -> Option<&Bridge> {
        self.bridges.get(id)
    }

    /// Every live channel, in no particular order.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values().map(|c| &**c)
    }

    /// Takes back a channel that hung up (from [`Change::Hungup`]), once the
    /// translation is done with it, to reuse its allocations for a new channel.
    pub(crate) fn recycle(&mut self, channel: Box<Channel>) {
        if self.spare.len() < SPARE_CHANNELS {
            self.spare.push(channel);
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Number of live channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Number of live bridges.
    pub fn bridge_count(&self) -> usize {
        self.bridges.len()
    }

    /// New channels or bridges refused because the tracker was full.
    #[cfg(test)]
    pub fn refused(&self) -> u64 {
        self.refused
    }

    fn refuse(&mut self, what: &str) {
        if self.refused.is_multiple_of(10_000) {
            tracing::warn!(
                max = self.max_entries,
                refused = self.refused + 1,
                "AMI: the channel tracker is full; a new {what} is not tracked"
            );
        }
        self.refused += 1;
    }

    /// Applies one event; see [`Change`].
    pub fn apply<'m>(&mut self, msg: &'m Message) -> Change<'m> {
        let Some(event) = msg.event() else {
            return Change::None;
        };
        match event {
            "Newchannel" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) => match self.upsert(msg, &PLAIN, uniqueid, Refresh::Create) {
                    Some(_) => Change::ChannelCreated { uniqueid },
                    None => Change::None,
                },
                None => Change::None,
            },
            "Newstate" => {
                let Some(uniqueid) = msg.known(Known::Uniqueid) else {
                    return Change::None;
                };
                match self.upsert(msg, &PLAIN, uniqueid, Refresh::Progress) {
                    Some((from, to)) if to > from || (from == state::DOWN && to != from) => {
                        Change::StateChanged { uniqueid, from, to }
                    }
                    _ => Change::None,
                }
            }
            "NewCallerid" | "NewConnectedLine" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) if self.upsert(msg, &PLAIN, uniqueid, Refresh::Full).is_some() => {
                    Change::CallerIdChanged { uniqueid }
                }
                _ => Change::None,
            },
            "Rename" => {
                let (Some(uniqueid), Some(new)) = (msg.known(Known::Uniqueid), msg.get("Newname"))
                else {
                    return Change::None;
                };
                match self.channels.get_mut(uniqueid) {
                    Some(channel) => {
                        set(&mut channel.name, new);
                        channel.owner = self.owners.of_channel(&channel.name);
                        Change::Renamed { uniqueid }
                    }
                    None => Change::None,
                }
            }
            "DialBegin" | "DialState" | "DialEnd" => {
                let Some(dest) = msg.known(Known::DestUniqueid) else {
                    return Change::None;
                };
                let caller = msg.known(Known::Uniqueid).filter(|u| !u.is_empty());
                let begin = event == "DialBegin";
                let refresh = if begin {
                    Refresh::Create
                } else {
                    Refresh::Progress
                };
                if let Some(caller) = caller {
                    self.upsert(msg, &PLAIN, caller, refresh);
                }
                if self.upsert(msg, &DEST, dest, refresh).is_none() {
                    return Change::None;
                }
                let status = msg.known(Known::DialStatus).unwrap_or_default();
                match event {
                    "DialBegin" => {
                        if let Some(channel) = self.channels.get_mut(dest) {
                            channel.dialed_by = caller.map(Into::into);
                        }
                        Change::DialBegin {
                            caller,
                            dest,
                            dial_string: msg.known(Known::DialString).unwrap_or_default(),
                        }
                    }
                    "DialState" => Change::DialState {
                        caller,
                        dest,
                        status,
                    },
                    _ => Change::DialEnd {
                        caller,
                        dest,
                        status,
                    },
                }
            }
            "BridgeCreate" => {
                if let Some(id) = msg.known(Known::BridgeUniqueid) {
                    let kind = msg.known(Known::BridgeType).unwrap_or_default();
                    if let Some(bridge) = self.bridge_entry(id) {
                        set(&mut bridge.kind, kind);
                    }
                }
                Change::None
            }
            "BridgeEnter" => {
                let (Some(bridge), Some(uniqueid)) =
                    (msg.known(Known::BridgeUniqueid), msg.known(Known::Uniqueid))
                else {
                    return Change::None;
                };
                if self
                    .upsert(msg, &PLAIN, uniqueid, Refresh::Create)
                    .is_none()
                {
                    return Change::None;
                }
                if self.enter(bridge, uniqueid, msg.known(Known::BridgeType)) {
                    Change::BridgeEntered { bridge, uniqueid }
                } else {
                    Change::None
                }
            }
            "BridgeLeave" => {
                let (Some(bridge), Some(uniqueid)) =
                    (msg.known(Known::BridgeUniqueid), msg.known(Known::Uniqueid))
                else {
                    return Change::None;
                };
                self.upsert(msg, &PLAIN, uniqueid, Refresh::Progress);
                if self.leave(bridge, uniqueid) {
                    Change::BridgeLeft { bridge, uniqueid }
                } else {
                    Change::None
                }
            }
            "BridgeDestroy" => {
                if let Some(id) = msg.known(Known::BridgeUniqueid) {
                    if let Some(bridge) = self.bridges.remove(id) {
                        for member in bridge.members {
                            if let Some(channel) = self.channels.get_mut(&member) {
                                if channel.bridge.as_deref() == Some(id) {
                                    channel.bridge = None;
                                }
                            }
                        }
                    }
                }
                Change::None
            }
            "BridgeMerge" => {
                let (Some(from), Some(to)) =
                    (msg.get("FromBridgeUniqueid"), msg.get("ToBridgeUniqueid"))
                else {
                    return Change::None;
                };
                let members = self
                    .bridges
                    .get_mut(from)
                    .map(|b| std::mem::take(&mut b.members))
                    .unwrap_or_default();
                for member in members {
                    self.enter(to, &member, None);
                }
                Change::BridgeMerged { from, to }
            }
            "Hold" | "Unhold" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) => {
                    self.upsert(msg, &PLAIN, uniqueid, Refresh::Progress);
                    Change::Hold {
                        uniqueid,
                        on: event == "Hold",
                    }
                }
                None => Change::None,
            },
            "MusicOnHoldStart" | "MusicOnHoldStop" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) => {
                    let on = event == "MusicOnHoldStart";
                    if let Some(channel) = self.channels.get_mut(uniqueid) {
                        channel.music_on_hold = on;
                    }
                    Change::MusicOnHold { uniqueid, on }
                }
                None => Change::None,
            },
            "Hangup" => {
                let Some(uniqueid) = msg.known(Known::Uniqueid) else {
                    return Change::None;
                };
                let Some(mut channel) = self.channels.remove(uniqueid) else {
                    return Change::None;
                };
                let bridge = channel.bridge.take();
                if let Some(id) = &bridge {
                    if let Some(b) = self.bridges.get_mut(id) {
                        b.members.retain(|m| &**m != uniqueid);
                        if b.members.is_empty() {
                            self.bridges.remove(id);
                        }
                    }
                }
                let cause = msg
                    .known(Known::Cause)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                Change::Hungup {
                    channel,
                    bridge,
                    cause,
                }
            }
            "BlindTransfer" => {
                if msg.get("Result") != Some("Success") {
                    return Change::None;
                }
                match msg.get("TransfererUniqueid") {
                    Some(transferer) => Change::BlindTransfer {
                        transferer,
                        extension: msg.get("Extension").unwrap_or_default(),
                    },
                    None => Change::None,
                }
            }
            "AttendedTransfer" => {
                if msg.get("Result") != Some("Success") {
                    return Change::None;
                }
                match (
                    msg.get("OrigTransfererUniqueid"),
                    msg.get("SecondTransfererUniqueid"),
                ) {
                    (Some(orig_transferer), Some(second_transferer)) => Change::AttendedTransfer {
                        orig_transferer,
                        second_transferer,
                        target: msg.get("TransferTargetUniqueid"),
                    },
                    _ => Change::None,
                }
            }
            "DTMFEnd" => match (msg.known(Known::Uniqueid), msg.get("Digit")) {
                (Some(uniqueid), Some(digit)) => Change::Dtmf {
                    uniqueid,
                    digit,
                    received: msg.get("Direction") == Some("Received"),
                },
                _ => Change::None,
            },
            "MixMonitorStart" | "MixMonitorStop" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) => Change::Recording {
                    uniqueid,
                    on: event == "MixMonitorStart",
                },
                None => Change::None,
            },
            _ => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lifecycle_and_bounds() {
        let mut t = ChannelTracker::new(2);
        let a = msg("Event: Newchannel\nChannel: PJSIP/1-1\nChannelState: 0\nUniqueid: 1.1\nLinkedid: 1.1\n");
        assert_eq!(t.apply(&a), Change::ChannelCreated { uniqueid: "1.1" });
        let b = msg("Event: Newchannel\nChannel: PJSIP/2-1\nChannelState: 4\nUniqueid: 1.2\nLinkedid: 1.1\n");
        assert!(matches!(t.apply(&b), Change::ChannelCreated { .. }));
        let c = msg("Event: Newchannel\nChannel: PJSIP/3-1\nUniqueid: 1.3\n");
        assert_eq!(t.apply(&c), Change::None, "full");
        assert_eq!(t.refused(), 1);
        let up = msg("Event: Newstate\nChannelState: 6\nUniqueid: 1.1\n");
        assert_eq!(
            t.apply(&up),
            Change::StateChanged {
                uniqueid: "1.1",
                from: 0,
                to: 6
            }
        );
        let back = msg("Event: Newstate\nChannelState: 5\nUniqueid: 1.1\n");
        assert_eq!(t.apply(&back), Change::None, "no regression");
        for u in ["1.1", "1.2"] {
            let enter = msg(&format!(
                "Event: BridgeEnter\nBridgeUniqueid: b1\nBridgeType: basic\nUniqueid: {u}\n"
            ));
            assert!(matches!(t.apply(&enter), Change::BridgeEntered { .. }));
        }
        let peers: Vec<_> = t.peers("1.1").map(|c| c.name.clone()).collect();
        assert_eq!(peers, ["PJSIP/2-1"]);
        let hangup = msg("Event: Hangup\nUniqueid: 1.1\nCause: 16\n");
        match t.apply(&hangup) {
            Change::Hungup {
                channel,
                bridge,
                cause,
            } => {
                assert_eq!(&*channel.uniqueid, "1.1");
                assert_eq!(bridge.as_deref(), Some("b1"));
                assert_eq!(cause, 16);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.peers("1.2").count(), 0);
        assert_eq!(
            t.apply(&msg("Event: BridgeDestroy\nBridgeUniqueid: b1\n")),
            Change::None
        );
        assert_eq!(t.bridge_count(), 0);
        assert_eq!(t.channel("1.2").and_then(|c| c.bridge.clone()), None);
    }
}
