//! The CRM's call log written by one follower of a site's stream, for every gateway and
//! link service of the site.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::session::AcceptedCommand;
use opencti_core::{Error, ErrorKind, EventEnvelope, Result};
use opencti_nats::async_nats::jetstream::{self, consumer, kv};
use opencti_nats::{kind_of, Site, KIND_COMMAND, KIND_EVENT, KIND_SNAPSHOT};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::call_log::CallLog;
use crate::crm::Crm;

/// Where a follower stands: the last stream message it took, and its call log then.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    stream_seq: u64,
    log: CallLog,
}

/// A running call-log follower of a site: writes the CRM's call log once for every
/// gateway and link service of the site. Stops when dropped.
///
/// The follower reads every line's events and accepted commands from the site's stream
/// (`opencti.<site>.events.>` and `opencti.<site>.commands.>`) in stream order, runs
/// them through a [`CallLog`], and writes what it says to the CRM. After each message it
/// keeps its checkpoint, the stream position and the call log's state (calls under way,
/// dispositions pending), in the key-value bucket `opencti_<site>_followers` under its
/// name. A follower started again with the same name goes on from its checkpoint: a call
/// that ended while it was away is written when it comes back, and a message it had
/// written but not yet checkpointed is written again, which the CRM's writes absorb
/// (one entry a call).
#[derive(Debug)]
pub struct NatsCallLogger {
    task: JoinHandle<()>,
    position: watch::Receiver<u64>,
}

impl NatsCallLogger {
    /// Starts the follower `name` (1 to 64 ASCII letters, digits, `-` or `_`) of `site`,
    /// writing to `crm`, from its checkpoint if it has one, else from the oldest message
    /// the stream keeps. The stream must exist (`opencti_nats::ensure_stream`).
    pub async fn start(
        jetstream: &jetstream::Context,
        site: &Site,
        name: &str,
        crm: Arc<dyn Crm>,
    ) -> Result<NatsCallLogger> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::new(
                ErrorKind::BadInput,
                format!(
                    "follower name {name:?}: 1 to 64 ASCII letters, digits, `-` or `_` expected"
                ),
            ));
        }
        let unreachable = |what: &str, e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::LinkDown, format!("{what}: {e}"))
        };
        let checkpoints = jetstream
            .create_key_value(kv::Config {
                bucket: format!("opencti_{site}_followers"),
                description: format!("opencti: where the followers of site {site} stand"),
                history: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable("could not open the followers' bucket", &e))?;
        let checkpoint: Checkpoint = match checkpoints
            .get(name)
            .await
            .map_err(|e| unreachable("could not read the follower's checkpoint", &e))?
        {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::BadInput,
                    format!("the checkpoint of follower {name} is not one: {e}"),
                )
            })?,
            None => Checkpoint::default(),
        };
        let stream = jetstream
            .get_stream(site.stream_name())
            .await
            .map_err(|e| unreachable(&format!("stream {} is not there", site.stream_name()), &e))?;
        let deliver_policy = match checkpoint.stream_seq {
            0 => consumer::DeliverPolicy::All,
            seq => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subjects: vec![site.all_events(), site.all_commands()],
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable("could not follow the site's stream", &e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| unreachable("could not follow the site's stream", &e))?;
        let (position, watcher) = watch::channel(checkpoint.stream_seq);
        let task = tokio::spawn(follow(
            messages,
            site.clone(),
            name.to_owned(),
            crm,
            checkpoints,
            checkpoint,
            position,
        ));
        Ok(NatsCallLogger {
            task,
            position: watcher,
        })
    }

    /// The stream sequence of the last message taken and checkpointed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the follower has taken and checkpointed stream message `seq`, at most
    /// `timeout`; `false` if it has not.
    pub async fn reached(&self, seq: u64, timeout: Duration) -> bool {
        let mut position = self.position.clone();
        tokio::time::timeout(timeout, position.wait_for(|&at| at >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for NatsCallLogger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(
    mut messages: consumer::pull::Ordered,
    site: Site,
    name: String,
    crm: Arc<dyn Crm>,
    checkpoints: kv::Store,
    mut checkpoint: Checkpoint,
    position: watch::Sender<u64>,
) {
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // The ordered consumer recreates itself after a gap; this is only news.
                tracing::warn!(follower = %name, %error, "reading the site's stream");
                continue;
            }
        };
        let stream_seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                tracing::warn!(follower = %name, %error, "a message without its stream position; skipped");
                continue;
            }
        };
        let kind = kind_of(message.headers.as_ref()).map(str::to_owned);
        let subject = message.subject.as_str();
        let write = match kind.as_deref() {
            Some(KIND_EVENT) => match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(event) => checkpoint.log.event(&event),
                Err(error) => {
                    tracing::warn!(follower = %name, subject, %error, "not an event; skipped");
                    None
                }
            },
            Some(KIND_COMMAND) => {
                let line = site.parse_commands_subject(subject);
                let accepted = serde_json::from_slice::<AcceptedCommand>(&message.payload);
                match (line, accepted) {
                    (Ok((agent, device)), Ok(accepted)) => {
                        checkpoint.log.command(&agent, &device, &accepted);
                    }
                    _ => {
                        tracing::warn!(follower = %name, subject, "not an accepted command; skipped")
                    }
                }
                None
            }
            Some(KIND_SNAPSHOT) => {
                // The publisher fell behind and skipped events: a call that ended among
                // them may be missing from the log.
                tracing::warn!(follower = %name, subject, "events were skipped on this line; a call may be missing from the log");
                None
            }
            other => {
                tracing::warn!(follower = %name, subject, kind = ?other, "an unknown kind of message; skipped");
                None
            }
        };
        if let Some(write) = write {
            // Written before the checkpoint moves past it: a crash in between writes it
            // again, never loses it.
            let mut wait = Duration::from_millis(100);
            while let Err(error) = write.write_to(crm.as_ref()).await {
                tracing::warn!(follower = %name, %error, "could not write to the CRM; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
        checkpoint.stream_seq = stream_seq;
        let saved = match serde_json::to_vec(&checkpoint) {
            Ok(bytes) => checkpoints
                .put(&name, bytes.into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = saved {
            // Taken again from the last checkpoint after a restart; the writes repeat.
            tracing::warn!(follower = %name, %error, "could not keep the checkpoint");
        }
        position.send_replace(stream_seq);
    }
}
