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
//! Cost: every event goes through the translator of every device that is busy (has a
//! channel, a call or a queue membership); a device that falls idle is forgotten and
//! rebuilt from the watcher's view of the channels when it is next seen. A device
//! carries at most `opencti_core::machine::Desk::MAX_CALLS` calls at once, so watch
//! phones, not busy trunks (see [`WatchConfig::devices`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use opencti_core::{CommandId, Error, ErrorKind, Event, Result, SwitchState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::action::Action;
use crate::client::{AmiClient, ClientEvents};
use crate::config::{AmiConfig, HoldConfig};
use crate::frame::Banner;
use crate::line::ORIGINATE_PREFIX;
use crate::message::Message;
use crate::tracker::ChannelTracker;
use crate::translate::{DeskEvents, DeviceMatcher, EventOut, Translator, TranslatorConfig};

/// The device (interface) a channel belongs to: its name without the `-<suffix>`
/// Asterisk adds per channel (and without a `Local` channel's `;1`/`;2`).
///
/// ```
/// use opencti_asterisk_ami::interface_of;
/// assert_eq!(interface_of("PJSIP/1001-0000000a"), Some("PJSIP/1001"));
/// assert_eq!(interface_of("Local/1001@agents-00000003;1"), Some("Local/1001@agents"));
/// assert_eq!(interface_of("PJSIP/front-desk-00000001"), Some("PJSIP/front-desk"));
/// assert_eq!(interface_of("Message/ast_msg_queue"), None);
/// ```
pub fn interface_of(channel: &str) -> Option<&str> {
    let name = channel
        .strip_suffix(";1")
        .or_else(|| channel.strip_suffix(";2"))
        .unwrap_or(channel);
    let (interface, suffix) = name.rsplit_once('-')?;
    let slash = interface.find('/')?;
    (slash > 0 && slash + 1 < interface.len() && !suffix.is_empty()).then_some(interface)
}

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

/// One device followed: its translator, and the state its events built.
#[derive(Debug)]
struct Followed {
    translator: Translator,
    desk: DeskEvents,
}

impl Followed {
    fn is_idle(&self) -> bool {
        self.translator.is_idle() && self.desk.desk().calls().is_empty()
    }
}

/// Routes a translator's events through the device's desk to the watcher's output,
/// tagged with the device.
struct Tag<'a> {
    device: &'a str,
    desk: &'a mut DeskEvents,
    out: &'a mut Vec<DeviceEvent>,
}

impl EventOut for Tag<'_> {
    fn emit(&mut self, event: Event, command: Option<CommandId>) {
        self.desk.emit(event, command);
        for (event, _) in self.desk.events.drain(..) {
            self.out.push(DeviceEvent {
                device: self.device.to_owned(),
                event,
            });
        }
        for (event, error) in self.desk.rejected.drain(..) {
            tracing::debug!(
                device = self.device,
                event = event.name(),
                error = %error.message,
                "AMI watch: event does not fit the device's state"
            );
        }
    }

    fn view(&self, f: &mut dyn FnMut(&opencti_core::machine::Desk)) {
        self.desk.view(f);
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
    tracker: ChannelTracker,
    devices: BTreeMap<String, Followed>,
    queues: Vec<String>,
    holding: Option<Vec<Message>>,
    held_overflow: bool,
    not_followed: u64,
}

impl Watcher {
    /// A watcher that follows what `config` says; nothing is known yet.
    pub fn new(config: WatchConfig) -> Self {
        Watcher {
            tracker: ChannelTracker::new(config.max_channels),
            devices: BTreeMap::new(),
            queues: config.queues.clone(),
            holding: None,
            held_overflow: false,
            not_followed: 0,
            config,
        }
    }

    /// The devices followed now (those with something going on), in name order.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// The queues whose memberships are followed now.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// The state of every device followed now, as a connector would report it.
    pub fn states(&self) -> Vec<(String, SwitchState)> {
        self.devices
            .iter()
            .map(|(d, f)| (d.clone(), f.translator.switch_state(&f.desk)))
            .collect()
    }

