//! Watching a whole Asterisk: the canonical events of every device, each tagged with
//! its device, for debugging an integration and recording what happened.
//!
//! [`Watcher`] is the synchronous part: it discovers devices from channel names
//! (`PJSIP/1001-0000000a` is device `PJSIP/1001`) and queue-member events, and keeps
//! one [`Translator`] per device that has something going on. With no session to own
//! a device's state, the watcher owns it: each device's events are applied to an
//! `opencti_core::machine::Desk` of its own ([`DeskEvents`]) as a session would apply
//! them, so every device's stream passes the same checks as a desk's. [`AmiWatch`] connects it to Asterisk: it logs in
//! with an [`AmiClient`], reads the state after every (re)connect and hands out
//! [`WatchItem`]s.
//!
//! Cost: like an [`AmiLink`](crate::AmiLink), the watcher keeps one channel tracker and
//! routes each event only to the devices it concerns (a device's own channels, the
//! devices in the same bridge, the queue member it names). A device carries at most
//! `opencti_core::machine::Desk::MAX_CALLS` calls at once, so watch phones, not busy
//! trunks (see [`WatchConfig::devices`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use opencti_core::{Error, ErrorKind, Event, Result, SwitchState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::action::Action;
use crate::client::{AmiClient, ClientEvents};
use crate::config::{AmiConfig, HoldConfig};
use crate::device::{interface_of, DeviceMatcher, LineId};
use crate::frame::Banner;
use crate::line::ORIGINATE_PREFIX;
use crate::message::Message;
use crate::switchboard::{Outputs, Switchboard};
use crate::translate::{DeskEvents, EventOut, LineBook, TranslatorConfig};

/// What the watcher follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// Which devices: empty for every device, else interface patterns compared ASCII
    /// case-insensitively, exact (`PJSIP/1001`) or a prefix ending in `*` (`PJSIP/*`,
    /// `PJSIP/10*`).
    pub devices: Vec<String>,
    /// Channel technologies that are never devices (default: `CBAnn`, `CBRec`,
    /// `Announcer`, `Recorder`, `Snoop`, `Message`: ConfBridge's announcer and recorder,
    /// spies and message channels).
    pub ignore_technologies: Vec<String>,
    /// Queues whose memberships give agent states; empty for every queue that
    /// `QueueStatus` lists at each (re)connect (a queue created later is followed from
    /// the next reconnect).
    pub queues: Vec<String>,
    /// The hold context the desks use, so that a hold by `Redirect` reads as a hold.
    pub hold: Option<HoldConfig>,
    /// Most devices followed at once (default 1,000); a device beyond it is not
    /// followed until another falls idle.
    pub max_devices: usize,
    /// Channels and bridges tracked (default 100,000 each).
    pub max_channels: usize,
    /// Events held while the state is read after a (re)connect (default 100,000); more
    /// drops the connection and the next one starts over.
    pub max_held_events: usize,
    /// Items [`AmiWatch`] keeps for a consumer that does not take them (default
    /// 100,000); more drops the connection (a `link_down` says so) and the state is read
    /// again when it is back.
    pub max_pending_items: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            devices: Vec::new(),
            ignore_technologies: [
                "CBAnn",
                "CBRec",
                "Announcer",
                "Recorder",
                "Snoop",
                "Message",
            ]
            .map(String::from)
            .to_vec(),
            queues: Vec::new(),
            hold: Some(HoldConfig::default()),
            max_devices: 1_000,
            max_channels: 100_000,
            max_held_events: 100_000,
            max_pending_items: 100_000,
        }
    }
}

impl WatchConfig {
    /// The defaults, with the queues, hold context and limits of a connector's config.
    pub fn from_ami(config: &AmiConfig) -> Self {
        WatchConfig {
            queues: config.queues.clone(),
            hold: config.hold.clone(),
            max_channels: config.limits.max_channels,
            max_held_events: config.limits.max_held_events,
            ..WatchConfig::default()
        }
    }

