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
//! far end, queue callers joining and hanging up, drop every connection, refuse logins. [`Control::start_tls`] serves the
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

pub use crate::replay::{DeviceReplay, QueueReplay};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{AmiCodec, DecoderConfig, Frame, Message, PushDecoder, Result};

mod session;
mod world;

use session::serve;
use world::{Member, Out, QueueCaller, World};

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
                // As Asterisk's manager does: without it, a response written in two
                // pieces waits for the client's delayed acknowledgement (about 40 ms).
                let _ = stream.set_nodelay(true);
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

    /// Sends raw bytes to every logged-in connection (copied once).
    pub fn send_raw(&self, bytes: &[u8]) {
        self.send_shared(bytes::Bytes::copy_from_slice(bytes));
    }

    /// Sends `bytes` to every logged-in connection without copying them: each
    /// connection's writer holds a reference to the same buffer (a large stream made
    /// before a measurement starts costs nothing to send).
    pub fn send_shared(&self, bytes: bytes::Bytes) {
        let mut w = self.world();
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

    /// Caller `uid` joins `queue` and waits there (`QueueCallerJoin`; `QueueStatus`
    /// lists it as a `QueueEntry` until it leaves).
    pub fn queue_caller_joins(&self, queue: &str, uid: &str) {
        let mut w = self.world();
        let position = w.queue_callers.iter().filter(|c| c.queue == queue).count() + 1;
        w.queue_callers.push(QueueCaller {
            queue: queue.into(),
            uid: uid.into(),
            joined: tokio::time::Instant::now(),
        });
        w.queue_caller_event(
            "QueueCallerJoin",
            queue,
            uid,
            &format!("Position: {position}\r\nCount: {position}\r\n"),
        );
    }

    /// Caller `uid` hangs up while it waits: `HangupRequest`, then `QueueCallerAbandon`
    /// and `QueueCallerLeave` as Asterisk 22 sends them, then `Hangup`.
    pub fn queue_caller_hangs_up(&self, uid: &str) {
        let mut w = self.world();
        let Some(i) = w.queue_callers.iter().position(|c| c.uid == uid) else {
            return;
        };
        let caller = w.queue_callers.remove(i);
        let queue = caller.queue.as_str();
        let channel =
            format!("Channel: PJSIP/trunk-{uid}\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n");
        w.event("HangupRequest", format!("{channel}Cause: 16\r\n"));
        let held = caller.joined.elapsed().as_secs();
        w.queue_caller_event(
            "QueueCallerAbandon",
            queue,
            uid,
            &format!("Position: 1\r\nOriginalPosition: 1\r\nHoldTime: {held}\r\n"),
        );
        w.queue_caller_event(
            "QueueCallerLeave",
            queue,
            uid,
            "Position: 1\r\nCount: 0\r\n",
        );
        w.event(
            "Hangup",
            format!("{channel}Cause: 16\r\nCause-txt: Normal Clearing\r\n"),
        );
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

/// The connection's decoding, for benches that measure it: each read's bytes appended
/// to one buffer, its complete messages decoded together with the read's own bytes as
/// their text, and the buffers of a read whose messages are all gone reused for the
/// next one.
#[derive(Debug)]
pub struct ReadDecoder {
    codec: AmiCodec,
    read: Vec<u8>,
    last: Option<Arc<crate::message::Batch>>,
    layouts: Vec<crate::message::Layout>,
}

impl ReadDecoder {
    /// A decoder for a stream that starts with a message (no banner).
    pub fn new() -> ReadDecoder {
        ReadDecoder {
            codec: AmiCodec::without_banner(),
            read: Vec::new(),
            last: None,
            layouts: Vec::new(),
        }
    }

    /// Decodes what `bytes` completes onto `out`. Rules and errors as for
    /// [`AmiCodec::decode`]; on an error, the messages before the bad one are on `out`.
    /// Drop the messages of one read before the next, as the connection does, or
    /// their buffers are not reused.
    pub fn read(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<()> {
        self.read.extend_from_slice(bytes);
        let spare = crate::codec::Spare {
            batch: self
                .last
                .take()
                .and_then(|batch| Arc::try_unwrap(batch).ok())
                .unwrap_or_default(),
            layouts: std::mem::take(&mut self.layouts),
        };
        let (found, decoded) = self.codec.find_read(&mut self.read, spare);
        self.layouts = found.into_messages(out);
        self.last = out.last().map(|m| m.batch().clone());
        decoded
    }
}

impl Default for ReadDecoder {
    fn default() -> Self {
        ReadDecoder::new()
    }
}
