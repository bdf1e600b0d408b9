//! The centre as supervisors see it: every queue's figures and every agent's session;
//! and what agents see of their queues.
//!
//! One task per gateway follows the queue board and the agents' sessions, and at most
//! every [`UPDATE_EVERY`] sends every supervisor the same update, serialised once:
//! `{"update":{"at":..,"queues":[..],"agents":[..]}}` with the queues and agents that
//! changed, each whole. So a wallboard costs the gateway the same however busy the
//! centre is, and one more wallboard costs one more socket write. It also samples the
//! queues every [`SAMPLE_EVERY`] for the last hour, for the wallboard's charts, and tells
//! each queue's agents how many callers wait there (`{"queue_waiting":{..}}`), no more
//! of the queue than that.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use opencti_core::queue::{AgentCounts, QueueFigures, QueueSnapshot};
use opencti_core::{AgentId, QueueId, Snapshot, Timestamp};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::sessions::Sessions;

/// The longest a change waits before supervisors see it.
pub const UPDATE_EVERY: Duration = Duration::from_millis(250);

/// How often the queues are sampled for the charts.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// How much history the charts keep.
const HISTORY: Duration = Duration::from_secs(3600);

/// Updates a supervisor may fall behind before reading everything again.
const UPDATE_BUFFER: usize = 64;

/// What a supervisor gets first, and again after falling behind:
/// `{"centre":{"at":..,"queues":..,"agents":[..],"history":[..]}}`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Whole {
    centre: WholeBody,
}

#[derive(Serialize, schemars::JsonSchema)]
struct WholeBody {
    /// The gateway's clock now (the board's, where there is one).
    at: Timestamp,
    /// Every queue, or none without a queue board.
    queues: Option<QueueSnapshot>,
    /// Every agent with a session here.
    agents: Vec<Snapshot>,
    /// The queues every ten seconds over the last hour, oldest first.
    history: Vec<Sample>,
    /// Whether supervisors can listen in, whisper and barge on this phone system.
    can_monitor: bool,
}

/// What changed: `{"update":{"at":..,"queues":[..],"agents":[..]}}`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Update {
    update: UpdateBody,
}

#[derive(Serialize, schemars::JsonSchema)]
struct UpdateBody {
    at: Timestamp,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    queues: Vec<QueueFigures>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    agents: Vec<Snapshot>,
}

/// What an agent sees of a queue they work in:
/// `{"queue_waiting":{"queue":..,"waiting":..,"oldest_since":..}}`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct QueueWaiting {
    queue_waiting: WaitingBody,
}

#[derive(Serialize, schemars::JsonSchema)]
struct WaitingBody {
    queue: QueueId,
    /// Callers not answered yet, ringing at an agent or not.
    waiting: u32,
    /// When the one who has waited longest joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_since: Option<Timestamp>,
}

impl QueueWaiting {
    fn of(figures: &QueueFigures) -> Self {
        QueueWaiting {
            queue_waiting: WaitingBody {
                queue: figures.queue.clone(),
                waiting: figures.waiting + figures.ringing,
                oldest_since: figures.oldest_since,
            },
        }
    }
}

/// The queues at one moment, for the charts.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct Sample {
    at: Timestamp,
    queues: Vec<QueueSample>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct QueueSample {
    queue: QueueId,
    waiting: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_level: Option<f64>,
    agents: AgentCounts,
}

/// The supervisors' feed of one gateway.
pub(crate) struct Centre {
    updates: broadcast::Sender<Utf8Bytes>,
    history: Mutex<VecDeque<Sample>>,
    /// Each queue's `queue_waiting`, for the agents who work in it.
    waiting: Mutex<HashMap<QueueId, broadcast::Sender<Utf8Bytes>>>,
}

impl Centre {
    /// Starts following `sessions` (and their queue board); stops when the gateway's
    /// sessions are dropped.
    pub(crate) fn start(sessions: &Arc<Sessions>) -> Arc<Centre> {
        let centre = Arc::new(Centre {
            updates: broadcast::channel(UPDATE_BUFFER).0,
            history: Mutex::new(VecDeque::new()),
            waiting: Mutex::new(HashMap::new()),
        });
        tokio::spawn(follow(Arc::downgrade(sessions), Arc::downgrade(&centre)));
        centre
    }

