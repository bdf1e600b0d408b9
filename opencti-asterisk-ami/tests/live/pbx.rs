//! The real Asterisk the live tests run against, and the far end they drive through it.
//!
//! `.ci/run` builds Asterisk 22 from source (`peers/asterisk/build-asterisk.sh`) into
//! `$OPENCTI_ASTERISK_PREFIX` and starts it with `peers/asterisk/start-asterisk.sh`: AMI
//! on 127.0.0.1:5038, SIP on 127.0.0.1:5080, the dialplan and queues of
//! `peers/asterisk/config`. Every live test takes [`Pbx::take`] first: it waits for the
//! one PBX (tests run one after another against it), hangs up whatever a previous test
//! left, and gives a control connection that plays the far end (customers calling,
//! hanging up) through AMI actions.
//!
//! No Asterisk answering: the test is skipped with a printed reason, or fails when
//! `CI=true`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use opencti_asterisk_ami::{
    Action, AmiClient, AmiConfig, AmiConnector, AnswerMode, Banner, ClientEvents, Message, Secret,
};
use opencti_core::{
    AgentId, CallId, DesktopInterface, DeviceId, EventEnvelope, EventStream, Session,
};
use tokio::sync::{broadcast, Mutex, OwnedMutexGuard};

/// Where AMI listens, as `peers/asterisk/config/manager.conf` says.
pub const AMI_ADDRESS: &str = "127.0.0.1:5038";
/// The AMI user of `manager.conf`.
pub const AMI_USER: &str = "opencti";
/// Its secret.
pub const AMI_SECRET: &str = "opencti-secret";
/// How long any one expected thing may take on the live PBX.
pub const WAIT: Duration = Duration::from_secs(15);

fn lock() -> Arc<Mutex<()>> {
    static LOCK: OnceLock<Arc<Mutex<()>>> = OnceLock::new();
    LOCK.get_or_init(|| Arc::new(Mutex::new(()))).clone()
}

/// Takes the PBX from other test processes too (another crate's tests, a second
/// `cargo test`): an exclusive lock on a file in the temporary directory, released when the
/// returned file closes.
async fn lock_across_processes() -> std::fs::File {
    let path = std::env::temp_dir().join("opencti-asterisk-live.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
        file
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The Asterisk build the tests use (`$OPENCTI_ASTERISK_PREFIX`, as `.ci/run` sets it).
pub fn prefix() -> PathBuf {
    std::env::var_os("OPENCTI_ASTERISK_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/opencti/asterisk"))
}

/// Where the running instance keeps its configuration, keys and logs
/// (`$OPENCTI_ASTERISK_RUNDIR`, by default `PREFIX/run` as start-asterisk.sh has it).
pub fn rundir() -> PathBuf {
    std::env::var_os("OPENCTI_ASTERISK_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| prefix().join("run"))
}

/// The asterisk.conf the running instance was started with.
pub fn asterisk_conf() -> PathBuf {
    rundir().join("etc/asterisk/asterisk.conf")
}

/// The AMI crate's copy of the Asterisk kit (scripts, config, baresip phones); found
/// from any crate of the workspace that includes these helpers.
pub fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../opencti-asterisk-ami/peers/asterisk")
}

async fn ami_answers() -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(Ok(mut socket)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(AMI_ADDRESS),
    )
    .await
    else {
        return false;
    };
    let mut banner = [0u8; 22];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), socket.read_exact(&mut banner)).await,
        Ok(Ok(_)) if banner.starts_with(b"Asterisk Call Manager")
    )
}

/// A skip on a developer's machine, a failure under `CI=true`.
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

/// Raw AMI events the control connection sees.
struct Forward(broadcast::Sender<Arc<Message>>);

impl ClientEvents for Forward {
    fn connected(&self, _banner: &Banner) {}
    fn event(&self, event: Message) -> bool {
        let _ = self.0.send(Arc::new(event));
        true
    }
    fn disconnected(&self, _reason: &str) {}
}

/// The PBX, held by one test at a time.
pub struct Pbx {
    _turn: OwnedMutexGuard<()>,
    _process_turn: std::fs::File,
    /// The control connection: the far end's actions and the tests' own checks.
    pub control: AmiClient,
    raw: broadcast::Sender<Arc<Message>>,
}