    /// How many times a new device was not followed because `max_devices` were
    /// followed already.
    pub fn not_followed(&self) -> u64 {
        self.not_followed
    }

    fn translator_config(&self, interface: &str) -> TranslatorConfig {
        TranslatorConfig {
            device: DeviceMatcher::new(interface),
            queues: self.queues.clone(),
            hold: self.config.hold.clone(),
            max_channels: self.config.max_channels,
            max_held_events: self.config.max_held_events,
            originate_prefix: ORIGINATE_PREFIX.into(),
        }
    }

    /// Starts following `interface` if it is a device to follow and not followed yet;
    /// its translator starts from the channels the watcher knows.
    fn discover(&mut self, interface: &str) {
        if self.devices.contains_key(interface) || !self.config.follows(interface) {
            return;
        }
        if self.devices.len() >= self.config.max_devices.max(1) {
            self.not_followed += 1;
            tracing::debug!(interface, "AMI watch: too many devices; not followed");
            return;
        }
        let translator =
            Translator::with_tracker(self.translator_config(interface), self.tracker.clone());
        self.devices.insert(
            interface.to_owned(),
            Followed {
                translator,
                desk: DeskEvents::new(),
            },
        );
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
        // A new device's translator starts from the state *before* this event, and then
        // applies the event itself like every other.
        self.discover_from(msg);
        self.tracker.apply(msg);
        for (device, f) in self.devices.iter_mut() {
            f.translator.translate(
                msg,
                &mut Tag {
                    device,
                    desk: &mut f.desk,
                    out,
                },
            );
        }
        self.devices.retain(|_, f| !f.is_idle());
    }

    /// From now on, hold events instead of translating them, until
    /// [`release_held`](Watcher::release_held) (after a (re)connect, until the state has
    /// been read with [`rebuild`](Watcher::rebuild)).
    pub fn hold_events(&mut self) {
        if self.holding.is_none() {
            self.holding = Some(Vec::new());
        }
    }

    /// Whether events are being held.
    pub fn is_holding(&self) -> bool {
        self.holding.is_some()
    }

    /// Translates `msg` (or holds it, see [`hold_events`](Watcher::hold_events)).
    /// Returns `false` if more events were held than `max_held_events` (the caller
    /// should reconnect).
    pub fn on_event(&mut self, msg: Message, out: &mut Vec<DeviceEvent>) -> bool {
        if let Some(held) = &mut self.holding {
            if held.len() >= self.config.max_held_events {
                self.held_overflow = true;
                return false;
            }
            held.push(msg);
            return true;
        }
        self.translate(&msg, out);
        true
    }

    /// The link dropped: hold events until the next [`rebuild`](Watcher::rebuild).
    pub fn link_down(&mut self) {
        self.holding = Some(Vec::new());
        self.held_overflow = false;
        for f in self.devices.values_mut() {
            f.translator.link_down();
        }
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
        self.tracker.clear();
        for item in bridges {
            self.tracker.insert_listed_bridge(item);
        }
        for item in channels {
            self.tracker.insert_listed(item);
        }
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
        let mut states = Vec::new();
        let queues = self.queues.clone();
        for (device, f) in self.devices.iter_mut() {
            f.translator.set_queues(&queues);
            let state = f.translator.rebuild(channels, bridges, &members, &f.desk);
            f.desk.resync(state.clone());
            // The watcher holds the events; its translators hold nothing of their own.
            f.translator.release_held(&mut DeskEvents::new());
            if !f.is_idle() {
                states.push((device.clone(), state));
            }
        }
        self.devices.retain(|_, f| !f.is_idle());
        states
    }

    /// Stops holding and translates the events held since
    /// [`hold_events`](Watcher::hold_events). Returns `false` if some were dropped
    /// because there were too many (the caller must reconnect).
    pub fn release_held(&mut self, out: &mut Vec<DeviceEvent>) -> bool {
        let held = self.holding.take().unwrap_or_default();
        for msg in &held {
            self.translate(msg, out);
        }
        !std::mem::take(&mut self.held_overflow)
    }
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
