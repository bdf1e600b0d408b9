//! Queues and agent state: memberships and pauses from queue events, and the queue a
//! call is offered from.

use opencti_core::{
    Cause, ChosenState, CommandId, CommandKind, Event, QueueId, ReasonCode, Withheld,
};

use crate::message::Message;
use crate::tracker::known;

use super::{EventOut, LineBook, Translator};

#[derive(Debug, Clone, Default)]
pub(super) struct Membership {
    pub(super) member: bool,
    pub(super) paused: bool,
    pub(super) reason: Option<ReasonCode>,
    /// `static` or `realtime`: written in Asterisk's configuration, so `QueueAdd` and
    /// `QueueRemove` cannot change it ("Member not dynamic"); `None` for a dynamic member.
    pub(super) fixed: Option<String>,
}

impl LineBook {
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

    /// What Asterisk does not allow this agent: logging in and out when the device's
    /// membership of a queue is written in Asterisk's configuration, which QueueAdd and
    /// QueueRemove refuse to change.
    pub(super) fn withheld(&self) -> Vec<Withheld> {
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
}

impl Translator<'_> {
    pub(super) fn other_event(&mut self, msg: &Message, out: &mut dyn EventOut) {
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

    pub(super) fn queue_member(&mut self, event: &str, msg: &Message, out: &mut dyn EventOut) {
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

    /// Confirms a `set_agent_state` or `login` that changed nothing at the switch (the
    /// agent was already in that state), by restating the state.
    pub(crate) fn restate_agent(&mut self, command: CommandId, out: &mut dyn EventOut) {
        let state = self.book.agent_state().to_agent_state();
        self.emit(out, Event::AgentStateChanged { state }, Some(command));
    }
}
