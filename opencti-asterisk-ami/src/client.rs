//! The AMI protocol client: connect, read the banner, log in, correlate responses to
//! actions by `ActionID`, collect event lists, keep the link alive, and reconnect.
//!
//! One task per client owns the connection: it logs in, then reads and decodes. Each
//! read's messages go, in order, to a thread of the connection's own (the deliverer),
//! which completes the action waiting for a message (a response, a list item) or hands
//! the events to [`ClientEvents::events`], synchronously and without waiting for
//! anything. So decoding the next read and translating this one run on two cores, and a
//! burst of events costs the reader only its decoding. A few reads may wait between the
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
use md5::{Digest, Md5};
use opencti_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::action::{Action, AmiValue};
use crate::codec::{AmiCodec, DecoderConfig};
use crate::config::{AmiConfig, AuthMethod};
use crate::frame::{Banner, Frame};
use crate::message::{Message, MessageKind};
use crate::transport::{self, ReadHalf, Transport, WriteHalf};

/// What the client tells its owner. Called from the connection's task and its
/// deliverer thread, one call at a time and in the stream's order: implementations must
/// return quickly and never block or await.
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
    stop: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
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

/// Room made for each read. A busy link fills it: with a deliverer per read, larger
/// reads mean fewer hand-overs between the two threads.
const READ_CHUNK: usize = 64 * 1024;

/// Decoded reads on their way from the reader to the deliverer: enough to keep both
/// busy, few enough that a handler that falls behind stops the reads (and, in the end,
/// Asterisk's writes) instead of filling memory.
const READS_IN_FLIGHT: usize = 8;

impl AmiClient {
    /// Connects and logs in, then keeps the connection up in a background task until
    /// [`stop`](AmiClient::stop).
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
            stop: Notify::new(),
            task: Mutex::new(None),
            up: tokio::sync::watch::channel(0).0,
            reads: AtomicU64::new(0),
        });
        let first = match establish(&shared.config, &shared.transport).await {
            Ok(conn) => Some(conn),
            Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Config) => {
                return Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "AMI: first connection failed; retrying with backoff");
                None
            }
        };
        let connected = first.is_some();
        let mut up = shared.up.subscribe();
        let task = tokio::spawn(run(shared.clone(), first));
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
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
        let mut conn = establish(config, &transport).await?;
        let mut logoff = config_action("Logoff")?;
        logoff.set_action_id(value("logoff-1")?);
        let t = config.timeouts.connect;
        if write_action(&mut conn, &logoff, t).await.is_ok() {
            let _ = read_response(&mut conn, "logoff-1", t, "logging off").await;
        }
        let _ = conn.write.shutdown().await;
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
        self.shared.stop.notify_waiters();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
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

/// Reads one frame, waiting at most `timeout`.
async fn read_frame(
    read: &mut ReadHalf,
    codec: &mut AmiCodec,
    buf: &mut BytesMut,
    timeout: Duration,
    what: &str,
) -> Result<Frame> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    format!("Asterisk sent something that is not AMI while {what}: {e}"),
                )
                .with_source(e))
            }
        }
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, read.read_buf(buf)).await {
            Ok(Ok(0)) => {
                return Err(link_down(&format!(
                    "Asterisk closed the connection while {what}"
                )))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(link_down(&format!(
                    "reading from Asterisk failed while {what}: {e}"
                )))
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("Asterisk sent nothing for {timeout:?} while {what}"),
                ))
            }
        }
    }
}

/// Reads until the response to `action_id` (events before it are dropped: none come
/// before the login succeeds).
async fn read_response(
    conn: &mut Conn,
    action_id: &str,
    timeout: Duration,
    what: &str,
) -> Result<Message> {
    loop {
        let frame = read_frame(
            &mut conn.read,
            &mut conn.codec,
            &mut conn.buf,
            timeout,
            what,
        )
        .await?;
        if let Frame::Message(msg) = frame {
            if msg.kind() == MessageKind::Response && msg.action_id() == Some(action_id) {
                return Ok(msg);
            }
        }
    }
}

async fn write_action(conn: &mut Conn, action: &Action, timeout: Duration) -> Result<()> {
    let bytes = action.to_bytes()?;
    match tokio::time::timeout(timeout, conn.write.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(link_down(&format!("writing to Asterisk failed: {e}"))),
        Err(_) => Err(link_down("writing to Asterisk stalled")),
    }
}

