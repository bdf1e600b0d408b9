//! Serving the router alone: one task per TCP connection, HTTP/1.1 (over TLS if asked)
//! with a deadline for the TLS handshake and the request's headers and for idling, and a
//! cap on connections open at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::limits::Limits;
use crate::tls::{ServedOverTls, Tls};

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Tls>,
) -> std::io::Result<()> {
    let acceptor = tls.map(|tls| tls.acceptor());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_warning: Option<Instant> = None;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // wait a little rather than spin.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // At the cap: close at once. One warning a second is enough under a flood.
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    %peer,
                    max_connections = limits.max_connections,
                    "connection refused: too many connections open"
                );
                last_warning = Some(Instant::now());
            }
            drop(tcp);
            continue;
        };
        // Events are small and must go out at once: without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs hold some of them back by 40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        tokio::spawn(connection(
            tcp,
            peer,
            slot,
            router.clone(),
            limits,
            acceptor.clone(),
        ));
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    router: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let activity = LastActivity::new();
    // The slot goes with the socket: an upgraded WebSocket keeps it until it closes. TLS
    // goes over the tracked socket, so its records count as activity.
    let io = Tracked {
        inner: tcp,
        activity: activity.clone(),
        _slot: slot,
    };
    let Some(acceptor) = tls else {
        return http(io, peer, router, limits, activity, false).await;
    };
    // The handshake has the headers' deadline: a client that opens a socket and never
    // completes it is closed, as one that never sends its headers.
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => http(stream, peer, router, limits, activity, true).await,
        // Plain HTTP sent to the TLS port ends here too: no HTTP response, the socket
        // is closed.
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP/1.1 on `io` until the client is done, the connection idles out, or it is
/// handed over to a WebSocket.
async fn http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    activity: LastActivity,
    over_tls: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if over_tls {
            request.extensions_mut().insert(ServedOverTls);
        }
        tower_service::Service::call(&mut router.clone(), request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                // Done, or handed over to a WebSocket.
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "HTTP connection closed");
                }
                return;
            }
            _ = tokio::time::sleep_until(activity.last() + limits.idle_timeout) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    tracing::debug!(%peer, "idle HTTP connection closed");
                    return;
                }
            }
        }
    }
}

/// When a connection last read or wrote: noted by its socket, read by its task.
#[derive(Clone)]
struct LastActivity {
    opened: Instant,
    /// Milliseconds from `opened` to the last read or write.
    since_opened: Arc<AtomicU64>,
}

impl LastActivity {
    fn new() -> Self {
        LastActivity {
            opened: Instant::now(),
            since_opened: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let since = self.opened.elapsed().as_millis();
        self.since_opened
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.since_opened.load(Ordering::Relaxed))
    }
}

/// A socket that notes when it last read or wrote, and holds its connection's slot.
struct Tracked {
    inner: TcpStream,
    activity: LastActivity,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