impl Pbx {
    /// Waits for the PBX, checks it answers, and clears what an earlier test left.
    /// `None`: no Asterisk here (skipped, with the reason printed).
    pub async fn take() -> Option<Pbx> {
        let turn = lock().lock_owned().await;
        let process_turn = lock_across_processes().await;
        if !ami_answers().await {
            skip(&format!(
                "no Asterisk answers AMI on {AMI_ADDRESS}: build and start it with \
                 opencti-asterisk-ami/peers/asterisk/build-asterisk.sh PREFIX and start-asterisk.sh PREFIX \
                 (.ci/run does both)"
            ));
            return None;
        }
        let (raw, _) = broadcast::channel(16_384);
        let control = AmiClient::start(config(), Arc::new(Forward(raw.clone())))
            .await
            .unwrap_or_else(|e| panic!("control connection to Asterisk: {e}"));
        let pbx = Pbx {
            _turn: turn,
            _process_turn: process_turn,
            control,
            raw,
        };
        pbx.clear().await;
        Some(pbx)
    }

    /// Raw AMI events from now on.
    pub fn raw_events(&self) -> broadcast::Receiver<Arc<Message>> {
        self.raw.subscribe()
    }

    /// Sends an action built from `(key, value)` pairs and returns the response.
    pub async fn send(
        &self,
        name: &str,
        headers: &[(&str, &str)],
    ) -> opencti_core::Result<Message> {
        self.control.send(action(name, headers)).await
    }

    /// The items of a list action.
    pub async fn list(&self, name: &str, headers: &[(&str, &str)]) -> Vec<Message> {
        self.control
            .send_list(action(name, headers))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .items
    }

