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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::device::{LineId, Owners};
use crate::message::{Known, Message};

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

/// One live channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `Uniqueid`: the key, fixed for the channel's life.
    pub uniqueid: Box<str>,
    /// `Channel`: the name (`PJSIP/1001-0000000a`, `Local/1001@agents-00000003;1`).
    pub name: String,
    /// `Linkedid`: ties the legs of one call; may change.
    pub linkedid: String,
    /// `ChannelState` (see [`state`]).
    pub state: u8,
    /// `CallerIDNum`.
    pub caller_num: String,
    /// `CallerIDName`.
    pub caller_name: String,
    /// `ConnectedLineNum`.
    pub connected_num: String,
    /// `ConnectedLineName`.
    pub connected_name: String,
    /// `Context`: where the channel is in the dialplan.
    pub context: String,
    /// `Exten`.
    pub exten: String,
    /// The dialplan application (known from `CoreShowChannel` items).
    pub application: String,
    /// The bridge the channel is in, if any.
    pub bridge: Option<Box<str>>,
    /// The `Uniqueid` of the channel that dialled this one (`DialBegin`), if any.
    pub dialed_by: Option<Box<str>>,
    /// Music on hold is playing to the channel.
    pub music_on_hold: bool,
    /// The bridge the channel left last, if it is in none now: who it talked to, so
    /// that its hangup reaches their lines.
    pub left_bridge: Option<Box<str>>,
    /// The line whose device this channel is, if any (from its name).
    pub(crate) owner: Option<LineId>,
    /// The line that holds this channel (a party it redirected to music on hold).
    pub(crate) held_by: Option<LineId>,
}

impl Channel {
    fn new(uniqueid: &str) -> Channel {
        Channel {
            uniqueid: uniqueid.into(),
            name: String::new(),
            linkedid: String::new(),
            state: state::DOWN,
            caller_num: String::new(),
            caller_name: String::new(),
            connected_num: String::new(),
            connected_name: String::new(),
            context: String::new(),
            exten: String::new(),
            application: String::new(),
            bridge: None,
            dialed_by: None,
            music_on_hold: false,
            left_bridge: None,
            owner: None,
            held_by: None,
        }
    }
}

/// One bridge and the `Uniqueid`s of its members, in the order they entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// `BridgeUniqueid`.
    pub id: Box<str>,
    /// `BridgeType` (`basic`, `holding`, `parking`, `base` for ConfBridge).
    pub kind: String,
    /// Members' `Uniqueid`s.
    pub members: Vec<Box<str>>,
}

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

/// Which channel snapshot of an event to read: the plain one or a prefixed one
/// (`DestChannel`, `DestUniqueid`, ...).
struct Keys {
    prefix: &'static str,
    /// The keys are the `Dest` variants of the [`Known`] snapshot keys.
    dest: bool,
}

const PLAIN: Keys = Keys {
    prefix: "",
    dest: false,
};

const DEST: Keys = Keys {
    prefix: "Dest",
    dest: true,
};

/// `key` without `prefix` (ASCII case-insensitive), if it starts with it.
#[inline]
fn strip_prefix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(key);
    }
    let head = key.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        key.get(prefix.len()..)
    } else {
        None
    }
}

/// Header names compare ASCII case-insensitively; Asterisk sends them in one case, so
/// the exact comparison usually decides.
#[inline]
fn same(key: &str, name: &str) -> bool {
    key == name || key.eq_ignore_ascii_case(name)
}

/// Overwrites `field` with `value` if they differ, reusing its allocation.
#[inline]
fn set(field: &mut String, value: &str) {
    if field != value {
        field.clear();
        field.push_str(value);
    }
}

/// Asterisk's `<unknown>` placeholder counts as no value.
#[inline]
pub(crate) fn known(value: &str) -> Option<&str> {
    (!value.is_empty() && value != "<unknown>").then_some(value)
}

