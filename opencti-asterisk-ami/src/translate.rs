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

use std::collections::HashMap;

use opencti_core::machine::Desk;
use opencti_core::{
    Address, AgentId, Call, CallData, CallId, CallRole, CallState, Capabilities, Cause,
    ChosenState, CommandId, CommandKind, DeviceId, Direction, DisplayName, DtmfDigits, Error,
    ErrorBody, ErrorKind, Event, Party, PartyId, QueueId, ReasonCode, SwitchState, Withheld,
};

use crate::config::HoldConfig;
use crate::device::{DeviceMatcher, LineId};
use crate::message::Message;
use crate::tracker::{known, state, Change, Channel, ChannelTracker, IdMap};

/// Where translated events go, and where the translator reads the state they build:
/// the session's `EventSink`, or a [`DeskEvents`] that applies them like a session.
pub trait EventOut {
    /// One canonical event; `command` is the command it answers, where known.
    fn emit(&mut self, event: Event, command: Option<CommandId>);

    /// Runs `f` on the state the events emitted so far built (not at all when there is
    /// no such state, for example once the session is gone).
    fn view(&self, f: &mut dyn FnMut(&Desk));
}

impl EventOut for opencti_core::EventSink {
    fn emit(&mut self, event: Event, command: Option<CommandId>) {
        match command {
            Some(id) => self.emit_for(id, event),
            None => opencti_core::EventSink::emit(self, event),
        }
    }

    fn view(&self, f: &mut dyn FnMut(&Desk)) {
        opencti_core::EventSink::view(self, f);
    }
}

/// Canonical events applied to a desk the way a session applies them: an event that
/// restates the state is dropped (unless it answers a command), one that does not fit is
/// counted and dropped. For a consumer without a session: the watcher of a whole
/// Asterisk, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct DeskEvents {
    desk: Desk,
    /// The events the desk took, in order, with the command each answers.
    pub events: Vec<(Event, Option<CommandId>)>,
    /// The events that did not fit the desk's state, with why.
    pub rejected: Vec<(Event, ErrorBody)>,
}

impl Default for DeskEvents {
    fn default() -> Self {
        DeskEvents::new()
    }
}