fn value(text: &str) -> Result<AmiValue> {
    Ok(AmiValue::new(text)?)
}

fn config_action(name: &str) -> Result<Action> {
    Ok(Action::new(name)?)
}

fn header(action: Action, key: &str, text: &str) -> Result<Action> {
    action
        .try_header(key, text)
        .map_err(|e| Error::new(ErrorKind::Config, format!("AMI {key}: {e}")).with_source(e))
}

/// Connects, reads the banner and logs in.
async fn establish(config: &AmiConfig, transport: &Transport) -> Result<Conn> {
    let t = config.timeouts.connect;
    let (read, write) = transport::connect(&config.address, t, transport).await?;
    let decoder = DecoderConfig::new().with_max_message_bytes(config.limits.max_message_bytes);
    let mut conn = Conn {
        read,
        write,
        codec: AmiCodec::with_config(decoder),
        buf: BytesMut::with_capacity(READ_CHUNK),
        banner: Banner::parse(b"Asterisk Call Manager/unknown")?,
    };
    let banner = read_frame(
        &mut conn.read,
        &mut conn.codec,
        &mut conn.buf,
        t,
        "waiting for the banner",
    )
    .await
    .map_err(|e| match (e.kind(), &config.tls) {
        // A TLS server waits for the client's hello: nothing comes.
        (ErrorKind::Timeout, None) => Error::new(
            ErrorKind::Timeout,
            format!(
                "{} (is {} a TLS port, such as 5039? then configure TLS)",
                e.message(),
                config.address
            ),
        ),
        _ => e,
    })?;
    match banner {
        Frame::Banner(banner) => conn.banner = banner,
        Frame::Message(_) => {
            return Err(link_down("Asterisk sent a message before its banner"));
        }
    }
    let mut login = config_action("Login")?;
    login.set_action_id(value("login-1")?);
    login = header(login, "Username", &config.username)?;
    match config.auth {
        AuthMethod::Plaintext => {
            let secret = AmiValue::secret(config.secret.expose_secret())
                .map_err(|_| Error::new(ErrorKind::Config, "the AMI secret cannot be sent"))?;
            login = login.header(crate::action::AmiKey::from_static("Secret")?, secret);
        }
        AuthMethod::Md5Challenge => {
            let challenge = config_action("Challenge")?;
            let challenge = header(
                challenge.action_id(value("challenge-1")?),
                "AuthType",
                "MD5",
            )?;
            write_action(&mut conn, &challenge, t).await?;
            let response =
                read_response(&mut conn, "challenge-1", t, "waiting for the MD5 challenge").await?;
            let nonce = match (response.response(), response.get("Challenge")) {
                (Some("Success"), Some(nonce)) => nonce.to_owned(),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "Asterisk refused the MD5 challenge: {} (use AuthMethod::Plaintext over TLS if it lacks MD5 support)",
                            response.text().unwrap_or("no reason given")
                        ),
                    ))
                }
            };
            let mut hasher = Md5::new();
            hasher.update(nonce.as_bytes());
            hasher.update(config.secret.expose_secret().as_bytes());
            let key: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            login = header(login, "AuthType", "MD5")?;
            login = login.header(
                crate::action::AmiKey::from_static("Key")?,
                AmiValue::secret(key)?,
            );
        }
    }
    login = header(login, "Events", &config.event_mask)?;
    write_action(&mut conn, &login, t).await?;
    let response =
        match read_response(&mut conn, "login-1", t, "waiting for the login response").await {
            Ok(response) => response,
            Err(e) if e.kind() == ErrorKind::LinkDown => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                "Asterisk closed the connection instead of answering the login of user {:?} ({})",
                config.username,
                e.message()
            ),
                ))
            }
            Err(e) => return Err(e),
        };
    if response.response() != Some("Success") {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "Asterisk refused the login of AMI user {:?}: {} (check the username and secret in manager.conf, and its permit/deny lines)",
                config.username,
                response.text().unwrap_or("no reason given")
            ),
        ));
    }
    Ok(conn)
}

