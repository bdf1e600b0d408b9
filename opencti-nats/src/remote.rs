//! A line whose session runs in a link service, as a gateway reaches it over NATS.

use std::sync::atomic::Ordering;
use std::sync::Arc;
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

use crate::publish::kind_of;
use crate::publish::{KIND_EVENT, KIND_SNAPSHOT};
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
    ///
    /// Each line opened this way watches the connection on its own; a process with many
    /// lines opens them through one [`RemoteLines`], which watches it once for all.
    pub async fn open(
        client: async_nats::Client,
        site: &Site,
        agent: AgentId,
        device: DeviceId,
    ) -> Result<RemoteLine> {
        RemoteLines::new(client, site.clone())
            .open(agent, device)
            .await
    }

    async fn open_with(
        client: async_nats::Client,
        site: &Site,
        (agent, device): (AgentId, DeviceId),
        reconnects: watch::Receiver<u64>,
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
            (events, accepted),
            commands.clone(),
            reconnects,
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
    (mut events, mut accepted): (async_nats::Subscriber, async_nats::Subscriber),
    commands: broadcast::Sender<Arc<AcceptedCommand>>,
    mut reconnects: watch::Receiver<u64>,
) {
    reconnects.mark_unchanged();
    loop {
        tokio::select! {
            message = events.next() => {
                let Some(message) = message else { return };
                let kind = kind_of(message.headers.as_ref()).map(str::to_owned);
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
                let is_command = kind_of(message.headers.as_ref()) == Some(KIND_COMMAND);
                match from_json::<AcceptedCommand>("accepted command", &message.payload) {
                    Ok(command) if is_command => {
                        let _ = commands.send(Arc::new(command));
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(subject = %message.subject, %error, "dropped"),
                }
            }
            changed = reconnects.changed() => {
                if changed.is_err() {
                    // Nobody watches the connection any more: the lines are being closed.
                    return;
                }
                // Messages published while the connection was down are lost to a plain
                // subscription: the copy is taken again.
                tracing::info!(subject = %requests, "reconnected to NATS: the line's copy is taken again");
                reseed(&client, &requests, &replica).await;
            }
        }
    }
}

/// Opens the lines of a site's sessions for one process (a gateway), watching its
/// connection to NATS once for all of them: after a reconnect, every line's copy is
/// taken again. Cheap to clone; the watch stops when the last clone and every line
/// opened through it are dropped.
#[derive(Clone, Debug)]
pub struct RemoteLines {
    client: async_nats::Client,
    site: Site,
    reconnects: watch::Receiver<u64>,
}

impl RemoteLines {
    /// Lines of `site` over `client`. Must run inside a tokio runtime (it starts the
    /// watch of the connection).
    pub fn new(client: async_nats::Client, site: Site) -> Self {
        let statistics = client.statistics();
        let (tell, reconnects) = watch::channel(statistics.connects.load(Ordering::Relaxed));
        tokio::spawn(async move {
            // Every (re)connection counts.
            let mut check = tokio::time::interval(Duration::from_millis(250));
            loop {
                check.tick().await;
                if tell.is_closed() {
                    return;
                }
                let now = statistics.connects.load(Ordering::Relaxed);
                tell.send_if_modified(|seen| std::mem::replace(seen, now) != now);
            }
        });
        RemoteLines {
            client,
            site,
            reconnects,
        }
    }

    /// The site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Opens `agent`'s line at `device`: see [`RemoteLine::open`].
    pub async fn open(&self, agent: AgentId, device: DeviceId) -> Result<RemoteLine> {
        RemoteLine::open_with(
            self.client.clone(),
            &self.site,
            (agent, device),
            self.reconnects.clone(),
        )
        .await
    }
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
        // A link service that died as the request reached it never answers; its
        // successor's `link_down` says so sooner than the timeout.
        let accepted = tokio::select! {
            reply = next_reply(&mut replies, &inner.requests, ANSWER_TIMEOUT) => reply?,
            _ = inner.replica.link_goes_down() => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    "the link went down before the command was accepted; it may have reached the phone system: check the state",
                ))
            }
        };
        let id = match accepted {
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
                _ = replica.link_goes_down() => {
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
