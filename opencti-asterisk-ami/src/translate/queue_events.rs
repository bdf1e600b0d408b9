//! Queue statistics: Asterisk's queue events, once for the whole link, into canonical
//! [`QueueEvent`]s for a `QueueBoard`, and `QueueStatus` into the [`ReportedQueues`]
//! the board is restored from after a (re)connect.
//!
//! What Asterisk 22 sends about a caller, and what it means:
//!
//! - `QueueCallerJoin`: the caller waits (`caller_joined`).
//! - `AgentCalled`: a member rings (`caller_offered`); with `ringall` several at once.
//!   `AgentRingNoAnswer` ends one ring (`caller_returned` once none rings any more);
//!   `AgentDump` (the member hung up before being connected) ends them all.
//! - `QueueCallerAbandon`: the caller is out, unanswered. Asterisk sends it (and counts
//!   it in `Abandoned`) both when the caller hangs up and when the queue gives up on the
//!   caller (the `Queue()` timeout, `leavewhenempty`): only a `HangupRequest` or
//!   `SoftHangupRequest` of the caller's channel before it tells the two apart, so the
//!   first is `caller_abandoned` and the second `caller_overflowed`. (A caller's phone or
//!   trunk hanging up is reported that way; a channel hung up by an AMI or CLI `Hangup`
//!   is reported only after the abandon, and so counts as taken out by the switch.) The
//!   `QueueCallerLeave` that always follows is then nothing more.
//! - `QueueCallerLeave` with no abandon before it: the caller was answered, and
//!   `AgentConnect` follows it (`caller_answered`); or it left while no member rang (a
//!   key pressed to exit): `caller_overflowed`. While the caller still rings somewhere
//!   the answer is awaited; should none come, the caller's `Hangup` or its joining
//!   another queue settles it as overflowed.
//! - `AgentComplete`: the talk is over (`caller_completed`). Asterisk leaves the
//!   caller's channel out of it when that channel is already gone (capture 14), so the
//!   caller is the one `AgentConnect` connected to that member in that queue.
//! - `QueueMemberAdded` / `QueueMemberRemoved`: `agent_joined` / `agent_left`.
//!
//! A caller is named by its channel's `Uniqueid`: it names the channel for its whole
//! life, every queue event carries it, and so does `QueueStatus` (`QueueEntry`), whereas
//! `Linkedid` is shared by every leg of a call and changes with bridges and transfers.
//! Members are named by the agent of the link's line at that device (the member's
//! `Interface`, else its `StateInterface`); a member that is no line's is not counted
//! among the queue's agents, but its callers still count, named by the member's
//! interface. Agent states are not read from Asterisk: they come from the sessions.
//!
//! What is kept here is the protocol's bookkeeping only (which members ring for which
//! caller, which caller each member talks to, whose channel was asked to hang up); the
//! figures are the board's.

use std::collections::{HashMap, HashSet, VecDeque};

use opencti_core::queue::{QueueEvent, ReportedCaller, ReportedQueue, ReportedQueues};
use opencti_core::{AgentId, CallId, QueueId, Timestamp};

use crate::device::LineId;
use crate::message::Message;
use crate::tracker::{known, ChannelTracker};

/// How many callers, members talking and interface aliases are followed at most: past
/// it (events were lost, or the PBX is far larger than any queue) the bookkeeping starts
/// again, and the next reconnect's report sets the board right.
const MAX_ENTRIES: usize = 65_536;

/// How many callers whose outcome was told are remembered, so that what Asterisk sends
/// about them afterwards changes nothing.
const REMEMBERED_OUTCOMES: usize = 4096;

/// Where queue events go: a `QueueBoard`, or in tests a `QueueStats` with a clock.
pub(crate) trait QueueOut {
    /// Takes an event that happened now.
    fn apply(&mut self, event: QueueEvent);
    /// Rebuilds callers and members from what Asterisk reports now.
    fn restore(&mut self, report: ReportedQueues);
    /// The time now, on the figures' clock.
    fn now(&self) -> Timestamp;
}

