//! A line whose session runs in a link service, as a gateway reaches it over NATS.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use opencti_core::session::AcceptedCommand;
use opencti_core::{
    AgentId, CallId, Capabilities, Command, CommandSet, Confirmation, DesktopInterface, DeviceId,
    Error, ErrorKind, EventEnvelope, EventStream, LineAccess, Offered, PendingCommand, Replica,
    Result, Snapshot,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::publish::{KIND_EVENT, KIND_HEADER, KIND_SNAPSHOT};
use crate::service::KIND_COMMAND;
use crate::subject::Site;
use crate::wire::{from_json, to_json, CommandReply, LineRequest, SnapshotReply};

/// How long a request waits for the link service's first answer (a snapshot, a
/// command's acceptance).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a command accepted by the link service may wait for its outcome: longer than
/// a session's own command timeout (10 s), which answers first.
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// How far local subscribers may fall behind before they get `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// How often a connection's count of (re)connections is read.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);

/// A line whose [`Session`](opencti_core::Session) runs in a link service
/// ([`LineService`](crate::LineService)) of the same site, reached over NATS: what a
/// stateless gateway serves its browsers from.
///
/// It keeps a [`Replica`] of the line, taken from the session's snapshot and kept by the
/// line's events as they are published, so that [`snapshot`](DesktopInterface::snapshot)
/// and [`allowed_commands`](DesktopInterface::allowed_commands) answer at once; every
/// command goes to the session, which alone decides. Any number of gateways may hold a
/// `RemoteLine` of the same line: each sees the same events with the same `seq`, so a
/// browser that moves from one gateway to another resumes from a snapshot and the events
/// after it, with nothing missing and nothing twice.
///
/// # Behavior
///
/// - An event that skips a `seq` (lost while NATS reconnected, or this process fell
///   behind) makes the copy fetch the session's snapshot again; local subscribers get
///   `Lagged` and read the snapshot, as with a session of their own.
/// - A command's confirmation resolves once the copy holds its confirming event.
/// - No link service answering the line is `link_down`; one that does not answer in
///   [`ANSWER_TIMEOUT`] (or, once it accepted a command, in [`OUTCOME_TIMEOUT`]) is
///   `timeout`.
#[derive(Clone)]
pub struct RemoteLine {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    requests: String,
    agent: AgentId,
    device: DeviceId,
    replica: Replica,
    commands: broadcast::Sender<Arc<AcceptedCommand>>,
    following: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.following.abort();
    }
}

impl std::fmt::Debug for RemoteLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLine")
            .field("agent", &self.inner.agent)
            .field("device", &self.inner.device)
            .field("replica", &self.inner.replica)
            .finish()
    }
}

impl RemoteLine {
    /// Opens `agent`'s line at `device` on `site`: subscribes to its events and accepted
    /// commands, then asks its session for the snapshot. Fails as `link_down` when no
    /// link service serves the line.
    pub async fn open(
        client: async_nats::Client,
        site: &Site,
        agent: AgentId,
        device: DeviceId,
    ) -> Result<RemoteLine> {
        let requests = site.line_requests(&agent, &device);
        // Subscribed before the snapshot is asked for: every event after it arrives.
        let events = subscribe(&client, site.line_events(&agent, &device)).await?;
        let accepted = subscribe(&client, site.line_commands(&agent, &device)).await?;
        let (snapshot, capabilities) = ask_snapshot(&client, &requests).await?;
        if snapshot.agent != agent || snapshot.device != device {
            return Err(Error::new(
                ErrorKind::BadInput,
                format!(
                    "the link service answered for {} at {}, not {agent} at {device}",
                    snapshot.agent, snapshot.device
                ),
            ));
        }
        let replica = Replica::new(snapshot, capabilities, EVENT_CAPACITY);
        let (commands, _) = broadcast::channel(EVENT_CAPACITY);
        let following = tokio::spawn(follow(
            client.clone(),
            requests.clone(),
            replica.clone(),
            events,
            accepted,
            commands.clone(),
        ));
        Ok(RemoteLine {
            inner: Arc::new(Inner {
                client,
                requests,
                agent,
                device,
                replica,
                commands,
                following,
            }),
        })
    }

    /// The line's copy.
    pub fn replica(&self) -> &Replica {
        &self.inner.replica
    }
}

async fn subscribe(client: &async_nats::Client, subject: String) -> Result<async_nats::Subscriber> {
    client.subscribe(subject.clone()).await.map_err(|e| {
        Error::new(
            ErrorKind::LinkDown,
            format!("could not subscribe to {subject}: {e}"),
        )
    })
}

/// Sends `request` and returns the subscription its replies come on.
async fn send(
    client: &async_nats::Client,
    subject: &str,
    request: &LineRequest,
) -> Result<async_nats::Subscriber> {
    let inbox = client.new_inbox();
    let replies = subscribe(client, inbox.clone()).await?;
    client
        .publish_with_reply(subject.to_owned(), inbox, to_json(request).into())
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::LinkDown,
                format!("could not send a request on {subject}: {e}"),
            )
        })?;
    Ok(replies)
}

