//! A copy of one line's state, kept in another process than its session.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::capabilities::Capabilities;
use crate::command::CommandSet;
use crate::event::EventEnvelope;
use crate::ids::CallId;
use crate::machine::Desk;
use crate::session::EventStream;
use crate::snapshot::Snapshot;
use crate::{Error, ErrorKind};

/// A copy of one line's state where its [`Session`](crate::Session) does not run (a
/// gateway serving desktops of sessions that run in a link service), kept by the
/// session's own state machine from the session's snapshot and the events that follow
/// it, and fanning those events out to local subscribers.
///
/// The session stays the owner: the replica never makes an event up. It takes the
/// session's events in `seq` order ([`offer`](Replica::offer)); an event that skips a
/// `seq` or does not fit says the copy can no longer be trusted, and the transport
/// fetches the session's snapshot again and [`reseed`](Replica::reseed)s it. Subscribers
/// then get a `Lagged` error, as a session's own subscribers do when they fall behind,
/// and read the snapshot again.
///
/// ```
/// use opencti_core::{AgentId, AgentState, Capabilities, DeviceId, Event, EventEnvelope, LinkState, Replica, Snapshot, Timestamp};
///
/// let (agent, device) = (AgentId::new("alice")?, DeviceId::new("PJSIP/1001")?);
/// let snapshot = Snapshot {
///     seq: 7,
///     agent: agent.clone(),
///     device: device.clone(),
///     link: LinkState::Up,
///     agent_state: AgentState::LoggedOut,
///     agent_state_since: None,
///     calls: vec![],
/// };
/// let replica = Replica::new(snapshot, Capabilities::all(), 64);
/// let envelope = |seq, event| EventEnvelope { seq, at: Timestamp::now(), agent: agent.clone(), device: device.clone(), command: None, event };
/// assert_eq!(replica.offer(&envelope(6, Event::LinkUp)), opencti_core::Offered::Old);
/// assert_eq!(replica.offer(&envelope(8, Event::AgentStateChanged { state: AgentState::NotReady { reason: None } })), opencti_core::Offered::Applied);
/// assert_eq!(replica.snapshot().seq, 8);
/// assert!(matches!(replica.offer(&envelope(10, Event::LinkUp)), opencti_core::Offered::Untrusted(_)));
/// # Ok::<(), opencti_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Replica {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Item>,
    /// The copy's `seq`, for those waiting until it holds an event.
    seq: watch::Sender<u64>,
    /// How many times the copy's link went from up to down.
    downs: watch::Sender<u64>,
}

struct State {
    desk: Desk,
    seq: u64,
}

/// What subscribers get: an event, or word that the copy was taken again.
#[derive(Clone)]
enum Item {
    Event(Arc<EventEnvelope>),
    Reseeded { seq: u64 },
}

/// What [`Replica::offer`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offered {
    /// The event was the next one: applied and handed to the subscribers.
    Applied,
    /// The copy already holds the event (its `seq` is not after the copy's): dropped.
    Old,
    /// The event skips a `seq`, or does not fit the copy: nothing changed; fetch the
    /// session's snapshot and [`reseed`](Replica::reseed). Says why.
    Untrusted(String),
}

impl Replica {
    /// A copy holding `snapshot`, with the session's `capabilities`; subscribers may fall
    /// `capacity` events behind before they get `Lagged`.
    pub fn new(snapshot: Snapshot, capabilities: Capabilities, capacity: usize) -> Self {
        let seq = snapshot.seq;
        Replica {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    desk: Desk::from_snapshot(&snapshot, capabilities),
                    seq,
                }),
                events: broadcast::channel(capacity.max(1)).0,
                seq: watch::channel(seq).0,
                downs: watch::channel(0).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a whole state: every change
        // below is made by one assignment after the checks.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the session's next event and hands it to the subscribers.
    pub fn offer(&self, envelope: &EventEnvelope) -> Offered {
        let mut state = self.state();
        if envelope.seq <= state.seq {
            return Offered::Old;
        }
        if envelope.seq != state.seq + 1 {
            return Offered::Untrusted(format!(
                "event seq {} came after seq {}: events are missing",
                envelope.seq, state.seq
            ));
        }
        if envelope.agent != *state.desk.agent_id() || envelope.device != *state.desk.device() {
            return Offered::Untrusted(format!(
                "event seq {} is for {} at {}, not this line",
                envelope.seq, envelope.agent, envelope.device
            ));
        }
        let mut desk = state.desk.clone();
        let mut event = envelope.event.clone();
        if let Err(error) = desk.apply(&mut event) {
            return Offered::Untrusted(format!(
                "event {} (seq {}) does not fit the copy: {}",
                envelope.event.name(),
                envelope.seq,
                error.message()
            ));
        }
        desk.stamp(&envelope.event, envelope.at);
        self.note_link(state.desk.link(), desk.link());
        state.desk = desk;
        state.seq = envelope.seq;
        self.shared.seq.send_replace(state.seq);
        let _ = self
            .shared
            .events
            .send(Item::Event(Arc::new(envelope.clone())));
        Offered::Applied
    }