/// A caller in one of the link's queues, as far as the events have told.
#[derive(Debug, Clone)]
struct Caller {
    queue: QueueId,
    call: CallId,
    /// The members ringing for it now (interfaces, lower-cased).
    ringing_at: Vec<Box<str>>,
    /// Whether every ring of it was seen (not so for a caller restored after a
    /// reconnect, or first seen in the middle).
    rings_known: bool,
    /// Its channel was asked to hang up: an abandon is the caller's.
    hangup_requested: bool,
    /// Left the queue with no abandon: the answer is awaited.
    left: bool,
    /// Its outcome was told; only the `QueueCallerLeave` that follows is awaited.
    told: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct QueueTranslator {
    /// The queues reported.
    queues: Vec<String>,
    /// Each line's agent, by line.
    agents: Vec<Option<AgentId>>,
    /// Member interfaces whose state interface differs (`Local/1001@from-queue/n` for
    /// `PJSIP/1001`), lower-cased.
    aliases: HashMap<Box<str>, Box<str>>,
    /// Callers waiting or ringing, by their channel's `Uniqueid`.
    callers: HashMap<Box<str>, Caller>,
    /// Callers whose outcome was told, oldest first.
    told: HashSet<Box<str>>,
    told_order: VecDeque<Box<str>>,
    /// The caller each member talks to, by (queue, member interface lower-cased).
    talking: HashMap<(QueueId, Box<str>), CallId>,
    /// Events were missed since the board was last restored: nothing is translated
    /// until it is restored again.
    stale: bool,
    /// `link_down` was told and nothing since.
    down: bool,
}

impl Default for QueueTranslator {
    fn default() -> Self {
        QueueTranslator {
            queues: Vec::new(),
            agents: Vec::new(),
            aliases: HashMap::new(),
            callers: HashMap::new(),
            told: HashSet::new(),
            told_order: VecDeque::new(),
            talking: HashMap::new(),
            stale: true,
            down: false,
        }
    }
}

fn lower(text: &str) -> Box<str> {
    text.to_ascii_lowercase().into_boxed_str()
}

impl QueueTranslator {
    /// Reports these queues from now on (events of others are not translated).
    pub(crate) fn set_queues(&mut self, queues: Vec<String>) {
        self.queues = queues;
    }

    /// Line `line` is `agent`'s (or no one's any more).
    pub(crate) fn set_agent(&mut self, line: LineId, agent: Option<AgentId>) {
        let i = line as usize;
        if self.agents.len() <= i {
            self.agents.resize(i + 1, None);
        }
        self.agents[i] = agent;
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Translates from now on, as if the figures had been restored (for a replay that
    /// starts with the switch empty).
    pub(crate) fn follow_from_now(&mut self) {
        self.stale = false;
    }

    /// Whether the board awaits a restore.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale
    }

    /// The link dropped: events will be missed until the board is restored. Tells
    /// `link_down` once.
    pub(crate) fn link_down(&mut self, reason: &str, out: Option<&mut dyn QueueOut>) {
        self.stale = true;
        if let (false, Some(out)) = (self.down, out) {
            self.down = true;
            out.apply(QueueEvent::LinkDown {
                reason: reason.to_owned(),
            });
        }
    }

    fn reported(&self, queue: &str) -> Option<QueueId> {
        if !self.queues.iter().any(|q| q == queue) {
            return None;
        }
        match QueueId::new(queue) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(queue, error = %e, "AMI queues: a queue name that is no queue id");
                None
            }
        }
    }

    /// The agent of the line whose device is `interface` (or the device it stands for).
    fn line_agent(&self, interface: &str, tracker: &mut ChannelTracker) -> Option<AgentId> {
        let line = tracker.owner_of_interface(interface).or_else(|| {
            let alias = self.aliases.get(&lower(interface))?;
            tracker.owner_of_interface(alias)
        })?;
        self.agents.get(line as usize).cloned().flatten()
    }

    /// The agent a caller event names: the line's, else the member's interface.
    fn member(&self, interface: &str, tracker: &mut ChannelTracker) -> Option<AgentId> {
        self.line_agent(interface, tracker)
            .or_else(|| AgentId::new(interface).ok())
    }