/// FNV-1a: ids are short strings from Asterisk, and SipHash's protection against
/// collision flooding costs more than it buys for a map bounded by `max_entries`.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by Asterisk ids, with [`Fnv`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Where the tracker keeps Asterisk's channels and bridges. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ChannelTracker {
    channels: IdMap<Box<str>, Channel>,
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
        self.channels.get(uniqueid)
    }

    /// The bridge with this id.
    pub fn bridge(&self, id: &str) -> Option<&Bridge> {
        self.bridges.get(id)
    }

    /// Every live channel, in no particular order.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
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

    /// The other members of the bridge `uniqueid` is in.
    pub fn peers<'a>(&'a self, uniqueid: &'a str) -> impl Iterator<Item = &'a Channel> + 'a {
        self.channels
            .get(uniqueid)
            .and_then(|c| c.bridge.as_deref())
            .and_then(|b| self.bridges.get(b))
            .into_iter()
            .flat_map(|b| b.members.iter())
            .filter(move |m| &***m != uniqueid)
            .filter_map(|m| self.channels.get(m))
    }

    /// Adds or refreshes a channel from a `CoreShowChannel` list item (used to rebuild
    /// after a (re)connect); its `BridgeId` puts it in that bridge.
    pub fn insert_listed(&mut self, item: &Message) {
        let Some(uniqueid) = item.known(Known::Uniqueid).filter(|u| !u.is_empty()) else {
            return;
        };
        if self.upsert(item, &PLAIN, uniqueid, true).is_none() {
            return;
        }
        if let Some(channel) = self.channels.get_mut(uniqueid) {
            if let Some(state) = item.known(Known::ChannelState).and_then(|s| s.parse().ok()) {
                channel.state = state;
            }
            if let Some(app) = item.get("Application") {
                set(&mut channel.application, app);
            }
        }
        if let Some(bridge) = item.get("BridgeId").filter(|b| !b.is_empty()) {
            self.enter(bridge, uniqueid, None);
        }
    }

    /// Adds a bridge from a `BridgeListItem` (or refreshes its type).
    pub fn insert_listed_bridge(&mut self, item: &Message) {
        if let Some(id) = item.known(Known::BridgeUniqueid).filter(|b| !b.is_empty()) {
            let kind = item.known(Known::BridgeType).unwrap_or_default();
            if let Some(bridge) = self.bridge_entry(id) {
                set(&mut bridge.kind, kind);
            }
        }
    }

    /// Applies one event; see [`Change`].
    pub fn apply<'m>(&mut self, msg: &'m Message) -> Change<'m> {
        let Some(event) = msg.event() else {
            return Change::None;
        };
        match event {
            "Newchannel" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) => match self.upsert(msg, &PLAIN, uniqueid, true) {
                    Some(_) => Change::ChannelCreated { uniqueid },
                    None => Change::None,
                },
                None => Change::None,
            },
            "Newstate" => {
                let Some(uniqueid) = msg.known(Known::Uniqueid) else {
                    return Change::None;
                };
                match self.upsert(msg, &PLAIN, uniqueid, false) {
                    Some((from, to)) if to > from || (from == state::DOWN && to != from) => {
                        Change::StateChanged { uniqueid, from, to }
                    }
                    _ => Change::None,
                }
            }
            "NewCallerid" | "NewConnectedLine" => match msg.known(Known::Uniqueid) {
                Some(uniqueid) if self.upsert(msg, &PLAIN, uniqueid, false).is_some() => {
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
                if let Some(caller) = caller {
                    self.upsert(msg, &PLAIN, caller, begin);
                }
                if self.upsert(msg, &DEST, dest, begin).is_none() {
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
                if self.upsert(msg, &PLAIN, uniqueid, true).is_none() {
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
                self.upsert(msg, &PLAIN, uniqueid, false);
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
                    self.upsert(msg, &PLAIN, uniqueid, false);
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
                    channel: Box::new(channel),
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

    /// Refreshes the channel `uniqueid` from the snapshot headers `keys`, creating it if
    /// `create` (only events that start or join a call may: a `NewCallerid` after the
    /// `Hangup`, as Asterisk sends, must not bring a channel back). Returns its state
    /// before and after, or `None` if it is unknown or the tracker is full.
    fn upsert(
        &mut self,
        msg: &Message,
        keys: &Keys,
        uniqueid: &str,
        create: bool,
    ) -> Option<(u8, u8)> {
        // Caller and connected-line details only change with the events that announce
        // them (and are needed when a channel appears or joins); other events refresh
        // only the state, the dialplan position and the Linkedid.
        let full = create
            || matches!(
                msg.event(),
                Some("NewCallerid" | "NewConnectedLine" | "BridgeEnter" | "DialBegin")
            );
        if uniqueid.is_empty() {
            return None;
        }
        let channel = match self.channels.get_mut(uniqueid) {
            Some(channel) => channel,
            None if !create => return None,
            None => {
                if self.channels.len() >= self.max_entries {
                    self.refuse("channel");
                    return None;
                }
                self.channels
                    .entry(uniqueid.into())
                    .or_insert_with(|| Channel::new(uniqueid))
            }
        };
        let before = channel.state;
        let mut named = false;
        if !msg.repeats_known() {
            // Each key at most once: its index entry is the whole story.
            let get = |key: Known| msg.known(key.dest_if(keys.dest));
            if let Some(value) = get(Known::Exten) {
                set(&mut channel.exten, value);
            }
            if full {
                if let Some(value) = get(Known::Channel) {
                    named = channel.name != value;
                    set(&mut channel.name, value);
                }
            }
            if let Some(value) = get(Known::Context) {
                set(&mut channel.context, value);
            }
            if let Some(value) = get(Known::Linkedid) {
                set(&mut channel.linkedid, value);
            }
            if full {
                let caller = [
                    (Known::CallerIdNum, &mut channel.caller_num),
                    (Known::CallerIdName, &mut channel.caller_name),
                    (Known::ConnectedLineNum, &mut channel.connected_num),
                    (Known::ConnectedLineName, &mut channel.connected_name),
                ];
                for (key, field) in caller {
                    if let Some(value) = get(key) {
                        set(field, value);
                    }
                }
            }
            if let Some(state) = get(Known::ChannelState).and_then(|v| v.parse::<u8>().ok()) {
                // Only forward: a re-applied old event must not undo progress.
                if state > channel.state || channel.state == state::DOWN {
                    channel.state = state;
                }
            }
            if named {
                channel.owner = self.owners.of_channel(&channel.name);
            }
            return Some((before, channel.state));
        }
        let prefix = keys.prefix;
        for (key, value) in msg.headers() {
            // One pass over the headers; a key is classified by its length first, so
            // most keys are ruled out without comparing their text.
            let Some(rest) = strip_prefix(key, prefix) else {
                continue;
            };
            let field = match rest.len() {
                5 if same(rest, "Exten") => &mut channel.exten,
                7 if full && same(rest, "Channel") => {
                    named = channel.name != value;
                    &mut channel.name
                }
                7 if same(rest, "Context") => &mut channel.context,
                8 if same(rest, "Linkedid") => &mut channel.linkedid,
                11 if full && same(rest, "CallerIDNum") => &mut channel.caller_num,
                12 if full && same(rest, "CallerIDName") => &mut channel.caller_name,
                12 if same(rest, "ChannelState") => {
                    if let Ok(state) = value.parse::<u8>() {
                        // Only forward: a re-applied old event must not undo progress.
                        if state > channel.state || channel.state == state::DOWN {
                            channel.state = state;
                        }
                    }
                    continue;
                }
                16 if full && same(rest, "ConnectedLineNum") => &mut channel.connected_num,
                17 if full && same(rest, "ConnectedLineName") => &mut channel.connected_name,
                _ => continue,
            };
            set(field, value);
        }
        if named {
            channel.owner = self.owners.of_channel(&channel.name);
        }
        Some((before, channel.state))
    }

    fn bridge_entry(&mut self, id: &str) -> Option<&mut Bridge> {
        if !self.bridges.contains_key(id) {
            if self.bridges.len() >= self.max_entries {
                self.refuse("bridge");
                return None;
            }
            self.bridges.insert(
                id.into(),
                Bridge {
                    id: id.into(),
                    kind: String::new(),
                    members: Vec::new(),
                },
            );
        }
        self.bridges.get_mut(id)
    }

    /// Puts `uniqueid` in `bridge` (leaving any other). Returns whether it was not there.
    fn enter(&mut self, bridge: &str, uniqueid: &str, kind: Option<&str>) -> bool {
        let previous = match self.channels.get_mut(uniqueid) {
            Some(channel) => {
                if channel.bridge.as_deref() == Some(bridge) {
                    return false;
                }
                channel.left_bridge = None;
                channel.bridge.replace(bridge.into())
            }
            None => return false,
        };
        if let Some(old) = previous {
            if let Some(b) = self.bridges.get_mut(&old) {
                b.members.retain(|m| &**m != uniqueid);
                if b.members.is_empty() {
                    self.bridges.remove(&old);
                }
            }
        }
        match self.bridge_entry(bridge) {
            Some(b) => {
                if let Some(kind) = kind {
                    set(&mut b.kind, kind);
                }
                if !b.members.iter().any(|m| &**m == uniqueid) {
                    b.members.push(uniqueid.into());
                }
                true
            }
            None => {
                if let Some(channel) = self.channels.get_mut(uniqueid) {
                    channel.bridge = None;
                }
                false
            }
        }
    }

    /// Takes `uniqueid` out of `bridge`. Returns whether it was in it.
    fn leave(&mut self, bridge: &str, uniqueid: &str) -> bool {
        let mut was_in = false;
        if let Some(b) = self.bridges.get_mut(bridge) {
            let before = b.members.len();
            b.members.retain(|m| &**m != uniqueid);
            was_in = b.members.len() != before;
            if b.members.is_empty() {
                // An empty bridge is forgotten even if its BridgeDestroy never comes
                // (filtered, lost): a member entering again recreates it.
                self.bridges.remove(bridge);
            }
        }
        if let Some(channel) = self.channels.get_mut(uniqueid) {
            if channel.bridge.as_deref() == Some(bridge) {
                channel.left_bridge = channel.bridge.take();
                was_in = true;
            }
        }
        was_in
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn repeated_snapshot_headers_are_applied_in_order() {
        // Each key once: read through the message's index.
        let mut t = ChannelTracker::new(10);
        let once = msg(
            "Event: Newchannel\nChannel: PJSIP/1-1\nChannelState: 4\nUniqueid: 1.1\n\
                        Exten: 100\nContext: in\nCallerIDNum: 7\nDestExten: 9\n",
        );
        t.apply(&once);
        let c = t.channel("1.1").expect("tracked");
        assert_eq!(
            (c.exten.as_str(), c.context.as_str(), c.caller_num.as_str()),
            ("100", "in", "7")
        );
        assert_eq!(c.state, state::RING);
        // Repeated keys: every one is applied in turn, as Asterisk sent them.
        let twice = msg("Event: Newstate\nUniqueid: 1.1\nExten: 200\nexten: 300\n\
                         ChannelState: 6\nChannelState: 5\nLinkedid: 9.9\n");
        assert!(twice.repeats_known());
        t.apply(&twice);
        let c = t.channel("1.1").expect("tracked");
        assert_eq!((c.exten.as_str(), c.linkedid.as_str()), ("300", "9.9"));
        assert_eq!(c.state, state::UP, "never backwards");
        // The Dest snapshot of a dial.
        let dial = msg(
            "Event: DialBegin\nUniqueid: 1.1\nDestUniqueid: 1.2\nDestChannel: PJSIP/2-1\n\
                        DestChannelState: 5\nDestExten: 555\nDestCallerIDNum: 2\nDialString: 2\n",
        );
        t.apply(&dial);
        let d = t.channel("1.2").expect("tracked");
        assert_eq!(
            (d.name.as_str(), d.exten.as_str(), d.caller_num.as_str()),
            ("PJSIP/2-1", "555", "2")
        );
        assert_eq!(d.state, state::RINGING);
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

    #[test]
    fn merge_moves_members() {
        let mut t = ChannelTracker::new(10);
        for (b, u) in [("A", "1"), ("A", "2"), ("B", "3")] {
            t.apply(&msg(&format!(
                "Event: BridgeEnter\nBridgeUniqueid: {b}\nUniqueid: {u}\n"
            )));
        }
        t.apply(&msg(
            "Event: BridgeMerge\nToBridgeUniqueid: A\nFromBridgeUniqueid: B\n",
        ));
        let members = t.bridge("A").map(|b| b.members.len());
        assert_eq!(members, Some(3));
        assert_eq!(t.peers("3").count(), 2);
    }
}
