//! The switchboard: one [`ChannelTracker`] for every line of a link, and each AMI event
//! routed to the lines it concerns.
//!
//! An AMI connection carries every event of the PBX. The switchboard applies each one
//! to the tracker once, then works out which lines it is about, from what the tracker
//! knows: the lines whose device the channel is (resolved once, when the channel
//! appears), the lines with a channel in the same bridge (a party joining, leaving or
//! hanging up), the line whose leg dialled the channel (ringing), the line that holds
//! the channel on music on hold, and the lines whose device a queue event names. Only
//! those lines translate it, so a busy PBX costs each event a few lookups, not one
//! translation per agent.
//!
//! While the state is read after a (re)connect, events are held here, once for the
//! link: the tracker is rebuilt from the lists, and what arrived meanwhile is applied
//! on top when every line's session has taken its new state.

use std::collections::HashSet;

use opencti_core::SwitchState;

use crate::device::LineId;
use crate::message::Message;
use crate::tracker::{Change, ChannelTracker};
use crate::translate::{
    EventOut, FollowUp, LineBook, QueueOut, QueueTranslator, RoutedOwners, Translator,
};

/// Where each line's canonical events go.
pub(crate) trait Outputs {
    /// Line `line`'s output.
    fn output(&mut self, line: LineId) -> &mut dyn EventOut;

    /// Where the link's queue events go, if anywhere (nothing is translated for the
    /// queues otherwise).
    fn queues(&mut self) -> Option<&mut dyn QueueOut> {
        None
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Switchboard {
    tracker: ChannelTracker,
    books: Vec<Option<LineBook>>,
    /// Events held while the state is read, and whether some had to be dropped.
    held: Option<Vec<Message>>,
    held_overflow: bool,
    max_held: usize,
    /// Lines whose sessions have not taken the state read for them yet.
    awaiting: HashSet<LineId>,
    /// A read of the state is under way.
    reading: bool,
    /// The tracker missed events (the link dropped) and must be rebuilt from the lists
    /// before the held events are applied.
    stale: bool,
    /// Lines that have not been read yet: nothing is translated for them before their
    /// first read (which reads everything that happened before).
    unread: HashSet<LineId>,
    /// Follow-up actions the lines want sent.
    follow_ups: Vec<FollowUp>,
    /// Reused for each event's routing.
    targets: Vec<LineId>,
    /// The queue statistics, translated once for the link.
    queues: QueueTranslator,
}

impl Switchboard {
    /// A switchboard tracking at most `max_channels` channels, holding at most
    /// `max_held` events while the state is read.
    pub(crate) fn new(max_channels: usize, max_held: usize) -> Self {
        Switchboard {
            tracker: ChannelTracker::new(max_channels),
            books: Vec::new(),
            held: None,
            held_overflow: false,
            max_held,
            awaiting: HashSet::new(),
            reading: false,
            stale: false,
            unread: HashSet::new(),
            follow_ups: Vec::new(),
            targets: Vec::new(),
            queues: QueueTranslator::default(),
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    /// The tracker.
    pub(crate) fn tracker(&self) -> &ChannelTracker {
        &self.tracker
    }

    /// Adds a line with `book`; `None` if its device is another line's already. A line
    /// that is `read` is translated from now on, from what the tracker knows; else only
    /// after its first [`rebuild_line`](Switchboard::rebuild_line).
    pub(crate) fn add(&mut self, book: LineBook, read: bool) -> Option<LineId> {
        let free = self.books.iter().position(Option::is_none);
        let id = free.unwrap_or(self.books.len());
        let line = LineId::try_from(id).ok()?;
        if !self.tracker.add_owner(book.interface(), line) {
            return None;
        }
        match free {
            Some(i) => self.books[i] = Some(book),
            None => self.books.push(Some(book)),
        }
        if !read {
            self.unread.insert(line);
        }
        Some(line)
    }

    /// Removes line `line` (its held events go to the others once they are resynced).
    pub(crate) fn remove(&mut self, line: LineId, outputs: &mut dyn Outputs) -> Option<LineBook> {
        let book = self.books.get_mut(line as usize)?.take()?;
        self.tracker.remove_owner(book.interface());
        self.queues.set_agent(line, None);
        self.unread.remove(&line);
        if self.awaiting.remove(&line) {
            self.release_when_ready(outputs);
        }
        Some(book)
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Line `line`'s book.
    pub(crate) fn book(&self, line: LineId) -> Option<&LineBook> {
        self.books.get(line as usize)?.as_ref()
    }

    /// Line `line`'s book, mutably.
    pub(crate) fn book_mut(&mut self, line: LineId) -> Option<&mut LineBook> {
        self.books.get_mut(line as usize)?.as_mut()
    }

    /// The open lines.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (LineId, &LineBook)> + '_ {
        self.books
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i as LineId, b.as_ref()?)))
    }

    /// Whether no line is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.books.iter().all(Option::is_none)
    }