    /// The live channels: (name, uniqueid, linkedid).
    pub async fn channels(&self) -> Vec<Channel> {
        self.list("CoreShowChannels", &[])
            .await
            .into_iter()
            .filter(|m| m.event() == Some("CoreShowChannel"))
            .map(|m| Channel {
                name: m.get("Channel").unwrap_or_default().to_string(),
                uniqueid: m.get("Uniqueid").unwrap_or_default().to_string(),
                linkedid: m.get("Linkedid").unwrap_or_default().to_string(),
                application: m.get("Application").unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// The live channels once `ready` holds for them, waiting at most [`WAIT`].
    ///
    /// A confirmed command can come before Asterisk has moved every channel: a
    /// `Redirect` takes the device out of its bridge first, and the other party
    /// starts its new dialplan a moment later.
    pub async fn channels_once(
        &self,
        what: &str,
        ready: impl Fn(&[Channel]) -> bool,
    ) -> Vec<Channel> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let channels = self.channels().await;
            if ready(&channels) {
                return channels;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} (waited {WAIT:?}): {channels:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no channel is up (at most [`WAIT`]), hanging up what is left after
    /// half of it.
    pub async fn clear(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut hung_up = false;
        loop {
            let channels = self.channels().await;
            if channels.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "channels still up on the PBX: {channels:?}"
            );
            if !hung_up {
                for c in &channels {
                    let _ = self.send("Hangup", &[("Channel", &c.name)]).await;
                }
                hung_up = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for queue in ["support", "sales"] {
            for member in self.queue_members(queue).await {
                if member.membership == "static" {
                    if member.paused {
                        let _ = self
                            .send(
                                "QueuePause",
                                &[
                                    ("Queue", queue),
                                    ("Interface", &member.interface),
                                    ("Paused", "false"),
                                ],
                            )
                            .await;
                    }
                } else {
                    let _ = self
                        .send(
                            "QueueRemove",
                            &[("Queue", queue), ("Interface", &member.interface)],
                        )
                        .await;
                }
            }
        }
    }

    /// A queue's members as QueueStatus reports them.
    pub async fn queue_members(&self, queue: &str) -> Vec<Member> {
        self.list("QueueStatus", &[("Queue", queue)])
            .await
            .into_iter()
            .filter(|m| m.event() == Some("QueueMember"))
            .map(|m| Member {
                interface: m
                    .get("StateInterface")
                    .or(m.get("Location"))
                    .unwrap_or_default()
                    .to_string(),
                membership: m.get("Membership").unwrap_or_default().to_string(),
                paused: m.get("Paused") == Some("1"),
            })
            .collect()
    }

    /// A customer (a Local channel that waits) calls `exten` in `context`:
    /// `from-customers` for a Local agent or a queue, `pjsip-customers` for a SIP phone.
    /// Returns the customer's channel name.
    pub async fn customer_calls(&self, context: &str, exten: &str, caller: &str) -> String {
        let id = format!("cust-{}", fastrand::u64(..));
        let channel = format!("Local/{exten}@{context}");
        self.send(
            "Originate",
            &[
                ("Channel", &channel),
                ("Application", "Wait"),
                ("Data", "3600"),
                ("CallerID", &format!("\"Customer\" <{caller}>")),
                ("ChannelId", &id),
                ("OtherChannelId", &format!("{id}-2")),
                ("Async", "true"),
                ("Timeout", "30000"),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("originate a customer: {e}"));
        id
    }

    /// Hangs up every channel of the call that is not the device's.
    pub async fn far_end_hangs_up(&self, device: &str, call: &str) -> usize {
        let channels = self.channels().await;
        let linkedid = channels
            .iter()
            .find(|c| c.uniqueid == call || c.linkedid == call)
            .map(|c| c.linkedid.clone())
            .unwrap_or_else(|| call.to_string());
        let mut n = 0;
        for c in channels
            .iter()
            .filter(|c| c.linkedid == linkedid && !c.name.starts_with(device))
        {
            if self.send("Hangup", &[("Channel", &c.name)]).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Waits until Asterisk is back after a restart and the control connection has
    /// logged in again.
    pub async fn wait_until_back(&self) {
        wait_fully_booted().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.control.is_up() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the control connection did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `asterisk -rx command` against the running instance.
    pub fn cli(&self, command: &str) -> String {
        cli(command)
    }
}

/// An action the tests build from constants.
pub fn action(name: &str, headers: &[(&str, &str)]) -> Action {
    let mut action = Action::new(name).unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in headers {
        action = action
            .try_header(k, v)
            .unwrap_or_else(|e| panic!("{name} {k}: {e}"));
    }
    action
}

/// Waits until Asterisk says it is fully booted after a restart.
pub async fn wait_fully_booted() {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while !cli("core waitfullybooted").contains("fully booted") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Asterisk did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `asterisk -rx command` against the running instance.
pub fn cli(command: &str) -> String {
    let out = Process::new(prefix().join("sbin/asterisk"))
        .arg("-C")
        .arg(asterisk_conf())
        .arg("-rx")
        .arg(command)
        .output()
        .unwrap_or_else(|e| panic!("asterisk -rx {command}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live channel.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub uniqueid: String,
    pub linkedid: String,
    pub application: String,
}

/// A queue member.
#[derive(Debug, Clone)]
pub struct Member {
    pub interface: String,
    pub membership: String,
    pub paused: bool,
}

/// The connector's config for the test PBX: every feature it has turned on.
pub fn config() -> AmiConfig {
    let mut config = AmiConfig::new(AMI_ADDRESS, AMI_USER, Secret::new(AMI_SECRET));
    config.timeouts.action = Duration::from_secs(10);
    config
}

/// A Local-channel agent: its phone (the `agents` context) answers after a second.
pub fn local_agent_config(queues: &[&str]) -> AmiConfig {
    let mut config = config();
    config.queues = queues.iter().map(|q| q.to_string()).collect();
    config.outbound_context = "from-agents".into();
    config.conference_context = Some("opencti-conference".into());
    config.answer = AnswerMode::PhoneAnswersItself;
    config
}

/// A session for `agent` at `device` over its own connector.
pub async fn desk(agent: &str, device: &str, config: AmiConfig) -> Panel {
    let connector = Arc::new(AmiConnector::new(config).unwrap_or_else(|e| panic!("{e}")));
    let session = Session::builder(
        connector,
        AgentId::new(agent).unwrap_or_else(|e| panic!("{e}")),
        DeviceId::new(device).unwrap_or_else(|e| panic!("{e}")),
    )
    .command_timeout(WAIT)
    .start_timeout(WAIT)
    .start()
    .await
    .unwrap_or_else(|e| panic!("session for {device}: {e}"));
    Panel::new(session, device)
}

/// A session and the events it has given so far.
pub struct Panel {
    pub session: Session,
    events: EventStream,
    /// Every event taken from the stream, in order.
    pub seen: Vec<Arc<EventEnvelope>>,
    pub device: String,
}

impl Panel {
    /// A desk over a started session.
    pub fn new(session: Session, device: &str) -> Panel {
        let events = session.subscribe();
        Panel {
            session,
            events,
            seen: Vec::new(),
            device: device.to_string(),
        }
    }

    /// Waits for the next event named `name` (on `call`, if given); panics after
    /// [`WAIT`], listing what came instead.
    pub async fn expect(&mut self, name: &str, call: Option<&CallId>) -> Arc<EventEnvelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(Ok(event))) => {
                    self.seen.push(event.clone());
                    if event.event.name() == name && (call.is_none() || event.call() == call) {
                        return event;
                    }
                }
                Ok(Some(Err(e))) => panic!("{}: event stream: {e}", self.device),
                Ok(None) => panic!("{}: the session closed", self.device),
                Err(_) => panic!(
                    "{}: no {name}{} within {WAIT:?}; saw {}",
                    self.device,
                    call.map(|c| format!(" on {c}")).unwrap_or_default(),
                    self.names()
                ),
            }
        }
    }

    /// The names of the events seen so far, for messages.
    pub fn names(&self) -> String {
        self.seen
            .iter()
            .map(|e| match e.call() {
                Some(c) => format!("{}({c})", e.event.name()),
                None => e.event.name().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Dials `number` from the desk and waits until the call is connected.
    pub async fn call_out(&mut self, number: &str) -> CallId {
        let to = opencti_core::Dialable::new(number).unwrap_or_else(|e| panic!("{e}"));
        let call = opencti_core::DesktopInterfaceExt::make_call(&self.session, to)
            .await
            .unwrap_or_else(|e| panic!("{}: make_call {number}: {e}", self.device))
            .call()
            .cloned()
            .unwrap_or_else(|| panic!("{}: make_call confirmed without a call", self.device));
        self.expect("call_connected", Some(&call)).await;
        call
    }

    /// Waits until the panel shows no call.
    pub async fn until_idle(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.session.snapshot().calls.is_empty() {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(Ok(event))) => self.seen.push(event),
                Ok(_) => panic!("{}: the session closed", self.device),
                Err(_) => panic!(
                    "{}: calls still on the panel: {:?}; saw {}",
                    self.device,
                    self.session.snapshot().calls,
                    self.names()
                ),
            }
        }
    }

    /// Checks that the session accepted every event the connector emitted, and stops.
    pub async fn finish(self) {
        let stats = self.session.stats();
        assert_eq!(
            stats.rejected,
            0,
            "{}: the session refused {} events from the connector; saw {}",
            self.device,
            stats.rejected,
            self.names()
        );
        let _ = self.session.stop().await;
    }
}

/// The call ids on a desk's panel.
pub fn calls(desk: &dyn DesktopInterface) -> Vec<CallId> {
    desk.snapshot().calls.iter().map(|c| c.id.clone()).collect()
}

/// A TCP proxy to Asterisk's AMI whose connections the test can cut, as a network
/// failure or a firewall would.
pub struct Proxy {
    pub address: String,
    cut: Arc<tokio::sync::Notify>,
    hold: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string();
        let cut = Arc::new(tokio::sync::Notify::new());
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, h) = (cut.clone(), hold.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if h.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut client).await;
                    continue;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(AMI_ADDRESS).await else {
                    continue;
                };
                let cut = c.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Proxy {
            address,
            cut,
            hold,
            task,
        }
    }

    /// Drops every connection through the proxy.
    pub fn cut(&self) {
        self.cut.notify_waiters();
    }

    /// While set, new connections are closed at once (the network stays down).
    pub fn hold_reconnects(&self, hold: bool) {
        self.hold.store(hold, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