    /// Whether `interface` is a device to follow.
    pub fn follows(&self, interface: &str) -> bool {
        let tech = interface.split('/').next().unwrap_or_default();
        if self
            .ignore_technologies
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tech))
        {
            return false;
        }
        self.devices.is_empty()
            || self
                .devices
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => interface
                        .get(..prefix.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
                    None => interface.eq_ignore_ascii_case(pattern),
                })
    }
}

/// One canonical event on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// The device's interface (`PJSIP/1001`).
    pub device: String,
    /// The event, as a session for that device would receive it.
    pub event: Event,
}

/// One device followed: its interface, and the state its events built.
#[derive(Debug)]
struct Followed {
    device: String,
    desk: DeskEvents,
}

/// Each followed device's desk, by its place on the switchboard; the places an event
/// reached are noted, so that only their events are collected.
#[derive(Debug, Default)]
struct Desks {
    followed: Vec<Option<Followed>>,
    touched: Vec<LineId>,
    discard: DeskEvents,
}

impl Outputs for Desks {
    fn output(&mut self, line: LineId) -> &mut dyn EventOut {
        match self.followed.get_mut(line as usize) {
            Some(Some(f)) => {
                if !self.touched.contains(&line) {
                    self.touched.push(line);
                }
                &mut f.desk
            }
            _ => &mut self.discard,
        }
    }
}

impl Desks {
    /// Moves the events the touched desks took to `out`, tagged with their devices.
    fn collect(&mut self, out: &mut Vec<DeviceEvent>) {
        for line in self.touched.drain(..) {
            let Some(Some(f)) = self.followed.get_mut(line as usize) else {
                continue;
            };
            for (event, _) in f.desk.events.drain(..) {
                out.push(DeviceEvent {
                    device: f.device.clone(),
                    event,
                });
            }
            for (event, error) in f.desk.rejected.drain(..) {
                tracing::debug!(
                    device = f.device,
                    event = event.name(),
                    error = %error.message,
                    "AMI watch: event does not fit the device's state"
                );
            }
        }
        self.discard.events.clear();
        self.discard.rejected.clear();
    }
}

/// Follows every device of an Asterisk (synchronous; see the module docs).
///
/// Feed it every AMI event with [`translate`](Watcher::translate) (or
/// [`on_event`](Watcher::on_event), which holds events while the state is being read).
///
/// ```
/// use opencti_asterisk_ami::{Message, WatchConfig, Watcher};
///
/// let mut watcher = Watcher::new(WatchConfig::default());
/// let mut out = Vec::new();
/// let newchannel = Message::parse(
///     "Event: Newchannel\r\nChannel: PJSIP/1001-00000001\r\nChannelState: 4\r\n\
///      Uniqueid: 1795238001.1\r\nLinkedid: 1795238001.1\r\nExten: 2001\r\n\r\n",
/// )?;
/// watcher.translate(&newchannel, &mut out);
/// assert_eq!(out[0].device, "PJSIP/1001");
/// assert_eq!(out[0].event.name(), "call_initiated");
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Debug)]
pub struct Watcher {
    config: WatchConfig,
    switchboard: Switchboard,
    desks: Desks,
    queues: Vec<String>,
    not_followed: u64,
}

impl Watcher {
    /// A watcher that follows what `config` says; nothing is known yet.
    pub fn new(config: WatchConfig) -> Self {
        Watcher {
            switchboard: Switchboard::new(config.max_channels, config.max_held_events),
            desks: Desks::default(),
            queues: config.queues.clone(),
            not_followed: 0,
            config,
        }
    }

