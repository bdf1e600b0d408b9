//! Translation: AMI events about the agent's device and queues, through the
//! [`ChannelTracker`], into canonical `opencti_core` events.
//!
//! The [`Translator`] owns the tracker and knows which channels are the agent's device
//! ("legs"), which canonical calls each leg carries (a leg carries two during an
//! attended-transfer consultation), and the agent's queue memberships: the protocol's
//! bookkeeping, nothing more. Where one AMI event means different things in different
//! call states (an answered channel connects an offered call, not a held one), it reads
//! the session's state through its [`EventOut`]; it keeps no state machine of its own.
//! Everything it emits goes to the session, which applies it, drops what restates its
//! state, and resynchronises on what does not fit: a translation bug shows.
//!
//! It is synchronous and never blocks: the connection's reader calls it for each event,
//! and it hands canonical events to an [`EventOut`] (the session's `EventSink`).
//!
//! Queue statistics are translated once for the whole link, not per line: the
//! [`QueueTranslator`] (`queue_events.rs`) turns the queue events into
//! `opencti_core::queue::QueueEvent`s for a [`QueueOut`] (the link's `QueueBoard`).

use opencti_core::{
    Address, CallData, CallId, Cause, CommandId, DisplayName, Event, Party, PartyId, QueueId,
    SwitchState,
};

use crate::config::HoldConfig;
use crate::device::{DeviceMatcher, LineId};
use crate::message::Message;
use crate::tracker::{known, same_text, Change, Channel, ChannelTracker, IdMap};

use out::{read_call, state_of};
pub(crate) use out::{DeskEvents, EventOut};
pub(crate) use queue_events::{QueueOut, QueueTranslator};
use queues::Membership;

mod bridges;
mod calls;
mod commands;
mod out;
mod queue_events;
mod queues;
mod rebuild;
mod transfers;

/// What `leg_entered` needs of a bridge peer.
struct Peer {
    uniqueid: Box<str>,
    state: u8,
    party: Option<Party>,
}

/// What the connector asked for on a leg, which shapes how its next events read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Pending {
    #[default]
    None,
    /// `Redirect` to the hold context was sent.
    Hold,
    /// `Atxfer` was sent.
    Consult { to: Option<Address> },
    /// The leg was hung up to complete a consultation transfer.
    CompleteTransfer,
    /// `CancelAtxfer` was sent.
    CancelConsult,
    /// The held party, the consultation's target and the leg were redirected into a
    /// ConfBridge room to make a conference of the two calls.
    Conference,
}

#[derive(Debug, Clone)]
struct Consult {
    call: CallId,
    target: Box<str>,
    bridge: Box<str>,
    to: Option<Address>,
}

/// One channel of the agent's device and the calls it carries.
#[derive(Debug, Clone, Default)]
struct DeviceChannel {
    primary: Option<CallId>,
    consult: Option<Consult>,
    /// The bridge of the primary call's conversation.
    home_bridge: Option<Box<str>>,
    /// The party redirected to music on hold by our `hold`.
    held_party: Option<Box<str>>,
    /// Held by our `Redirect` (and so retrievable with `Bridge`).
    redirect_held: bool,
    /// The channel this leg dials, if it dials out.
    dialed: Option<Box<str>>,
    /// The leg's dialplan context when it entered its bridge: leaving the bridge *into*
    /// the hold context (a `Redirect` hold) is a hold; leaving it from there is not.
    entered_context: String,
    end_cause: Option<Cause>,
    transferred: bool,
    pending: Pending,
    outbound: bool,
}

#[derive(Debug, Clone)]
struct Originate {
    action_id: String,
    channel_id: Box<str>,
    command: CommandId,
    to: Address,
    data: CallData,
    initiated: bool,
}