impl DeskEvents {
    /// An idle desk with the link up.
    pub fn new() -> Self {
        let agent = AgentId::new("ami").unwrap_or_else(|_| unreachable!("a valid constant"));
        let device = DeviceId::new("device").unwrap_or_else(|_| unreachable!("a valid constant"));
        let mut desk = Desk::new(agent, device, Capabilities::all().with_wrap_up(false));
        let _ = desk.apply(&mut Event::LinkUp);
        DeskEvents {
            desk,
            events: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// The desk.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// Replaces the desk's state with the switch's (as a session does when it
    /// resynchronises).
    pub fn resync(&mut self, state: SwitchState) {
        let _ = self.desk.apply(&mut Event::LinkUp);
        self.desk.resync(state, 0);
    }
}

impl EventOut for DeskEvents {
    fn emit(&mut self, event: Event, command: Option<CommandId>) {
        // The desk rewrites a reported agent state into the effective one; what a
        // session passes on is the state as reported, so that one is applied to a copy.
        let mut applied_to = event.clone();
        match self.desk.apply(&mut applied_to) {
            Ok(applied) => {
                if applied.step != opencti_core::machine::Step::Duplicate || command.is_some() {
                    self.events.push((event, command));
                }
            }
            Err(error) => self.rejected.push((event, error.to_body())),
        }
    }

    fn view(&self, f: &mut dyn FnMut(&Desk)) {
        f(&self.desk);
    }
}

/// The state of `call` in `out`'s view.
fn state_of(out: &dyn EventOut, call: &CallId) -> Option<CallState> {
    read_call(out, call, |c| c.state)
}

/// Reads `call` in `out`'s view.
fn read_call<R>(out: &dyn EventOut, call: &CallId, f: impl FnOnce(&Call) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut result = None;
    out.view(&mut |desk| {
        if let (Some(c), Some(f)) = (desk.call(call), f.take()) {
            result = Some(f(c));
        }
    });
    result
}

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

#[derive(Debug, Clone, Default)]
struct Membership {
    member: bool,
    paused: bool,
    reason: Option<ReasonCode>,
    /// `static` or `realtime`: written in Asterisk's configuration, so `QueueAdd` and
    /// `QueueRemove` cannot change it ("Member not dynamic"); `None` for a dynamic member.
    fixed: Option<String>,
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

/// Turns AMI events into canonical events for one line: its [`LineBook`], read and
/// updated against the link's one [`ChannelTracker`]. Made for each event (or command)
/// the line takes part in. See the module docs.
pub(crate) struct Translator<'a> {
    pub(crate) book: &'a mut LineBook,
    pub(crate) tracker: &'a mut ChannelTracker,
    pub(crate) line: LineId,
}

/// Q.850 cause codes to canonical causes.
pub fn cause_from_q850(code: u16) -> Cause {
    match code {
        16 | 0 => Cause::Normal,
        17 => Cause::Busy,
        18 | 19 => Cause::NoAnswer,
        21 => Cause::Rejected,
        1 | 22 | 28 => Cause::InvalidNumber,
        2 | 3 | 20 | 27 | 38 => Cause::Unreachable,
        34 | 41 | 42 | 44 => Cause::Congestion,
        _ => Cause::Other,
    }
}

/// `DialStatus` values to canonical causes.
pub fn cause_from_dial_status(status: &str) -> Cause {
    match status {
        "BUSY" => Cause::Busy,
        "NOANSWER" => Cause::NoAnswer,
        "CANCEL" => Cause::Cancelled,
        "CONGESTION" => Cause::Congestion,
        "CHANUNAVAIL" => Cause::Unreachable,
        "DONTCALL" | "TORTURE" => Cause::Rejected,
        "INVALIDARGS" => Cause::InvalidNumber,
        _ => Cause::Other,
    }
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

    /// How many device legs and canonical calls are open (for memory checks).
    pub(crate) fn open_calls(&self) -> (usize, usize) {
        (self.legs.len(), self.calls.len())
    }

    /// The agent's chosen state from its queue memberships: `logged_out` when a member
    /// of none of the configured queues, `not_ready` (with the first pause reason) when
    /// paused in any of them, else `ready`.
    pub(crate) fn agent_state(&self) -> ChosenState {
        let mut member = false;
        for m in self.members.iter().filter(|m| m.member) {
            member = true;
            if m.paused {
                return ChosenState::NotReady {
                    reason: m.reason.clone(),
                };
            }
        }
        if member {
            ChosenState::Ready
        } else {
            ChosenState::LoggedOut
        }
    }

    /// Whether the agent's chosen state at the switch is already `state`.
    pub(crate) fn agent_is(&self, state: &ChosenState) -> bool {
        &self.agent_state() == state
    }

    /// Follow-up actions wanted since the last call.
    pub(crate) fn take_follow_ups(&mut self) -> Vec<FollowUp> {
        std::mem::take(&mut self.follow_ups)
    }

    /// The link dropped: `Originate`s in flight on the old connection will never be
    /// answered there.
    pub(crate) fn link_down(&mut self) {
        self.originates.clear();
    }

    /// What Asterisk does not allow this agent: logging in and out when the device's
    /// membership of a queue is written in Asterisk's configuration, which QueueAdd and
    /// QueueRemove refuse to change.
    fn withheld(&self) -> Vec<Withheld> {
        let fixed: Vec<String> = self
            .config
            .queues
            .iter()
            .zip(&self.members)
            .filter_map(|(queue, m)| {
                m.fixed
                    .as_ref()
                    .map(|kind| format!("a {kind} member of queue {queue}"))
            })
            .collect();
        if fixed.is_empty() {
            return Vec::new();
        }
        let reason = format!(
            "the device is {} in Asterisk's configuration, and Asterisk logs such a member neither in nor out \
             (QueueRemove answers \"Member not dynamic\"); ready and not ready still work. To log in and out \
             from the desk, remove the device's member line from the queue so that the desk adds it",
            fixed.join(" and ")
        );
        [CommandKind::Login, CommandKind::Logout]
            .into_iter()
            .map(|command| Withheld {
                command,
                reason: reason.clone(),
            })
            .collect()
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

    // ----- emission -----

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
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return self.book.legs.contains_key(uniqueid);
        };
        if channel.owner != Some(self.line) {
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

    // ----- channel events -----

    fn channel_created(&mut self, uniqueid: &str, out: &mut dyn EventOut) {
        if !self.is_leg(uniqueid) {
            return;
        }
        if self
            .book
            .legs
            .get(uniqueid)
            .is_some_and(|l| l.primary.is_some())
        {
            return;
        }
        let Some(channel_state) = self.tracker.channel(uniqueid).map(|c| c.state) else {
            return;
        };
        if let Some(i) = self
            .book
            .originates
            .iter()
            .position(|o| &*o.channel_id == uniqueid)
        {
            let Ok(call) = CallId::new(uniqueid) else {
                return;
            };
            let originate = &mut self.book.originates[i];
            originate.initiated = true;
            let (command, to, data) = (
                originate.command,
                originate.to.clone(),
                originate.data.clone(),
            );
            if let Some(leg) = self.book.legs.get_mut(uniqueid) {
                leg.outbound = true;
            }
            self.start_call(uniqueid, call.clone());
            self.emit(
                out,
                Event::CallInitiated {
                    call,
                    to: Some(to),
                    consult_of: None,
                    data,
                },
                Some(command),
            );
        } else if channel_state == state::RING {
            // The phone went off hook to dial (a desk phone placing a call itself).
            let to = self
                .tracker
                .channel(uniqueid)
                .and_then(|c| address(&c.exten));
            self.phone_dials(uniqueid, to, out);
        }
    }

    fn phone_dials(&mut self, uniqueid: &str, to: Option<Address>, out: &mut dyn EventOut) {
        let Some(call) = self
            .tracker
            .channel(uniqueid)
            .and_then(|c| self.new_call_id(c))
        else {
            return;
        };
        if let Some(leg) = self.book.legs.get_mut(uniqueid) {
            leg.outbound = true;
        }
        self.start_call(uniqueid, call.clone());
        self.emit(
            out,
            Event::CallInitiated {
                call,
                to,
                consult_of: None,
                data: CallData::new(),
            },
            None,
        );
    }

    fn state_changed(&mut self, uniqueid: &str, to: u8, out: &mut dyn EventOut) {
        if self.is_leg(uniqueid) {
            if to == state::UP {
                // Answered by a phone that another channel dials: connected once the two
                // are bridged (a `BridgeEnter` follows at once), so that a command sent
                // on `call_connected` finds the bridge. Without a dialling channel (an
                // `Originate` from elsewhere) there may be no bridge: connected now.
                let dialed = self
                    .tracker
                    .channel(uniqueid)
                    .is_some_and(|c| c.dialed_by.is_some());
                if let Some(call) = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone()) {
                    if !dialed && state_of(out, &call) == Some(CallState::Offered) {
                        self.emit(out, Event::CallConnected { call }, None);
                    }
                }
            } else if to == state::RING {
                let primary = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone());
                if primary.is_none() {
                    let to = self
                        .tracker
                        .channel(uniqueid)
                        .and_then(|c| address(&c.exten));
                    self.phone_dials(uniqueid, to, out);
                }
            }
            return;
        }
        // The channel a leg dials, or a consultation's target.
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return;
        };
        if to == state::RINGING {
            if let Some(dialer) = channel.dialed_by.clone() {
                self.ringback(&dialer, out);
            }
        }
        if to != state::RINGING && to != state::UP {
            return;
        }
        let consult = self.book.legs.values().find_map(|l| {
            l.consult
                .as_ref()
                .filter(|c| &*c.target == uniqueid)
                .map(|c| c.call.clone())
        });
        if let Some(call) = consult {
            match to {
                state::RINGING => self.emit(out, Event::CallRingback { call }, None),
                state::UP => self.emit(out, Event::CallConnected { call }, None),
                _ => {}
            }
        }
    }

    fn ringback(&mut self, dialer: &str, out: &mut dyn EventOut) {
        let Some(call) = self.book.legs.get(dialer).and_then(|l| l.primary.clone()) else {
            return;
        };
        if state_of(out, &call) == Some(CallState::Initiated) {
            self.emit(out, Event::CallRingback { call }, None);
        }
    }

