//! Following a site's events with a durable JetStream consumer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use opencti_core::{AgentId, DeviceId, Error, ErrorKind, EventEnvelope, Result, Snapshot};

use crate::publish::kind_of;
use crate::publish::KIND_SNAPSHOT;
use crate::subject::{check_name, Site};

/// Which events a follower reads.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FollowFilter {
    /// Every line of the site.
    Site,
    /// Every line of one agent.
    Agent(AgentId),
}

/// What a line's subject carried.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LineMessage {
    /// One canonical event.
    Event(EventEnvelope),
    /// The line's state, published when the publisher had to skip events: events with
    /// a `seq` above the snapshot's follow it.
    Snapshot(Snapshot),
}

/// One message a [`Follower`] read.
#[derive(Clone, Debug, PartialEq)]
pub struct Followed {
    /// The agent, from the subject.
    pub agent: AgentId,
    /// The device, from the subject.
    pub device: DeviceId,
    /// The message's sequence number in the site's stream.
    pub stream_seq: u64,
    /// The payload, decoded.
    pub message: LineMessage,
}

/// A durable follower of a site's events: a JetStream pull consumer known by its name,
/// read as a `Stream` of [`Followed`] messages.
///
/// # Behavior
///
/// - A new durable name starts at the oldest message the stream keeps; the same name
///   again resumes after the last message it handed out.
/// - Messages are read one at a time, and each is acknowledged (and the server's receipt
///   awaited) as it is handed out: none is held unacknowledged while the caller is
///   away, so a follower dropped between two reads leaves nothing behind to be
///   delivered again later or out of order.
/// - A message that does not decode is terminated (the server will not deliver it
///   again), logged, and yields an error naming its subject; the stream carries on.
/// - While the server is unreachable the follower logs and retries; the stream ends
///   only when dropped.
pub struct Follower {
    inner: BoxStream<'static, Result<Followed>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

impl Follower {
    /// Opens (or creates) the durable consumer `name` on `site`'s stream, which must
    /// exist (see [`ensure_stream`](crate::ensure_stream)). `name`: 1 to 64 ASCII
    /// letters, digits, `-` or `_`. A consumer of that name with another filter is an
    /// error.
    pub async fn durable(
        jetstream: &jetstream::Context,
        site: &Site,
        name: &str,
        filter: FollowFilter,
    ) -> Result<Follower> {
        check_name("durable consumer", name)?;
        let filter_subject = match &filter {
            FollowFilter::Site => site.all_events(),
            FollowFilter::Agent(agent) => site.agent_events(agent),
        };
        let stream = jetstream
            .get_stream(site.stream_name())
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("stream {} is not there", site.stream_name()),
                )
                .with_source(e)
            })?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    filter_subject: filter_subject.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("could not open durable consumer {name}"),
                )
                .with_source(e)
            })?;
        let configured = &consumer.cached_info().config.filter_subject;
        if configured != &filter_subject {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "durable consumer {name} follows {configured}, not {filter_subject}; use another name"
                ),
            ));
        }
        let reader = Reader {
            consumer,
            site: site.clone(),
            name: name.to_owned(),
        };
        let inner = futures::stream::unfold(reader, |reader| async move {
            let item = reader.next().await;
            Some((item, reader))
        })
        .boxed();
        Ok(Follower { inner })
    }
}

impl Stream for Follower {
    type Item = Result<Followed>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// How long one pull request waits on the server for a message.
const PULL_WAIT: Duration = Duration::from_secs(5);
/// The wait after a failed pull before the next one.
const RETRY_WAIT: Duration = Duration::from_millis(250);

struct Reader {
    consumer: consumer::PullConsumer,
    site: Site,
    name: String,
}

impl Reader {
    /// The next message, acknowledged; or the error of one that does not decode.
    async fn next(&self) -> Result<Followed> {
        loop {
            let Some(message) = self.pull().await else {
                continue;
            };
            let subject = message.subject.to_string();
            let decoded = self.decode(&message);
            match decoded {
                Ok(followed) => match message.double_ack().await {
                    Ok(()) => return Ok(followed),
                    // The server will deliver it again once its ack wait has passed.
                    Err(error) => tracing::warn!(
                        consumer = %self.name, %subject, %error,
                        "could not acknowledge a message; it will come again"
                    ),
                },
                Err(error) => {
                    tracing::warn!(
                        consumer = %self.name, %subject, %error,
                        "a message that does not decode is terminated and skipped"
                    );
                    if let Err(term) = message.ack_with(jetstream::AckKind::Term).await {
                        tracing::warn!(consumer = %self.name, %subject, error = %term, "could not terminate it");
                    }
                    return Err(error);
                }
            }
        }
    }

    /// One message, or `None` when none came in time or the server could not be asked.
    async fn pull(&self) -> Option<jetstream::Message> {
        let batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(PULL_WAIT)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(consumer = %self.name, %error, "pull failed; retrying");
                tokio::time::sleep(RETRY_WAIT).await;
                return None;
            }
        };
        match batch.next().await {
            Some(Ok(message)) => Some(message),
            Some(Err(error)) => {
                tracing::warn!(consumer = %self.name, %error, "pull failed; retrying");
                tokio::time::sleep(RETRY_WAIT).await;
                None
            }
            None => None,
        }
    }

    fn decode(&self, message: &jetstream::Message) -> Result<Followed> {
        let subject = message.subject.as_str();
        let (agent, device) = self.site.parse_line_subject(subject)?;
        let stream_seq = message.info().map(|info| info.stream_sequence).unwrap_or(0);
        let kind = kind_of(message.headers.as_ref()).map(str::to_owned);
        let bad = |what: &str, e: serde_json::Error| {
            Error::new(
                ErrorKind::BadInput,
                format!("the message {stream_seq} on {subject} is not {what}: {e}"),
            )
        };
        let message = if kind.as_deref() == Some(KIND_SNAPSHOT) {
            let snapshot: Snapshot =
                serde_json::from_slice(&message.payload).map_err(|e| bad("a snapshot", e))?;
            LineMessage::Snapshot(snapshot)
        } else {
            let envelope: EventEnvelope =
                serde_json::from_slice(&message.payload).map_err(|e| bad("an event", e))?;
            if envelope.agent != agent || envelope.device != device {
                return Err(Error::new(
                    ErrorKind::BadInput,
                    format!(
                        "the message {stream_seq} on {subject} is an event of {} at {}, not of its subject's line",
                        envelope.agent, envelope.device
                    ),
                ));
            }
            LineMessage::Event(envelope)
        };
        Ok(Followed {
            agent,
            device,
            stream_seq,
            message,
        })
    }
}