    /// Replaces the copy with the session's `snapshot` (and `capabilities`, when the
    /// session said them again); subscribers are told to read the snapshot again.
    pub fn reseed(&self, snapshot: Snapshot, capabilities: Option<Capabilities>) {
        let mut state = self.state();
        let capabilities = capabilities.unwrap_or(*state.desk.capabilities());
        self.note_link(state.desk.link(), snapshot.link);
        state.desk = Desk::from_snapshot(&snapshot, capabilities);
        state.seq = snapshot.seq;
        self.shared.seq.send_replace(state.seq);
        let _ = self
            .shared
            .events
            .send(Item::Reseeded { seq: snapshot.seq });
    }

    /// The `seq` of the last event the copy holds.
    pub fn seq(&self) -> u64 {
        self.state().seq
    }

    /// Resolves once the copy holds event `seq` (at once if it does).
    pub async fn holds(&self, seq: u64) {
        let mut seqs = self.shared.seq.subscribe();
        // The sender lives as long as this replica: the wait ends only by holding `seq`.
        let _ = seqs.wait_for(|&held| held >= seq).await;
    }

    fn note_link(&self, before: crate::snapshot::LinkState, after: crate::snapshot::LinkState) {
        use crate::snapshot::LinkState;
        if before == LinkState::Up && after == LinkState::Down {
            self.shared.downs.send_modify(|downs| *downs += 1);
        }
    }

    /// Resolves once the copy's link goes from up to down after this call. Where the
    /// copy has the link down now (it may not have caught up with its session yet), that
    /// is once it has come up and gone down again.
    pub async fn link_goes_down(&self) {
        let mut downs = self.shared.downs.subscribe();
        let now = *downs.borrow_and_update();
        // The sender lives as long as this replica.
        let _ = downs.wait_for(|&seen| seen > now).await;
    }

    /// The copy's state.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        state.desk.snapshot(state.seq)
    }

    /// The snapshot and a stream of every event after it, taken atomically.
    pub fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream) {
        let state = self.state();
        let receiver = self.shared.events.subscribe();
        (state.desk.snapshot(state.seq), stream(receiver))
    }

    /// Every event from now on; a `Lagged` error when the subscriber fell behind or the
    /// copy was taken again.
    pub fn subscribe(&self) -> EventStream {
        stream(self.shared.events.subscribe())
    }

    /// The session's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        *self.state().desk.capabilities()
    }

    /// The commands the copy's state allows, for the agent (`None`) or one call.
    pub fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet {
        self.state().desk.allowed_commands(call)
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Replica")
            .field("agent", state.desk.agent_id())
            .field("device", state.desk.device())
            .field("seq", &state.seq)
            .finish()
    }
}

