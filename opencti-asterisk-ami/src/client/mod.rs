//! The AMI protocol client: connect, read the banner, log in, correlate responses to
//! actions by `ActionID`, collect event lists, keep the link alive, and reconnect.
//!
//! One task per client owns the connection: it logs in, then reads and decodes, on a
//! thread and runtime of the client's own (`ami-connection`), so that a busy link's
//! reader does not take turns with the application's tasks. Each read's messages go, in
//! order, to a second thread of the connection's own (the deliverer, `ami-deliverer`),
//! which completes the action waiting for a message (a response, a list item) or hands
//! the events to [`ClientEvents::events`], synchronously and without waiting for
//! anything. So decoding the next read and translating this one run on two cores, and a
//! burst of events costs the reader only its decoding. A read's bytes become its
//! messages' text without a copy, and the deliverer sends the buffers of a read whose
//! messages are gone back to the reader. A few reads may wait between the
//! two, no more: a consumer that falls behind stops the reads, and Asterisk drops a
//! client whose socket stalls for 100 ms, so nothing a consumer does may hold the
//! deliverer up. Actions are written by whoever sends them, under a lock on the write
//! half.
//!
//! Anything that makes the stream untrustworthy (a decode error: garbage, an oversized
//! message, a truncated one; a keepalive `Ping` that gets no answer; a write that fails)
//! drops the connection: [`ClientEvents::disconnected`] is told why, every waiting
//! action fails with `link_down`, and the task reconnects with exponential backoff and
//! jitter. Nothing is lost silently: a dropped connection is always followed by a fresh
//! login and, in the connector, a rebuild of the whole state.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use opencti_core::{Error, ErrorKind, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, Notify};

use crate::action::{Action, AmiValue};
use crate::codec::AmiCodec;
use crate::config::AmiConfig;
use crate::frame::Banner;
use crate::message::Message;
use crate::transport::{ReadHalf, Transport, WriteHalf};

mod connection;
mod login;
mod thread;

use thread::ConnectionThread;

/// What the client tells its owner. Called from the connection's thread and its
/// deliverer thread, one call at a time and in the stream's order, inside the runtime
/// [`AmiClient::start`] was called in (what a call spawns runs there): implementations
/// must return quickly and never block or await.
pub trait ClientEvents: Send + Sync + 'static {
    /// Logged in (again); events follow.
    fn connected(&self, banner: &Banner);
    /// An event that answers no waiting action. Return `false` to drop the connection
    /// (the consumer could not keep it).
    fn event(&self, event: Message) -> bool;
    /// Several such events in a row, in order, as one read brought them: take them
    /// all out of `events` (what is left is dropped). Return `false` to drop the
    /// connection. The default hands each to [`event`](ClientEvents::event), stopping
    /// at the first `false`; a consumer that takes a lock per event can take it once.
    fn events(&self, events: &mut Vec<Message>) -> bool {
        events.drain(..).all(|event| self.event(event))
    }
    /// The connection dropped (or could not be established after having been up).
    fn disconnected(&self, reason: &str);
}

/// The answer to a list action: the response and the items, up to and including the
/// `...Complete` event that ended the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResponse {
    /// `Response: Success` with `EventList: start`.
    pub response: Message,
    /// The item events, in order.
    pub items: Vec<Message>,
    /// The event with `EventList: Complete`.
    pub complete: Option<Message>,
}

enum Waiting {
    Single(oneshot::Sender<Result<Message>>),
    List {
        reply: oneshot::Sender<Result<ListResponse>>,
        response: Option<Message>,
        items: Vec<Message>,
    },
}

struct Link {
    generation: u64,
    writer: Option<Arc<tokio::sync::Mutex<WriteHalf>>>,
    pending: HashMap<String, Waiting>,
    kill: Arc<Notify>,
}

struct Shared {
    config: AmiConfig,
    transport: Transport,
    handler: Arc<dyn ClientEvents>,
    link: Mutex<Link>,
    next_id: AtomicU64,
    nonce: String,
    stopped: AtomicBool,
    /// The connection's own thread, until stopped.
    thread: Mutex<Option<ConnectionThread>>,
    /// Set to end the connection's thread at once, wherever it is.
    halt: tokio::sync::watch::Sender<bool>,
    /// The application's runtime: the handler runs in it, and what it spawns goes there.
    app: tokio::runtime::Handle,
    /// The generation of the connection that is up (0: none yet).
    up: tokio::sync::watch::Sender<u64>,
    /// Counts the reads that brought bytes: the link is alive while it moves, even when
    /// a ping's answer waits behind events the reader has not reached yet.
    reads: AtomicU64,
}

