#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod follow;
mod lease;
mod publish;
mod queues;
mod remote;
mod service;
mod stream;
mod subject;
mod wire;

pub use follow::{FollowFilter, Followed, Follower, LineMessage};
pub use lease::{leader, Lease};
pub use publish::{
    kind_of, EventPublisher, LineFeed, Published, RetryPolicy, KIND_EVENT, KIND_HEADER,
    KIND_SNAPSHOT,
};
pub use queues::{QueueFeed, RemoteQueues, KIND_QUEUE_EVENT, KIND_QUEUE_SNAPSHOT};
pub use remote::{RemoteLine, RemoteLines, ANSWER_TIMEOUT, OUTCOME_TIMEOUT};
pub use service::{LineService, ServedLine, KIND_COMMAND};
pub use stream::{ensure_stream, StreamLimits};
pub use subject::{decode_token, encode_token, Site};

/// The NATS client this crate is built on, re-exported so that callers use the same
/// version.
pub use async_nats;