fn stream(receiver: broadcast::Receiver<Item>) -> EventStream {
    let items = futures::stream::unfold(receiver, |mut receiver| async move {
        let item = match receiver.recv().await {
            Ok(Item::Event(event)) => Ok(event),
            Ok(Item::Reseeded { seq }) => Err(Error::new(
                ErrorKind::Lagged,
                format!("events were missed on the way from the session; its snapshot (seq {seq}) was taken again: re-read the snapshot"),
            )),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Err(Error::new(
                ErrorKind::Lagged,
                format!(
                    "this subscriber fell behind and {skipped} events were skipped; re-read the snapshot"
                ),
            )),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((item, receiver))
    });
    EventStream::from_boxed(items.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentId, AgentState, DeviceId, Event, LinkState, Timestamp};

    fn line() -> (AgentId, DeviceId) {
        (
            AgentId::new("alice").expect("id"),
            DeviceId::new("PJSIP/1001").expect("id"),
        )
    }

    fn snapshot(seq: u64) -> Snapshot {
        let (agent, device) = line();
        Snapshot {
            seq,
            agent,
            device,
            link: LinkState::Up,
            agent_state: AgentState::LoggedOut,
            agent_state_since: None,
            calls: vec![],
        }
    }

    fn envelope(seq: u64, event: Event) -> EventEnvelope {
        let (agent, device) = line();
        EventEnvelope {
            seq,
            at: Timestamp::now(),
            agent,
            device,
            command: None,
            event,
        }
    }

    fn logged_in(seq: u64) -> EventEnvelope {
        envelope(
            seq,
            Event::AgentStateChanged {
                state: AgentState::NotReady { reason: None },
            },
        )
    }

    #[tokio::test]
    async fn subscribers_get_each_next_event_once_and_a_lag_after_a_reseed() {
        let replica = Replica::new(snapshot(3), Capabilities::all(), 16);
        let (first, mut events) = replica.snapshot_and_subscribe();
        assert_eq!(first.seq, 3);
        assert_eq!(replica.offer(&logged_in(4)), Offered::Applied);
        assert_eq!(replica.offer(&logged_in(4)), Offered::Old);
        assert!(matches!(
            replica.offer(&logged_in(6)),
            Offered::Untrusted(why) if why.contains("missing")
        ));
        assert_eq!(replica.seq(), 4);
        let got = events.next().await.expect("item").expect("event");
        assert_eq!(got.seq, 4);
        assert_eq!(
            replica.snapshot().agent_state,
            AgentState::NotReady { reason: None }
        );
        replica.reseed(snapshot(9), None);
        let lag = events.next().await.expect("item").expect_err("lag");
        assert_eq!(lag.kind(), ErrorKind::Lagged);
        assert_eq!(replica.snapshot().agent_state, AgentState::LoggedOut);
        assert_eq!(replica.offer(&logged_in(10)), Offered::Applied);
    }

    #[tokio::test]
    async fn a_link_that_goes_down_is_heard_only_once_it_was_up() {
        let down = |seq| {
            envelope(
                seq,
                Event::LinkDown {
                    reason: "gone".into(),
                },
            )
        };
        let replica = Replica::new(snapshot(1), Capabilities::all(), 8);
        let waiting = tokio::spawn({
            let replica = replica.clone();
            async move { replica.link_goes_down().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(replica.offer(&down(2)), Offered::Applied);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("heard")
            .expect("no panic");

        // Down already (the copy is behind its session): not until it was up again.
        let waiting = tokio::spawn({
            let replica = replica.clone();
            async move { replica.link_goes_down().await }
        });
        assert_eq!(replica.offer(&logged_in(3)), Offered::Applied);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(replica.offer(&envelope(4, Event::LinkUp)), Offered::Applied);
        assert_eq!(replica.offer(&down(5)), Offered::Applied);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("heard")
            .expect("no panic");
    }

    #[test]
    fn an_event_that_does_not_fit_or_names_another_line_changes_nothing() {
        let replica = Replica::new(snapshot(1), Capabilities::all(), 4);
        let held = envelope(
            2,
            Event::CallHeld {
                call: CallId::new("call-1").expect("id"),
            },
        );
        assert!(
            matches!(replica.offer(&held), Offered::Untrusted(why) if why.contains("does not fit"))
        );
        let mut other = logged_in(2);
        other.agent = AgentId::new("bob").expect("id");
        assert!(
            matches!(replica.offer(&other), Offered::Untrusted(why) if why.contains("not this line"))
        );
        assert_eq!(replica.snapshot(), snapshot(1));
    }

    #[test]
    fn allowed_commands_follow_the_copy() {
        let replica = Replica::new(snapshot(1), Capabilities::all(), 4);
        let before = replica.allowed_commands(None);
        assert_eq!(replica.offer(&logged_in(2)), Offered::Applied);
        assert_ne!(before, replica.allowed_commands(None));
        let mut down = snapshot(5);
        down.link = LinkState::Down;
        replica.reseed(down, None);
        assert_eq!(replica.allowed_commands(None), CommandSet::EMPTY);
    }
}
