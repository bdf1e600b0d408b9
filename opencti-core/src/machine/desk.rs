//! The desk: the agent and the calls on its device, moved by events.

use std::collections::VecDeque;

use crate::agent::AgentState;
use crate::call::{Call, CallRole, CallState, Direction};
use crate::capabilities::Capabilities;
use crate::event::{Event, ResyncChanges};
use crate::ids::{AgentId, CallId, DeviceId};
use crate::snapshot::{LinkState, Snapshot, SwitchState, Withheld};
use crate::time::Timestamp;
use crate::{Error, ErrorKind, Result};

use super::agent::{self, Activity};
use super::{call, Applied, Step};

/// How many ended call ids the desk remembers, to recognise late events for them.
const ENDED_MEMORY: usize = 64;

/// The state of one agent at one device: the agent's state, the device's calls, and the
/// link. Moved only by [`Desk::apply`] (and [`Desk::resync`]).
///
/// ```
/// use opencti_core::machine::{Desk, Step};
/// use opencti_core::{AgentId, AgentState, CallId, Capabilities, DeviceId, Event};
///
/// let mut desk = Desk::new(
///     AgentId::new("alice").unwrap(),
///     DeviceId::new("1001").unwrap(),
///     Capabilities::all(),
/// );
/// let call = CallId::new("c1").unwrap();
/// let mut up = Event::LinkUp;
/// desk.apply(&mut up).unwrap();
/// let mut login = Event::AgentStateChanged { state: AgentState::Ready };
/// desk.apply(&mut login).unwrap();
/// let mut offered = Event::CallOffered {
///     call: call.clone(), from: None, to: None, queue: None, data: Default::default(),
/// };
/// let applied = desk.apply(&mut offered).unwrap();
/// assert_eq!(applied.derived.unwrap().name(), "reserved");
/// // Holding a call that is only ringing is refused, with the reason.
/// let mut held = Event::CallHeld { call };
/// let err = desk.apply(&mut held).unwrap_err();
/// assert!(err.message().contains("in state offered"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desk {
    pub(super) agent_id: AgentId,
    pub(super) device: DeviceId,
    /// What the connector supports, less what the switch withholds on this line.
    pub(super) capabilities: Capabilities,
    /// What the connector supports.
    pub(super) supported: Capabilities,
    /// What the switch withholds on this line, and why.
    pub(super) withheld: Vec<Withheld>,
    pub(super) link: LinkState,
    pub(super) agent: AgentState,
    pub(super) agent_since: Option<Timestamp>,
    pub(super) calls: Vec<Call>,
    pub(super) ended: VecDeque<CallId>,
    pub(super) acd_in_period: bool,
}

impl Desk {
    /// The most calls one device may hold at once; more is refused as bad input.
    pub const MAX_CALLS: usize = 16;

    /// A desk with the agent logged out, no calls, and the link down.
    pub fn new(agent: AgentId, device: DeviceId, capabilities: Capabilities) -> Self {
        Desk {
            agent_id: agent,
            device,
            capabilities,
            supported: capabilities,
            withheld: Vec::new(),
            link: LinkState::Down,
            agent: AgentState::LoggedOut,
            agent_since: None,
            calls: Vec::new(),
            ended: VecDeque::new(),
            acd_in_period: false,
        }
    }

    /// A desk holding `snapshot`'s state, for a copy of a line kept away from its
    /// session (see [`Replica`](crate::Replica)): the agent's state, the calls and the
    /// link as the snapshot has them, with `capabilities` as the session reported them.
    pub fn from_snapshot(snapshot: &Snapshot, capabilities: Capabilities) -> Self {
        let mut desk = Desk::new(
            snapshot.agent.clone(),
            snapshot.device.clone(),
            capabilities,
        );
        desk.link = snapshot.link;
        desk.agent = snapshot.agent_state.clone();
        desk.agent_since = snapshot.agent_state_since;
        desk.calls = snapshot.calls.clone();
        desk.acd_in_period = desk.calls.iter().any(Call::is_acd);
        desk
    }

