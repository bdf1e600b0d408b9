//! The link service's side of a line: its session's events, accepted commands and
//! answers to requests, on NATS.

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use opencti_core::session::AcceptedCommand;
use opencti_core::{
    AgentId, AgentState, DeviceId, Error, ErrorKind, EventEnvelope, LineAccess, LinkState, Result,
    Snapshot, Timestamp,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::publish::kind_of;
use crate::publish::{EventPublisher, LineFeed, KIND_HEADER, KIND_SNAPSHOT};
use crate::subject::Site;
use crate::wire::{from_json, to_json, CommandReply, LineRequest, SnapshotReply};

/// [`KIND_HEADER`] of an accepted command on `opencti.<site>.commands.<agent>.<device>`:
/// the payload is the session's `AcceptedCommand` JSON (`{"id":7,"command":{...}}`).
pub const KIND_COMMAND: &str = "command";

/// Serves lines whose sessions run in this process to every other process of the site:
/// each line's events go to the stream (through an [`EventPublisher`]), its accepted
/// commands too, and requests on `opencti.<site>.requests.<agent>.<device>` (its
/// snapshot, a command) are answered by its session. The session stays the one owner of
/// the line's state; gateways keep a [`RemoteLine`](crate::RemoteLine) copy of it.
///
/// The stream must exist: call [`ensure_stream`](crate::ensure_stream) first.
#[derive(Clone, Debug)]
pub struct LineService {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    publisher: EventPublisher,
    site: Site,
}

impl LineService {
    /// A service for `site` over `client`.
    pub fn new(client: async_nats::Client, site: Site) -> Self {
        let jetstream = jetstream::new(client.clone());
        LineService {
            publisher: EventPublisher::new(jetstream.clone(), site.clone()),
            client,
            jetstream,
            site,
        }
    }

    /// The site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The line's last state as the site's stream has it, for a session that takes the
    /// line over from a link service that stopped
    /// (`SessionBuilder::take_over`): the last snapshot published, or where the last
    /// message is an event, the line's numbering up to it with an otherwise empty state
    /// (the take-over's resynchronisation then reads the rest from the switch). `None`
    /// when the stream holds nothing of the line.
    pub async fn last_published(
        &self,
        agent: &AgentId,
        device: &DeviceId,
    ) -> Result<Option<Snapshot>> {
        let subject = self.site.line_events(agent, device);
        let stream = self
            .jetstream
            .get_stream(self.site.stream_name())
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::LinkDown,
                    format!("could not open stream {}: {e}", self.site.stream_name()),
                )
            })?;
        let message = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None)
            }
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::LinkDown,
                    format!("could not read the last message on {subject}: {e}"),
                ))
            }
        };
        let kind = kind_of(Some(&message.headers)).map(str::to_owned);
        let snapshot = match kind.as_deref() {
            Some(KIND_SNAPSHOT) => from_json::<Snapshot>("snapshot", &message.payload)?,
            _ => {
                let event: EventEnvelope = from_json("event", &message.payload)?;
                Snapshot {
                    seq: event.seq,
                    agent: agent.clone(),
                    device: device.clone(),
                    link: LinkState::Down,
                    agent_state: AgentState::LoggedOut,
                    agent_state_since: None,
                    calls: Vec::new(),
                }
            }
        };
        if snapshot.agent != *agent || snapshot.device != *device {
            return Err(Error::new(
                ErrorKind::BadInput,
                format!("the last message on {subject} is of another line"),
            ));
        }
        Ok(Some(snapshot))
    }

    /// Serves `session`'s line until the returned handle is dropped. `epoch` (when the
    /// session started) tells its messages from an earlier session's of the same line.
    ///
    /// # Behavior
    ///
    /// - Requests of one line are taken one at a time, in the order they arrive: a
    ///   command is checked and handed to the switch before the next request is read, so
    ///   commands take effect in the order a desktop sent them.
    /// - A command gets two replies on the request's reply subject: `accepted` (or an
    ///   `error` at once) and later `confirmed` (or an `error`: refused by the switch,
    ///   timed out). A request without a reply subject, or that is not a request, is
    ///   logged and dropped; it never stops the line.
    pub async fn serve<S>(&self, session: S, epoch: Timestamp) -> Result<ServedLine>
    where
        S: LineAccess + Clone + 'static,
    {
        let events = session.subscribe();
        let from = session.snapshot().seq;
        self.serve_events(session, events, from, epoch).await
    }

    /// [`serve`](LineService::serve), publishing from `events`, a subscription taken
    /// earlier: with `SessionBuilder::start_with_events`, every event of a session that
    /// takes the line over is published, its first `link_down` and `resynced` among
    /// them. `from` is the `seq` of the last event before `events`.
    pub async fn serve_events<S>(
        &self,
        session: S,
        events: opencti_core::EventStream,
        from: u64,
        epoch: Timestamp,
    ) -> Result<ServedLine>
    where
        S: LineAccess + Clone + 'static,
    {
        let snapshot = session.snapshot();
        let (agent, device) = (snapshot.agent, snapshot.device);
        let subject = self.site.line_requests(&agent, &device);
        let requests = self.client.subscribe(subject.clone()).await.map_err(|e| {
            Error::new(
                ErrorKind::LinkDown,
                format!("could not subscribe to {subject}: {e}"),
            )
        })?;
        // Served once the server has the subscription, not merely once it is sent.
        self.client.flush().await.map_err(|e| {
            Error::new(
                ErrorKind::LinkDown,
                format!("could not subscribe to {subject}: {e}"),
            )
        })?;
        let commands = session.subscribe_commands();
        let feed = self
            .publisher
            .follow_events(session.clone(), events, from, epoch);
        let answering = tokio::spawn(answer(self.client.clone(), session, requests));
        let recording = tokio::spawn(record_commands(
            self.jetstream.clone(),
            self.site.clone(),
            (agent.clone(), device.clone()),
            epoch,
            commands,
        ));
        Ok(ServedLine {
            agent,
            device,
            feed,
            answering,
            recording,
        })
    }
}