    fn caller_id_changed(&mut self, uniqueid: &str, out: &mut dyn EventOut) {
        // A party's number or name changed (a transfer, a connected-line update).
        let Some(channel) = self.tracker.channel(uniqueid) else {
            return;
        };
        let Some(bridge) = channel.bridge.clone() else {
            return;
        };
        let Some(updated) = party(channel) else {
            return;
        };
        let calls = self.calls_in_bridge(&bridge, uniqueid);
        for call in calls {
            let listed = read_call(out, &call, |c| c.parties.iter().any(|p| p.id == updated.id))
                .unwrap_or(false);
            if listed {
                self.emit(
                    out,
                    Event::PartyJoined {
                        call,
                        party: updated.clone(),
                    },
                    None,
                );
            }
        }
    }

    fn dial_begin(
        &mut self,
        caller: Option<&str>,
        dest: &str,
        dial_string: &str,
        out: &mut dyn EventOut,
    ) {
        if let Some(caller) = caller {
            if self.is_leg(caller) {
                if let Some(leg) = self.book.legs.get_mut(caller) {
                    leg.dialed = Some(dest.into());
                }
                let primary = self.book.legs.get(caller).and_then(|l| l.primary.clone());
                if primary.is_none() {
                    self.phone_dials(caller, address(dial_string), out);
                }
            }
        }
        if !self.is_leg(dest)
            || self
                .book
                .legs
                .get(dest)
                .is_some_and(|l| l.primary.is_some())
        {
            return;
        }
        // Someone dials the device: a call is offered.
        if self.book.legs.get(dest).is_some_and(|l| l.outbound) {
            // Our own Originate whose Newchannel was not seen: still outbound.
            self.phone_dials(dest, None, out);
            return;
        }
        let Some(channel) = self.tracker.channel(dest) else {
            return;
        };
        let caller_channel = caller.and_then(|c| self.tracker.channel(c));
        let from = match caller_channel {
            Some(c) => address(&c.caller_num),
            None => address(&channel.connected_num).or_else(|| address(&channel.caller_num)),
        };
        let to = caller_channel.and_then(|c| address(&c.exten));
        let Some(call) = self.new_call_id(channel) else {
            return;
        };
        let queue = self.book.acd.remove(dest);
        self.start_call(dest, call.clone());
        self.emit(
            out,
            Event::CallOffered {
                call,
                from,
                to,
                queue,
                data: CallData::new(),
            },
            None,
        );
    }

    fn dial_end(&mut self, caller: Option<&str>, dest: &str, status: &str, out: &mut dyn EventOut) {
        if let Some(caller) = caller {
            if let Some(call) = self.book.legs.get(caller).and_then(|l| l.primary.clone()) {
                let setup = state_of(out, &call).is_some_and(|s| s.is_setup());
                if setup {
                    // ANSWER: connected when the bridge forms (the next events).
                    if status != "ANSWER" {
                        let cause = cause_from_dial_status(status);
                        if let Some(leg) = self.book.legs.get_mut(caller) {
                            leg.end_cause = Some(cause);
                        }
                        self.emit(out, Event::CallFailed { call, cause }, None);
                    }
                }
            }
        }
        if let Some(leg) = self.book.legs.get_mut(dest) {
            if status != "ANSWER" {
                leg.end_cause = Some(cause_from_dial_status(status));
            }
        }
    }

    /// The calls whose conversation is in `bridge`, except `other`'s own.
    fn calls_in_bridge(&self, bridge: &str, other: &str) -> Vec<CallId> {
        let Some(b) = self.tracker.bridge(bridge) else {
            return Vec::new();
        };
        b.members
            .iter()
            .filter(|m| &***m != other)
            .filter_map(|m| self.book.legs.get(m))
            .filter_map(|leg| match &leg.consult {
                Some(c) if &*c.bridge == bridge => Some(c.call.clone()),
                _ => leg.primary.clone(),
            })
            .collect()
    }