/// Where the translator takes its settings from.
#[derive(Debug, Clone)]
pub struct TranslatorConfig {
    /// The agent's device interface.
    pub device: DeviceMatcher,
    /// The queues the agent works in.
    pub queues: Vec<String>,
    /// The hold context, if hold is done by `Redirect`.
    pub hold: Option<HoldConfig>,
    /// The prefix of the `ChannelId`s this connector gives its `Originate`s.
    pub originate_prefix: String,
}

/// A follow-up action the translator wants sent (the connector sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Hang up this channel (the agent's leg left alone on hold).
    Hangup {
        /// The channel's name.
        channel: String,
    },
}

/// What the connector needs about a call to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    /// The agent's channel (name) carrying the call.
    pub device_channel: String,
    /// Its `Uniqueid`.
    pub device_uniqueid: String,
    /// Whether the call is the consultation on that channel.
    pub is_consult: bool,
    /// Whether the leg carries a consultation (and this is the call it is about).
    pub has_consult: bool,
    /// Names of the other channels in the agent's channel's bridge now.
    pub peers: Vec<String>,
    /// Names of the other channels in the primary call's own bridge (which differs
    /// from `peers` during a consultation).
    pub primary_peers: Vec<String>,
    /// The party redirected to music on hold, if the call is held by `Redirect`.
    pub held_party: Option<String>,
    /// Whether the call is held by `Redirect` (retrievable with `Bridge`).
    pub redirect_held: bool,
    /// Whether the agent's channel is in a bridge now.
    pub bridged: bool,
}

/// What a line's translation keeps between events: which channels are the device's
/// legs and which calls they carry, the `Originate`s in flight, the queue memberships.
/// The protocol's bookkeeping only; the agent and call states are the session's.
#[derive(Debug)]
pub(crate) struct LineBook {
    config: TranslatorConfig,
    legs: IdMap<Box<str>, DeviceChannel>,
    calls: IdMap<CallId, Box<str>>,
    originates: Vec<Originate>,
    acd: IdMap<Box<str>, QueueId>,
    members: Vec<Membership>,
    follow_ups: Vec<FollowUp>,
}

/// The owners of the channels an event names, as routing it found them in the tracker,
/// so that translating it for each of its lines does not look them up again (the
/// translation changes no channel's owner).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoutedOwners<'a> {
    seen: [Option<(&'a str, Option<LineId>)>; 2],
}

impl<'a> RoutedOwners<'a> {
    /// Channel `uniqueid` is tracked and `owner`'s (the first two recorded are kept).
    pub(crate) fn record(&mut self, uniqueid: &'a str, owner: Option<LineId>) {
        if let Some(free) = self.seen.iter_mut().find(|s| s.is_none()) {
            *free = Some((uniqueid, owner));
        }
    }

    /// The owner of channel `uniqueid` if it was recorded (`None` if it was not).
    fn owner_of(&self, uniqueid: &str) -> Option<Option<LineId>> {
        self.seen
            .iter()
            .flatten()
            .find(|(seen, _)| same_text(seen, uniqueid))
            .map(|&(_, owner)| owner)
    }
}

/// Turns AMI events into canonical events for one line: its [`LineBook`], read and
/// updated against the link's one [`ChannelTracker`]. Made for each event (or command)
/// the line takes part in. See the module docs.
pub(crate) struct Translator<'a> {
    pub(crate) book: &'a mut LineBook,
    pub(crate) tracker: &'a mut ChannelTracker,
    pub(crate) line: LineId,
    /// What routing the event found out (nothing for a command).
    pub(crate) routed: RoutedOwners<'a>,
}

/// The `BridgeType` of a ConfBridge room (`base`, technology `softmix`, creator
/// `ConfBridge` in capture 18); a two-party call's bridge is `basic`.
const CONFERENCE_BRIDGE: &str = "base";

fn address(text: &str) -> Option<Address> {
    known(text).and_then(|t| Address::new(t).ok())
}

