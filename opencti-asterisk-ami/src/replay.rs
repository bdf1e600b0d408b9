//! [`DeviceReplay`]: AMI events replayed through one device's translation, and
//! [`QueueReplay`]: through a link's queue statistics, for tests and benchmarks
//! (feature `test-support`).

use std::time::Duration;

use opencti_core::queue::{QueueEvent, QueueStats, ReportedQueues};
use opencti_core::{
    AgentId, CallData, ChosenState, CommandId, ErrorBody, Event, SwitchState, Timestamp,
};

use crate::config::HoldConfig;
use crate::device::{DeviceMatcher, LineId};
use crate::message::Message;
use crate::switchboard::{Outputs, Switchboard};
use crate::translate::{DeskEvents, EventOut, LineBook, QueueOut, TranslatorConfig};
use crate::ORIGINATE_PREFIX;

/// The one output of a replay.
#[derive(Debug, Default)]
struct One(DeskEvents);

impl Outputs for One {
    fn output(&mut self, _: LineId) -> &mut dyn EventOut {
        &mut self.0
    }
}

/// One device's translation on a switchboard of its own, its events applied to a
/// desk the way a session applies them (restatements dropped, misfits set aside): what
/// the capture tests and the benchmarks replay AMI streams through.
///
/// ```
/// use opencti_asterisk_ami::test_support::DeviceReplay;
/// use opencti_asterisk_ami::Message;
///
/// let mut replay = DeviceReplay::new("PJSIP/1001", &["support"]);
/// replay.translate(&Message::parse(
///     "Event: Newchannel\r\nChannel: PJSIP/1001-00000001\r\nChannelState: 4\r\n\
///      Uniqueid: 1795238001.1\r\nLinkedid: 1795238001.1\r\nExten: 2001\r\n\r\n",
/// )?);
/// assert_eq!(replay.events()[0].0.name(), "call_initiated");
/// assert!(replay.rejected().is_empty());
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceReplay {
    switchboard: Switchboard,
    out: One,
    line: LineId,
}

impl DeviceReplay {
    /// A replay for `device` (`PJSIP/1001`, `Local/1001@agents`) working in `queues`,
    /// with the hold context of [`HoldConfig::default`].
    pub fn new(device: &str, queues: &[&str]) -> Self {
        let mut switchboard = Switchboard::new(1_000_000, 1_000_000);
        let book = LineBook::new(TranslatorConfig {
            device: DeviceMatcher::new(device),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            hold: Some(HoldConfig::default()),
            originate_prefix: ORIGINATE_PREFIX.into(),
        });
        let line = switchboard
            .add(book, true)
            .unwrap_or_else(|| unreachable!("the first line of an empty switchboard"));
        DeviceReplay {
            switchboard,
            out: One::default(),
            line,
        }
    }

    /// Translates one AMI event.
    pub fn translate(&mut self, msg: &Message) {
        self.switchboard.translate(msg, &mut self.out);
    }

    /// The canonical events the desk took so far, with the command each answers.
    pub fn events(&self) -> &[(Event, Option<CommandId>)] {
        &self.out.0.events
    }

    /// Drains the events the desk took so far (keeping the buffer for the next ones).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, (Event, Option<CommandId>)> {
        self.out.0.rejected.clear();
        self.out.0.events.drain(..)
    }

    /// Takes the events the desk took so far.
    pub fn take_events(&mut self) -> Vec<(Event, Option<CommandId>)> {
        std::mem::take(&mut self.out.0.events)
    }

    /// The events that did not fit the desk's state (a translation bug), with why.
    pub fn rejected(&self) -> &[(Event, ErrorBody)] {
        &self.out.0.rejected
    }

    /// Channels and bridges tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        let tracker = self.switchboard.tracker();
        (tracker.channel_count(), tracker.bridge_count())
    }

    /// The device's legs and canonical calls open now.
    pub fn open_calls(&self) -> (usize, usize) {
        self.book().open_calls()
    }

    /// The agent's chosen state from its queue memberships.
    pub fn agent_state(&self) -> ChosenState {
        self.book().agent_state()
    }

    /// The switch's state as the translation and the desk see it now.
    pub fn switch_state(&self) -> SwitchState {
        self.book().switch_state(&self.out.0)
    }

    /// Rebuilds everything from list items (`CoreShowChannel`, `BridgeListItem`,
    /// `QueueMember`), as after a reconnect; the desk takes the state returned.
    pub fn rebuild(
        &mut self,
        channels: &[Message],
        bridges: &[Message],
        members: &[Message],
    ) -> SwitchState {
        self.switchboard.rebuild_tracker(channels, bridges);
        let state = self
            .switchboard
            .rebuild_line(self.line, members, &self.out.0)
            .unwrap_or_else(|| unreachable!("the replay's line stays open"));
        self.out.0.resync(state.clone());
        self.switchboard.release_now(&mut self.out);
        state
    }

    /// Registers an `Originate` for `make_call` (as the line does before sending it).
    pub fn expect_originate(
        &mut self,
        action_id: &str,
        channel_id: &str,
        command: CommandId,
        to: opencti_core::Address,
    ) {
        if let Some(mut t) = self.switchboard.translator(self.line) {
            t.expect_originate(
                action_id.to_owned(),
                channel_id,
                command,
                to,
                CallData::new(),
            );
        }
    }

    fn book(&self) -> &LineBook {
        self.switchboard
            .book(self.line)
            .unwrap_or_else(|| unreachable!("the replay's line stays open"))
    }
}

