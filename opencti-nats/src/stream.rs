//! The site's JetStream stream: what it keeps and for how long.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use opencti_core::{Error, ErrorKind, Result};

use crate::subject::Site;

/// The limits of a site's stream. The defaults keep a week of events, at most 1 GiB, on
/// disk, dropping the oldest first, and drop a republished message for two minutes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamLimits {
    /// How long a message is kept.
    pub max_age: Duration,
    /// How many bytes the stream may hold; beyond that the oldest messages go.
    pub max_bytes: i64,
    /// How long the server remembers a `Nats-Msg-Id` to drop a republished copy: longer
    /// than the longest outage a publisher retries through.
    pub duplicate_window: Duration,
    /// Copies kept in a cluster (1 on a single server).
    pub replicas: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
        }
    }
}

impl StreamLimits {
    /// The JetStream configuration of `site`'s stream: `OPENCTI_<site>` over
    /// the site's events, accepted commands and queues
    /// ([`Site::stream_subjects`]), file storage, discard old.
    pub fn stream_config(&self, site: &Site) -> stream::Config {
        stream::Config {
            name: site.stream_name(),
            description: Some(format!("opencti: the events of site {site}")),
            subjects: site.stream_subjects(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Creates `site`'s stream, or updates its limits if it exists: safe to call from every
/// publisher and follower at start.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    site: &Site,
    limits: &StreamLimits,
) -> Result<stream::Stream> {
    let config = limits.stream_config(site);
    jetstream
        .create_or_update_stream(config)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("could not create or update stream {}", site.stream_name()),
            )
            .with_source(e)
        })?;
    jetstream.get_stream(site.stream_name()).await.map_err(|e| {
        Error::new(
            ErrorKind::Other,
            format!("could not open stream {}", site.stream_name()),
        )
        .with_source(e)
    })
}