    fn bridge_entered(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        if self.is_leg(uniqueid) {
            self.leg_entered(bridge, uniqueid, out);
            return;
        }
        // Another channel joined a bridge with a leg in it.
        let members: Vec<Box<str>> = self
            .tracker
            .bridge(bridge)
            .map(|b| {
                b.members
                    .iter()
                    .filter(|m| &***m != uniqueid && self.book.legs.contains_key(*m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for member in &members {
            let Some(leg) = self.book.legs.get(member) else {
                continue;
            };
            let in_consult = leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge);
            let call = if in_consult {
                leg.consult.as_ref().map(|c| c.call.clone())
            } else {
                leg.primary.clone()
            };
            let Some(call) = call else {
                continue;
            };
            let retrieving = !in_consult
                && leg.redirect_held
                && leg.held_party.as_deref().is_none_or(|h| h == uniqueid);
            let member = member.clone();
            match state_of(out, &call) {
                Some(CallState::Held) if retrieving => {
                    if let Some(leg) = self.book.legs.get_mut(&member) {
                        leg.redirect_held = false;
                        leg.held_party = None;
                        leg.pending = Pending::None;
                        leg.home_bridge = Some(bridge.into());
                    }
                    self.emit(out, Event::CallRetrieved { call: call.clone() }, None);
                }
                Some(s) if s.is_setup() && !in_consult => {
                    self.emit(out, Event::CallConnected { call: call.clone() }, None);
                }
                _ => {}
            }
            if let Some(p) = self.tracker.channel(uniqueid).and_then(party) {
                self.emit(out, Event::PartyJoined { call, party: p }, None);
            }
        }
    }

    fn leg_entered(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        let peers: Vec<Peer> = self
            .tracker
            .peers(uniqueid)
            .map(|c| Peer {
                uniqueid: c.uniqueid.clone(),
                state: c.state,
                party: party(c),
            })
            .collect();
        let Some(leg) = self.book.legs.get(uniqueid).cloned() else {
            return;
        };
        if leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge) {
            return;
        }
        let primary = leg.primary.clone();
        let primary_state = primary.as_ref().and_then(|c| state_of(out, c));
        let leaving_home = leg.home_bridge.as_deref().is_some_and(|h| h != bridge);
        let consult_starts = primary.is_some()
            && (matches!(leg.pending, Pending::Consult { .. })
                || (primary_state == Some(CallState::Held) && leaving_home && !leg.redirect_held));
        if consult_starts && leg.consult.is_none() {
            let Some(primary) = primary else { return };
            if primary_state == Some(CallState::Connected) {
                self.emit(
                    out,
                    Event::CallHeld {
                        call: primary.clone(),
                    },
                    None,
                );
            }
            let target = peers.first();
            let id = target
                .map(|t| t.uniqueid.to_string())
                .unwrap_or_else(|| format!("{uniqueid}-consult"));
            let Ok(call) = CallId::new(id) else { return };
            let to = match &leg.pending {
                Pending::Consult { to } => to.clone(),
                _ => None,
            }
            .or_else(|| {
                target
                    .and_then(|t| self.tracker.channel(&t.uniqueid))
                    .and_then(|c| address(&c.exten))
            });
            self.book.calls.insert(call.clone(), uniqueid.into());
            if let Some(leg) = self.book.legs.get_mut(uniqueid) {
                leg.pending = Pending::None;
                leg.consult = Some(Consult {
                    call: call.clone(),
                    target: target.map(|t| t.uniqueid.clone()).unwrap_or_default(),
                    bridge: bridge.into(),
                    to: to.clone(),
                });
            }
            self.emit(
                out,
                Event::CallInitiated {
                    call: call.clone(),
                    to,
                    consult_of: Some(primary),
                    data: CallData::new(),
                },
                None,
            );
            if let Some(t) = target {
                match t.state {
                    state::RINGING => {
                        self.emit(out, Event::CallRingback { call: call.clone() }, None)
                    }
                    state::UP => self.emit(out, Event::CallConnected { call: call.clone() }, None),
                    _ => {}
                }
                if let Some(p) = t.party.clone() {
                    self.emit(out, Event::PartyJoined { call, party: p }, None);
                }
            }
            return;
        }
        let conference = self.is_conference_bridge(bridge);
        if let (true, Some(consult), Some(call)) = (
            conference || leg.pending == Pending::Conference,
            leg.consult.clone(),
            primary.clone(),
        ) {
            // The consultation merged into the primary call in a ConfBridge room.
            if let Some(l) = self.book.legs.get_mut(uniqueid) {
                l.consult = None;
                l.pending = Pending::None;
                l.redirect_held = false;
                l.held_party = None;
            }
            self.book.calls.remove(&consult.call);
            self.emit(
                out,
                Event::CallConferenced {
                    call: call.clone(),
                    merged: Some(consult.call.clone()),
                },
                None,
            );
            self.emit(
                out,
                Event::CallEnded {
                    call: consult.call,
                    cause: Cause::Merged,
                },
                None,
            );
            self.home(uniqueid, bridge);
            self.join_peers(out, &call, &peers);
            return;
        }
        // Back in the primary call's bridge, or a (new) bridge for it.
        if let Some(consult) = leg.consult.clone() {
            // Returning from a consultation (CancelAtxfer, or the target hung up).
            if let Some(l) = self.book.legs.get_mut(uniqueid) {
                l.consult = None;
                l.pending = Pending::None;
            }
            self.book.calls.remove(&consult.call);
            self.emit(
                out,
                Event::CallEnded {
                    call: consult.call,
                    cause: Cause::Normal,
                },
                None,
            );
        }
        let Some(call) = primary else {
            // A device channel in a bridge with no call known (joined mid-call).
            if peers.is_empty() {
                return;
            }
            let Some(channel) = self.tracker.channel(uniqueid).cloned() else {
                return;
            };
            let Some(call) = self.new_call_id(&channel) else {
                return;
            };
            self.start_call(uniqueid, call.clone());
            let first = if leg.outbound {
                Event::CallInitiated {
                    call: call.clone(),
                    to: None,
                    consult_of: None,
                    data: CallData::new(),
                }
            } else {
                Event::CallOffered {
                    call: call.clone(),
                    from: peers
                        .first()
                        .and_then(|p| p.party.as_ref())
                        .and_then(|p| p.address.clone()),
                    to: None,
                    queue: None,
                    data: CallData::new(),
                }
            };
            self.emit(out, first, None);
            self.emit(out, Event::CallConnected { call: call.clone() }, None);
            self.home(uniqueid, bridge);
            self.join_peers(out, &call, &peers);
            return;
        };
        let held_party_here = leg
            .held_party
            .as_deref()
            .is_some_and(|h| peers.iter().any(|p| &*p.uniqueid == h));
        match state_of(out, &call) {
            Some(CallState::Held)
                if !peers.is_empty() && (!leg.redirect_held || held_party_here) =>
            {
                if let Some(l) = self.book.legs.get_mut(uniqueid) {
                    l.redirect_held = false;
                    l.held_party = None;
                    l.pending = Pending::None;
                }
                self.emit(out, Event::CallRetrieved { call: call.clone() }, None);
            }
            Some(s) if s.is_setup() && !peers.is_empty() => {
                self.emit(out, Event::CallConnected { call: call.clone() }, None);
            }
            _ => {}
        }
        if conference
            && read_call(out, &call, |c| {
                c.state == CallState::Connected && c.role != CallRole::Conference
            })
            .unwrap_or(false)
        {
            // The device joined a ConfBridge room (dialled it, or was sent there).
            self.emit(
                out,
                Event::CallConferenced {
                    call: call.clone(),
                    merged: None,
                },
                None,
            );
        }
        self.home(uniqueid, bridge);
        self.join_peers(out, &call, &peers);
    }

    fn is_conference_bridge(&self, bridge: &str) -> bool {
        self.tracker
            .bridge(bridge)
            .is_some_and(|b| b.kind == CONFERENCE_BRIDGE)
    }

    /// Tells the device that everyone already in the bridge joined `call`.
    fn join_peers(&mut self, out: &mut dyn EventOut, call: &CallId, peers: &[Peer]) {
        for party in peers.iter().filter_map(|p| p.party.clone()) {
            self.emit(
                out,
                Event::PartyJoined {
                    call: call.clone(),
                    party,
                },
                None,
            );
        }
    }

    fn home(&mut self, uniqueid: &str, bridge: &str) {
        let context = self
            .tracker
            .channel(uniqueid)
            .map(|c| c.context.clone())
            .unwrap_or_default();
        if let Some(l) = self.book.legs.get_mut(uniqueid) {
            l.home_bridge = Some(bridge.into());
            l.entered_context = context;
        }
    }

    fn bridge_left(&mut self, bridge: &str, uniqueid: &str, out: &mut dyn EventOut) {
        if let Some(leg) = self.book.legs.get(uniqueid).cloned() {
            let Some(call) = leg.primary.clone() else {
                return;
            };
            if leg.home_bridge.as_deref() != Some(bridge) {
                return;
            }
            let to_hold_context = match (&self.book.config.hold, self.tracker.channel(uniqueid)) {
                (Some(hold), Some(channel)) => {
                    channel.context == hold.context && leg.entered_context != hold.context
                }
                _ => false,
            };
            match leg.pending {
                Pending::Hold => {
                    if let Some(l) = self.book.legs.get_mut(uniqueid) {
                        l.redirect_held = true;
                        l.pending = Pending::None;
                    }
                    self.emit(out, Event::CallHeld { call }, None);
                }
                Pending::Consult { .. } => {
                    self.emit(out, Event::CallHeld { call }, None);
                }
                _ if to_hold_context => {
                    if let Some(l) = self.book.legs.get_mut(uniqueid) {
                        l.redirect_held = true;
                    }
                    self.emit(out, Event::CallHeld { call }, None);
                }
                _ => {}
            }
            return;
        }
        // Another channel left: a party left the calls in that bridge, unless it is the
        // party our hold just moved to music on hold.
        let holders: Vec<(Box<str>, CallId)> = self
            .tracker
            .bridge(bridge)
            .map(|b| b.members.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let leg = self.book.legs.get(&m)?;
                if leg.held_party.as_deref() == Some(uniqueid) {
                    return None;
                }
                if leg.pending == Pending::Conference
                    && leg.consult.as_ref().is_some_and(|c| &*c.bridge == bridge)
                {
                    // The target is on its way into the conference, not leaving.
                    return None;
                }
                let call = match &leg.consult {
                    Some(c) if &*c.bridge == bridge => c.call.clone(),
                    _ => leg.primary.clone()?,
                };
                Some((m, call))
            })
            .collect();
        let Ok(party) = PartyId::new(uniqueid) else {
            return;
        };
        for (_, call) in holders {
            self.emit(
                out,
                Event::PartyLeft {
                    call,
                    party: party.clone(),
                },
                None,
            );
        }
    }

    fn bridge_merged(&mut self, to: &str, out: &mut dyn EventOut) {
        let members: Vec<Box<str>> = self
            .tracker
            .bridge(to)
            .map(|b| b.members.clone())
            .unwrap_or_default();
        for member in &members {
            if !self.book.legs.contains_key(member) {
                continue;
            }
            let Some(call) = self.book.legs.get(member).and_then(|l| l.primary.clone()) else {
                continue;
            };
            let peers: Vec<Party> = self.tracker.peers(member).filter_map(party).collect();
            for p in peers {
                self.emit(
                    out,
                    Event::PartyJoined {
                        call: call.clone(),
                        party: p,
                    },
                    None,
                );
            }
        }
    }

    fn hold_event(&mut self, uniqueid: &str, on: bool, out: &mut dyn EventOut) {
        let Some(leg) = self.book.legs.get(uniqueid) else {
            return;
        };
        let Some(call) = leg.primary.clone() else {
            return;
        };
        if leg.consult.is_some() {
            return;
        }
        match (on, state_of(out, &call)) {
            (true, Some(CallState::Connected)) => self.emit(out, Event::CallHeld { call }, None),
            (false, Some(CallState::Held)) if !leg.redirect_held => {
                self.emit(out, Event::CallRetrieved { call }, None)
            }
            _ => {}
        }
    }

    fn hungup(
        &mut self,
        channel: &Channel,
        bridge: Option<&str>,
        cause: u16,
        out: &mut dyn EventOut,
    ) {
        let uniqueid: &str = &channel.uniqueid;
        self.book.acd.remove(uniqueid);
        if let Some(leg) = self.book.legs.remove(uniqueid) {
            let end = if leg.transferred {
                Cause::Transferred
            } else {
                leg.end_cause.unwrap_or_else(|| cause_from_q850(cause))
            };
            if let Some(consult) = leg.consult {
                self.book.calls.remove(&consult.call);
                self.emit(
                    out,
                    Event::CallEnded {
                        call: consult.call,
                        cause: end,
                    },
                    None,
                );
            }
            if let Some(call) = leg.primary {
                self.book.calls.remove(&call);
                self.emit(out, Event::CallEnded { call, cause: end }, None);
            }
            self.book.originates.retain(|o| &*o.channel_id != uniqueid);
            return;
        }
        // A consultation's target hung up: that call is over.
        let consult_of: Vec<Box<str>> = self
            .book
            .legs
            .iter()
            .filter(|(_, l)| l.consult.as_ref().is_some_and(|c| &*c.target == uniqueid))
            .map(|(k, _)| k.clone())
            .collect();
        for leg_id in consult_of {
            let consult = self
                .book
                .legs
                .get_mut(&leg_id)
                .and_then(|l| l.consult.take());
            if let Some(consult) = consult {
                self.book.calls.remove(&consult.call);
                self.emit(
                    out,
                    Event::CallEnded {
                        call: consult.call,
                        cause: cause_from_q850(cause),
                    },
                    None,
                );
            }
        }
        // A party of a call hung up while still in the call's bridge, or while held.
        let Ok(party) = PartyId::new(uniqueid) else {
            return;
        };
        let mut ended_primary = Vec::new();
        let affected: Vec<(Box<str>, CallId, bool)> = self
            .book
            .legs
            .iter()
            .filter_map(|(k, l)| {
                let held_here = l.held_party.as_deref() == Some(uniqueid);
                let in_home = bridge.is_some() && l.home_bridge.as_deref() == bridge;
                let in_consult = l
                    .consult
                    .as_ref()
                    .is_some_and(|c| Some(&*c.bridge) == bridge);
                if !(held_here || in_home || in_consult) {
                    return None;
                }
                let call = if in_consult {
                    l.consult.as_ref().map(|c| c.call.clone())?
                } else {
                    l.primary.clone()?
                };
                Some((k.clone(), call, held_here))
            })
            .collect();
        for (leg_id, call, held_here) in affected {
            self.emit(
                out,
                Event::PartyLeft {
                    call: call.clone(),
                    party: party.clone(),
                },
                None,
            );
            let leg = self.book.legs.get(&leg_id);
            let lonely = read_call(out, &call, |c| c.parties.is_empty()).unwrap_or(false);
            if held_here && lonely {
                // The held party hung up: the agent's leg sits alone in the wait
                // extension; hang it up so that no phantom call stays on the panel.
                if let Some(name) = self.tracker.channel(&leg_id).map(|c| c.name.clone()) {
                    self.book
                        .follow_ups
                        .push(FollowUp::Hangup { channel: name });
                }
            } else if lonely
                && leg.is_some_and(|l| l.consult.is_some() && l.primary.as_ref() == Some(&call))
            {
                // The consulted-about party hung up during the consultation.
                ended_primary.push((leg_id, call));
            }
        }
        for (leg_id, call) in ended_primary {
            if let Some(l) = self.book.legs.get_mut(&leg_id) {
                l.primary = None;
                l.home_bridge = None;
            }
            self.book.calls.remove(&call);
            self.emit(
                out,
                Event::CallEnded {
                    call,
                    cause: cause_from_q850(cause),
                },
                None,
            );
        }
    }

    fn blind_transfer(&mut self, transferer: &str, extension: &str, out: &mut dyn EventOut) {
        let Some(leg) = self.book.legs.get_mut(transferer) else {
            return;
        };
        let Some(call) = leg.primary.clone() else {
            return;
        };
        leg.transferred = true;
        self.emit(
            out,
            Event::CallTransferred {
                call,
                to: address(extension),
            },
            None,
        );
    }

    fn attended_transfer(&mut self, transferer: &str, out: &mut dyn EventOut) {
        let Some(leg) = self.book.legs.get_mut(transferer) else {
            return;
        };
        leg.transferred = true;
        let consult = leg.consult.clone();
        let primary = leg.primary.clone();
        let to = consult.as_ref().and_then(|c| c.to.clone());
        if let Some(c) = consult {
            self.emit(
                out,
                Event::CallTransferred {
                    call: c.call,
                    to: to.clone(),
                },
                None,
            );
        }
        if let Some(call) = primary {
            self.emit(out, Event::CallTransferred { call, to }, None);
        }
    }

    fn dtmf(&mut self, uniqueid: &str, digit: &str, received: bool, out: &mut dyn EventOut) {
        if !received {
            return;
        }
        let Some(leg) = self.book.legs.get(uniqueid) else {
            return;
        };
        // Feature codes queued by Atxfer / CancelAtxfer are not the agent's digits.
        if leg.consult.is_some() || leg.pending != Pending::None {
            return;
        }
        let (Some(call), Ok(digits)) = (leg.primary.clone(), DtmfDigits::new(digit)) else {
            return;
        };
        if state_of(out, &call) == Some(CallState::Connected) {
            self.emit(out, Event::DtmfSent { call, digits }, None);
        }
    }

    fn recording(&mut self, uniqueid: &str, on: bool, out: &mut dyn EventOut) {
        let Some(call) = self.book.legs.get(uniqueid).and_then(|l| l.primary.clone()) else {
            return;
        };
        let muted = read_call(out, &call, |c| c.muted).unwrap_or(false);
        self.emit(
            out,
            Event::CallFlagsChanged {
                call,
                muted,
                recording: on,
            },
            None,
        );
    }

    // ----- events that are not about channels -----

    fn other_event(&mut self, msg: &Message, out: &mut dyn EventOut) {
        let Some(event) = msg.event() else {
            return;
        };
        match event {
            "OriginateResponse" => self.originate_response(msg, out),
            "AgentCalled" => {
                let device = msg
                    .get("Interface")
                    .is_some_and(|i| self.book.config.device.is_interface(i));
                if let (true, Some(dest), Some(queue)) =
                    (device, msg.get("DestUniqueid"), msg.get("Queue"))
                {
                    if self.book.acd.len() >= 1024 {
                        self.book.acd.clear();
                    }
                    if let Ok(queue) = QueueId::new(queue) {
                        self.book.acd.insert(dest.into(), queue);
                    }
                }
            }
            "AgentRingNoAnswer" => {
                if let Some(leg) = msg
                    .get("DestUniqueid")
                    .and_then(|d| self.book.legs.get_mut(d))
                {
                    leg.end_cause = Some(Cause::NoAnswer);
                }
            }
            "QueueMemberAdded" | "QueueMemberRemoved" | "QueueMemberPause"
            | "QueueMemberPaused" | "QueueMemberStatus" => self.queue_member(event, msg, out),
            _ => {}
        }
    }

    fn originate_response(&mut self, msg: &Message, out: &mut dyn EventOut) {
        let Some(id) = msg.action_id() else {
            return;
        };
        let Some(i) = self.book.originates.iter().position(|o| o.action_id == id) else {
            return;
        };
        let originate = self.book.originates.remove(i);
        if msg.response() == Some("Success") || originate.initiated {
            return;
        }
        let reason = msg.get("Reason").unwrap_or("?");
        let why = match reason {
            "0" => "the agent's device could not be reached",
            "1" => "the agent's device hung up",
            "3" => "the agent's device did not answer in time",
            "5" => "the agent's device is busy",
            "8" => "the agent's device is congested or unavailable",
            _ => "Asterisk gave no reason",
        };
        let error = Error::new(
            ErrorKind::Rejected,
            format!("make_call failed: Originate reported failure (Reason {reason}: {why})"),
        );
        self.emit(
            out,
            Event::CommandFailed {
                error: error.to_body(),
            },
            Some(originate.command),
        );
    }

    fn queue_member(&mut self, event: &str, msg: &Message, out: &mut dyn EventOut) {
        let interface = msg.get("Interface").or_else(|| msg.get("Location"));
        if !interface.is_some_and(|i| self.book.config.device.is_interface(i)) {
            return;
        }
        let Some(queue) = msg.get("Queue") else {
            return;
        };
        let Some(i) = self.book.config.queues.iter().position(|q| q == queue) else {
            return;
        };
        let before = self.book.agent_state();
        let m = &mut self.book.members[i];
        if event == "QueueMemberRemoved" {
            *m = Membership::default();
        } else {
            m.member = true;
            if let Some(paused) = msg.get("Paused") {
                m.paused = paused == "1";
                m.reason = msg
                    .get("PausedReason")
                    .and_then(|r| known(r))
                    .and_then(|r| ReasonCode::new(r).ok())
                    .filter(|_| m.paused);
            }
        }
        let after = self.book.agent_state();
        if after != before {
            self.emit(
                out,
                Event::AgentStateChanged {
                    state: after.to_agent_state(),
                },
                None,
            );
        }
    }

    // ----- what the connector registers and asks -----

    /// Registers an `Originate` about to be sent for `make_call`, so that its channel
    /// (`channel_id`) is recognised as the new call.
    pub(crate) fn expect_originate(
        &mut self,
        action_id: String,
        channel_id: &str,
        command: CommandId,
        to: Address,
        data: CallData,
    ) {
        if self.book.originates.len() >= 64 {
            self.book.originates.remove(0);
        }
        self.book.originates.push(Originate {
            action_id,
            channel_id: channel_id.into(),
            command,
            to,
            data,
            initiated: false,
        });
    }

    /// Forgets an `Originate` that Asterisk refused.
    pub(crate) fn forget_originate(&mut self, action_id: &str) {
        self.book.originates.retain(|o| o.action_id != action_id);
    }

    /// What the connector needs to act on `call`.
    pub(crate) fn target(&self, call: &CallId) -> Option<CallTarget> {
        let uniqueid = self.book.calls.get(call)?;
        let leg = self.book.legs.get(uniqueid)?;
        let channel = self.tracker.channel(uniqueid)?;
        let is_consult = leg.consult.as_ref().is_some_and(|c| &c.call == call);
        Some(CallTarget {
            device_channel: channel.name.clone(),
            device_uniqueid: uniqueid.to_string(),
            is_consult,
            has_consult: !is_consult && leg.consult.is_some(),
            peers: self
                .tracker
                .peers(uniqueid)
                .map(|c| c.name.clone())
                .collect(),
            primary_peers: leg
                .home_bridge
                .as_deref()
                .and_then(|b| self.tracker.bridge(b))
                .map(|b| {
                    b.members
                        .iter()
                        .filter(|m| **m != *uniqueid)
                        .filter_map(|m| self.tracker.channel(m))
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default(),
            held_party: leg
                .held_party
                .as_deref()
                .and_then(|h| self.tracker.channel(h))
                .map(|c| c.name.clone()),
            redirect_held: leg.redirect_held,
            bridged: channel.bridge.is_some(),
        })
    }

    /// The `Uniqueid` of the channel named `name`, if tracked.
    pub(crate) fn uniqueid_of(&self, name: &str) -> Option<String> {
        self.tracker
            .channels()
            .find(|c| c.name == name)
            .map(|c| c.uniqueid.to_string())
    }

    /// The connector sent a `Redirect` to hold `call`, moving `party` to music on hold.
    pub(crate) fn expect_hold(&mut self, call: &CallId, party: &str) {
        let party_id = self.uniqueid_of(party);
        if let Some(held) = &party_id {
            // Its hangup, out of every bridge on music on hold, must still reach us.
            self.tracker.set_held_by(held, Some(self.line));
        }
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Hold;
            leg.held_party = party_id.map(Into::into);
        }
    }

    /// The connector sent an `Atxfer` on `call`'s leg to consult `to`.
    pub(crate) fn expect_consult(&mut self, call: &CallId, to: Option<Address>) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Consult { to };
        }
    }