/// One line a [`LineService`] serves: stops serving it when dropped.
#[must_use = "the line is served only while its ServedLine lives"]
#[derive(Debug)]
pub struct ServedLine {
    agent: AgentId,
    device: DeviceId,
    feed: LineFeed,
    answering: JoinHandle<()>,
    recording: JoinHandle<()>,
}

impl ServedLine {
    /// The line's agent.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// The line's device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The publishing of the line's events.
    pub fn feed(&self) -> &LineFeed {
        &self.feed
    }
}

impl Drop for ServedLine {
    fn drop(&mut self) {
        self.answering.abort();
        self.recording.abort();
    }
}

/// Answers the line's requests, one at a time.
async fn answer<S>(client: async_nats::Client, session: S, mut requests: async_nats::Subscriber)
where
    S: LineAccess + Clone + 'static,
{
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "a line request without a reply subject; dropped");
            continue;
        };
        let request: LineRequest = match from_json("line request", &message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(subject = %message.subject, %error, "not a line request");
                let refusal = to_json(&CommandReply::Error(error.to_body()));
                let _ = client.publish(reply, refusal.into()).await;
                continue;
            }
        };
        match request {
            LineRequest::Snapshot {} => {
                let answer = SnapshotReply::State {
                    snapshot: Box::new(session.snapshot()),
                    capabilities: session.capabilities(),
                };
                let _ = client.publish(reply, to_json(&answer).into()).await;
            }
            LineRequest::Command(command) => match session.submit(command).await {
                Err(error) => {
                    let refusal = to_json(&CommandReply::Error(error.to_body()));
                    let _ = client.publish(reply, refusal.into()).await;
                }
                Ok(pending) => {
                    let accepted = to_json(&CommandReply::Accepted(pending.id()));
                    let _ = client.publish(reply.clone(), accepted.into()).await;
                    // Awaited on its own: a slow confirmation does not hold up the next
                    // request.
                    let client = client.clone();
                    tokio::spawn(async move {
                        let outcome = CommandReply::outcome(pending.confirmed().await);
                        let _ = client.publish(reply, to_json(&outcome).into()).await;
                    });
                }
            },
        }
    }
}

/// Publishes every command the session accepts to the stream, for followers (a call
/// logger needs a wrap-up's disposition).
async fn record_commands(
    jetstream: jetstream::Context,
    site: Site,
    (agent, device): (AgentId, DeviceId),
    epoch: Timestamp,
    mut commands: broadcast::Receiver<Arc<AcceptedCommand>>,
) {
    let subject = site.line_commands(&agent, &device);
    loop {
        let accepted = match commands.recv().await {
            Ok(accepted) => accepted,
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                tracing::warn!(%agent, %device, skipped, "accepted commands were skipped on their way to the stream");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let id = site.command_msg_id(&agent, &device, epoch, accepted.id);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(KIND_HEADER, KIND_COMMAND);
        let published = jetstream
            .publish_with_headers(subject.clone(), headers, to_json(&*accepted).into())
            .await;
        let acked = match published {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = acked {
            tracing::warn!(%agent, %device, command = %accepted.id, %error, "an accepted command did not reach the stream");
        }
    }
}