    /// The devices followed now with something going on, in name order.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        let mut busy: Vec<&str> = self
            .followed()
            .filter(|(_, f, book)| !is_idle(f, book))
            .map(|(_, f, _)| f.device.as_str())
            .collect();
        busy.sort_unstable();
        busy.into_iter()
    }

    fn followed(&self) -> impl Iterator<Item = (LineId, &Followed, &LineBook)> + '_ {
        self.switchboard.lines().filter_map(|(line, book)| {
            let f = self.desks.followed.get(line as usize)?.as_ref()?;
            Some((line, f, book))
        })
    }

    /// The queues whose memberships are followed now.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// The state of every device with something going on, as a connector would report
    /// it, in name order.
    pub fn states(&self) -> Vec<(String, SwitchState)> {
        let mut states: Vec<(String, SwitchState)> = self
            .followed()
            .filter(|(_, f, book)| !is_idle(f, book))
            .map(|(_, f, book)| (f.device.clone(), book.switch_state(&f.desk)))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// How many times a new device was not followed because `max_devices` busy devices
    /// were followed already.
    pub fn not_followed(&self) -> u64 {
        self.not_followed
    }

    fn book(&self, interface: &str) -> LineBook {
        LineBook::new(TranslatorConfig {
            device: DeviceMatcher::new(interface),
            queues: self.queues.clone(),
            hold: self.config.hold.clone(),
            originate_prefix: ORIGINATE_PREFIX.into(),
        })
    }

    /// Starts following `interface` if it is a device to follow and not followed yet;
    /// it starts from the channels the watcher knows. At `max_devices`, an idle device
    /// makes room.
    fn discover(&mut self, interface: &str) {
        if !self.config.follows(interface)
            || self
                .switchboard
                .lines()
                .any(|(_, b)| b.interface().eq_ignore_ascii_case(interface))
        {
            return;
        }
        let count = self.switchboard.lines().count();
        if count >= self.config.max_devices.max(1) {
            let idle = self
                .followed()
                .find(|(_, f, book)| is_idle(f, book))
                .map(|(line, _, _)| line);
            match idle {
                Some(line) => self.forget(line),
                None => {
                    self.not_followed += 1;
                    tracing::debug!(interface, "AMI watch: too many devices; not followed");
                    return;
                }
            }
        }
        let book = self.book(interface);
        let Some(line) = self.switchboard.add(book, true) else {
            return;
        };
        let i = line as usize;
        if self.desks.followed.len() <= i {
            self.desks.followed.resize_with(i + 1, || None);
        }
        self.desks.followed[i] = Some(Followed {
            device: interface.to_owned(),
            desk: DeskEvents::new(),
        });
    }

    fn forget(&mut self, line: LineId) {
        self.switchboard.remove(line, &mut self.desks);
        if let Some(slot) = self.desks.followed.get_mut(line as usize) {
            *slot = None;
        }
    }

    /// The devices an event may start: a new (or renamed) channel's, a queue member's.
    fn discover_from(&mut self, msg: &Message) {
        let Some(event) = msg.event() else {
            return;
        };
        let interface = match event {
            "Newchannel" => msg.get("Channel").and_then(interface_of),
            "Rename" => msg.get("Newname").and_then(interface_of),
            "QueueMemberAdded" | "QueueMemberPause" | "QueueMemberPaused" | "QueueMemberStatus" => {
                let watched = msg
                    .get("Queue")
                    .is_some_and(|q| self.queues.iter().any(|w| w == q));
                watched
                    .then(|| msg.get("Interface").or_else(|| msg.get("Location")))
                    .flatten()
            }
            _ => None,
        };
        if let Some(interface) = interface {
            self.discover(interface);
        }
    }

    /// Translates one AMI event for every device it concerns, appending their events
    /// to `out`.
    pub fn translate(&mut self, msg: &Message, out: &mut Vec<DeviceEvent>) {
        // A new device starts from the state *before* this event, and then takes the
        // event itself like every other.
        self.discover_from(msg);
        self.switchboard.translate(msg, &mut self.desks);
        self.desks.collect(out);
    }

    /// From now on, hold events instead of translating them, until
    /// [`release_held`](Watcher::release_held) (after a (re)connect, until the state has
    /// been read with [`rebuild`](Watcher::rebuild)).
    pub fn hold_events(&mut self) {
        self.switchboard.begin_read();
    }

    /// Whether events are being held.
    pub fn is_holding(&self) -> bool {
        self.switchboard.is_holding()
    }

    /// Translates `msg` (or holds it, see [`hold_events`](Watcher::hold_events)).
    /// Returns `false` if more events were held than `max_held_events` (the caller
    /// should reconnect).
    pub fn on_event(&mut self, msg: Message, out: &mut Vec<DeviceEvent>) -> bool {
        if self.switchboard.is_holding() {
            return self.switchboard.on_event(&msg, &mut self.desks);
        }
        self.translate(&msg, out);
        true
    }

    /// The link dropped: hold events until the next [`rebuild`](Watcher::rebuild).
    pub fn link_down(&mut self) {
        self.switchboard.link_down("", None);
    }

    /// Rebuilds everything from the list actions' items (`CoreShowChannel`,
    /// `BridgeListItem`, and `QueueStatus`'s `QueueParams` and `QueueMember`), keeping
    /// the call ids of calls that still exist. Returns the state of every device that
    /// has something going on; a device not in it has no call and is in no queue.
    /// Held events are translated afterwards by [`release_held`](Watcher::release_held).
    pub fn rebuild(
        &mut self,
        channels: &[Message],
        bridges: &[Message],
        queue_items: &[Message],
    ) -> Vec<(String, SwitchState)> {
        self.switchboard.rebuild_tracker(channels, bridges);
        if self.config.queues.is_empty() {
            let mut queues: Vec<String> = queue_items
                .iter()
                .filter(|i| i.event() == Some("QueueParams"))
                .filter_map(|i| i.get("Queue"))
                .filter(|q| !q.is_empty())
                .map(String::from)
                .collect();
            queues.sort();
            queues.dedup();
            self.queues = queues;
        }
        let members: Vec<Message> = queue_items
            .iter()
            .filter(|i| i.event() == Some("QueueMember"))
            .cloned()
            .collect();
        let mut found: Vec<String> = channels
            .iter()
            .filter_map(|c| c.get("Channel").and_then(interface_of))
            .map(String::from)
            .collect();
        found.extend(
            members
                .iter()
                .filter(|m| {
                    m.get("Queue")
                        .is_some_and(|q| self.queues.iter().any(|w| w == q))
                })
                .filter_map(|m| m.get("Location").or_else(|| m.get("Interface")))
                .map(String::from),
        );
        for interface in found {
            self.discover(&interface);
        }
        let queues = self.queues.clone();
        let lines: Vec<LineId> = self.switchboard.lines().map(|(line, _)| line).collect();
        for line in lines {
            if let Some(book) = self.switchboard.book_mut(line) {
                book.set_queues(&queues);
            }
            let Some(Some(f)) = self.desks.followed.get_mut(line as usize) else {
                continue;
            };
            if let Some(state) = self.switchboard.rebuild_line(line, &members, &f.desk) {
                f.desk.resync(state);
            }
        }
        self.states()
    }

    /// Stops holding and translates the events held since
    /// [`hold_events`](Watcher::hold_events). Returns `false` if some were dropped
    /// because there were too many (the caller must reconnect).
    pub fn release_held(&mut self, out: &mut Vec<DeviceEvent>) -> bool {
        self.switchboard.end_read();
        let complete = self.switchboard.release_now(&mut self.desks);
        self.desks.collect(out);
        complete
    }
}