    /// The connector hangs up `call`'s leg to complete its consultation transfer.
    pub(crate) fn expect_complete_transfer(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::CompleteTransfer;
        }
    }

    /// The connector redirects the parties of the consultation `call` (and of the call
    /// it is about) into a ConfBridge room.
    pub(crate) fn expect_conference(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Conference;
        }
    }

    /// The channel (name) of `party` if it is in a bridge with `call`'s leg now.
    pub(crate) fn party_channel(&self, call: &CallId, party: &PartyId) -> Option<String> {
        let uniqueid = self.book.calls.get(call)?;
        self.tracker
            .peers(uniqueid)
            .find(|c| &*c.uniqueid == party.as_str())
            .map(|c| c.name.clone())
    }

    /// The connector sent `CancelAtxfer` for the consultation `call`.
    pub(crate) fn expect_cancel_consult(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::CancelConsult;
        }
    }

    /// An action for `call` failed: forget what it was expected to do.
    pub(crate) fn clear_pending(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            if leg.pending == Pending::Hold {
                leg.held_party = None;
            }
            leg.pending = Pending::None;
        }
    }

    /// `call` was transferred by a `Redirect` of its held party (no transfer event comes
    /// from Asterisk for that): emit `call_transferred` now.
    pub(crate) fn redirect_transferred(
        &mut self,
        call: &CallId,
        to: Address,
        command: CommandId,
        out: &mut dyn EventOut,
    ) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.transferred = true;
            leg.held_party = None;
        }
        self.emit(
            out,
            Event::CallTransferred {
                call: call.clone(),
                to: Some(to),
            },
            Some(command),
        );
    }

    /// Emits an event the connector produced itself (a confirmation after a response),
    /// through the same shadow state machine.
    pub(crate) fn emit_confirmation(
        &mut self,
        event: Event,
        command: CommandId,
        out: &mut dyn EventOut,
    ) {
        self.emit(out, event, Some(command));
    }

    /// Confirms a `set_agent_state` or `login` that changed nothing at the switch (the
    /// agent was already in that state), by restating the state.
    pub(crate) fn restate_agent(&mut self, command: CommandId, out: &mut dyn EventOut) {
        let state = self.book.agent_state().to_agent_state();
        self.emit(out, Event::AgentStateChanged { state }, Some(command));
    }

    fn leg_of_mut(&mut self, call: &CallId) -> Option<&mut DeviceChannel> {
        let uniqueid = self.book.calls.get(call)?;
        self.book.legs.get_mut(uniqueid)
    }

    // ----- rebuilding after a (re)connect -----

    /// Rebuilds the line from the tracker (just rebuilt from `CoreShowChannels` and
    /// `BridgeList`) and the `QueueMember` items, keeping what it knew about legs that
    /// still exist (call ids, consultations, holds), and returns the switch's state
    /// for the session. `session` is the state the line's events built so far.
    pub(crate) fn rebuild(
        &mut self,
        queue_members: &[Message],
        session: &dyn EventOut,
    ) -> SwitchState {
        // Queue memberships.
        let mut members = vec![Membership::default(); self.book.config.queues.len()];
        for item in queue_members {
            let interface = item.get("Location").or_else(|| item.get("Interface"));
            if !interface.is_some_and(|i| self.book.config.device.is_interface(i)) {
                continue;
            }
            let Some(i) = item
                .get("Queue")
                .and_then(|q| self.book.config.queues.iter().position(|c| c == q))
            else {
                continue;
            };
            let paused = item.get("Paused") == Some("1");
            members[i] = Membership {
                member: true,
                fixed: item
                    .get("Membership")
                    .filter(|m| !m.eq_ignore_ascii_case("dynamic"))
                    .map(str::to_owned),
                paused,
                reason: item
                    .get("PausedReason")
                    .and_then(known)
                    .and_then(|r| ReasonCode::new(r).ok())
                    .filter(|_| paused),
            };
        }
        self.book.members = members;
        // Legs: keep the ones still alive, add the new ones.
        let old_legs = std::mem::take(&mut self.book.legs);
        let old_legs: HashMap<Box<str>, DeviceChannel> = old_legs.into_iter().collect();
        // What the session knew of the calls (their parties, data, direction).
        let mut old_calls: HashMap<CallId, Call> = HashMap::new();
        session.view(&mut |desk| {
            old_calls = desk
                .calls()
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect();
        });
        self.book.calls.clear();
        let device_channels: Vec<Channel> = self
            .tracker
            .channels()
            .filter(|c| c.owner == Some(self.line))
            .cloned()
            .collect();
        let mut calls = Vec::new();
        for channel in device_channels {
            let mut leg = old_legs.get(&channel.uniqueid).cloned().unwrap_or_default();
            if channel
                .uniqueid
                .starts_with(self.book.config.originate_prefix.as_str())
            {
                leg.outbound = true;
            }
            leg.pending = Pending::None;
            let peers: Vec<Channel> = self.tracker.peers(&channel.uniqueid).cloned().collect();
            // A consultation survives only if its target is still with the leg.
            if let Some(c) = &leg.consult {
                let still = channel.bridge.as_deref() == Some(&*c.bridge)
                    && peers.iter().any(|p| p.uniqueid == c.target);
                if !still {
                    leg.consult = None;
                }
            }
            let id = match leg.primary.clone() {
                Some(id) => id,
                None => match self.new_call_id(&channel) {
                    Some(id) => id,
                    None => continue,
                },
            };
            let hold_context = self
                .book
                .config
                .hold
                .as_ref()
                .is_some_and(|h| h.context == channel.context);
            let dialing = channel.application.eq_ignore_ascii_case("Dial");
            let state = if leg.consult.is_some() {
                CallState::Held
            } else if !peers.is_empty() {
                CallState::Connected
            } else if channel.state == state::UP && (hold_context || leg.redirect_held) {
                CallState::Held
            } else if channel.state == state::UP && dialing {
                let ringing = self.tracker.channels().any(|c| {
                    c.dialed_by.as_deref() == Some(&*channel.uniqueid)
                        || (c.linkedid == channel.linkedid
                            && c.uniqueid != channel.uniqueid
                            && c.state == state::RINGING)
                });
                if ringing {
                    CallState::Ringback
                } else {
                    CallState::Initiated
                }
            } else if channel.state == state::UP {
                CallState::Connected
            } else if channel.state == state::RING || leg.outbound {
                CallState::Initiated
            } else {
                CallState::Offered
            };
            if state == CallState::Held && !leg.redirect_held && leg.consult.is_none() {
                leg.redirect_held = hold_context;
            }
            let direction = if state == CallState::Offered {
                Direction::Inbound
            } else if leg.outbound || channel.state == state::RING {
                Direction::Outbound
            } else if let Some(old) = old_calls.get(&id) {
                old.direction
            } else {
                Direction::Inbound
            };
            let mut call = match old_calls.get(&id) {
                Some(old) => {
                    let mut c = old.clone();
                    c.state = state;
                    c
                }
                None => {
                    let mut c = Call::new(id.clone(), state, direction);
                    if direction == Direction::Inbound {
                        c.from = address(&channel.connected_num);
                    } else {
                        c.to = address(&channel.connected_num);
                    }
                    c
                }
            };
            if leg.consult.is_none() || state != CallState::Held {
                call.parties = peers.iter().filter_map(party).collect();
            }
            if !peers.is_empty() && leg.consult.is_none() {
                leg.home_bridge = channel.bridge.clone();
                leg.entered_context = channel.context.clone();
            }
            self.book.calls.insert(id.clone(), channel.uniqueid.clone());
            leg.primary = Some(id);
            calls.push(call);
            if let Some(c) = &leg.consult {
                let mut consult = match old_calls.get(&c.call) {
                    Some(old) => old.clone(),
                    None => {
                        let mut n =
                            Call::new(c.call.clone(), CallState::Connected, Direction::Outbound);
                        n.role = CallRole::Consult;
                        n
                    }
                };
                let target_up = peers
                    .iter()
                    .any(|p| p.uniqueid == c.target && p.state == state::UP);
                consult.state = if target_up {
                    CallState::Connected
                } else {
                    CallState::Ringback
                };
                consult.consult_of = leg.primary.clone();
                consult.role = CallRole::Consult;
                consult.parties = peers.iter().filter_map(party).collect();
                self.book
                    .calls
                    .insert(c.call.clone(), channel.uniqueid.clone());
                calls.push(consult);
            }
            if let Some(held) = &leg.held_party {
                self.tracker.set_held_by(held, Some(self.line));
            }
            self.book.legs.insert(channel.uniqueid.clone(), leg);
        }
        let agent = self.book.agent_state().to_agent_state();
        let switch = SwitchState {
            agent: agent.clone(),
            calls,
            withheld: self.book.withheld(),
        };
        switch
    }
}

#[cfg(test)]
mod tests {
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