/// The next reply, as `T`; `link_down` if nobody serves the line.
async fn next_reply<T: for<'de> serde::Deserialize<'de>>(
    replies: &mut async_nats::Subscriber,
    subject: &str,
    wait: Duration,
) -> Result<T> {
    let message = match tokio::time::timeout(wait, replies.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => {
            return Err(Error::new(
                ErrorKind::LinkDown,
                format!("the connection to NATS closed while waiting for {subject}"),
            ))
        }
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("no answer on {subject} within {wait:?}"),
            ))
        }
    };
    if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err(Error::new(
            ErrorKind::LinkDown,
            format!("no link service serves this line (nobody answers {subject})"),
        ));
    }
    from_json(&format!("answer on {subject}"), &message.payload)
}

async fn ask_snapshot(
    client: &async_nats::Client,
    requests: &str,
) -> Result<(Snapshot, Capabilities)> {
    let mut replies = send(client, requests, &LineRequest::Snapshot {}).await?;
    match next_reply(&mut replies, requests, ANSWER_TIMEOUT).await? {
        SnapshotReply::State {
            snapshot,
            capabilities,
        } => Ok((*snapshot, capabilities)),
        SnapshotReply::Error(body) => Err(body.into()),
    }
}

/// Keeps the copy: the line's events in, a fresh snapshot whenever one is missing.
async fn follow(
    client: async_nats::Client,
    requests: String,
    replica: Replica,
    mut events: async_nats::Subscriber,
    mut accepted: async_nats::Subscriber,
    commands: broadcast::Sender<Arc<AcceptedCommand>>,
) {
    // Every (re)connection counts; one more than when the copy was taken means messages
    // published meanwhile may be lost to a plain subscription.
    let mut reconnected = reconnections(&client);
    let mut watching = true;
    let statistics = client.statistics();
    let mut connects = statistics.connects.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            message = events.next() => {
                let Some(message) = message else { return };
                let kind = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(KIND_HEADER))
                    .map(|v| v.as_str().to_owned());
                let offered = match kind.as_deref() {
                    Some(KIND_EVENT) => match from_json::<EventEnvelope>("event", &message.payload) {
                        Ok(envelope) => replica.offer(&envelope),
                        Err(error) => Offered::Untrusted(error.to_string()),
                    },
                    Some(KIND_SNAPSHOT) => match from_json::<Snapshot>("snapshot", &message.payload) {
                        Ok(snapshot) if snapshot.seq > replica.seq() => {
                            replica.reseed(snapshot, None);
                            Offered::Applied
                        }
                        Ok(_) => Offered::Old,
                        Err(error) => Offered::Untrusted(error.to_string()),
                    },
                    other => Offered::Untrusted(format!("a message of kind {other:?} on the line's events")),
                };
                if let Offered::Untrusted(why) = offered {
                    tracing::warn!(subject = %message.subject, %why, "the line's copy is taken again from its session");
                    reseed(&client, &requests, &replica).await;
                }
            }
            message = accepted.next() => {
                let Some(message) = message else { return };
                let is_command = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(KIND_HEADER))
                    .is_some_and(|v| v.as_str() == KIND_COMMAND);
                match from_json::<AcceptedCommand>("accepted command", &message.payload) {
                    Ok(command) if is_command => {
                        let _ = commands.send(Arc::new(command));
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(subject = %message.subject, %error, "dropped"),
                }
            }
            changed = reconnected.changed(), if watching => {
                if changed.is_err() {
                    // The watcher stopped (its runtime is shutting down).
                    watching = false;
                    continue;
                }
                let now = statistics.connects.load(Ordering::Relaxed);
                if now != connects {
                    connects = now;
                    tracing::info!(subject = %requests, "reconnected to NATS: the line's copy is taken again");
                    reseed(&client, &requests, &replica).await;
                }
            }
        }
    }
}

/// The count of `client`'s (re)connections, changed within [`RECONNECT_CHECK`] of each
/// reconnection. One watcher for each connection, whatever the number of lines on it:
/// a timer for each line would wake a gateway of thousands of lines thousands of times
/// a second for nothing.
fn reconnections(client: &async_nats::Client) -> watch::Receiver<u64> {
    /// Each watched connection's statistics, its watcher's sender and task.
    type Watcher = (
        Weak<async_nats::Statistics>,
        watch::Sender<u64>,
        JoinHandle<()>,
    );
    static WATCHERS: Mutex<Vec<Watcher>> = Mutex::new(Vec::new());
    let statistics = client.statistics();
    let mut watchers = WATCHERS.lock().unwrap_or_else(PoisonError::into_inner);
    // A watcher whose lines have all gone stops at its next check; one whose runtime
    // ended has stopped.
    watchers.retain(|(of, sender, task)| {
        of.strong_count() > 0 && !sender.is_closed() && !task.is_finished()
    });
    let watched = watchers
        .iter()
        .find(|(of, _, _)| of.upgrade().is_some_and(|of| Arc::ptr_eq(&of, &statistics)));
    if let Some((_, sender, _)) = watched {
        return sender.subscribe();
    }
    let (sender, receiver) = watch::channel(statistics.connects.load(Ordering::Relaxed));
    let of = Arc::downgrade(&statistics);
    let watching = sender.clone();
    let task = tokio::spawn(async move {
        let mut check = tokio::time::interval(RECONNECT_CHECK);
        loop {
            check.tick().await;
            if watching.is_closed() {
                return;
            }
            let now = statistics.connects.load(Ordering::Relaxed);
            watching.send_if_modified(|seen| {
                let changed = *seen != now;
                *seen = now;
                changed
            });
        }
    });
    watchers.push((of, sender, task));
    receiver
}