/// The connection task: serve, then reconnect with backoff, until stopped.
async fn run(shared: Arc<Shared>, mut next: Option<Conn>) {
    let mut attempt: u32 = 0;
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let conn = match next.take() {
            Some(conn) => conn,
            None => match establish(&shared.config, &shared.transport).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "AMI: reconnect failed");
                    let delay = shared.config.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shared.stop.notified() => return,
                    }
                    continue;
                }
            },
        };
        attempt = 0;
        let reason = serve(&shared, conn).await;
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(%reason, "AMI: connection dropped; reconnecting");
        shared.handler.disconnected(&reason);
        let delay = shared.config.backoff.delay(0);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.stop.notified() => return,
        }
    }
}

/// Serves one logged-in connection until it drops; returns why.
async fn serve(shared: &Arc<Shared>, conn: Conn) -> String {
    let Conn {
        mut read,
        write,
        mut codec,
        mut buf,
        banner,
    } = conn;
    let kill = Arc::new(Notify::new());
    let generation = {
        let mut link = shared.link();
        link.generation += 1;
        link.writer = Some(Arc::new(tokio::sync::Mutex::new(write)));
        link.kill = kill.clone();
        link.generation
    };
    shared.handler.connected(&banner);
    shared.up.send_replace(generation);
    let keepalive = tokio::spawn(keepalive(shared.clone(), generation, kill.clone()));
    // The reader decodes; a thread of its own hands the decoded reads to the handler and
    // the waiting actions, in order, so that decoding the next read and translating
    // this one run on two cores.
    let (reads, decoded_reads) = tokio::sync::mpsc::channel(READS_IN_FLIGHT);
    let fell_behind = Arc::new(AtomicBool::new(false));
    let deliverer = tokio::task::spawn_blocking({
        let shared = shared.clone();
        let kill = kill.clone();
        let fell_behind = fell_behind.clone();
        move || deliver_reads(&shared, decoded_reads, &kill, &fell_behind)
    });
    let reason = 'conn: loop {
        // Whatever is already buffered (it came with the login response) goes first.
        let mut messages = Vec::new();
        let decoded = codec.decode_batch(&mut buf, &mut messages);
        if !messages.is_empty() && reads.send(messages).await.is_err() {
            break 'conn String::new();
        }
        if let Err(e) = decoded {
            break 'conn format!(
                "Asterisk sent something that is not AMI ({e}); reconnecting to resynchronise"
            );
        }
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = read.read_buf(&mut buf) => match read {
                Ok(0) => {
                    let tail = match codec.decode_eof(&mut buf) {
                        Err(e) => format!(" ({e})"),
                        Ok(_) => String::new(),
                    };
                    break format!("Asterisk closed the connection{tail}");
                }
                Ok(_) => {
                    shared.reads.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => break format!("reading from Asterisk failed: {e}"),
            },
            _ = kill.notified() => break "the link stopped answering (keepalive or write failure)".to_owned(),
            _ = shared.stop.notified() => break "stopped".to_owned(),
        }
    };
    // What was read reaches the handler before it hears of the disconnection.
    drop(reads);
    let _ = deliverer.await;
    let reason = if fell_behind.load(Ordering::SeqCst) {
        "the event consumer could not keep up; reconnecting to rebuild".to_owned()
    } else {
        reason
    };
    keepalive.abort();
    let mut link = shared.link();
    if link.generation == generation {
        link.writer = None;
    }
    fail_all(
        &mut link,
        &format!("the connection to Asterisk dropped: {reason}"),
    );
    reason
}

/// The deliverer's loop: each decoded read through [`deliver`], in order, until the
/// reader stops sending or the handler cannot keep up (then it tells the reader).
fn deliver_reads(
    shared: &Shared,
    mut decoded_reads: tokio::sync::mpsc::Receiver<Vec<Message>>,
    kill: &Notify,
    fell_behind: &AtomicBool,
) {
    let mut events = Vec::new();
    while let Some(mut messages) = decoded_reads.blocking_recv() {
        if !deliver(shared, &mut messages, &mut events) {
            fell_behind.store(true, Ordering::SeqCst);
            kill.notify_one();
            return;
        }
    }
}