    fn learn_alias(&mut self, interface: Option<&str>, state_interface: Option<&str>) {
        let (Some(interface), Some(state)) =
            (interface.and_then(known), state_interface.and_then(known))
        else {
            return;
        };
        if interface.eq_ignore_ascii_case(state) {
            return;
        }
        if self.aliases.len() >= MAX_ENTRIES {
            self.aliases.clear();
        }
        self.aliases.insert(lower(interface), lower(state));
    }

    fn remember_told(&mut self, uniqueid: &str) {
        if self.told.insert(uniqueid.into()) {
            self.told_order.push_back(uniqueid.into());
            if self.told_order.len() > REMEMBERED_OUTCOMES {
                if let Some(oldest) = self.told_order.pop_front() {
                    self.told.remove(&oldest);
                }
            }
        }
    }

    /// Tells the outcome of a caller that left unanswered, and forgets it.
    fn settle(&mut self, uniqueid: &str, abandoned: bool, out: &mut dyn QueueOut) {
        let Some(caller) = self.callers.remove(uniqueid) else {
            return;
        };
        self.remember_told(uniqueid);
        let Caller { queue, call, .. } = caller;
        out.apply(if abandoned {
            QueueEvent::CallerAbandoned { queue, call }
        } else {
            QueueEvent::CallerOverflowed { queue, call }
        });
    }