fn is_idle(f: &Followed, book: &LineBook) -> bool {
    book.is_idle() && f.desk.desk().calls().is_empty()
}

/// What [`AmiWatch`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchItem {
    /// Logged in (again). The state of every busy device follows as
    /// [`WatchItem::State`]s, then [`WatchItem::Synced`], then events; a device with no
    /// `State` has no call and is in no followed queue.
    LinkUp {
        /// Asterisk's banner (`Asterisk Call Manager/<version>`).
        banner: String,
    },
    /// A device's state after a (re)connect.
    State {
        /// The device's interface.
        device: String,
        /// Its agent state and calls.
        state: SwitchState,
    },
    /// Every busy device's state has been given since the last `LinkUp`; events follow
    /// (those that arrived while the state was read come first).
    Synced {
        /// How many devices had a state.
        devices: usize,
    },
    /// A canonical event on a device.
    Event(DeviceEvent),
    /// The connection dropped; the watch reconnects with backoff.
    LinkDown {
        /// Why, for a person.
        reason: String,
    },
}

struct WatchShared {
    watcher: Mutex<Watcher>,
    tx: mpsc::UnboundedSender<WatchItem>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    generation: watch::Sender<u64>,
    stopped: AtomicBool,
}

impl WatchShared {
    fn watcher(&self) -> MutexGuard<'_, Watcher> {
        self.watcher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands items to the consumer; `false` if it has fallen too far behind.
    fn send(&self, items: impl IntoIterator<Item = WatchItem>) -> bool {
        for item in items {
            if self.tx.send(item).is_ok() {
                self.pending.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending.load(Ordering::Relaxed) <= self.max_pending
    }
}

struct Handler(Arc<WatchShared>);

impl ClientEvents for Handler {
    fn connected(&self, banner: &Banner) {
        if self.0.stopped.load(Ordering::SeqCst) {
            return;
        }
        self.0.watcher().hold_events();
        self.0.send([WatchItem::LinkUp {
            banner: banner.line().to_owned(),
        }]);
        self.0.generation.send_modify(|g| *g += 1);
    }

    fn event(&self, event: Message) -> bool {
        let mut out = Vec::new();
        let ok = self.0.watcher().on_event(event, &mut out);
        let keeping_up = self.0.send(out.into_iter().map(WatchItem::Event));
        if !keeping_up {
            tracing::warn!("AMI watch: the consumer fell behind; reconnecting to rebuild");
        }
        ok && keeping_up
    }

    fn disconnected(&self, reason: &str) {
        if self.0.stopped.load(Ordering::SeqCst) {
            return;
        }
        self.0.watcher().link_down();
        self.0.send([WatchItem::LinkDown {
            reason: format!("Asterisk AMI: {reason}"),
        }]);
    }
}

/// A live watch of a whole Asterisk: [`WatchItem`]s from [`next`](AmiWatch::next)
/// until [`stop`](AmiWatch::stop). Reconnects by itself (`link_down`, then `link_up`
/// and the state again).
///
/// ```no_run
/// # async fn demo() -> opencti_core::Result<()> {
/// use opencti_asterisk_ami::{AmiConfig, AmiWatch, Secret, WatchConfig, WatchItem};
///
/// let config = AmiConfig::new("127.0.0.1:5038", "opencti", opencti_asterisk_ami::secret_from_file("/run/secrets/ami")?);
/// let mut watch = AmiWatch::start(config, WatchConfig::default()).await?;
/// while let Some(item) = watch.next().await {
///     if let WatchItem::Event(e) = item {
///         println!("{} {}", e.device, e.event.name());
///     }
/// }
/// # Ok(()) }
/// ```
pub struct AmiWatch {
    client: AmiClient,
    shared: Arc<WatchShared>,
    items: mpsc::UnboundedReceiver<WatchItem>,
    resync: JoinHandle<()>,
}

impl fmt::Debug for AmiWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiWatch")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AmiWatch {
    /// Connects and logs in with `config` (its device, queues and contexts are not
    /// used: `watch` says what to follow), then follows every device.
    ///
    /// Fails as [`AmiClient::start`] does: `unauthorized` for a refused login or an
    /// untrusted TLS certificate, `config` for a bad config. An Asterisk that cannot be
    /// reached is retried with backoff.
    pub async fn start(config: AmiConfig, watch: WatchConfig) -> Result<AmiWatch> {
        let (tx, items) = mpsc::unbounded_channel();
        let (generation, changes) = watch::channel(0u64);
        let shared = Arc::new(WatchShared {
            max_pending: watch.max_pending_items.max(1),
            watcher: Mutex::new(Watcher::new(watch)),
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            generation,
            stopped: AtomicBool::new(false),
        });
        let client = AmiClient::start(config, Arc::new(Handler(shared.clone()))).await?;
        let resync = tokio::spawn(resync_loop(client.clone(), shared.clone(), changes));
        Ok(AmiWatch {
            client,
            shared,
            items,
            resync,
        })
    }

    /// The next item; `None` once stopped.
    pub async fn next(&mut self) -> Option<WatchItem> {
        let item = self.items.recv().await;
        if item.is_some() {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }

    /// The AMI client underneath.
    pub fn client(&self) -> &AmiClient {
        &self.client
    }

    /// Logs off and stops; [`next`](AmiWatch::next) returns what was already handed out,
    /// then `None`.
    pub async fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.resync.abort();
        self.client.stop().await;
        self.items.close();
    }
}

impl Drop for AmiWatch {
    fn drop(&mut self) {
        self.resync.abort();
    }
}

/// After each (re)connect: read the state, then release the held events.
async fn resync_loop(
    client: AmiClient,
    shared: Arc<WatchShared>,
    mut changes: watch::Receiver<u64>,
) {
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        let generation = *changes.borrow_and_update();
        loop {
            match resync(&client, &shared).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "AMI watch: reading the state failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if *changes.borrow() != generation || !client.is_up() {
                        // A new connection brings its own resync.
                        break;
                    }
                }
            }
        }
    }
}

