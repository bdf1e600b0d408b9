//! Bridges: who talks to whom. A bridge lives while it has members (or until its
//! `BridgeDestroy`); a channel is in at most one.

use crate::message::{Known, Message};

use super::channel::set;
use super::{Channel, ChannelTracker};

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

impl ChannelTracker {
    /// The other members of the bridge `uniqueid` is in.
    pub fn peers<'a>(&'a self, uniqueid: &'a str) -> impl Iterator<Item = &'a Channel> + 'a {
        self.channels
            .get(uniqueid)
            .and_then(|c| c.bridge.as_deref())
            .and_then(|b| self.bridges.get(b))
            .into_iter()
            .flat_map(|b| b.members.iter())
            .filter(move |m| &***m != uniqueid)
            .filter_map(|m| self.channels.get(m).map(|c| &**c))
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

    pub(super) fn bridge_entry(&mut self, id: &str) -> Option<&mut Bridge> {
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
    pub(super) fn enter(&mut self, bridge: &str, uniqueid: &str, kind: Option<&str>) -> bool {
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
    pub(super) fn leave(&mut self, bridge: &str, uniqueid: &str) -> bool {
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
