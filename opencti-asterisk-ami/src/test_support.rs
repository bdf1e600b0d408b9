//! A scripted AMI server on 127.0.0.1 for tests (this crate's and other crates', such as
//! the CLI's), behind the `test-support` cargo feature; not part of the connector. It
//! speaks the protocol as Asterisk
//! 22 does in the captures (banner, plaintext and MD5 login, `ActionID` echo, lists with
//! `EventList`), keeps a small model of channels, bridges and queue members, and answers
//! call-control actions with the event sequences of the captures, re-stamped with fresh
//! `Uniqueid`s and the test's channel names:
//!
//! - `Originate` (05): Newchannel, DialBegin, Newstate Ringing, (answer) Newstate Up,
//!   OriginateResponse, DialEnd; then the agent leg dials the far end: DialBegin,
//!   Newstate Ringing, (answer) DialEnd ANSWER, BridgeCreate, BridgeEnter x2;
//! - `Hangup` (05), `Redirect` with `ExtraChannel` and `Bridge` (06), `BlindTransfer`
//!   (10), `Atxfer` and completion by hanging up the transferer (12), `CancelAtxfer`
//!   (13), `QueueAdd`/`QueuePause`/`QueueRemove` and `QueueStatus` (14),
//!   `CoreShowChannels` and `BridgeList` (15), `PlayDTMF` and `Setvar` (15, 17).
//!
//! The far end is driven by a [`Control`] handle: ring the agent's device, hang up the
//! far end, drop every connection, refuse logins. [`Control::start_tls`] serves the
//! same script behind a TLS acceptor (Asterisk's port 5039).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use opencti_asterisk_ami::test_support::{Control, Script};
//! use opencti_asterisk_ami::{AmiClient, AmiConfig, Secret};
//!
//! let server = Control::start(Script::default()).await;
//! let config = AmiConfig::new(server.address(), "opencti", Secret::new("opencti-secret"));
//! let banner = AmiClient::check(&config).await.expect("logs in");
//! assert_eq!(banner.version(), "11.0.0");
//! # }
//! ```

pub use crate::replay::DeviceReplay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{DecoderConfig, Frame, Message, PushDecoder};

/// How the scripted Asterisk behaves.
#[derive(Debug, Clone)]
pub struct Script {
    /// The `manager.conf` user it accepts (`opencti`).
    pub username: String,
    /// Its secret (`opencti-secret`), checked for plaintext and MD5 logins.
    pub secret: String,
    /// Name prefix of the agent's device channels (`PJSIP/7001`).
    pub device: String,
    /// How long a phone or far end rings before answering.
    pub answer_after: Duration,
    /// Whether the agent's device answers offered calls by itself.
    pub device_auto_answers: bool,
    /// Queues that exist.
    pub queues: Vec<String>,
    /// Numbers that never answer.
    pub never_answers: Vec<String>,
    /// The dialplan context whose extensions are ConfBridge rooms
    /// (`opencti-conference`): a `Redirect` there joins the room named by `Exten`.
    pub conference_context: String,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            username: "opencti".into(),
            secret: "opencti-secret".into(),
            device: "PJSIP/7001".into(),
            answer_after: Duration::from_millis(50),
            device_auto_answers: true,
            queues: vec!["support".into()],
            never_answers: vec!["2999".into()],
            conference_context: "opencti-conference".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Chan {
    uid: String,
    name: String,
    state: u8,
    linkedid: String,
    caller_num: String,
    caller_name: String,
    connected_num: String,
    context: String,
    exten: String,
    app: String,
    bridge: Option<String>,
}

#[derive(Debug, Clone)]
struct Member {
    queue: String,
    interface: String,
    name: String,
    paused: bool,
    reason: String,
}

#[derive(Default)]
struct World {
    channels: HashMap<String, Chan>,
    order: Vec<String>,
    bridges: HashMap<String, Vec<String>>,
    members: Vec<Member>,
    next: u64,
    conns: Vec<(u64, mpsc::UnboundedSender<Out>)>,
    next_conn: u64,
    accept_login: bool,
    actions: Vec<String>,
    /// atxfer: transferer uid -> (home bridge, consult bridge, target uid, transferee uid)
    atxfers: HashMap<String, (String, String, String, String)>,
    /// Ping answers are withheld (a stalled server).
    mute_pings: bool,
    /// ConfBridge rooms: room name -> bridge id.
    rooms: HashMap<String, String>,
}

enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// The running server and its control handle.
#[derive(Clone)]
pub struct Control {
    world: Arc<Mutex<World>>,
    script: Arc<Script>,
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    accept: Arc<JoinHandle<()>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        if Arc::strong_count(&self.accept) == 1 {
            self.accept.abort();
        }
    }
}