async fn resync(client: &AmiClient, shared: &WatchShared) -> Result<()> {
    let action = |name: &str| Action::new(name).map_err(Error::from);
    let channels = client.send_list(action("CoreShowChannels")?).await?.items;
    let bridges = match client.send_list(action("BridgeList")?).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(error = %e, "AMI watch: BridgeList failed; bridge types unknown");
            Vec::new()
        }
    };
    let queues = shared.watcher().config.queues.clone();
    let mut queue_items = Vec::new();
    if queues.is_empty() {
        queue_items = client.send_list(action("QueueStatus")?).await?.items;
    } else {
        for queue in &queues {
            let a = action("QueueStatus")?
                .try_header("Queue", queue)
                .map_err(Error::from)?;
            queue_items.extend(client.send_list(a).await?.items);
        }
    }
    let mut out = Vec::new();
    let (states, complete) = {
        let mut w = shared.watcher();
        let states = w.rebuild(&channels, &bridges, &queue_items);
        let complete = w.release_held(&mut out);
        (states, complete)
    };
    let devices = states.len();
    let items = states
        .into_iter()
        .map(|(device, state)| WatchItem::State { device, state })
        .chain([WatchItem::Synced { devices }])
        .chain(out.into_iter().map(WatchItem::Event));
    shared.send(items);
    if !complete {
        return Err(Error::new(
            ErrorKind::Other,
            "too many events arrived while the state was read; it is read again after the reconnect",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces() {
        assert_eq!(interface_of("PJSIP/7001-1795238001.3"), Some("PJSIP/7001"));
        assert_eq!(
            interface_of("Local/2001@from-agents-0001;2"),
            Some("Local/2001@from-agents")
        );
        assert_eq!(interface_of("SIP/x-"), None);
        assert_eq!(interface_of("-0001"), None);
        assert_eq!(interface_of("/a-0001"), None);
    }

    #[test]
    fn patterns() {
        let mut c = WatchConfig::default();
        assert!(c.follows("PJSIP/1001"));
        assert!(!c.follows("CBAnn/conf"));
        c.devices = vec!["pjsip/10*".into(), "Local/7@agents".into()];
        assert!(c.follows("PJSIP/1001"));
        assert!(!c.follows("PJSIP/2001"));
        assert!(c.follows("local/7@AGENTS"));
        assert!(!c.follows("Local/7@agents2"));
    }
}
