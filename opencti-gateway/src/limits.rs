//! Limits that protect the gateway from a client, and a client from the others.

use std::time::Duration;

use tokio::time::Instant;

/// Limits per connection, and on connections: how long a request may take to arrive, how
/// long a connection may idle, how many may be open at once.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest message accepted from a browser, in bytes (default 64 KiB).
    pub max_message_bytes: usize,
    /// Sustained requests per second (default 20).
    pub requests_per_second: f64,
    /// Requests allowed in a burst (default 40).
    pub burst: f64,
    /// How long a new connection may take to authenticate (default 10 s).
    pub auth_timeout: Duration,
    /// How long a client may take to send a request's headers, counted from when the
    /// gateway starts waiting for them (default 10 s). A connection that sends nothing,
    /// or a byte now and then, is closed when it runs out.
    pub header_read_timeout: Duration,
    /// How long an HTTP connection may stay open with nothing read or written, kept alive
    /// between requests (default 60 s). A WebSocket, once upgraded, is not bound by it.
    pub idle_timeout: Duration,
    /// Connections open at once, WebSockets included (default 1,024). Beyond it a new
    /// connection is closed at once, without a response.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            requests_per_second: 20.0,
            burst: 40.0,
            auth_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// Sets the request rate and burst.
    pub fn with_rate(mut self, per_second: f64, burst: f64) -> Self {
        self.requests_per_second = per_second.max(0.001);
        self.burst = burst.max(1.0);
        self
    }

    /// Sets the largest message accepted.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes.max(64);
        self
    }

    /// Sets how long a request's headers may take to arrive, and how long an HTTP
    /// connection may idle.
    #[must_use]
    pub fn with_connection_timeouts(mut self, header_read: Duration, idle: Duration) -> Self {
        self.header_read_timeout = header_read.max(Duration::from_millis(1));
        self.idle_timeout = idle.max(Duration::from_millis(1));
        self
    }

    /// Sets how many connections may be open at once (at least one).
    #[must_use]
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }
}

/// A token bucket: `burst` requests at once, refilled at `rate` a second.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(limits: &Limits) -> Self {
        Bucket {
            tokens: limits.burst,
            rate: limits.requests_per_second,
            burst: limits.burst,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