fn party(channel: &Channel) -> Option<Party> {
    let id = PartyId::new(&*channel.uniqueid).ok()?;
    let mut party = Party::new(id);
    party.address = address(&channel.caller_num);
    party.name = known(&channel.caller_name).and_then(|n| DisplayName::new(n).ok());
    Some(party)
}

impl LineBook {
    /// The book of one agent's device, with nothing in it yet.
    pub(crate) fn new(config: TranslatorConfig) -> Self {
        let members = vec![Membership::default(); config.queues.len()];
        LineBook {
            legs: IdMap::default(),
            calls: IdMap::default(),
            originates: Vec::new(),
            acd: IdMap::default(),
            members,
            follow_ups: Vec::new(),
            config,
        }
    }

    /// The device's interface.
    pub(crate) fn interface(&self) -> &str {
        self.config.device.interface()
    }

    /// The queue that offers channel `uniqueid` to the agent, taken out of the book.
    /// Checked for emptiness first: the map is empty unless a queue call rings, and
    /// looking into an empty map still costs hashing the id.
    fn take_queue_of(&mut self, uniqueid: &str) -> Option<QueueId> {
        if self.acd.is_empty() {
            return None;
        }
        self.acd.remove(uniqueid)
    }

    /// Follows these queues' memberships from now on (the next rebuild reads them).
    pub(crate) fn set_queues(&mut self, queues: &[String]) {
        if self.config.queues != queues {
            self.config.queues = queues.to_vec();
            self.members = vec![Membership::default(); queues.len()];
        }
    }

    /// Whether the device has nothing going on: no channel, no call, no queue
    /// membership, nothing expected.
    pub(crate) fn is_idle(&self) -> bool {
        self.legs.is_empty()
            && self.calls.is_empty()
            && self.originates.is_empty()
            && !self.members.iter().any(|m| m.member)
    }

    #[cfg(any(test, feature = "test-support"))]
    /// How many device legs and canonical calls are open (for memory checks).
    pub(crate) fn open_calls(&self) -> (usize, usize) {
        (self.legs.len(), self.calls.len())
    }

    /// Moves the follow-up actions wanted since the last call to the end of `to`
    /// (nothing to do for almost every event, so checked before moving anything).
    pub(crate) fn move_follow_ups_to(&mut self, to: &mut Vec<FollowUp>) {
        if !self.follow_ups.is_empty() {
            to.append(&mut self.follow_ups);
        }
    }

    /// The link dropped: `Originate`s in flight on the old connection will never be
    /// answered there.
    pub(crate) fn link_down(&mut self) {
        self.originates.clear();
    }

    /// The switch's state as the book and `session` (the state its events built) see
    /// it now, without asking Asterisk.
    pub(crate) fn switch_state(&self, session: &dyn EventOut) -> SwitchState {
        let mut calls = Vec::new();
        session.view(&mut |desk| calls = desk.calls().to_vec());
        SwitchState {
            agent: self.agent_state().to_agent_state(),
            calls,
            withheld: self.withheld(),
        }
    }
}

