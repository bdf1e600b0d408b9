//! The background task that rebuilds the session's state from the switch.
//!
//! It wakes when the link comes up or when an event did not fit the state, asks the
//! connector for the switch's view, and hands it to the engine. It holds the session only
//! weakly, so dropping the last `Session` ends it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::Shared;

/// Pause before asking again after the switch could not give its state.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        loop {
            let Some(session) = shared.upgrade() else {
                return;
            };
            let Some(forced) = session.engine().take_resync_request() else {
                break;
            };
            let result = session.connector.snapshot().await;
            let read = result.is_ok();
            let retry = session.engine().finish_resync(result, forced);
            if read {
                session.connector.resynced();
            }
            drop(session);
            if retry {
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
