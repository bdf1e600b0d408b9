//! Channels: one live channel's snapshot, refreshed from the headers of each event
//! about it.

use crate::device::LineId;
use crate::message::{Known, Message};

use super::ids::same_text;
use super::{state, ChannelTracker};

/// One live channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `Uniqueid`: the key, fixed for the channel's life.
    pub uniqueid: String,
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
    pub(super) fn new(uniqueid: &str) -> Channel {
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

    /// Makes a channel that hung up the new channel `uniqueid`, as [`Channel::new`]
    /// would, keeping its text's allocations for the new values.
    fn reset(&mut self, uniqueid: &str) {
        set(&mut self.uniqueid, uniqueid);
        for text in [
            &mut self.name,
            &mut self.linkedid,
            &mut self.caller_num,
            &mut self.caller_name,
            &mut self.connected_num,
            &mut self.connected_name,
            &mut self.context,
            &mut self.exten,
            &mut self.application,
        ] {
            text.clear();
        }
        self.state = state::DOWN;
        self.bridge = None;
        self.dialed_by = None;
        self.music_on_hold = false;
        self.left_bridge = None;
        self.owner = None;
        self.held_by = None;
    }
}

/// Which channel snapshot of an event to read: the plain one or a prefixed one
/// (`DestChannel`, `DestUniqueid`, ...).
pub(super) struct Keys {
    prefix: &'static str,
    /// The keys are the `Dest` variants of the [`Known`] snapshot keys.
    dest: bool,
}

pub(super) const PLAIN: Keys = Keys {
    prefix: "",
    dest: false,
};

pub(super) const DEST: Keys = Keys {
    prefix: "Dest",
    dest: true,
};

/// How much of a channel's snapshot an event refreshes. Caller and connected-line
/// details only change with the events that announce them (and are needed when a
/// channel appears or joins); other events refresh only the state, the dialplan
/// position and the `Linkedid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    /// Every field, creating the channel if it is unknown: only events that start or
    /// join a call may (a `NewCallerid` after the `Hangup`, as Asterisk sends, must not
    /// bring a channel back).
    Create,
    /// Every field of a known channel (`NewCallerid`, `NewConnectedLine`).
    Full,
    /// The state, the dialplan position and the `Linkedid` of a known channel.
    Progress,
}

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

/// Overwrites `field` with `value` if they differ, reusing its allocation. Returns
/// whether they differed.
#[inline]
pub(super) fn set(field: &mut String, value: &str) -> bool {
    let differ = !same_text(field, value);
    if differ {
        field.clear();
        field.push_str(value);
    }
    differ
}

impl ChannelTracker {
    /// Adds or refreshes a channel from a `CoreShowChannel` list item (used to rebuild
    /// after a (re)connect); its `BridgeId` puts it in that bridge.
    pub fn insert_listed(&mut self, item: &Message) {
        let Some(uniqueid) = item.known(Known::Uniqueid).filter(|u| !u.is_empty()) else {
            return;
        };
        if self
            .upsert(item, &PLAIN, uniqueid, Refresh::Create)
            .is_none()
        {
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

    /// Refreshes the channel `uniqueid` from the snapshot headers `keys`, as much as
    /// `refresh` says. Returns its state before and after, or `None` if it is unknown (and
    /// not to be created) or the tracker is full.
    pub(super) fn upsert(
        &mut self,
        msg: &Message,
        keys: &Keys,
        uniqueid: &str,
        refresh: Refresh,
    ) -> Option<(u8, u8)> {
        let create = refresh == Refresh::Create;
        let full = refresh != Refresh::Progress;
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
                let channel = match self.spare.pop() {
                    Some(mut channel) => {
                        channel.reset(uniqueid);
                        channel
                    }
                    None => Box::new(Channel::new(uniqueid)),
                };
                self.channels.entry(uniqueid.into()).or_insert(channel)
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
                    named = set(&mut channel.name, value);
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
                    // Any of the repeated names may differ from the one before.
                    named |= !same_text(&channel.name, value);
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
    fn a_rename_in_repeated_channel_headers_finds_the_new_owner() {
        let mut t = ChannelTracker::new(10);
        assert!(t.add_owner("PJSIP/2", 7));
        t.apply(&msg(
            "Event: Newchannel\nChannel: PJSIP/1-1\nUniqueid: 1.1\n",
        ));
        assert_eq!(t.channel("1.1").and_then(|c| c.owner), None);
        // Renamed to the owned device's channel, the same name given twice.
        t.apply(&msg(
            "Event: NewCallerid\nUniqueid: 1.1\nChannel: PJSIP/2-1\nChannel: PJSIP/2-1\n",
        ));
        let c = t.channel("1.1").expect("tracked");
        assert_eq!((c.name.as_str(), c.owner), ("PJSIP/2-1", Some(7)));
    }
}