/// The lines' events of a queue replay go nowhere; its queue events to the figures.
#[derive(Debug)]
struct Figures {
    stats: QueueStats,
    now: Timestamp,
    events: Vec<QueueEvent>,
    discard: Discard,
}

/// Swallows a line's events.
#[derive(Debug, Default)]
struct Discard;

impl EventOut for Discard {
    fn emit(&mut self, _: Event, _: Option<CommandId>) {}

    fn view(&self, _: &mut dyn FnMut(&opencti_core::machine::Desk)) {}
}

impl QueueOut for Figures {
    fn apply(&mut self, event: QueueEvent) {
        self.events.push(event.clone());
        self.stats.apply(self.now, event);
    }

    fn restore(&mut self, report: ReportedQueues) {
        let envelope = self.stats.restore(self.now, report);
        self.events.push(envelope.event);
    }

    fn now(&self) -> Timestamp {
        self.now
    }
}

impl Outputs for Figures {
    fn output(&mut self, _: LineId) -> &mut dyn EventOut {
        &mut self.discard
    }

    fn queues(&mut self) -> Option<&mut dyn QueueOut> {
        Some(self)
    }
}

/// AMI events replayed through a link's queue statistics into a [`QueueStats`], on a
/// clock the replay moves: what the queue figures' tests feed Asterisk's events
/// through. The link's lines are given as (agent, device) pairs; the replay starts as a
/// link whose board was just restored from an empty switch.
///
/// ```
/// use opencti_asterisk_ami::test_support::QueueReplay;
/// use opencti_asterisk_ami::Message;
/// use opencti_core::{QueueId, Timestamp};
///
/// let mut replay = QueueReplay::new(&["sales"], &[("alice", "PJSIP/1001")], Timestamp::from_micros(0));
/// replay.translate(&Message::parse(
///     "Event: QueueCallerJoin\r\nQueue: sales\r\nUniqueid: 1795238001.1\r\nPosition: 1\r\n\r\n",
/// )?);
/// assert_eq!(replay.events()[0].name(), "caller_joined");
/// let sales = replay.stats().figures(&QueueId::new("sales")?).unwrap();
/// assert_eq!((sales.offered, sales.waiting), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct QueueReplay {
    switchboard: Switchboard,
    out: Figures,
}

impl QueueReplay {
    /// A replay of a link reporting `queues`, whose lines are `lines` ((agent, device)
    /// pairs), with figures counting from `start`.
    ///
    /// # Panics
    ///
    /// On an agent id that is not one, or two lines at one device (a test's mistake).
    pub fn new(queues: &[&str], lines: &[(&str, &str)], start: Timestamp) -> Self {
        let mut switchboard = Switchboard::new(1_000_000, 1_000_000);
        switchboard.report_queues(queues.iter().map(|q| q.to_string()).collect());
        for (agent, device) in lines {
            let book = LineBook::new(TranslatorConfig {
                device: DeviceMatcher::new(*device),
                queues: queues.iter().map(|q| q.to_string()).collect(),
                hold: Some(HoldConfig::default()),
                originate_prefix: ORIGINATE_PREFIX.into(),
            });
            let line = switchboard
                .add(book, true)
                .unwrap_or_else(|| panic!("two lines at device {device}"));
            let agent = AgentId::new(*agent).unwrap_or_else(|e| panic!("{e}"));
            switchboard.set_agent(line, agent);
        }
        switchboard.follow_queues_from_now();
        QueueReplay {
            switchboard,
            out: Figures {
                stats: QueueStats::new(start),
                now: start,
                events: Vec::new(),
                discard: Discard,
            },
        }
    }

    /// Translates one AMI event, as happening now.
    pub fn translate(&mut self, msg: &Message) {
        self.switchboard.translate(msg, &mut self.out);
    }

    /// Moves the clock on.
    pub fn advance(&mut self, by: Duration) {
        self.out.now = self.out.now.saturating_add(by);
    }

    /// The clock now.
    pub fn now(&self) -> Timestamp {
        self.out.now
    }

    /// The queue events told so far.
    pub fn events(&self) -> &[QueueEvent] {
        &self.out.events
    }

    /// Takes the queue events told so far.
    pub fn take_events(&mut self) -> Vec<QueueEvent> {
        std::mem::take(&mut self.out.events)
    }

    /// The figures.
    pub fn stats(&self) -> &QueueStats {
        &self.out.stats
    }

    /// The figures, to apply what a replay does not translate (the agents' states,
    /// which come from their sessions).
    pub fn stats_mut(&mut self) -> &mut QueueStats {
        &mut self.out.stats
    }

    /// The link dropped.
    pub fn link_down(&mut self, reason: &str) {
        self.switchboard.link_down(reason, Some(&mut self.out));
    }

    /// The link is back: the figures are restored from `status` (the items of
    /// `QueueStatus` for the link's queues: `QueueParams`, `QueueEntry`, `QueueMember`),
    /// as the link does once for every line after a reconnect.
    pub fn restore(&mut self, status: &[Message]) {
        self.switchboard.rebuild_tracker(&[], &[]);
        self.switchboard.restore_queues(status, &[], &mut self.out);
    }
}
