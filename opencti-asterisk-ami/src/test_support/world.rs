//! The scripted Asterisk's model: channels, bridges and queue members, and the event
//! sequences of the captures that actions set off.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Chan {
    pub(super) uid: String,
    pub(super) name: String,
    pub(super) state: u8,
    pub(super) linkedid: String,
    pub(super) caller_num: String,
    pub(super) caller_name: String,
    pub(super) connected_num: String,
    pub(super) context: String,
    pub(super) exten: String,
    pub(super) app: String,
    pub(super) bridge: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) queue: String,
    pub(super) interface: String,
    pub(super) name: String,
    pub(super) paused: bool,
    pub(super) reason: String,
}

/// A caller waiting in a queue: its queue, `Uniqueid` and when it joined.
#[derive(Debug, Clone)]
pub(super) struct QueueCaller {
    pub(super) queue: String,
    pub(super) uid: String,
    pub(super) joined: tokio::time::Instant,
}

#[derive(Default)]
pub(super) struct World {
    pub(super) channels: HashMap<String, Chan>,
    pub(super) order: Vec<String>,
    pub(super) bridges: HashMap<String, Vec<String>>,
    pub(super) members: Vec<Member>,
    pub(super) next: u64,
    pub(super) conns: Vec<(u64, mpsc::UnboundedSender<Out>)>,
    pub(super) next_conn: u64,
    pub(super) accept_login: bool,
    pub(super) actions: Vec<String>,
    /// atxfer: transferer uid -> (home bridge, consult bridge, target uid, transferee uid)
    pub(super) atxfers: HashMap<String, (String, String, String, String)>,
    /// Ping answers are withheld (a stalled server).
    pub(super) mute_pings: bool,
    /// ConfBridge rooms: room name -> bridge id.
    pub(super) rooms: HashMap<String, String>,
    /// Callers waiting in queues, in the order they joined.
    pub(super) queue_callers: Vec<QueueCaller>,
}

pub(super) enum Out {
    /// Shared, so that one stream sent to several connections is not copied per
    /// connection.
    Bytes(bytes::Bytes),
    Close,
}

pub(super) fn state_desc(state: u8) -> &'static str {
    match state {
        0 => "Down",
        4 => "Ring",
        5 => "Ringing",
        6 => "Up",
        _ => "Unknown",
    }
}

pub(super) fn snapshot(prefix: &str, c: &Chan) -> String {
    format!(
        "{p}Channel: {}\r\n{p}ChannelState: {}\r\n{p}ChannelStateDesc: {}\r\n{p}CallerIDNum: {}\r\n{p}CallerIDName: {}\r\n{p}ConnectedLineNum: {}\r\n{p}ConnectedLineName: <unknown>\r\n{p}Language: en\r\n{p}AccountCode: \r\n{p}Context: {}\r\n{p}Exten: {}\r\n{p}Priority: 1\r\n{p}Uniqueid: {}\r\n{p}Linkedid: {}\r\n",
        c.name,
        c.state,
        state_desc(c.state),
        c.caller_num,
        c.caller_name,
        c.connected_num,
        c.context,
        c.exten,
        c.uid,
        c.linkedid,
        p = prefix
    )
}

/// A ConfBridge room's bridge, as in capture 18.
pub(super) fn conference_block(id: &str, room: &str, n: usize) -> String {
    format!(
        "BridgeUniqueid: {id}\r\nBridgeType: base\r\nBridgeTechnology: softmix\r\nBridgeCreator: ConfBridge\r\nBridgeName: {room}\r\nBridgeNumChannels: {n}\r\nBridgeVideoSourceMode: none\r\n"
    )
}

pub(super) fn bridge_block(id: &str, n: usize) -> String {
    format!(
        "BridgeUniqueid: {id}\r\nBridgeType: basic\r\nBridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\nBridgeNumChannels: {n}\r\nBridgeVideoSourceMode: none\r\n"
    )
}

impl World {
    pub(super) fn uid(&mut self) -> String {
        self.next += 1;
        format!("1795238{:03}.{}", self.next / 10, self.next)
    }

    pub(super) fn broadcast(&mut self, text: String) {
        let bytes = bytes::Bytes::from(text.into_bytes());
        self.conns
            .retain(|(_, tx)| tx.send(Out::Bytes(bytes.clone())).is_ok());
    }

    pub(super) fn event(&mut self, name: &str, body: String) {
        self.broadcast(format!(
            "Event: {name}\r\nPrivilege: call,all\r\n{body}\r\n"
        ));
    }