impl Translator<'_> {
    /// Translates what one AMI event changed (the link's tracker has applied it
    /// already) for this line.
    pub(crate) fn on_change(&mut self, change: &Change<'_>, msg: &Message, out: &mut dyn EventOut) {
        match *change {
            Change::None => self.other_event(msg, out),
            Change::ChannelCreated { uniqueid } => self.channel_created(uniqueid, out),
            Change::StateChanged { uniqueid, to, .. } => self.state_changed(uniqueid, to, out),
            Change::CallerIdChanged { uniqueid } => self.caller_id_changed(uniqueid, out),
            Change::Renamed { .. } | Change::MusicOnHold { .. } => {}
            Change::DialBegin {
                caller,
                dest,
                dial_string,
            } => self.dial_begin(caller, dest, dial_string, out),
            Change::DialState { caller, status, .. } => {
                if status == "RINGING" {
                    if let Some(caller) = caller {
                        self.ringback(caller, out);
                    }
                }
            }
            Change::DialEnd {
                caller,
                dest,
                status,
            } => self.dial_end(caller, dest, status, out),
            Change::BridgeEntered { bridge, uniqueid } => {
                self.bridge_entered(bridge, uniqueid, out)
            }
            Change::BridgeLeft { bridge, uniqueid } => self.bridge_left(bridge, uniqueid, out),
            Change::BridgeMerged { to, .. } => self.bridge_merged(to, out),
            Change::Hold { uniqueid, on } => self.hold_event(uniqueid, on, out),
            Change::Hungup {
                ref channel,
                ref bridge,
                cause,
            } => self.hungup(channel, bridge.as_deref(), cause, out),
            Change::BlindTransfer {
                transferer,
                extension,
            } => self.blind_transfer(transferer, extension, out),
            Change::AttendedTransfer {
                orig_transferer,
                second_transferer,
                ..
            } => {
                self.attended_transfer(orig_transferer, out);
                if second_transferer != orig_transferer {
                    self.attended_transfer(second_transferer, out);
                }
            }
            Change::Dtmf {
                uniqueid,
                digit,
                received,
            } => self.dtmf(uniqueid, digit, received, out),
            Change::Recording { uniqueid, on } => self.recording(uniqueid, on, out),
        }
    }

    fn emit(&mut self, out: &mut dyn EventOut, event: Event, command: Option<CommandId>) {
        out.emit(event, command);
    }

    fn new_call_id(&self, channel: &Channel) -> Option<CallId> {
        let candidate = known(&channel.linkedid)
            .filter(|l| !self.book.calls.contains_key(*l))
            .unwrap_or(&channel.uniqueid);
        CallId::new(candidate).ok()
    }

    /// The leg for channel `uniqueid` if it is the device's (created on first sight).
    fn is_leg(&mut self, uniqueid: &str) -> bool {
        let owner = match self.routed.owner_of(uniqueid) {
            Some(owner) => owner,
            None => match self.tracker.channel(uniqueid) {
                Some(channel) => channel.owner,
                None => return self.book.legs.contains_key(uniqueid),
            },
        };
        if owner != Some(self.line) {
            return false;
        }
        if self.book.legs.contains_key(uniqueid) {
            return true;
        }
        let outbound = uniqueid.starts_with(self.book.config.originate_prefix.as_str());
        self.book.legs.insert(
            uniqueid.into(),
            DeviceChannel {
                outbound,
                ..DeviceChannel::default()
            },
        );
        true
    }

    fn start_call(&mut self, uniqueid: &str, call: CallId) {
        self.book.calls.insert(call.clone(), uniqueid.into());
        if let Some(leg) = self.book.legs.get_mut(uniqueid) {
            leg.primary = Some(call);
        }
    }

    fn leg_of_mut(&mut self, call: &CallId) -> Option<&mut DeviceChannel> {
        let uniqueid = self.book.calls.get(call)?;
        self.book.legs.get_mut(uniqueid)
    }
}

#[cfg(test)]
mod tests {
    use opencti_core::{Address, Cause, ChosenState, CommandId, Event, ReasonCode};

    use super::calls::{cause_from_dial_status, cause_from_q850};
    use super::*;
    use crate::replay::DeviceReplay;

    #[test]
    fn causes() {
        assert_eq!(cause_from_q850(16), Cause::Normal);
        assert_eq!(cause_from_q850(17), Cause::Busy);
        assert_eq!(cause_from_q850(19), Cause::NoAnswer);
        assert_eq!(cause_from_q850(21), Cause::Rejected);
        assert_eq!(cause_from_q850(1), Cause::InvalidNumber);
        assert_eq!(cause_from_q850(34), Cause::Congestion);
        assert_eq!(cause_from_q850(20), Cause::Unreachable);
        assert_eq!(cause_from_q850(127), Cause::Other);
        assert_eq!(cause_from_dial_status("CANCEL"), Cause::Cancelled);
        assert_eq!(cause_from_dial_status("CHANUNAVAIL"), Cause::Unreachable);
        assert_eq!(cause_from_dial_status("weird"), Cause::Other);
    }

