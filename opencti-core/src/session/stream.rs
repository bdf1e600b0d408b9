//! The stream of events a subscriber reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;

use crate::event::EventEnvelope;
use crate::{Error, ErrorKind, Result};

/// Every event of a session from the moment of subscribing, in `seq` order.
///
/// Items are `Ok(event)`, or one `Err` of kind [`ErrorKind::Lagged`] when the subscriber
/// fell so far behind that events were skipped: the error says how many, and the stream
/// goes on with the oldest event still held. Re-read the session's snapshot then. The
/// stream ends when the session is dropped.
#[must_use = "streams do nothing unless polled"]
pub struct EventStream {
    inner: BoxStream<'static, Result<Arc<EventEnvelope>>>,
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<Arc<EventEnvelope>>) -> Self {
        EventStream {
            inner: following(receiver),
        }
    }

    pub(crate) fn from_boxed(inner: BoxStream<'static, Result<Arc<EventEnvelope>>>) -> Self {
        EventStream { inner }
    }
}

/// A broadcast receiver as a stream that says how much it skipped when it fell behind.
pub(crate) fn following<T: Send + Sync + 'static>(
    receiver: broadcast::Receiver<Arc<T>>,
) -> BoxStream<'static, Result<Arc<T>>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(item) => Some((Ok(item), receiver)),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Some((
                Err(Error::new(
                    ErrorKind::Lagged,
                    format!(
                        "this subscriber fell behind and {} events were skipped; re-read the snapshot",
                        skipped
                    ),
                )),
                receiver,
            )),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}

impl Stream for EventStream {
    type Item = Result<Arc<EventEnvelope>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}
