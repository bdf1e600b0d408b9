//! The connection's thread: a runtime of its own that connects, logs in, reads and
//! reconnects, so that a busy link's reader neither waits for the application's tasks
//! nor moves between the application's workers, and the application's tasks do not wait
//! for it. The application's runtime stays the one the handler runs in, and the
//! connection ends when that runtime shuts down.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use opencti_core::{Error, ErrorKind, Result};
use tokio::sync::{oneshot, watch};

use super::{connection, login, Shared};

/// The running connection thread, as [`AmiClient::stop`](super::AmiClient::stop) ends it.
pub(super) struct ConnectionThread {
    /// Becomes `true` when the thread has ended.
    ended: watch::Receiver<bool>,
}

impl ConnectionThread {
    /// Starts the thread, which makes the first connection and then keeps one up until
    /// stopped. Returns once the first attempt is over: `Ok(true)` logged in, `Ok(false)`
    /// not reached (the thread retries with backoff), or the error that no retry can
    /// mend (refused credentials, a bad TLS config).
    pub(super) async fn start(shared: &Arc<Shared>) -> Result<(ConnectionThread, bool)> {
        let (first, first_done) = oneshot::channel();
        let halted = shared.halt.subscribe();
        let (ended_tx, ended) = watch::channel(false);
        let on_thread = shared.clone();
        std::thread::Builder::new()
            .name("ami-connection".to_owned())
            .spawn(move || {
                let _ended = Ended(ended_tx);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = first.send(Err(Error::new(
                            ErrorKind::Other,
                            "could not build the AMI connection's runtime",
                        )
                        .with_source(e)));
                        return;
                    }
                };
                runtime.block_on(serve(on_thread, first, halted));
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    "could not start the AMI connection's thread",
                )
                .with_source(e)
            })?;
        let connected = match first_done.await {
            Ok(first) => first?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Other,
                    "the AMI connection's thread ended before its first attempt (a handler \
                     panicked)",
                ))
            }
        };
        // Ends the connection when the application's runtime shuts down, as a task of
        // that runtime would have ended; finishes by itself when the thread ends first.
        let guard = StopWhenDropped(Arc::downgrade(shared));
        let mut thread_ended = ended.clone();
        shared.app.spawn(async move {
            let _guard = guard;
            let _ = thread_ended.wait_for(|ended| *ended).await;
        });
        Ok((ConnectionThread { ended }, connected))
    }

    /// Ends the connection at once, wherever it is, and waits for the thread to finish.
    pub(super) async fn stop(self, shared: &Shared) {
        shared.halt.send_replace(true);
        let mut ended = self.ended;
        let _ = ended.wait_for(|ended| *ended).await;
    }
}

/// The thread's work: the first attempt, reported on `first`, then the connection kept
/// up until stopped or `halted`.
async fn serve(
    shared: Arc<Shared>,
    first: oneshot::Sender<Result<bool>>,
    mut halted: watch::Receiver<bool>,
) {
    let conn = match login::establish(&shared.config, &shared.transport).await {
        Ok(conn) => Some(conn),
        Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Config) => {
            let _ = first.send(Err(e));
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "AMI: first connection failed; retrying with backoff");
            None
        }
    };
    let _ = first.send(Ok(conn.is_some()));
    // Level-triggered: a halt asked for at any time, even before this, ends the
    // connection where it is.
    tokio::select! {
        _ = connection::run(shared, conn) => {}
        _ = halted.wait_for(|halted| *halted) => {}
    }
}

/// Says the thread has ended when dropped, however it ends.
struct Ended(watch::Sender<bool>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Stops the connection when dropped with the application's runtime.
struct StopWhenDropped(Weak<Shared>);

impl Drop for StopWhenDropped {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.stopped.store(true, Ordering::SeqCst);
            shared.halt.send_replace(true);
        }
    }
}