    /// Every update from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.updates.subscribe()
    }

    /// How many wait in `queue` now, then at every change (at most every
    /// [`UPDATE_EVERY`]); nothing for a queue the board does not know.
    pub(crate) fn follow_waiting(
        &self,
        sessions: &Sessions,
        queue: &QueueId,
    ) -> Option<(Utf8Bytes, broadcast::Receiver<Utf8Bytes>)> {
        let receiver = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(queue.clone())
            .or_insert_with(|| broadcast::channel(UPDATE_BUFFER).0)
            .subscribe();
        let figures = sessions.queues()?.figures(queue)?;
        Some((text(&QueueWaiting::of(&figures)), receiver))
    }

    fn tell_waiting(&self, figures: &QueueFigures) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = waiting.get(&figures.queue) {
            if sender.receiver_count() > 0 {
                let _ = sender.send(text(&QueueWaiting::of(figures)));
            }
        }
    }

    /// Everything now, as one message.
    pub(crate) async fn whole(&self, sessions: &Sessions) -> Utf8Bytes {
        let queues = sessions.queues().map(|board| board.snapshot());
        let at = now(sessions);
        let history = self.lock_history().iter().cloned().collect();
        let whole = Whole {
            centre: WholeBody {
                at,
                queues,
                agents: sessions.snapshots().await,
                history,
                can_monitor: sessions.factory.can_monitor(),
            },
        };
        text(&whole)
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sample(&self, at: Timestamp, snapshot: &QueueSnapshot) {
        let sample = Sample {
            at,
            queues: snapshot
                .queues
                .iter()
                .map(|f| QueueSample {
                    queue: f.queue.clone(),
                    waiting: f.waiting + f.ringing,
                    service_level: f.service_level,
                    agents: f.agents.clone(),
                })
                .collect(),
        };
        let mut history = self.lock_history();
        history.push_back(sample);
        let keep = (HISTORY.as_secs() / SAMPLE_EVERY.as_secs()) as usize;
        while history.len() > keep {
            history.pop_front();
        }
    }
}

fn now(sessions: &Sessions) -> Timestamp {
    sessions
        .queues()
        .map(|b| b.now())
        .unwrap_or_else(Timestamp::now)
}

fn text(message: &impl Serialize) -> Utf8Bytes {
    // Serialising our own types cannot fail; an empty object is the harmless fallback.
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_else(|_| "{}".to_string()))
}

/// The one task: collects what changed, and sends it at most every `UPDATE_EVERY`.
async fn follow(sessions: std::sync::Weak<Sessions>, centre: std::sync::Weak<Centre>) {
    let (mut queue_events, mut roster) = {
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let queue_events = sessions
            .queues()
            .map(|board| board.snapshot_and_subscribe().1);
        (queue_events, sessions.follow_roster())
    };
    let mut changed_queues: BTreeMap<QueueId, QueueFigures> = BTreeMap::new();
    let mut changed_agents: BTreeMap<AgentId, Snapshot> = BTreeMap::new();
    let mut tick = tokio::time::interval(UPDATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = async {
                match queue_events.as_mut() {
                    Some(events) => events.next().await,
                    None => std::future::pending().await,
                }
            } => match event {
                Some(Ok(envelope)) => {
                    for figures in &envelope.queues {
                        changed_queues.insert(figures.queue.clone(), figures.clone());
                    }
                    if let opencti_core::queue::QueueEvent::Resynced { snapshot } = &envelope.event {
                        for figures in &snapshot.queues {
                            changed_queues.insert(figures.queue.clone(), figures.clone());
                        }
                    }
                }
                // Fell behind the board: every queue as it is now.
                Some(Err(_)) => {
                    let Some(sessions) = sessions.upgrade() else { return };
                    if let Some(board) = sessions.queues() {
                        for figures in board.snapshot().queues {
                            changed_queues.insert(figures.queue.clone(), figures);
                        }
                    }
                }
                None => queue_events = None,
            },
            agent = roster.recv() => match agent {
                Ok(snapshot) => {
                    changed_agents.insert(snapshot.agent.clone(), (*snapshot).clone());
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let Some(sessions) = sessions.upgrade() else { return };
                    for snapshot in sessions.snapshots().await {
                        changed_agents.insert(snapshot.agent.clone(), snapshot);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if changed_queues.is_empty() && changed_agents.is_empty() {
                    continue;
                }
                let (Some(sessions), Some(centre)) = (sessions.upgrade(), centre.upgrade()) else {
                    return;
                };
                let queues: Vec<QueueFigures> = std::mem::take(&mut changed_queues).into_values().collect();
                for figures in &queues {
                    centre.tell_waiting(figures);
                }
                let update = Update {
                    update: UpdateBody {
                        at: now(&sessions),
                        queues,
                        agents: std::mem::take(&mut changed_agents).into_values().collect(),
                    },
                };
                // Nobody watching is fine: the next supervisor starts from the whole.
                let _ = centre.updates.send(text(&update));
            },
            _ = sample.tick() => {
                let (Some(sessions), Some(centre)) = (sessions.upgrade(), centre.upgrade()) else {
                    return;
                };
                if let Some(board) = sessions.queues() {
                    let snapshot = board.snapshot();
                    centre.sample(snapshot.at, &snapshot);
                }
            },
        }
    }
}
