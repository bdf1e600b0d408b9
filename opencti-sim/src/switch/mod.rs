//! The simulated switch: a contact centre that runs on tokio's clock.
//!
//! [`SimSwitch`] owns the world (agents, queues, calls) behind one lock. Each agent's
//! desktop reaches it through a [`SimConnector`](crate::SimConnector); a test or a demo
//! makes the outside world act through a [`Control`](crate::Control). Timers (ringing,
//! patience, wrap-up, far ends answering) are tokio sleeps, so under a paused clock an
//! hour of contact centre passes in milliseconds, the same way every time.

mod line;
mod world;

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use opencti_core::queue::QueueEvent;
use opencti_core::{DeviceId, QueueId, Result, Timestamp};
use tokio::sync::broadcast;

use crate::config::CentreConfig;
pub(crate) use line::Line;
pub use world::{QueueCounts, SwitchStats};
use world::{Timer, World};

/// A simulated phone switch and contact centre. Cheap to clone.
#[derive(Clone)]
pub struct SimSwitch {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    world: Mutex<World>,
}

impl std::fmt::Debug for SimSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSwitch").finish_non_exhaustive()
    }
}

impl SimSwitch {
    /// A switch set up as `config` says. Must be used inside a tokio runtime.
    pub fn new(config: CentreConfig) -> Result<Self> {
        Ok(SimSwitch {
            inner: Arc::new(Inner {
                world: Mutex::new(World::new(config)?),
            }),
        })
    }

    /// A connector for the agent's desktop at `device`.
    pub fn connector(&self, device: DeviceId) -> crate::SimConnector {
        crate::SimConnector::new(self.clone(), device)
    }

    /// The handle that makes the outside world act and injects faults.
    pub fn control(&self) -> crate::Control {
        crate::Control::new(self.clone())
    }

    /// Counters of queued, answered and abandoned calls.
    pub fn stats(&self) -> SwitchStats {
        self.inner.lock().stats
    }

    /// The switch's queue events for a [`QueueBoard`](opencti_core::queue::QueueBoard),
    /// each with when it happened by the switch's clock: first what describes the
    /// queues now (members, callers waiting or ringing), then every caller joining,
    /// ringing at an agent, going back to wait, answered, giving up and completed. Feed
    /// them to a board with
    /// [`QueueBoard::feed_stamped`](opencti_core::queue::QueueBoard::feed_stamped); the
    /// agents' states come from their sessions
    /// ([`QueueBoard::follow`](opencti_core::queue::QueueBoard::follow)).
    pub fn queue_events(
        &self,
    ) -> impl futures::Stream<Item = (Timestamp, QueueEvent)> + Send + 'static {
        let (now, receiver) = self.inner.lock().follow_queues();
        let after = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(
                            skipped,
                            "a queue follower fell behind the simulated switch"
                        );
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures::stream::iter(now).chain(after)
    }

    /// The switch's clock now: the time its queue events are stamped with. A
    /// [`QueueBoard`](opencti_core::queue::QueueBoard) that follows the switch starts
    /// from it, so that the agents' sessions and the switch tell the same time.
    pub fn now(&self) -> Timestamp {
        self.inner.lock().now()
    }

    /// The switch's own counts for `queue`, to check a board against; `None` for a queue
    /// it does not have.
    pub fn queue_counts(&self, queue: &QueueId) -> Option<QueueCounts> {
        let world = self.inner.lock();
        let q = world.queue_by_id(queue)?;
        world.queue_counts(q)
    }

    /// Runs `f` on the world, then starts the timers it asked for.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut world = self.inner.lock();
        let result = f(&mut world);
        let timers = std::mem::take(&mut world.timers);
        drop(world);
        for (after, timer) in timers {
            spawn_timer(Arc::downgrade(&self.inner), after, timer);
        }
        result
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, World> {
        // The world is never left half-changed by a panic in this crate.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn spawn_timer(inner: Weak<Inner>, after: std::time::Duration, timer: Timer) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(inner) = inner.upgrade() {
            let switch = SimSwitch { inner };
            switch.with(|world| world.fire(timer));
        }
    });
}