fn state_desc(state: u8) -> &'static str {
    match state {
        0 => "Down",
        4 => "Ring",
        5 => "Ringing",
        6 => "Up",
        _ => "Unknown",
    }
}

fn snapshot(prefix: &str, c: &Chan) -> String {
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
fn conference_block(id: &str, room: &str, n: usize) -> String {
    format!(
        "BridgeUniqueid: {id}\r\nBridgeType: base\r\nBridgeTechnology: softmix\r\nBridgeCreator: ConfBridge\r\nBridgeName: {room}\r\nBridgeNumChannels: {n}\r\nBridgeVideoSourceMode: none\r\n"
    )
}

fn bridge_block(id: &str, n: usize) -> String {
    format!(
        "BridgeUniqueid: {id}\r\nBridgeType: basic\r\nBridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\nBridgeNumChannels: {n}\r\nBridgeVideoSourceMode: none\r\n"
    )
}

impl World {
    fn uid(&mut self) -> String {
        self.next += 1;
        format!("1795238{:03}.{}", self.next / 10, self.next)
    }

    fn broadcast(&mut self, text: String) {
        let bytes = text.into_bytes();
        self.conns
            .retain(|(_, tx)| tx.send(Out::Bytes(bytes.clone())).is_ok());
    }

    fn event(&mut self, name: &str, body: String) {
        self.broadcast(format!(
            "Event: {name}\r\nPrivilege: call,all\r\n{body}\r\n"
        ));
    }

    fn chan_event(&mut self, name: &str, uid: &str, extra: &str) {
        if let Some(c) = self.channels.get(uid).cloned() {
            self.event(name, format!("{}{extra}", snapshot("", &c)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_channel(
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

    fn set_state(&mut self, uid: &str, state: u8) {
        if let Some(c) = self.channels.get_mut(uid) {
            c.state = state;
        }
        self.chan_event("Newstate", uid, "");
    }

    fn dial(&mut self, name: &str, caller: Option<&str>, dest: &str, status: &str) {
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

    fn bridge_create(&mut self) -> String {
        let id = format!("bridge-{}", self.uid());
        self.bridges.insert(id.clone(), Vec::new());
        self.event("BridgeCreate", bridge_block(&id, 0));
        id
    }

    /// The room of a ConfBridge bridge.
    fn room_of(&self, bridge: &str) -> Option<String> {
        self.rooms
            .iter()
            .find(|(_, b)| *b == bridge)
            .map(|(r, _)| r.clone())
    }

    fn block(&self, bridge: &str, n: usize) -> String {
        match self.room_of(bridge) {
            Some(room) => conference_block(bridge, &room, n),
            None => bridge_block(bridge, n),
        }
    }

    /// The bridge of ConfBridge room `room`, created (with `ConfbridgeStart`) if new.
    fn room(&mut self, room: &str) -> String {
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
    fn join_room(&mut self, room: &str, uid: &str) {
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

    fn bridge_enter(&mut self, bridge: &str, uid: &str) {
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

    fn bridge_leave(&mut self, uid: &str) -> Option<String> {
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

    fn hangup(&mut self, uid: &str, cause: u16) {
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
    fn hangup_call(&mut self, uid: &str, cause: u16) {
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

    fn find_by_name(&self, name: &str) -> Option<String> {
        self.channels
            .values()
            .find(|c| c.name == name)
            .map(|c| c.uid.clone())
    }

    fn device_channel(&self, device: &str, call: &str) -> Option<String> {
        self.channels
            .values()
            .find(|c| c.name.starts_with(device) && (c.linkedid == call || c.uid == call))
            .map(|c| c.uid.clone())
    }

    fn member_event(&mut self, name: &str, m: &Member) {
        self.broadcast(format!(
            "Event: {name}\r\nPrivilege: agent,all\r\nQueue: {}\r\nMemberName: {}\r\nInterface: {}\r\nStateInterface: {}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795238005\r\nInCall: 0\r\nStatus: 1\r\nPaused: {}\r\nPausedReason: {}\r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n",
            m.queue, m.name, m.interface, m.interface, u8::from(m.paused), m.reason
        ));
    }
}

fn response(id: &str, status: &str, message: &str, extra: &str) -> String {
    format!("Response: {status}\r\nActionID: {id}\r\nMessage: {message}\r\n{extra}\r\n")
}

impl Control {
    /// Starts a server with this script on 127.0.0.1 (a free port).
    ///
    /// # Panics
    ///
    /// If no port on 127.0.0.1 can be bound (this is test support).
    pub async fn start(script: Script) -> Control {
        Control::listen(script, None).await
    }

    /// Starts a server that speaks TLS with `acceptor` (and then the same script),
    /// as Asterisk does on port 5039 with `tlsenable = yes`. A client that fails the
    /// handshake is dropped.
    ///
    /// # Panics
    ///
    /// If no port on 127.0.0.1 can be bound (this is test support).
    pub async fn start_tls(script: Script, acceptor: tokio_rustls::TlsAcceptor) -> Control {
        Control::listen(script, Some(acceptor)).await
    }

    async fn listen(script: Script, tls: Option<tokio_rustls::TlsAcceptor>) -> Control {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("test AMI server: cannot bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test AMI server: no local address: {e}"));
        let world = Arc::new(Mutex::new(World {
            accept_login: true,
            ..World::default()
        }));
        let script = Arc::new(script);
        let (w, s) = (world.clone(), script.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (w, s) = (w.clone(), s.clone());
                match &tls {
                    None => {
                        tokio::spawn(serve(stream, w, s));
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        tokio::spawn(async move {
                            let limit = Duration::from_secs(10);
                            if let Ok(Ok(stream)) = tokio::time::timeout(limit, handshake).await {
                                serve(stream, w, s).await;
                            }
                        });
                    }
                }
            }
        });
        Control {
            world,
            script,
            addr,
            accept: Arc::new(accept),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `127.0.0.1:<port>`, for `AmiConfig::new`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Actions received so far (`Name` or `Name Channel`), in order.
    pub fn actions(&self) -> Vec<String> {
        self.world().actions.clone()
    }

    /// Closes every connection (the client sees EOF).
    pub fn drop_connections(&self) {
        let mut w = self.world();
        for (_, tx) in w.conns.drain(..) {
            let _ = tx.send(Out::Close);
        }
    }

    /// Whether logins with the right credentials are accepted (default `true`).
    pub fn set_accept_login(&self, accept: bool) {
        self.world().accept_login = accept;
    }

    /// Withholds the answers to `Ping` (a stalled server), or stops doing so.
    pub fn mute_pings(&self, mute: bool) {
        self.world().mute_pings = mute;
    }

    /// Sends raw bytes to every logged-in connection.
    pub fn send_raw(&self, bytes: &[u8]) {
        let mut w = self.world();
        let bytes = bytes.to_vec();
        w.conns
            .retain(|(_, tx)| tx.send(Out::Bytes(bytes.clone())).is_ok());
    }

    /// Number of logged-in connections.
    pub fn connections(&self) -> usize {
        self.world().conns.len()
    }

    /// Number of channels up now.
    pub fn live_channels(&self) -> usize {
        self.world().channels.len()
    }

    /// Adds the agent's interface to a queue as a static member (as queues.conf does).
    pub fn add_static_member(&self, queue: &str, paused: bool, reason: &str) {
        let interface = self.script.device.clone();
        self.world().members.push(Member {
            queue: queue.into(),
            interface,
            name: "static".into(),
            paused,
            reason: reason.into(),
        });
    }

    /// A caller rings the agent's device (an inbound call, as `from-customers` would
    /// `Dial` it). Returns the caller channel's `Uniqueid` (the call's `Linkedid`).
    pub fn call_device(&self, from: &str) -> String {
        let script = self.script.clone();
        let mut w = self.world();
        let c = w.uid();
        let caller = w.new_channel(
            format!("PJSIP/trunk-{c}"),
            4,
            None,
            Some(c.clone()),
            from,
            "from-customers",
            "7001",
        );
        let d = w.uid();
        let dev = w.new_channel(
            format!("{}-{}", script.device, d),
            0,
            Some(caller.clone()),
            Some(d),
            "7001",
            "agents",
            "7001",
        );
        if let Some(ch) = w.channels.get_mut(&dev) {
            ch.connected_num = from.into();
        }
        w.dial("DialBegin", Some(&caller), &dev, "");
        w.set_state(&dev, 5);
        w.dial("DialState", Some(&caller), &dev, "RINGING");
        drop(w);
        if script.device_auto_answers {
            let control = self.clone();
            let (caller, dev) = (caller.clone(), dev);
            tokio::spawn(async move {
                tokio::time::sleep(script.answer_after).await;
                let mut w = control.world();
                if !w.channels.contains_key(&dev) || !w.channels.contains_key(&caller) {
                    return;
                }
                w.set_state(&dev, 6);
                w.set_state(&caller, 6);
                w.dial("DialEnd", Some(&caller), &dev, "ANSWER");
                let b = w.bridge_create();
                w.bridge_enter(&b, &dev);
                w.bridge_enter(&b, &caller);
            });
        }
        caller
    }

    /// The far end of `call` at the agent's device hangs up.
    pub fn far_end_hangs_up(&self, call: &str) -> bool {
        let device = self.script.device.clone();
        let mut w = self.world();
        let Some(dev) = w.device_channel(&device, call) else {
            return false;
        };
        let peer = w
            .channels
            .get(&dev)
            .and_then(|c| c.bridge.clone())
            .and_then(|b| w.bridges.get(&b).cloned())
            .unwrap_or_default()
            .into_iter()
            .find(|p| *p != dev);
        match peer {
            Some(peer) => w.hangup_call(&peer, 16),
            None => w.hangup_call(&dev, 16),
        }
        true
    }
}

async fn serve<S>(stream: S, world: Arc<Mutex<World>>, script: Arc<Script>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        if write
            .write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await
            .is_err()
        {
            return;
        }
        while let Some(out) = rx.recv().await {
            match out {
                Out::Bytes(b) => {
                    if write.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Out::Close => {
                    let _ = write.shutdown().await;
                    return;
                }
            }
        }
    });
    let mut decoder = PushDecoder::with_config(DecoderConfig::new().with_banner(false));
    let mut buf = vec![0u8; 8192];
    let mut logged_in = false;
    let mut challenge: Option<String> = None;
    let conn_id = {
        let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
        w.next_conn += 1;
        w.next_conn
    };
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        let mut actions = Vec::new();
        for frame in decoder.frames() {
            if let Ok(Frame::Message(m)) = frame {
                actions.push(m);
            }
        }
        for action in actions {
            let close = handle(
                &action,
                &world,
                &script,
                &tx,
                &mut logged_in,
                &mut challenge,
                conn_id,
            );
            if close {
                let _ = tx.send(Out::Close);
                {
                    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                    w.conns.retain(|(id, _)| *id != conn_id);
                }
                let _ = writer.await;
                return;
            }
        }
    }
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.conns.retain(|(id, _)| *id != conn_id);
}

/// Handles one action; returns whether to close the connection.
fn handle(
    a: &Message,
    world: &Arc<Mutex<World>>,
    script: &Arc<Script>,
    tx: &mpsc::UnboundedSender<Out>,
    logged_in: &mut bool,
    challenge: &mut Option<String>,
    conn_id: u64,
) -> bool {
    let name = a.get("Action").unwrap_or_default().to_string();
    let id = a.action_id().unwrap_or_default().to_string();
    let reply = |text: String| {
        let _ = tx.send(Out::Bytes(text.into_bytes()));
    };
    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
    w.actions.push(match a.get("Channel") {
        Some(c) => format!("{name} {c}"),
        None => name.clone(),
    });
    if !*logged_in {
        match name.as_str() {
            "Challenge" => {
                let nonce = format!("{}", 100_000_000 + conn_id * 7919);
                *challenge = Some(nonce.clone());
                reply(format!(
                    "Response: Success\r\nActionID: {id}\r\nChallenge: {nonce}\r\n\r\n"
                ));
                return false;
            }
            "Login" => {
                let user_ok = a.get("Username") == Some(script.username.as_str());
                let secret_ok = match (a.get("AuthType"), challenge.as_deref()) {
                    (Some(t), Some(nonce)) if t.eq_ignore_ascii_case("md5") => {
                        let mut h = Md5::new();
                        h.update(nonce.as_bytes());
                        h.update(script.secret.as_bytes());
                        let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                        a.get("Key") == Some(key.as_str())
                    }
                    _ => a.get("Secret") == Some(script.secret.as_str()),
                };
                if user_ok && secret_ok && w.accept_login {
                    *logged_in = true;
                    reply(response(&id, "Success", "Authentication accepted", ""));
                    w.conns.push((conn_id, tx.clone()));
                    let _ = tx.send(Out::Bytes(
                        b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\nLastReload: 5\r\nStatus: Fully Booted\r\n\r\n".to_vec(),
                    ));
                    return false;
                }
                reply(response(&id, "Error", "Authentication failed", ""));
                return true;
            }
            _ => {
                reply(response(&id, "Error", "Permission denied", ""));
                return false;
            }
        }
    }
    let header = |k: &str| a.get(k).unwrap_or_default().to_string();
    match name.as_str() {
        "Ping" => {
            if !w.mute_pings {
                reply(format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1795238010.603606\r\n\r\n"));
            }
        }
        "Logoff" => {
            reply(response(&id, "Goodbye", "Thanks for all the fish.", ""));
            return true;
        }
        "CoreShowChannels" => {
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"));
            let order = w.order.clone();
            for uid in &order {
                if let Some(c) = w.channels.get(uid) {
                    reply(format!(
                        "Event: CoreShowChannel\r\nActionID: {id}\r\n{}Application: {}\r\nApplicationData: \r\nDuration: 00:00:01\r\nBridgeId: {}\r\n\r\n",
                        snapshot("", c),
                        c.app,
                        c.bridge.clone().unwrap_or_default()
                    ));
                }
            }
            reply(format!("Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", order.len()));
        }
        "BridgeList" => {
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Bridge listing will follow\r\n\r\n"));
            let bridges: Vec<(String, usize)> = w
                .bridges
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect();
            for (b, n) in &bridges {
                reply(format!(
                    "Event: BridgeListItem\r\nActionID: {id}\r\n{}\r\n",
                    w.block(b, *n)
                ));
            }
            reply(format!("Event: BridgeListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", bridges.len()));
        }
        "QueueStatus" => {
            // Without `Queue`, every queue (as Asterisk does).
            let queue = header("Queue");
            let queues = if queue.is_empty() {
                script.queues.clone()
            } else {
                vec![queue]
            };
            reply(format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"));
            for queue in &queues {
                reply(format!("Event: QueueParams\r\nQueue: {queue}\r\nMax: 0\r\nStrategy: rrmemory\r\nCalls: 0\r\nActionID: {id}\r\n\r\n"));
            }
            let members: Vec<Member> = w
                .members
                .iter()
                .filter(|m| queues.contains(&m.queue))
                .cloned()
                .collect();
            for m in &members {
                reply(format!(
                    "Event: QueueMember\r\nQueue: {}\r\nName: {}\r\nLocation: {}\r\nStateInterface: {}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795238005\r\nInCall: 0\r\nStatus: 1\r\nPaused: {}\r\nPausedReason: {}\r\nWrapuptime: 0\r\nActionID: {id}\r\n\r\n",
                    m.queue, m.name, m.interface, m.interface, u8::from(m.paused), m.reason
                ));
            }
            reply(format!("Event: QueueStatusComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n", members.len() + queues.len()));
        }
        "QueueAdd" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            if !script.queues.contains(&queue) {
                reply(response(
                    &id,
                    "Error",
                    "Unable to add interface to queue: No such queue",
                    "",
                ));
            } else if w
                .members
                .iter()
                .any(|m| m.queue == queue && m.interface == interface)
            {
                reply(response(
                    &id,
                    "Error",
                    "Unable to add interface: Already there",
                    "",
                ));
            } else {
                let m = Member {
                    queue,
                    interface,
                    name: header("MemberName"),
                    paused: a.get("Paused") == Some("true"),
                    reason: String::new(),
                };
                w.members.push(m.clone());
                reply(response(&id, "Success", "Added interface to queue", ""));
                w.member_event("QueueMemberAdded", &m);
            }
        }
        "QueueRemove" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            match w
                .members
                .iter()
                .position(|m| m.queue == queue && m.interface == interface)
            {
                Some(i) => {
                    let m = w.members.remove(i);
                    reply(response(&id, "Success", "Removed interface from queue", ""));
                    w.member_event("QueueMemberRemoved", &m);
                }
                None => reply(response(
                    &id,
                    "Error",
                    "Unable to remove interface: Not there",
                    "",
                )),
            }
        }
        "QueuePause" => {
            let (queue, interface) = (header("Queue"), header("Interface"));
            let paused = a.get("Paused") == Some("true");
            let reason = header("Reason");
            match w
                .members
                .iter_mut()
                .find(|m| m.queue == queue && m.interface == interface)
            {
                Some(m) => {
                    m.paused = paused;
                    m.reason = if paused { reason } else { String::new() };
                    let m = m.clone();
                    let text = if paused {
                        "Interface paused successfully"
                    } else {
                        "Interface unpaused successfully"
                    };
                    reply(response(&id, "Success", text, ""));
                    w.member_event("QueueMemberPause", &m);
                }
                None => reply(response(&id, "Error", "Interface not found", "")),
            }
        }
        "Originate" => {
            let channel = header("Channel");
            if !channel.starts_with("PJSIP/") && !channel.starts_with("Local/") {
                reply(response(&id, "Error", "Originate failed", ""));
                return false;
            }
            reply(response(
                &id,
                "Success",
                "Originate successfully queued",
                "",
            ));
            let uid = a.get("ChannelId").map(str::to_string);
            let dev = w.uid();
            let dev = w.new_channel(
                format!("{channel}-{dev}"),
                0,
                None,
                uid,
                "<unknown>",
                "agents",
                "7001",
            );
            w.dial("DialBegin", None, &dev, "");
            w.set_state(&dev, 5);
            drop(w);
            let world = world.clone();
            let script = script.clone();
            let (exten, context) = (header("Exten"), header("Context"));
            tokio::spawn(async move {
                tokio::time::sleep(script.answer_after).await;
                let far = {
                    let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                    if !w.channels.contains_key(&dev) {
                        return;
                    }
                    w.set_state(&dev, 6);
                    let c = w.channels.get(&dev).cloned();
                    if let Some(c) = c {
                        w.broadcast(format!(
                            "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {id}\r\nResponse: Success\r\nChannel: {}\r\nContext: {context}\r\nExten: {exten}\r\nReason: 4\r\nUniqueid: {}\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\n\r\n",
                            c.name, c.uid
                        ));
                    }
                    w.dial("DialEnd", None, &dev, "ANSWER");
                    if let Some(c) = w.channels.get_mut(&dev) {
                        c.context = context.clone();
                        c.exten = exten.clone();
                        c.app = "Dial".into();
                    }
                    let linked = w.channels.get(&dev).map(|c| c.linkedid.clone());
                    let far = w.uid();
                    let far = w.new_channel(
                        format!("PJSIP/trunk-{far}"),
                        0,
                        linked,
                        Some(far),
                        &exten,
                        "customers",
                        &exten,
                    );
                    w.dial("DialBegin", Some(&dev), &far, "");
                    w.set_state(&far, 5);
                    far
                };
                if script.never_answers.contains(&exten) {
                    return;
                }
                tokio::time::sleep(script.answer_after).await;
                let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                if !w.channels.contains_key(&dev) || !w.channels.contains_key(&far) {
                    return;
                }
                w.set_state(&far, 6);
                w.dial("DialEnd", Some(&dev), &far, "ANSWER");
                let b = w.bridge_create();
                w.bridge_enter(&b, &far);
                w.bridge_enter(&b, &dev);
            });
        }
        "Hangup" => {
            let Some(uid) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let cause: u16 = header("Cause").parse().unwrap_or(16);
            reply(response(&id, "Success", "Channel Hungup", ""));
            if let Some((home, consult, target, transferee)) = w.atxfers.remove(&uid) {
                // The transferer hangs up: the attended transfer completes (capture 12).
                w.bridge_leave(&uid);
                w.event(
                    "BridgeMerge",
                    format!("ToBridgeUniqueid: {home}\r\nFromBridgeUniqueid: {consult}\r\n"),
                );
                w.chan_event("MusicOnHoldStop", &transferee, "");
                w.bridge_leave(&target);
                w.bridge_enter(&home, &target);
                let t = w.channels.get(&uid).cloned();
                if let Some(t) = t {
                    w.event(
                        "AttendedTransfer",
                        format!(
                            "Result: Success\r\nOrigTransfererChannel: {}\r\nOrigTransfererUniqueid: {}\r\nSecondTransfererChannel: {}\r\nSecondTransfererUniqueid: {}\r\nTransfereeUniqueid: {transferee}\r\nTransferTargetUniqueid: {target}\r\nDestType: Bridge\r\nDestBridgeUniqueid: {home}\r\nIsExternal: No\r\n",
                            t.name, t.uid, t.name, t.uid
                        ),
                    );
                }
                w.hangup(&uid, cause);
                return false;
            }
            w.hangup_call(&uid, cause);
        }
        "Redirect" => {
            let Some(x) = w.find_by_name(&header("Channel")) else {
                reply(response(
                    &id,
                    "Error",
                    "Channel specified does not exist",
                    "",
                ));
                return false;
            };
            if header("Context") == script.conference_context {
                // Into a ConfBridge room (the extension names it): each channel leaves
                // its bridge and joins the room. A transferee leaving its bridge during
                // an attended transfer ends the transfer (Asterisk's "transferee hung
                // up" case): the consultation bridge becomes a plain bridge.
                let extra = a.get("ExtraChannel").and_then(|e| w.find_by_name(e));
                reply(response(
                    &id,
                    "Success",
                    if extra.is_some() {
                        "Dual Redirect successful"
                    } else {
                        "Redirect successful"
                    },
                    "",
                ));
                let room = header("Exten");
                let moved: Vec<String> = std::iter::once(x).chain(extra).collect();
                for uid in &moved {
                    let holding = w.atxfers.iter().any(|(_, (_, _, _, t))| t == uid);
                    w.atxfers.retain(|d, (_, _, target, transferee)| {
                        d != uid && target != uid && transferee != uid
                    });
                    w.bridge_leave(uid);
                    if holding {
                        w.chan_event("MusicOnHoldStop", uid, "");
                    }
                    let ctx = script.conference_context.clone();
                    if let Some(c) = w.channels.get_mut(uid) {
                        c.context = ctx;
                        c.exten = room.clone();
                    }
                }
                for uid in &moved {
                    w.join_room(&room, uid);
                }
                return false;
            }
            match a.get("ExtraChannel").and_then(|e| w.find_by_name(e)) {
                Some(d) => {
                    // Hold: both legs leave the bridge (capture 06).
                    reply(response(&id, "Success", "Dual Redirect successful", ""));
                    let (ctx, ex) = (header("Context"), header("Exten"));
                    if let Some(c) = w.channels.get_mut(&x) {
                        c.context = ctx;
                        c.exten = ex;
                    }
                    let (ctx, ex) = (header("ExtraContext"), header("ExtraExten"));
                    if let Some(c) = w.channels.get_mut(&d) {
                        c.context = ctx;
                        c.exten = ex;
                        c.app = "Wait".into();
                    }
                    w.bridge_leave(&x);
                    w.bridge_leave(&d);
                    w.chan_event("MusicOnHoldStart", &x, "Class: default\r\n");
                }
                None => {
                    reply(response(&id, "Success", "Redirect successful", ""));
                    w.bridge_leave(&x);
                    w.chan_event("MusicOnHoldStop", &x, "");
                    // The redirected party goes on to the new destination and away from
                    // the agent; modelled as leaving the system.
                    w.hangup(&x, 16);
                }
            }
        }
        "Bridge" => {
            let (Some(d), Some(x)) = (
                w.find_by_name(&header("Channel1")),
                w.find_by_name(&header("Channel2")),
            ) else {
                reply(response(&id, "Error", "Channel1 does not exist", ""));
                return false;
            };
            reply(response(&id, "Success", "Channels have been bridged", ""));
            let b = w.bridge_create();
            w.bridge_enter(&b, &d);
            w.chan_event("MusicOnHoldStop", &x, "");
            w.bridge_enter(&b, &x);
        }
        "BlindTransfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some(bridge) = w.channels.get(&d).and_then(|c| c.bridge.clone()) else {
                reply(response(&id, "Error", "Transfer failed", ""));
                return false;
            };
            let x = w
                .bridges
                .get(&bridge)
                .and_then(|m| m.iter().find(|u| **u != d).cloned())
                .unwrap_or_default();
            reply(response(&id, "Success", "Transfer succeeded", ""));
            w.chan_event("Unhold", &d, "");
            let t = w.channels.get(&d).cloned();
            if let Some(t) = t {
                w.event(
                    "BlindTransfer",
                    format!(
                        "Result: Success\r\nTransfererChannel: {}\r\nTransfererUniqueid: {}\r\nTransfereeUniqueid: {x}\r\n{}IsExternal: Yes\r\nContext: {}\r\nExtension: {}\r\n",
                        t.name, t.uid, bridge_block(&bridge, 2), header("Context"), header("Exten")
                    ),
                );
            }
            w.bridge_leave(&x);
            w.hangup(&d, 16);
            w.hangup(&x, 16);
        }
        "Atxfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some(home) = w.channels.get(&d).and_then(|c| c.bridge.clone()) else {
                reply(response(&id, "Error", "Atxfer failed", ""));
                return false;
            };
            let x = w
                .bridges
                .get(&home)
                .and_then(|m| m.iter().find(|u| **u != d).cloned())
                .unwrap_or_default();
            reply(response(&id, "Success", "Atxfer successfully queued", ""));
            let exten = header("Exten");
            for digit in ["*", "2"] {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            w.chan_event("Hold", &d, "");
            w.chan_event("MusicOnHoldStart", &x, "Class: default\r\n");
            for digit in exten.chars() {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            let linked = w.channels.get(&d).map(|c| c.linkedid.clone());
            let t = w.uid();
            let t = w.new_channel(
                format!("Local/{exten}@from-agents-{t};1"),
                0,
                linked,
                Some(t),
                "<unknown>",
                "from-agents",
                &exten,
            );
            let consult = w.bridge_create();
            w.bridge_enter(&consult, &t);
            w.set_state(&t, 5);
            w.bridge_leave(&d);
            w.bridge_enter(&consult, &d);
            w.atxfers.insert(d.clone(), (home, consult, t.clone(), x));
            drop(w);
            let world = world.clone();
            let script = script.clone();
            tokio::spawn(async move {
                tokio::time::sleep(script.answer_after).await;
                let mut w = world.lock().unwrap_or_else(|e| e.into_inner());
                if w.channels.contains_key(&t) {
                    w.set_state(&t, 6);
                    w.dial("DialEnd", None, &t, "ANSWER");
                }
            });
        }
        "CancelAtxfer" => {
            let Some(d) = w.find_by_name(&header("Channel")) else {
                reply(response(&id, "Error", "No such channel", ""));
                return false;
            };
            let Some((home, _consult, t, x)) = w.atxfers.remove(&d) else {
                reply(response(
                    &id,
                    "Error",
                    "No attended transfer in progress",
                    "",
                ));
                return false;
            };
            reply(response(
                &id,
                "Success",
                "CancelAtxfer successfully queued",
                "",
            ));
            for digit in ["*", "1"] {
                w.chan_event(
                    "DTMFEnd",
                    &d,
                    &format!("Digit: {digit}\r\nDurationMs: 100\r\nDirection: Received\r\n"),
                );
            }
            w.bridge_leave(&d);
            w.bridge_enter(&home, &d);
            w.chan_event("MusicOnHoldStop", &x, "");
            w.chan_event("Unhold", &d, "");
            w.hangup(&t, 16);
        }
        "PlayDTMF" => {
            if w.find_by_name(&header("Channel")).is_none() {
                reply(response(&id, "Error", "Channel not found", ""));
            } else {
                reply(response(&id, "Success", "DTMF successfully queued", ""));
            }
        }
        "Setvar" => {
            if a.get("Channel")
                .is_some_and(|c| w.find_by_name(c).is_none())
            {
                reply(response(&id, "Error", "Channel not found", ""));
            } else {
                reply(response(&id, "Success", "Variable Set", ""));
            }
        }
        _ => reply(response(&id, "Error", "Invalid/unknown command", "")),
    }
    false
}