    /// Line `line`'s translator, for a command.
    pub(crate) fn translator(&mut self, line: LineId) -> Option<Translator<'_>> {
        let book = self.books.get_mut(line as usize)?.as_mut()?;
        Some(Translator {
            book,
            tracker: &mut self.tracker,
            line,
            routed: RoutedOwners::default(),
        })
    }

    /// Logged in (again): hold events until the state has been read (unless no line
    /// is open: the first line's read rebuilds everything).
    pub(crate) fn connected(&mut self) {
        self.stale = true;
        if !self.is_empty() && self.held.is_none() {
            self.held = Some(Vec::new());
        }
    }

    /// A read of the state begins: hold events until every line read has been
    /// [`resynced`](Switchboard::resynced).
    pub(crate) fn begin_read(&mut self) {
        self.reading = true;
        if self.held.is_none() {
            self.held = Some(Vec::new());
        }
    }

    /// The read ended (done or failed).
    pub(crate) fn end_read(&mut self) {
        self.reading = false;
    }

    /// Follow-up actions the lines want sent since the last call.
    pub(crate) fn take_follow_ups(&mut self) -> Vec<FollowUp> {
        std::mem::take(&mut self.follow_ups)
    }

    /// Whether events are being held.
    pub(crate) fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The link dropped: hold events from the next connection until the state has
    /// been read again; `Originate`s in flight are forgotten; the queue figures stop
    /// following until they are restored (`link_down` goes to `queues`, once).
    pub(crate) fn link_down(&mut self, reason: &str, queues: Option<&mut dyn QueueOut>) {
        self.held = Some(Vec::new());
        self.held_overflow = false;
        self.stale = true;
        for book in self.books.iter_mut().flatten() {
            book.link_down();
        }
        self.queues.link_down(reason, queues);
    }

    /// Line `line` is `agent`'s: the queue events name its member by that agent.
    pub(crate) fn set_agent(&mut self, line: LineId, agent: opencti_core::AgentId) {
        self.queues.set_agent(line, Some(agent));
    }

    /// The queue statistics report these queues.
    pub(crate) fn report_queues(&mut self, queues: Vec<String>) {
        self.queues.set_queues(queues);
    }

    #[cfg(any(test, feature = "test-support"))]
    /// The queue statistics follow the events from now on, as if just restored.
    pub(crate) fn follow_queues_from_now(&mut self) {
        self.queues.follow_from_now();
    }

    /// After a read of the state: restores the queue figures from `QueueStatus`'s
    /// items when events were missed since they last were (the link came up), else
    /// adds the memberships of the lines read for the first time (`first_read`).
    /// Called before the lines are rebuilt, while events are held.
    pub(crate) fn restore_queues(
        &mut self,
        status: &[Message],
        first_read: &[LineId],
        out: &mut dyn QueueOut,
    ) {
        if self.queues.is_stale() {
            let report = self.queues.report(status, &mut self.tracker, out.now());
            out.restore(report);
        } else {
            for &line in first_read {
                self.queues
                    .memberships(line, status, &mut self.tracker, out);
            }
        }
    }

    /// Whether line `line` has not been read yet.
    pub(crate) fn is_unread(&self, line: LineId) -> bool {
        self.unread.contains(&line)
    }

    /// Takes one AMI event: holds it while the state is read, translates it otherwise.
    /// Returns `false` when more events arrived during a read than can be held (the
    /// caller should reconnect, which reads everything again).
    pub(crate) fn on_event(&mut self, msg: &Message, outputs: &mut dyn Outputs) -> bool {
        if let Some(held) = &mut self.held {
            if held.len() >= self.max_held {
                self.held_overflow = true;
                return false;
            }
            // Its own copy: a held event must not keep the rest of its read.
            held.push(msg.detached());
            return true;
        }
        self.translate(msg, outputs);
        true
    }

    /// Applies one AMI event to the tracker and translates it for every line it
    /// concerns.
    pub(crate) fn translate(&mut self, msg: &Message, outputs: &mut dyn Outputs) {
        let change = self.tracker.apply(msg);
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        let mut routed = RoutedOwners::default();
        self.route(&change, msg, &mut targets, &mut routed);
        for &line in &targets {
            let Some(Some(book)) = self.books.get_mut(line as usize) else {
                continue;
            };
            if self.unread.contains(&line) {
                continue;
            }
            Translator {
                book,
                tracker: &mut self.tracker,
                line,
                routed,
            }
            .on_change(&change, msg, outputs.output(line));
            book.move_follow_ups_to(&mut self.follow_ups);
        }
        self.targets = targets;
        if let Some(queues) = outputs.queues() {
            self.queues.on_event(msg, &mut self.tracker, queues);
        }
        if let Change::Hungup { channel, .. } = change {
            self.tracker.recycle(channel);
        }
    }

    /// The lines `change` concerns, into `to` (each once).
    fn route<'m>(
        &mut self,
        change: &Change<'m>,
        msg: &Message,
        to: &mut Vec<LineId>,
        routed: &mut RoutedOwners<'m>,
    ) {
        match change {
            Change::None => self.route_other(msg, to),
            Change::ChannelCreated { uniqueid }
            | Change::StateChanged { uniqueid, .. }
            | Change::CallerIdChanged { uniqueid }
            | Change::Renamed { uniqueid }
            | Change::Hold { uniqueid, .. }
            | Change::MusicOnHold { uniqueid, .. }
            | Change::Dtmf { uniqueid, .. }
            | Change::Recording { uniqueid, .. }
            | Change::BlindTransfer {
                transferer: uniqueid,
                ..
            } => self.related(uniqueid, to, routed),
            Change::DialBegin { caller, dest, .. }
            | Change::DialState { caller, dest, .. }
            | Change::DialEnd { caller, dest, .. } => {
                if let Some(caller) = caller {
                    self.related(caller, to, routed);
                }
                self.related(dest, to, routed);
            }
            Change::BridgeEntered { bridge, uniqueid }
            | Change::BridgeLeft { bridge, uniqueid } => {
                self.related(uniqueid, to, routed);
                self.members(bridge, to);
            }
            Change::BridgeMerged { from, to: into } => {
                self.members(from, to);
                self.members(into, to);
            }
            Change::Hungup {
                channel, bridge, ..
            } => {
                push(to, channel.owner);
                push(to, channel.held_by);
                if let Some(dialer) = &channel.dialed_by {
                    push(to, self.tracker.channel(dialer).and_then(|c| c.owner));
                }
                for b in [bridge, &channel.left_bridge].into_iter().flatten() {
                    self.members(b, to);
                }
            }
            Change::AttendedTransfer {
                orig_transferer,
                second_transferer,
                ..
            } => {
                self.related(orig_transferer, to, routed);
                self.related(second_transferer, to, routed);
            }
        }
    }

    /// The lines of channel `uniqueid`: its owner's, its holder's, its dialler's, and
    /// those of the channels in its bridge. Its owner goes in `routed`.
    fn related<'m>(&self, uniqueid: &'m str, to: &mut Vec<LineId>, routed: &mut RoutedOwners<'m>) {
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return;
        };
        routed.record(uniqueid, channel.owner);
        push(to, channel.owner);
        push(to, channel.held_by);
        if let Some(dialer) = &channel.dialed_by {
            push(to, self.tracker.channel(dialer).and_then(|c| c.owner));
        }
        if let Some(bridge) = &channel.bridge {
            self.members(bridge, to);
        }
    }

    /// The lines of the channels in `bridge`.
    fn members(&self, bridge: &str, to: &mut Vec<LineId>) {
        let Some(bridge) = self.tracker.bridge(bridge) else {
            return;
        };
        for member in &bridge.members {
            push(to, self.tracker.channel(member).and_then(|c| c.owner));
        }
    }

    /// Events about no channel: an `Originate`'s answer (every line: one per
    /// `make_call`), queue events (the line whose device they name).
    fn route_other(&mut self, msg: &Message, to: &mut Vec<LineId>) {
        match msg.event() {
            Some("OriginateResponse") => {
                for (i, book) in self.books.iter().enumerate() {
                    if book.is_some() {
                        push(to, Some(i as LineId));
                    }
                }
            }
            Some(
                "AgentCalled" | "AgentRingNoAnswer" | "QueueMemberAdded" | "QueueMemberRemoved"
                | "QueueMemberPause" | "QueueMemberPaused" | "QueueMemberStatus",
            ) => {
                for key in ["Interface", "Location"] {
                    if let Some(interface) = msg.get(key) {
                        let line = self.tracker.owner_of_interface(interface);
                        push(to, line);
                    }
                }
            }
            _ => {}
        }
    }

    /// Rebuilds the tracker from the list actions' items (`CoreShowChannel`,
    /// `BridgeListItem`); each line is rebuilt from it with [`rebuild_line`].
    ///
    /// [`rebuild_line`]: Switchboard::rebuild_line
    pub(crate) fn rebuild_tracker(&mut self, channels: &[Message], bridges: &[Message]) {
        self.stale = false;
        self.tracker.clear();
        for item in bridges {
            self.tracker.insert_listed_bridge(item);
        }
        for item in channels {
            self.tracker.insert_listed(item);
        }
    }

    /// Rebuilds line `line` from the tracker and the `QueueMember` items, and returns
    /// its state; `session` is the state the line's events built so far. The line then
    /// awaits its session's [`resynced`](Switchboard::resynced).
    pub(crate) fn rebuild_line(
        &mut self,
        line: LineId,
        members: &[Message],
        session: &dyn EventOut,
    ) -> Option<SwitchState> {
        let state = self.translator(line)?.rebuild(members, session);
        self.unread.remove(&line);
        self.awaiting.insert(line);
        Some(state)
    }

    /// Line `line`'s session has taken its new state. Once every line read with it has,
    /// the events held meanwhile are translated.
    pub(crate) fn resynced(&mut self, line: LineId, outputs: &mut dyn Outputs) {
        if self.awaiting.remove(&line) {
            self.release_when_ready(outputs);
        }
    }

    fn release_when_ready(&mut self, outputs: &mut dyn Outputs) {
        if self.awaiting.is_empty() && !self.reading && !self.stale {
            self.release(outputs);
        }
    }

    /// Stops holding now, whoever awaits their resynchronisation, and translates the
    /// events held meanwhile (for a consumer that owns every line's state itself).
    /// Returns `false` if some had to be dropped.
    pub(crate) fn release_now(&mut self, outputs: &mut dyn Outputs) -> bool {
        self.awaiting.clear();
        self.release(outputs)
    }

    /// Stops holding and translates the events held meanwhile. Returns `false` if some
    /// had to be dropped (the reader has asked for a reconnect already).
    pub(crate) fn release(&mut self, outputs: &mut dyn Outputs) -> bool {
        let held = self.held.take().unwrap_or_default();
        for msg in &held {
            self.translate(msg, outputs);
        }
        !std::mem::take(&mut self.held_overflow)
    }
}