/// Routes a read's messages in order: runs of events that answer no action go to the
/// handler together, anything else through [`dispatch`]. Returns `false` when the
/// handler could not keep up (the rest is dropped with the connection).
fn deliver(shared: &Shared, messages: &mut Vec<Message>, events: &mut Vec<Message>) -> bool {
    let mut ok = true;
    for msg in messages.drain(..) {
        if msg.kind() == MessageKind::Event && msg.action_id().is_none() {
            events.push(msg);
            continue;
        }
        // The events before a response reach the handler before its waiter wakes.
        ok = events.is_empty() || shared.handler.events(events);
        events.clear();
        if !ok || !dispatch(shared, msg) {
            ok = false;
            break;
        }
    }
    messages.clear();
    if ok && !events.is_empty() {
        ok = shared.handler.events(events);
    }
    events.clear();
    ok
}

/// Routes one message: to the action waiting for it, or to the handler. What a waiter
/// keeps is detached from the read's shared text.
fn dispatch(shared: &Shared, msg: Message) -> bool {
    let kind = msg.kind();
    if let Some(id) = msg.action_id() {
        let mut link = shared.link();
        if let Some(waiting) = link.pending.get_mut(id) {
            match waiting {
                Waiting::Single(_) if kind != MessageKind::Event => {
                    if let Some(Waiting::Single(tx)) = link.pending.remove(id) {
                        let _ = tx.send(Ok(msg.detached()));
                    }
                    return true;
                }
                Waiting::Single(_) => {}
                Waiting::List {
                    response, items, ..
                } => {
                    if kind != MessageKind::Event {
                        let is_list = msg
                            .get("EventList")
                            .is_some_and(|v| v.eq_ignore_ascii_case("start"));
                        if is_list {
                            *response = Some(msg.detached());
                        } else if let Some(Waiting::List { reply, .. }) = link.pending.remove(id) {
                            // An error, or a list that is empty without saying so.
                            let _ = reply.send(Ok(ListResponse {
                                response: msg.detached(),
                                items: Vec::new(),
                                complete: None,
                            }));
                        }
                        return true;
                    }
                    let complete = msg
                        .get("EventList")
                        .is_some_and(|v| v.eq_ignore_ascii_case("Complete"));
                    if !complete {
                        if items.len() >= shared.config.limits.max_list_items {
                            if let Some(Waiting::List { reply, .. }) = link.pending.remove(id) {
                                let _ = reply.send(Err(Error::new(
                                    ErrorKind::Rejected,
                                    format!(
                                        "the list had more than {} items; refused",
                                        shared.config.limits.max_list_items
                                    ),
                                )));
                            }
                            return true;
                        }
                        items.push(msg.detached());
                        return true;
                    }
                    if let Some(Waiting::List {
                        reply,
                        response,
                        items,
                    }) = link.pending.remove(id)
                    {
                        let msg = msg.detached();
                        let response = response.unwrap_or_else(|| msg.clone());
                        let _ = reply.send(Ok(ListResponse {
                            response,
                            items,
                            complete: Some(msg),
                        }));
                    }
                    return true;
                }
            }
        }
    }
    match kind {
        MessageKind::Event => shared.handler.event(msg),
        _ => {
            tracing::debug!(action_id = ?msg.action_id(), "AMI: response for no waiting action");
            true
        }
    }
}

/// Pings every keepalive interval; a ping unanswered while nothing at all arrives drops
/// the connection. (On a busy link the answer may wait behind thousands of events the
/// reader has yet to translate: bytes arriving meanwhile show the link is alive.)
async fn keepalive(shared: Arc<Shared>, generation: u64, kill: Arc<Notify>) {
    let client = AmiClient {
        shared: shared.clone(),
    };
    let interval = shared.config.timeouts.keepalive;
    loop {
        tokio::time::sleep(interval).await;
        if shared.link().generation != generation {
            return;
        }
        let Ok(ping) = Action::new("Ping") else {
            return;
        };
        let reads = shared.reads.load(Ordering::Relaxed);
        match client.send(ping).await {
            Ok(_) => {}
            Err(e)
                if e.kind() == ErrorKind::Timeout
                    && shared.reads.load(Ordering::Relaxed) != reads =>
            {
                tracing::debug!("AMI: keepalive ping answered late; the link is busy, not dead");
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {
                tracing::warn!(error = %e, "AMI: keepalive ping unanswered");
                kill.notify_one();
                return;
            }
            Err(_) => return,
        }
    }
}