    /// The agent's id.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent_id
    }

    /// The device's id.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// What the agent can do here: the connector's capabilities less what the switch
    /// withholds on this line.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The commands the switch withholds on this line, with why.
    pub fn withheld(&self) -> &[Withheld] {
        &self.withheld
    }

    /// The agent's effective state.
    pub fn agent(&self) -> &AgentState {
        &self.agent
    }

    /// The link state.
    pub fn link(&self) -> LinkState {
        self.link
    }

    /// The calls on the device, oldest first. Ended calls are removed at once.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The call with this id, if it is on the device.
    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.iter().find(|c| &c.id == id)
    }

    /// Whether `id` is a call that ended recently.
    pub fn has_ended(&self, id: &CallId) -> bool {
        self.ended.contains(id)
    }

    /// The state as a [`Snapshot`] stamped with `seq`.
    pub fn snapshot(&self, seq: u64) -> Snapshot {
        Snapshot {
            seq,
            agent: self.agent_id.clone(),
            device: self.device.clone(),
            link: self.link,
            agent_state: self.agent.clone(),
            agent_state_since: self.agent_since,
            calls: self.calls.clone(),
        }
    }

    /// Notes when an applied event happened: the agent's state or a call's state began
    /// `at`.
    pub fn stamp(&mut self, event: &Event, at: Timestamp) {
        match event {
            Event::AgentStateChanged { .. } => self.agent_since = Some(at),
            Event::CallOffered { call, .. }
            | Event::CallInitiated { call, .. }
            | Event::CallRingback { call }
            | Event::CallQueued { call, .. }
            | Event::CallConnected { call }
            | Event::CallHeld { call }
            | Event::CallRetrieved { call }
            | Event::CallFailed { call, .. } => {
                if let Some(c) = self.calls.iter_mut().find(|c| &c.id == call) {
                    c.state_since = Some(at);
                }
            }
            _ => {}
        }
    }

    /// After a resynchronisation: what has no time yet (a call found at the switch, an
    /// agent state that changed) begins `at`.
    pub fn stamp_resync(&mut self, agent_changed: bool, at: Timestamp) {
        if agent_changed || self.agent_since.is_none() {
            self.agent_since = Some(at);
        }
        for call in &mut self.calls {
            call.state_since.get_or_insert(at);
        }
    }

    /// Applies one event. On success the state has moved (or the event was a duplicate);
    /// on error the state is unchanged and the error says why the event does not fit.
    ///
    /// An `agent_state_changed` is normalised in place to the effective state (a chosen
    /// state reported during a call becomes `busy` with that state as `next`).
    pub fn apply(&mut self, event: &mut Event) -> Result<Applied> {
        match event {
            Event::LinkUp => Ok(self.set_link(LinkState::Up)),
            Event::LinkDown { .. } => Ok(self.set_link(LinkState::Down)),
            Event::Resynced { changes } => {
                let snap = &changes.snapshot;
                self.link = snap.link;
                self.agent = snap.agent_state.clone();
                self.agent_since = snap.agent_state_since;
                self.calls = snap.calls.clone();
                self.acd_in_period = self.calls.iter().any(Call::is_acd);
                Ok(changed(None))
            }
            Event::CommandFailed { .. } => Ok(changed(None)),
            Event::AgentStateChanged { state } => {
                let new = agent::on_reported(&self.agent, state, self.activity())?;
                if !new.is_derived() || !new.is_logged_in() {
                    self.acd_in_period = false;
                }
                if new == self.agent {
                    return Ok(duplicate());
                }
                *state = new.clone();
                self.agent = new;
                Ok(changed(None))
            }
            Event::NextStateQueued { next } => {
                let new = agent::on_next_queued(&self.agent, next)?;
                if new == self.agent {
                    return Ok(duplicate());
                }
                self.agent = new;
                Ok(changed(None))
            }
            _ => self.apply_call_event(event),
        }
    }

    fn set_link(&mut self, link: LinkState) -> Applied {
        if self.link == link {
            duplicate()
        } else {
            self.link = link;
            changed(None)
        }
    }

    fn apply_call_event(&mut self, event: &Event) -> Result<Applied> {
        let Some(id) = event.call() else {
            return Err(Error::new(
                ErrorKind::Other,
                format!("{} names no call", event.name()),
            ));
        };
        let index = self.calls.iter().position(|c| &c.id == id);
        let step = match index {
            Some(i) => {
                let step = call::apply(&mut self.calls[i], event)?;
                if self.calls[i].state.is_ended() {
                    let ended = self.calls.remove(i);
                    self.remember_ended(ended.id);
                } else if self.calls[i].is_acd() && self.calls[i].state == CallState::Connected {
                    self.acd_in_period = true;
                }
                step
            }
            None => self.create_call(id, event)?,
        };
        if step == Step::Duplicate {
            return Ok(duplicate());
        }
        Ok(changed(self.rederive()))
    }

    fn create_call(&mut self, id: &CallId, event: &Event) -> Result<Step> {
        if self.ended.contains(id) {
            return if matches!(event, Event::CallEnded { .. }) {
                Ok(Step::Duplicate)
            } else {
                Err(Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "{} for call {}, which has ended; nothing follows call_ended",
                        event.name(),
                        id
                    ),
                ))
            };
        }
        let call = match event {
            Event::CallOffered {
                from,
                to,
                queue,
                data,
                ..
            } => {
                let mut call = Call::new(id.clone(), CallState::Offered, Direction::Inbound);
                call.from = from.clone();
                call.to = to.clone();
                call.queue = queue.clone();
                call.data = data.clone();
                call
            }
            Event::CallInitiated {
                to,
                consult_of,
                data,
                ..
            } => {
                let mut call = Call::new(id.clone(), CallState::Initiated, Direction::Outbound);
                if let Some(primary) = consult_of {
                    if self.call(primary).is_none() {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "call_initiated for consult call {} names call {} as the one it consults about, but there is no such call on this device",
                                id, primary
                            ),
                        ));
                    }
                    call.role = CallRole::Consult;
                    call.consult_of = Some(primary.clone());
                }
                call.to = to.clone();
                call.data = data.clone();
                call
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} for call {}, which is not on this device (a call starts with call_offered or call_initiated)",
                        event.name(),
                        id
                    ),
                ))
            }
        };
        if self.calls.len() >= Self::MAX_CALLS {
            return Err(Error::new(
                ErrorKind::BadInput,
                format!(
                    "{} for call {}: the device already has {} calls, the most it may hold",
                    event.name(),
                    id,
                    Self::MAX_CALLS
                ),
            ));
        }
        self.calls.push(call);
        Ok(Step::Changed)
    }

    fn remember_ended(&mut self, id: CallId) {
        if self.ended.len() >= ENDED_MEMORY {
            self.ended.pop_front();
        }
        self.ended.push_back(id);
    }

    /// What the device's calls amount to.
    pub(super) fn activity(&self) -> Activity {
        let mut activity = Activity::Idle;
        for call in &self.calls {
            match call.state {
                CallState::Offered => activity = Activity::Reserved,
                CallState::Ended { .. } => {}
                _ => return Activity::Busy,
            }
        }
        activity
    }

    /// Recomputes the agent's derived state; returns it if it changed.
    fn rederive(&mut self) -> Option<AgentState> {
        let activity = self.activity();
        let wrap_up_due = self.capabilities.wrap_up && self.acd_in_period;
        let new = agent::derive(&self.agent, activity, wrap_up_due);
        if activity == Activity::Idle && !new.is_derived() {
            self.acd_in_period = false;
        }
        if new == self.agent {
            None
        } else {
            self.agent = new.clone();
            Some(new)
        }
    }

    /// Replaces the state with what the switch reports, keeping the link as it is, and
    /// says what changed. Calls the switch no longer has are dropped: no phantom call
    /// survives a resynchronisation.
    pub fn resync(&mut self, switch: SwitchState, seq: u64) -> ResyncChanges {
        let mut added = Vec::new();
        let mut changed_calls = Vec::new();
        let mut calls: Vec<Call> = Vec::with_capacity(switch.calls.len());
        for call in switch.calls.into_iter().take(Self::MAX_CALLS) {
            if call.state.is_ended() || calls.iter().any(|c: &Call| c.id == call.id) {
                continue;
            }
            let mut call = call;
            match self.call(&call.id) {
                None => added.push(call.id.clone()),
                Some(known) if !known.same_as(&call) => changed_calls.push(call.id.clone()),
                // Unchanged: its timer goes on.
                Some(known) => call.state_since = known.state_since,
            }
            calls.push(call);
        }
        let removed: Vec<CallId> = self
            .calls
            .iter()
            .filter(|c| !calls.iter().any(|n| n.id == c.id))
            .map(|c| c.id.clone())
            .collect();
        for id in &removed {
            self.remember_ended(id.clone());
        }
        self.calls = calls;
        self.acd_in_period = self.calls.iter().any(Call::is_acd);
        self.capabilities = switch
            .withheld
            .iter()
            .fold(self.supported, |caps, w| caps.without(w.command));
        let capabilities_changed = self.withheld != switch.withheld;
        self.withheld = switch.withheld;
        let before = self.agent.clone();
        // The switch's chosen state is the truth; derived states are ours to compute.
        let reported = match switch.agent {
            AgentState::Busy { next } | AgentState::Reserved { next } => next.to_agent_state(),
            other => other,
        };
        self.agent = match (&reported, self.activity()) {
            (AgentState::WrapUp { .. }, Activity::Idle) if reported.is_logged_in() => reported,
            _ => agent::derive(&reported.chosen().to_agent_state(), self.activity(), false),
        };
        ResyncChanges {
            added,
            removed,
            changed: changed_calls,
            agent_changed: before != self.agent,
            capabilities_changed,
            snapshot: self.snapshot(seq),
        }
    }
}

fn changed(derived: Option<AgentState>) -> Applied {
    Applied {
        step: Step::Changed,
        derived,
    }
}

fn duplicate() -> Applied {
    Applied {
        step: Step::Duplicate,
        derived: None,
    }
}