fn push(to: &mut Vec<LineId>, line: Option<LineId>) {
    if let Some(line) = line {
        if !to.contains(&line) {
            to.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use opencti_core::AgentState;

    use super::*;
    use crate::config::HoldConfig;
    use crate::device::DeviceMatcher;
    use crate::translate::{DeskEvents, TranslatorConfig};

    struct One(DeskEvents);

    impl Outputs for One {
        fn output(&mut self, _: LineId) -> &mut dyn EventOut {
            &mut self.0
        }
    }

    fn msg(text: &str) -> Message {
        Message::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn book(device: &str) -> LineBook {
        LineBook::new(TranslatorConfig {
            device: DeviceMatcher::new(device),
            queues: vec!["q1".into()],
            hold: Some(HoldConfig::default()),
            originate_prefix: "opencti-".into(),
        })
    }

    #[test]
    fn held_events_wait_for_every_line_read_and_overflow_is_reported() {
        let mut board = Switchboard::new(100, 2);
        let mut out = One(DeskEvents::new());
        let a = board
            .add(book("PJSIP/1001"), false)
            .unwrap_or_else(|| panic!("a"));
        let b = board
            .add(book("PJSIP/1002"), false)
            .unwrap_or_else(|| panic!("b"));
        assert!(
            board.add(book("pjsip/1001"), false).is_none(),
            "one line a device"
        );
        board.connected();
        board.begin_read();
        let added = "Event: QueueMemberAdded\nQueue: q1\nInterface: PJSIP/1001\nPaused: 0\n";
        assert!(board.on_event(&msg(added), &mut out));
        board.end_read();
        board.rebuild_tracker(&[], &[]);
        let state = board
            .rebuild_line(a, &[], &out.0)
            .unwrap_or_else(|| panic!("a"));
        assert_eq!(state.agent, AgentState::LoggedOut);
        board.rebuild_line(b, &[], &out.0);
        board.resynced(a, &mut out);
        assert!(
            out.0.events.is_empty(),
            "line b has not taken its state yet"
        );
        board.resynced(b, &mut out);
        assert_eq!(out.0.events.len(), 1, "released once both have");
        board.begin_read();
        for _ in 0..2 {
            assert!(board.on_event(&msg(added), &mut out));
        }
        assert!(!board.on_event(&msg(added), &mut out), "over the limit");
        board.end_read();
        assert!(!board.release_now(&mut out));
    }

    #[test]
    fn an_event_reaches_only_the_lines_it_concerns() {
        let mut board = Switchboard::new(100, 100);
        let mut out = One(DeskEvents::new());
        board.add(book("PJSIP/1001"), true);
        board.add(book("PJSIP/1002"), true);
        let mut targets = Vec::new();
        let new = msg("Event: Newchannel\nChannel: PJSIP/1001-00000001\nChannelState: 4\nUniqueid: u1\nLinkedid: u1\nExten: 2000\n");
        let change = board.tracker.apply(&new);
        board.route(&change, &new, &mut targets, &mut RoutedOwners::default());
        assert_eq!(targets, [0]);
        board.translate(&new, &mut out);
        for text in [
            "Event: Newchannel\nChannel: PJSIP/1002-00000002\nChannelState: 0\nUniqueid: u2\nLinkedid: u1\n",
            "Event: BridgeEnter\nBridgeUniqueid: b1\nChannel: PJSIP/1001-00000001\nUniqueid: u1\n",
        ] {
            board.translate(&msg(text), &mut out);
        }
        let enter = msg(
            "Event: BridgeEnter\nBridgeUniqueid: b1\nChannel: PJSIP/1002-00000002\nUniqueid: u2\n",
        );
        targets.clear();
        let change = board.tracker.apply(&enter);
        board.route(&change, &enter, &mut targets, &mut RoutedOwners::default());
        targets.sort_unstable();
        assert_eq!(targets, [0, 1], "a bridge's members' lines");
        let pause = msg("Event: QueueMemberPause\nQueue: q1\nInterface: PJSIP/1002\nPaused: 1\n");
        targets.clear();
        board.route(
            &Change::None,
            &pause,
            &mut targets,
            &mut RoutedOwners::default(),
        );
        assert_eq!(targets, [1], "the member's line");
    }
}