impl Shared {
    fn link(&self) -> MutexGuard<'_, Link> {
        // Nothing panics while holding it; a poisoned lock still guards a valid map.
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An AMI connection that stays up: see the module docs.
#[derive(Clone)]
pub struct AmiClient {
    shared: Arc<Shared>,
}

impl fmt::Debug for AmiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiClient")
            .field("address", &self.shared.config.address)
            .field("username", &self.shared.config.username)
            .field("up", &self.is_up())
            .finish()
    }
}

/// A connection that has logged in, ready to read.
struct Conn {
    read: ReadHalf,
    write: WriteHalf,
    codec: AmiCodec,
    buf: BytesMut,
    banner: Banner,
}

/// Most bytes taken in by one read. A busy link fills it: larger reads mean fewer
/// hand-overs between the reader and the deliverer, smaller ones that a read's text is
/// still in the cache when the deliverer reads it (64 KiB was faster than 32 and 256).
const READ_CHUNK: usize = 64 * 1024;

/// Decoded reads on their way from the reader to the deliverer: enough to keep both
/// busy, few enough that a handler that falls behind stops the reads (and, in the end,
/// Asterisk's writes) instead of filling memory.
const READS_IN_FLIGHT: usize = 8;

impl AmiClient {
    /// Connects and logs in, then keeps the connection up on a thread of its own until
    /// [`stop`](AmiClient::stop), or until the runtime this is called in shuts down.
    ///
    /// Fails with `unauthorized` if Asterisk refuses the login or (over TLS) its
    /// certificate does not verify, `config` for an invalid config (an unreadable or
    /// invalid TLS CA file included). If Asterisk cannot be reached the client is
    /// returned all the same (not up) and keeps trying with backoff;
    /// `handler.connected` says when it is up.
    pub async fn start(config: AmiConfig, handler: Arc<dyn ClientEvents>) -> Result<AmiClient> {
        config.validate()?;
        let transport = Transport::from_config(&config)?;
        let shared = Arc::new(Shared {
            config,
            transport,
            handler,
            link: Mutex::new(Link {
                generation: 0,
                writer: None,
                pending: HashMap::new(),
                kill: Arc::new(Notify::new()),
            }),
            next_id: AtomicU64::new(1),
            nonce: format!("ocx{:06x}", fastrand::u32(..0x100_0000)),
            stopped: AtomicBool::new(false),
            thread: Mutex::new(None),
            halt: tokio::sync::watch::channel(false).0,
            app: tokio::runtime::Handle::current(),
            up: tokio::sync::watch::channel(0).0,
            reads: AtomicU64::new(0),
        });
        let mut up = shared.up.subscribe();
        let (thread, connected) = ConnectionThread::start(&shared).await?;
        *shared.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        if connected {
            // Returns once the logged-in connection is ready for actions.
            let _ = up.wait_for(|generation| *generation > 0).await;
        }
        Ok(AmiClient { shared })
    }

    /// Connects once, reads the banner, logs in and logs off: checks a config (address,
    /// TLS, credentials) without starting anything. Returns Asterisk's banner.
    ///
    /// Errors as for [`start`](AmiClient::start), and `link_down` or `timeout` when
    /// Asterisk cannot be reached (which `start` would retry).
    pub async fn check(config: &AmiConfig) -> Result<Banner> {
        config.validate()?;
        let transport = Transport::from_config(config)?;
        let mut conn = login::establish(config, &transport).await?;
        login::log_off(&mut conn, config.timeouts.connect).await?;
        Ok(conn.banner)
    }

    /// Whether the client is logged in now.
    pub fn is_up(&self) -> bool {
        self.shared.link().writer.is_some()
    }

    /// The config the client runs with.
    pub fn config(&self) -> &AmiConfig {
        &self.shared.config
    }