    fn translator() -> DeviceReplay {
        DeviceReplay::new("PJSIP/1001", &["q1", "q2"])
    }

    fn msg(text: &str) -> Message {
        Message::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn agent_state_aggregates_queues_and_ignores_others() {
        let mut t = translator();
        let ev = |queue: &str, iface: &str, kind: &str, paused: u8, reason: &str| {
            msg(&format!(
                "Event: {kind}\nQueue: {queue}\nInterface: {iface}\nPaused: {paused}\nPausedReason: {reason}\n"
            ))
        };
        t.translate(&ev("other", "PJSIP/1001", "QueueMemberAdded", 0, ""));
        t.translate(&ev("q1", "PJSIP/1002", "QueueMemberAdded", 0, ""));
        assert!(t.events().is_empty(), "{:?}", t.events());
        t.translate(&ev("q1", "PJSIP/1001", "QueueMemberAdded", 1, ""));
        t.translate(&ev("q2", "PJSIP/1001", "QueueMemberAdded", 1, ""));
        assert_eq!(t.events().len(), 1, "logged in once: {:?}", t.events());
        t.translate(&ev("q1", "PJSIP/1001", "QueueMemberPause", 0, ""));
        assert_eq!(t.agent_state().name(), "not_ready", "still paused in q2");
        t.translate(&ev("q2", "PJSIP/1001", "QueueMemberPause", 0, ""));
        assert_eq!(t.agent_state(), ChosenState::Ready);
        t.translate(&ev("q2", "PJSIP/1001", "QueueMemberPause", 1, "lunch"));
        assert_eq!(
            t.agent_state(),
            ChosenState::NotReady {
                reason: ReasonCode::new("lunch").ok()
            }
        );
        t.translate(&ev("q1", "PJSIP/1001", "QueueMemberRemoved", 0, ""));
        t.translate(&ev("q2", "PJSIP/1001", "QueueMemberRemoved", 0, ""));
        assert_eq!(t.agent_state(), ChosenState::LoggedOut);
        let names: Vec<_> = t.events().iter().map(|(e, _)| e.name()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn our_originate_is_an_outbound_call_confirmed_by_its_channel() {
        let mut t = translator();
        let id = CommandId::new(std::num::NonZeroU64::MIN);
        let to = Address::new("2000").unwrap_or_else(|e| panic!("{e}"));
        t.expect_originate("a-1", "opencti-x-1", id, to);
        t.translate(
            &msg("Event: Newchannel\nChannel: PJSIP/1001-00000001\nChannelState: 0\nUniqueid: opencti-x-1\nLinkedid: opencti-x-1\n"),
        );
        assert_eq!(t.events().len(), 1);
        assert_eq!(t.events()[0].1, Some(id));
        assert!(
            matches!(&t.events()[0].0, Event::CallInitiated { call, .. } if call.as_str() == "opencti-x-1")
        );
        // A failure after the channel existed is not a command failure: the call ends.
        t.translate(&msg(
            "Event: OriginateResponse\nActionID: a-1\nResponse: Failure\nReason: 3\n",
        ));
        assert_eq!(t.events().len(), 1);
        // A failure with no channel at all fails the command.
        t.expect_originate(
            "a-2",
            "opencti-x-2",
            id,
            Address::new("2001").unwrap_or_else(|e| panic!("{e}")),
        );
        t.translate(&msg(
            "Event: OriginateResponse\nActionID: a-2\nResponse: Failure\nReason: 5\n",
        ));
        match &t.events()[1] {
            (Event::CommandFailed { error }, Some(c)) if *c == id => {
                assert!(error.message.contains("busy"), "{}", error.message)
            }
            other => panic!("{other:?}"),
        }
    }
}