    /// The caller of a queue event: its queue (one of the link's) and its channel.
    fn caller_of<'m>(&self, event: &str, msg: &'m Message) -> Option<(QueueId, &'m str)> {
        let Some(queue) = msg.get("Queue").and_then(known) else {
            tracing::debug!(event, "AMI queues: no Queue header; skipped");
            return None;
        };
        let queue = self.reported(queue)?;
        let Some(uniqueid) = msg.get("Uniqueid").and_then(known) else {
            tracing::debug!(event, %queue, "AMI queues: no Uniqueid header; skipped");
            return None;
        };
        Some((queue, uniqueid))
    }

    /// The entry of caller `uniqueid` in `queue`, made if the events never showed it
    /// joining (its rings are then not all known).
    fn entry(&mut self, queue: &QueueId, uniqueid: &str) -> Option<&mut Caller> {
        if self.callers.len() >= MAX_ENTRIES && !self.callers.contains_key(uniqueid) {
            tracing::warn!(
                callers = self.callers.len(),
                "AMI queues: too many callers followed; starting over"
            );
            self.callers.clear();
        }
        let call = match CallId::new(uniqueid) {
            Ok(call) => call,
            Err(e) => {
                tracing::debug!(uniqueid, error = %e, "AMI queues: a Uniqueid that is no call id; skipped");
                return None;
            }
        };
        Some(
            self.callers
                .entry(uniqueid.into())
                .or_insert_with(|| Caller {
                    queue: queue.clone(),
                    call,
                    ringing_at: Vec::new(),
                    rings_known: false,
                    hangup_requested: false,
                    left: false,
                    told: false,
                }),
        )
    }

    /// Translates one AMI event (the tracker has applied it already).
    pub(crate) fn on_event(
        &mut self,
        msg: &Message,
        tracker: &mut ChannelTracker,
        out: &mut dyn QueueOut,
    ) {
        if self.stale {
            return;
        }
        let Some(event) = msg.event() else {
            return;
        };
        match event {
            "QueueCallerJoin" => self.joined(msg, out),
            "AgentCalled" => self.called(msg, tracker, out),
            "AgentRingNoAnswer" | "AgentDump" => self.ring_ended(event, msg, out),
            "QueueCallerAbandon" => self.abandoned(msg, out),
            "QueueCallerLeave" => self.left(msg, out),
            "AgentConnect" => self.connected(msg, tracker, out),
            "AgentComplete" => self.completed(msg, tracker, out),
            "QueueMemberAdded" | "QueueMemberRemoved" => {
                self.member_event(event, msg, tracker, out)
            }
            "QueueMemberStatus" | "QueueMemberPause" => {
                self.learn_alias(msg.get("Interface"), msg.get("StateInterface"))
            }
            "HangupRequest" | "SoftHangupRequest" => {
                if let Some(caller) = msg.get("Uniqueid").and_then(|u| self.callers.get_mut(u)) {
                    caller.hangup_requested = true;
                }
            }
            "Hangup" => self.hung_up(msg, out),
            _ => {}
        }
    }

    fn joined(&mut self, msg: &Message, out: &mut dyn QueueOut) {
        let Some(uniqueid) = msg.get("Uniqueid").and_then(known) else {
            tracing::debug!("AMI queues: QueueCallerJoin without Uniqueid; skipped");
            return;
        };
        let queue = msg.get("Queue").and_then(known);
        if let Some(previous) = self.callers.get(uniqueid) {
            if previous.told {
                self.callers.remove(uniqueid);
            } else if previous.left || Some(previous.queue.as_str()) != queue {
                // Still in a queue as the events tell, or out of it with no answer:
                // it left that one unanswered.
                self.settle(uniqueid, false, out);
            }
        }
        let Some((queue, uniqueid)) = self.caller_of("QueueCallerJoin", msg) else {
            return;
        };
        if self.told.remove(uniqueid) {
            self.told_order.retain(|u| &**u != uniqueid);
        }
        let Some(caller) = self.entry(&queue, uniqueid) else {
            return;
        };
        caller.rings_known = true;
        let call = caller.call.clone();
        out.apply(QueueEvent::CallerJoined { queue, call });
    }

    fn called(&mut self, msg: &Message, tracker: &mut ChannelTracker, out: &mut dyn QueueOut) {
        let Some((queue, uniqueid)) = self.caller_of("AgentCalled", msg) else {
            return;
        };
        if self.told.contains(uniqueid) {
            return;
        }
        let Some(interface) = msg.get("Interface").and_then(known) else {
            tracing::debug!(%queue, uniqueid, "AMI queues: AgentCalled without Interface; skipped");
            return;
        };
        let Some(agent) = self.member(interface, tracker) else {
            tracing::debug!(
                interface,
                "AMI queues: a member interface that is no agent id; skipped"
            );
            return;
        };
        let Some(caller) = self.entry(&queue, uniqueid) else {
            return;
        };
        let ringing = lower(interface);
        if !caller.ringing_at.contains(&ringing) {
            caller.ringing_at.push(ringing);
        }
        let call = caller.call.clone();
        out.apply(QueueEvent::CallerOffered { queue, call, agent });
    }

    fn ring_ended(&mut self, event: &str, msg: &Message, out: &mut dyn QueueOut) {
        let Some((queue, uniqueid)) = self.caller_of(event, msg) else {
            return;
        };
        if self.told.contains(uniqueid) {
            return;
        }
        let interface = msg.get("Interface").map(lower);
        let Some(caller) = self.entry(&queue, uniqueid) else {
            return;
        };
        if caller.left {
            return;
        }
        match (&interface, event) {
            // A member that answered and hung up before being connected: Asterisk has
            // hung up every other ring already.
            (_, "AgentDump") | (None, _) => caller.ringing_at.clear(),
            (Some(interface), _) => caller.ringing_at.retain(|i| i != interface),
        }
        if caller.ringing_at.is_empty() {
            let call = caller.call.clone();
            out.apply(QueueEvent::CallerReturned { queue, call });
        }
    }

    fn abandoned(&mut self, msg: &Message, out: &mut dyn QueueOut) {
        let Some((queue, uniqueid)) = self.caller_of("QueueCallerAbandon", msg) else {
            return;
        };
        if self.told.contains(uniqueid) {
            return;
        }
        let Some(caller) = self.entry(&queue, uniqueid) else {
            return;
        };
        let hung_up = caller.hangup_requested;
        caller.told = true;
        let call = caller.call.clone();
        self.remember_told(uniqueid);
        // Asterisk reports a timeout as an abandon too: only a hang-up asked of the
        // caller's channel makes it the caller's.
        out.apply(if hung_up {
            QueueEvent::CallerAbandoned { queue, call }
        } else {
            QueueEvent::CallerOverflowed { queue, call }
        });
    }

    fn left(&mut self, msg: &Message, out: &mut dyn QueueOut) {
        let Some((queue, uniqueid)) = self.caller_of("QueueCallerLeave", msg) else {
            return;
        };
        if self.told.contains(uniqueid) {
            // The abandon before it told the outcome.
            self.callers.remove(uniqueid);
            return;
        }
        let Some(caller) = self.entry(&queue, uniqueid) else {
            return;
        };
        if caller.ringing_at.is_empty() && caller.rings_known {
            // Nobody rang for it: it left by itself (a key pressed to exit).
            self.settle(uniqueid, false, out);
        } else {
            // Asterisk takes an answered caller out of the queue, then reports the
            // connection.
            caller.left = true;
        }
    }

    fn connected(&mut self, msg: &Message, tracker: &mut ChannelTracker, out: &mut dyn QueueOut) {
        let Some((queue, uniqueid)) = self.caller_of("AgentConnect", msg) else {
            return;
        };
        if self.told.contains(uniqueid) {
            return;
        }
        let Some(interface) = msg.get("Interface").and_then(known) else {
            tracing::debug!(%queue, uniqueid, "AMI queues: AgentConnect without Interface; skipped");
            return;
        };
        let Some(agent) = self.member(interface, tracker) else {
            tracing::debug!(
                interface,
                "AMI queues: a member interface that is no agent id; skipped"
            );
            return;
        };
        let call = match self.callers.remove(uniqueid) {
            Some(caller) => caller.call,
            None => match CallId::new(uniqueid) {
                Ok(call) => call,
                Err(_) => return,
            },
        };
        self.remember_told(uniqueid);
        if self.talking.len() >= MAX_ENTRIES {
            self.talking.clear();
        }
        self.talking
            .insert((queue.clone(), lower(interface)), call.clone());
        out.apply(QueueEvent::CallerAnswered { queue, call, agent });
    }

    fn completed(&mut self, msg: &Message, tracker: &mut ChannelTracker, out: &mut dyn QueueOut) {
        let Some(queue) = msg.get("Queue").and_then(known) else {
            tracing::debug!("AMI queues: AgentComplete without Queue; skipped");
            return;
        };
        let Some(queue) = self.reported(queue) else {
            return;
        };
        let Some(interface) = msg.get("Interface").and_then(known) else {
            tracing::debug!(%queue, "AMI queues: AgentComplete without Interface; skipped");
            return;
        };
        let talked = self.talking.remove(&(queue.clone(), lower(interface)));
        // The caller's channel is in the event while it exists; the talk's otherwise.
        let call = match msg.get("Uniqueid").and_then(known) {
            Some(uniqueid) => CallId::new(uniqueid).ok(),
            None => talked,
        };
        let Some(call) = call else {
            tracing::debug!(%queue, interface, "AMI queues: AgentComplete for a talk not seen; skipped");
            return;
        };
        let Some(agent) = self.member(interface, tracker) else {
            return;
        };
        out.apply(QueueEvent::CallerCompleted { queue, call, agent });
    }

    fn member_event(
        &mut self,
        event: &str,
        msg: &Message,
        tracker: &mut ChannelTracker,
        out: &mut dyn QueueOut,
    ) {
        let (interface, state) = (msg.get("Interface"), msg.get("StateInterface"));
        self.learn_alias(interface, state);
        let Some(queue) = msg.get("Queue").and_then(known) else {
            tracing::debug!(event, "AMI queues: no Queue header; skipped");
            return;
        };
        let Some(queue) = self.reported(queue) else {
            return;
        };
        let agent = [interface, state]
            .into_iter()
            .flatten()
            .filter_map(known)
            .find_map(|i| self.line_agent(i, tracker));
        let Some(agent) = agent else {
            tracing::debug!(
                event,
                %queue,
                interface = interface.unwrap_or_default(),
                "AMI queues: a member that is no line of the link; not counted"
            );
            return;
        };
        out.apply(if event == "QueueMemberAdded" {
            QueueEvent::AgentJoined { queue, agent }
        } else {
            QueueEvent::AgentLeft { queue, agent }
        });
    }

    fn hung_up(&mut self, msg: &Message, out: &mut dyn QueueOut) {
        let Some(uniqueid) = msg.get("Uniqueid") else {
            return;
        };
        let Some(caller) = self.callers.get(uniqueid) else {
            return;
        };
        let (told, left) = (caller.told, caller.left);
        if told {
            self.callers.remove(uniqueid);
        } else if left {
            // Out of the queue and no answer ever reported.
            self.settle(uniqueid, false, out);
        } else {
            // Gone while the events still had it in the queue.
            tracing::debug!(
                uniqueid,
                "AMI queues: a caller hung up without leaving its queue"
            );
            self.settle(uniqueid, true, out);
        }
    }

    /// The link's queues as `QueueStatus` lists them (its `QueueParams`, `QueueEntry`
    /// and `QueueMember` items), to restore the board from, at `now`. The bookkeeping
    /// starts again from it: who rings for the callers listed is not known (Asterisk
    /// does not say), so they are reported waiting.
    pub(crate) fn report(
        &mut self,
        items: &[Message],
        tracker: &mut ChannelTracker,
        now: Timestamp,
    ) -> ReportedQueues {
        for item in items.iter().filter(|i| i.event() == Some("QueueMember")) {
            self.learn_alias(item.get("Location"), item.get("StateInterface"));
        }
        self.callers.clear();
        let mut report = ReportedQueues::default();
        for name in self.queues.clone() {
            let Some(queue) = self.reported(&name) else {
                continue;
            };
            let name = name.as_str();
            let of_queue = |event: &'static str| {
                items
                    .iter()
                    .filter(move |i| i.event() == Some(event) && i.get("Queue") == Some(name))
            };
            if of_queue("QueueParams").next().is_none() {
                tracing::debug!(%queue, "AMI queues: QueueStatus does not list the queue; not restored");
                continue;
            }
            let mut callers = Vec::new();
            for entry in of_queue("QueueEntry") {
                let Some(uniqueid) = entry.get("Uniqueid").and_then(known) else {
                    tracing::debug!(%queue, "AMI queues: QueueEntry without Uniqueid; skipped");
                    continue;
                };
                let wait = match entry.get("Wait").map(str::parse::<u64>) {
                    Some(Ok(secs)) => secs,
                    other => {
                        tracing::debug!(%queue, uniqueid, wait = ?other, "AMI queues: QueueEntry without a valid Wait; taken as 0");
                        0
                    }
                };
                let Some(caller) = self.entry(&queue, uniqueid) else {
                    continue;
                };
                callers.push(ReportedCaller {
                    call: caller.call.clone(),
                    joined: Timestamp::from_micros(
                        now.as_micros()
                            .saturating_sub(wait.saturating_mul(1_000_000)),
                    ),
                    ringing: false,
                });
            }
            let mut members = Vec::new();
            for member in of_queue("QueueMember") {
                let agent = [member.get("Location"), member.get("StateInterface")]
                    .into_iter()
                    .flatten()
                    .filter_map(known)
                    .find_map(|i| self.line_agent(i, tracker));
                if let Some(agent) = agent {
                    if !members.contains(&agent) {
                        members.push(agent);
                    }
                }
            }
            report.queues.push(ReportedQueue {
                queue,
                callers,
                members: Some(members),
            });
        }
        self.stale = false;
        self.down = false;
        report
    }

    /// The queues line `line` is a member of, as `QueueStatus` lists them: what a line
    /// read for the first time adds to the board (a line opened after the board was
    /// restored is a member already, and no event will say so).
    pub(crate) fn memberships(
        &mut self,
        line: LineId,
        items: &[Message],
        tracker: &mut ChannelTracker,
        out: &mut dyn QueueOut,
    ) {
        if self.stale {
            return;
        }
        let Some(Some(agent)) = self.agents.get(line as usize).cloned() else {
            return;
        };
        for item in items.iter().filter(|i| i.event() == Some("QueueMember")) {
            let Some(queue) = item.get("Queue").and_then(|q| self.reported(q)) else {
                continue;
            };
            let mine = [item.get("Location"), item.get("StateInterface")]
                .into_iter()
                .flatten()
                .filter_map(known)
                .any(|i| tracker.owner_of_interface(i) == Some(line));
            if mine {
                out.apply(QueueEvent::AgentJoined {
                    queue,
                    agent: agent.clone(),
                });
            }
        }
    }
}