    pub(super) fn chan_event(&mut self, name: &str, uid: &str, extra: &str) {
        if let Some(c) = self.channels.get(uid).cloned() {
            self.event(name, format!("{}{extra}", snapshot("", &c)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_channel(
        &mut self,
        name: String,
        state: u8,
        linkedid: Option<String>,
        uid: Option<String>,
        num: &str,
        context: &str,
        exten: &str,
    ) -> String {
        let uid = uid.unwrap_or_else(|| self.uid());
        let c = Chan {
            uid: uid.clone(),
            name,
            state,
            linkedid: linkedid.unwrap_or_else(|| uid.clone()),
            caller_num: num.into(),
            caller_name: "<unknown>".into(),
            connected_num: "<unknown>".into(),
            context: context.into(),
            exten: exten.into(),
            app: "AppDial".into(),
            bridge: None,
        };
        self.channels.insert(uid.clone(), c);
        self.order.push(uid.clone());
        self.chan_event("Newchannel", &uid, "");
        uid
    }

    pub(super) fn set_state(&mut self, uid: &str, state: u8) {
        if let Some(c) = self.channels.get_mut(uid) {
            c.state = state;
        }
        self.chan_event("Newstate", uid, "");
    }

    pub(super) fn dial(&mut self, name: &str, caller: Option<&str>, dest: &str, status: &str) {
        let caller_part = caller
            .and_then(|c| self.channels.get(c))
            .map(|c| snapshot("", c))
            .unwrap_or_default();
        let Some(d) = self.channels.get(dest).cloned() else {
            return;
        };
        let tail = match name {
            "DialBegin" => format!("DialString: {}\r\n", d.exten),
            _ => format!("DialStatus: {status}\r\n"),
        };
        self.event(name, format!("{caller_part}{}{tail}", snapshot("Dest", &d)));
    }

    pub(super) fn bridge_create(&mut self) -> String {
        let id = format!("bridge-{}", self.uid());
        self.bridges.insert(id.clone(), Vec::new());
        self.event("BridgeCreate", bridge_block(&id, 0));
        id
    }

    /// The room of a ConfBridge bridge.
    pub(super) fn room_of(&self, bridge: &str) -> Option<String> {
        self.rooms
            .iter()
            .find(|(_, b)| *b == bridge)
            .map(|(r, _)| r.clone())
    }

    pub(super) fn block(&self, bridge: &str, n: usize) -> String {
        match self.room_of(bridge) {
            Some(room) => conference_block(bridge, &room, n),
            None => bridge_block(bridge, n),
        }
    }

    /// The bridge of ConfBridge room `room`, created (with `ConfbridgeStart`) if new.
    pub(super) fn room(&mut self, room: &str) -> String {
        if let Some(b) = self.rooms.get(room) {
            return b.clone();
        }
        let id = format!("conf-{}", self.uid());
        self.bridges.insert(id.clone(), Vec::new());
        self.rooms.insert(room.to_string(), id.clone());
        self.event("BridgeCreate", conference_block(&id, room, 0));
        self.broadcast(format!(
            "Event: ConfbridgeStart\r\nPrivilege: call,all\r\nConference: {room}\r\n{}\r\n",
            conference_block(&id, room, 0)
        ));
        id
    }

    /// `uid` joins ConfBridge room `room` (capture 18: `BridgeEnter`, `ConfbridgeJoin`).
    pub(super) fn join_room(&mut self, room: &str, uid: &str) {
        let bridge = self.room(room);
        if let Some(c) = self.channels.get_mut(uid) {
            c.app = "ConfBridge".into();
        }
        self.bridge_enter(&bridge, uid);
        let n = self.bridges.get(&bridge).map_or(0, Vec::len);
        if let Some(c) = self.channels.get(uid).cloned() {
            self.broadcast(format!(
                "Event: ConfbridgeJoin\r\nPrivilege: call,all\r\nConference: {room}\r\n{}{}Admin: No\r\nMuted: No\r\n\r\n",
                conference_block(&bridge, room, n),
                snapshot("", &c)
            ));
        }
    }

    pub(super) fn bridge_enter(&mut self, bridge: &str, uid: &str) {
        let n = {
            let members = self.bridges.entry(bridge.to_string()).or_default();
            members.push(uid.to_string());
            members.len()
        };
        if let Some(c) = self.channels.get_mut(uid) {
            c.bridge = Some(bridge.to_string());
        }
        let Some(c) = self.channels.get(uid).cloned() else {
            return;
        };
        let block = self.block(bridge, n);
        self.event("BridgeEnter", format!("{block}{}", snapshot("", &c)));
    }

    pub(super) fn bridge_leave(&mut self, uid: &str) -> Option<String> {
        let bridge = self.channels.get_mut(uid)?.bridge.take()?;
        let n = {
            let members = self.bridges.entry(bridge.clone()).or_default();
            members.retain(|m| m != uid);
            members.len()
        };
        let c = self.channels.get(uid)?.clone();
        let room = self.room_of(&bridge);
        if let Some(room) = &room {
            self.broadcast(format!(
                "Event: ConfbridgeLeave\r\nPrivilege: call,all\r\nConference: {room}\r\n{}{}Admin: No\r\n\r\n",
                conference_block(&bridge, room, n + 1),
                snapshot("", &c)
            ));
        }
        let block = self.block(&bridge, n);
        self.event("BridgeLeave", format!("{block}{}", snapshot("", &c)));
        if n == 0 {
            let destroy = self.block(&bridge, 0);
            if let Some(room) = &room {
                self.broadcast(format!(
                    "Event: ConfbridgeEnd\r\nPrivilege: call,all\r\nConference: {room}\r\n{}\r\n",
                    conference_block(&bridge, room, 0)
                ));
                self.rooms.remove(room);
            }
            self.bridges.remove(&bridge);
            self.event("BridgeDestroy", destroy);
        }
        Some(bridge)
    }

    pub(super) fn hangup(&mut self, uid: &str, cause: u16) {
        if !self.channels.contains_key(uid) {
            return;
        }
        self.bridge_leave(uid);
        let text = if cause == 16 {
            "Normal Clearing"
        } else {
            "Other"
        };
        self.chan_event(
            "Hangup",
            uid,
            &format!("Cause: {cause}\r\nCause-txt: {text}\r\n"),
        );
        self.channels.remove(uid);
        self.order.retain(|u| u != uid);
    }

    /// Hangs up `uid` and, as a two-party Dial bridge does, its peers.
    pub(super) fn hangup_call(&mut self, uid: &str, cause: u16) {
        let conference = self
            .channels
            .get(uid)
            .and_then(|c| c.bridge.as_deref())
            .is_some_and(|b| self.room_of(b).is_some());
        if conference {
            // Leaving a ConfBridge room ends no one else's call (capture 18).
            self.hangup(uid, cause);
            return;
        }
        let peers: Vec<String> = self
            .channels
            .get(uid)
            .and_then(|c| c.bridge.clone())
            .and_then(|b| self.bridges.get(&b).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p != uid)
            .collect();
        // Ringing channels this one dials, or that dial it, go too.
        let linked: Vec<String> = self
            .channels
            .values()
            .filter(|c| {
                c.uid != uid
                    && c.bridge.is_none()
                    && c.state != 6
                    && self
                        .channels
                        .get(uid)
                        .is_some_and(|u| u.linkedid == c.linkedid)
            })
            .map(|c| c.uid.clone())
            .collect();
        self.bridge_leave(uid);
        for p in &peers {
            self.bridge_leave(p);
        }
        self.hangup(uid, cause);
        for p in peers.iter().chain(linked.iter()) {
            self.hangup(p, cause);
        }
    }

    pub(super) fn find_by_name(&self, name: &str) -> Option<String> {
        self.channels
            .values()
            .find(|c| c.name == name)
            .map(|c| c.uid.clone())
    }

    pub(super) fn device_channel(&self, device: &str, call: &str) -> Option<String> {
        self.channels
            .values()
            .find(|c| c.name.starts_with(device) && (c.linkedid == call || c.uid == call))
            .map(|c| c.uid.clone())
    }

    /// A queue event about caller `uid` in `queue`, as Asterisk 22 words it (14).
    pub(super) fn queue_caller_event(&mut self, name: &str, queue: &str, uid: &str, extra: &str) {
        self.broadcast(format!(
            "Event: {name}\r\nPrivilege: agent,all\r\nChannel: PJSIP/trunk-{uid}\r\nChannelState: 6\r\nChannelStateDesc: Up\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\nQueue: {queue}\r\n{extra}\r\n"
        ));
    }

    pub(super) fn member_event(&mut self, name: &str, m: &Member) {
        self.broadcast(format!(
            "Event: {name}\r\nPrivilege: agent,all\r\nQueue: {}\r\nMemberName: {}\r\nInterface: {}\r\nStateInterface: {}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795238005\r\nInCall: 0\r\nStatus: 1\r\nPaused: {}\r\nPausedReason: {}\r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n",
            m.queue, m.name, m.interface, m.interface, u8::from(m.paused), m.reason
        ));
    }
}