/// Takes the copy again from the session, retrying until it answers.
async fn reseed(client: &async_nats::Client, requests: &str, replica: &Replica) {
    let mut wait = Duration::from_millis(50);
    loop {
        match ask_snapshot(client, requests).await {
            Ok((snapshot, capabilities)) => {
                replica.reseed(snapshot, Some(capabilities));
                return;
            }
            Err(error) => {
                tracing::warn!(subject = %requests, %error, "could not take the line's snapshot; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[async_trait]
impl DesktopInterface for RemoteLine {
    async fn execute(&self, command: Command) -> Result<Confirmation> {
        LineAccess::submit(self, command).await?.confirmed().await
    }

    fn subscribe(&self) -> EventStream {
        self.inner.replica.subscribe()
    }

    fn snapshot(&self) -> Snapshot {
        self.inner.replica.snapshot()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.replica.capabilities()
    }

    fn allowed_commands(&self, call: Option<&CallId>) -> CommandSet {
        self.inner.replica.allowed_commands(call)
    }
}

#[async_trait]
impl LineAccess for RemoteLine {
    fn snapshot_and_subscribe(&self) -> (Snapshot, EventStream) {
        self.inner.replica.snapshot_and_subscribe()
    }

    async fn submit(&self, command: Command) -> Result<PendingCommand> {
        let inner = &self.inner;
        let mut replies = send(
            &inner.client,
            &inner.requests,
            &LineRequest::Command(command),
        )
        .await?;
        let id = match next_reply(&mut replies, &inner.requests, ANSWER_TIMEOUT).await? {
            CommandReply::Accepted(id) => id,
            CommandReply::Error(body) => return Err(body.into()),
            CommandReply::Confirmed { .. } => {
                return Err(Error::new(
                    ErrorKind::BadInput,
                    format!(
                        "the link service confirmed a command on {} before accepting it",
                        inner.requests
                    ),
                ))
            }
        };
        let requests = inner.requests.clone();
        let replica = inner.replica.clone();
        Ok(PendingCommand::elsewhere(id, async move {
            // A link service that dies with the command in hand never answers; its
            // successor's `link_down` says the command's fate is unknown.
            let reply = tokio::select! {
                reply = next_reply(&mut replies, &requests, OUTCOME_TIMEOUT) => reply?,
                _ = replica.link_down() => {
                    return Err(Error::new(
                        ErrorKind::LinkDown,
                        format!("command {id} was accepted, then the link went down before it was confirmed; it may still take effect"),
                    ))
                }
            };
            match reply {
                CommandReply::Confirmed { command, event } => {
                    // The caller reads the copy next: it holds the event first.
                    let _ = tokio::time::timeout(ANSWER_TIMEOUT, replica.holds(event.seq)).await;
                    Ok(Confirmation {
                        command,
                        event: Arc::from(event),
                    })
                }
                CommandReply::Error(body) => Err(body.into()),
                CommandReply::Accepted(_) => Err(Error::new(
                    ErrorKind::BadInput,
                    format!("the link service accepted a command on {requests} twice"),
                )),
            }
        }))
    }

    fn subscribe_commands(&self) -> broadcast::Receiver<Arc<AcceptedCommand>> {
        self.inner.commands.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that keeps trying to connect in the background, with no server.
    async fn unconnected() -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("127.0.0.1:1")
            .await
            .expect("a client that connects in the background")
    }

    #[tokio::test]
    async fn the_lines_of_one_connection_share_one_reconnection_watcher() {
        let (a, b) = (unconnected().await, unconnected().await);
        let first = reconnections(&a);
        let second = reconnections(&a.clone());
        assert!(
            first.same_channel(&second),
            "one watcher for one connection"
        );
        let other = reconnections(&b);
        assert!(
            !first.same_channel(&other),
            "a watcher of its own for another"
        );
        // Once every line of a connection has gone, its watcher stops, and the next line
        // gets a new one.
        drop((first, second));
        tokio::time::sleep(RECONNECT_CHECK * 3).await;
        let third = reconnections(&a);
        let fourth = reconnections(&a);
        assert!(third.same_channel(&fourth));
        assert!(!third.same_channel(&other));
    }
}
