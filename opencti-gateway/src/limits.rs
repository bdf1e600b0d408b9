//! Limits that protect the gateway from a client, and a client from the others.

use std::time::Duration;

use tokio::time::Instant;

/// Per-connection limits.
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            requests_per_second: 20.0,
            burst: 40.0,
            auth_timeout: Duration::from_secs(10),
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