    /// A fresh `ActionID` for this client.
    pub fn next_action_id(&self) -> String {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.shared.nonce)
    }

    /// Sends `action` and waits for its response (at most the action timeout). Stamps
    /// an `ActionID` unless the action has one. `Response: Error` is returned as an
    /// error: `unauthorized` for `Permission denied`, `rejected` otherwise, with
    /// Asterisk's message.
    pub async fn send(&self, action: Action) -> Result<Message> {
        let (id, bytes) = self.prepare(action)?;
        let (tx, rx) = oneshot::channel();
        self.register(&id, Waiting::Single(tx))?;
        let name = bytes_action_name(&bytes);
        self.write(&id, &bytes).await?;
        let timeout = self.shared.config.timeouts.action;
        let response = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(link_down("the connection closed")),
            Err(_) => {
                self.shared.link().pending.remove(&id);
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("Asterisk did not answer {name} (ActionID {id}) within {timeout:?}"),
                ));
            }
        };
        check_response(&name, response)
    }

    /// Sends a list action (`CoreShowChannels`, `QueueStatus`, ...) and collects its
    /// items until the event with `EventList: Complete` (at most the action timeout,
    /// and at most the configured number of items).
    pub async fn send_list(&self, action: Action) -> Result<ListResponse> {
        let (id, bytes) = self.prepare(action)?;
        let (tx, rx) = oneshot::channel();
        self.register(
            &id,
            Waiting::List {
                reply: tx,
                response: None,
                items: Vec::new(),
            },
        )?;
        let name = bytes_action_name(&bytes);
        self.write(&id, &bytes).await?;
        let timeout = self.shared.config.timeouts.action;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => {
                let list = result?;
                check_response(&name, list.response.clone())?;
                Ok(list)
            }
            Ok(Err(_)) => Err(link_down("the connection closed")),
            Err(_) => {
                self.shared.link().pending.remove(&id);
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Asterisk did not complete the list {name} (ActionID {id}) within {timeout:?}"
                    ),
                ))
            }
        }
    }

    /// Sends `action` without waiting for its response (which is then dropped when it
    /// arrives). For follow-ups fired from the reader's context.
    pub fn send_detached(&self, action: Action) {
        let client = self.clone();
        tokio::spawn(async move {
            if let Err(e) = client.send(action).await {
                tracing::warn!(error = %e, "AMI: follow-up action failed");
            }
        });
    }

    /// Logs off, closes the connection and stops reconnecting. Nothing is reported to
    /// the handler afterwards.
    pub async fn stop(&self) {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.is_up() {
            if let Ok(logoff) = Action::new("Logoff") {
                let _ = tokio::time::timeout(Duration::from_millis(500), self.send(logoff)).await;
            }
        }
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.stop(&self.shared).await;
        }
        let mut link = self.shared.link();
        link.writer = None;
        fail_all(&mut link, "the client was stopped");
    }

    fn prepare(&self, mut action: Action) -> Result<(String, Vec<u8>)> {
        let id = match action.id() {
            Some(id) => id.to_owned(),
            None => {
                let id = self.next_action_id();
                let value = AmiValue::new(id.clone())?;
                action.set_action_id(value);
                id
            }
        };
        let bytes = action.to_bytes().map_err(|e| {
            Error::new(
                ErrorKind::BadInput,
                format!("cannot send {} to Asterisk: {e}", action.name()),
            )
            .with_source(e)
        })?;
        Ok((id, bytes))
    }

    fn register(&self, id: &str, waiting: Waiting) -> Result<()> {
        let mut link = self.shared.link();
        if link.writer.is_none() {
            return Err(link_down("the link to Asterisk is down"));
        }
        if link.pending.len() >= self.shared.config.limits.max_pending_actions {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "{} AMI actions are already waiting for Asterisk; refusing more",
                    link.pending.len()
                ),
            ));
        }
        link.pending.insert(id.to_owned(), waiting);
        Ok(())
    }

    async fn write(&self, id: &str, bytes: &[u8]) -> Result<()> {
        let (writer, kill) = {
            let link = self.shared.link();
            (link.writer.clone(), link.kill.clone())
        };
        let Some(writer) = writer else {
            self.shared.link().pending.remove(id);
            return Err(link_down("the link to Asterisk is down"));
        };
        let timeout = self.shared.config.timeouts.write;
        let result = tokio::time::timeout(timeout, async {
            let mut w = writer.lock().await;
            w.write_all(bytes).await?;
            w.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.shared.link().pending.remove(id);
                kill.notify_one();
                Err(link_down(&format!("writing to Asterisk failed: {e}")))
            }
            Err(_) => {
                self.shared.link().pending.remove(id);
                kill.notify_one();
                Err(link_down(&format!(
                    "writing to Asterisk stalled for {timeout:?}"
                )))
            }
        }
    }
}

fn link_down(why: &str) -> Error {
    Error::new(ErrorKind::LinkDown, why.to_owned())
}

fn bytes_action_name(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line.strip_prefix(b"Action: ").unwrap_or(line)).into_owned()
}

fn check_response(action: &str, response: Message) -> Result<Message> {
    match response.response() {
        Some("Error") | Some("Failure") => {
            let text = response.text().unwrap_or("no reason given");
            let kind = if text.eq_ignore_ascii_case("Permission denied") {
                ErrorKind::Unauthorized
            } else {
                ErrorKind::Rejected
            };
            let hint = if kind == ErrorKind::Unauthorized {
                " (the AMI user lacks the write class this action needs; see manager.conf)"
            } else {
                ""
            };
            Err(Error::new(
                kind,
                format!("Asterisk refused {action}: {text}{hint}"),
            ))
        }
        _ => Ok(response),
    }
}

fn fail_all(link: &mut Link, why: &str) {
    for (_, waiting) in link.pending.drain() {
        let error = link_down(&format!(
            "{why}; the action may or may not have been carried out"
        ));
        match waiting {
            Waiting::Single(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiting::List { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}
