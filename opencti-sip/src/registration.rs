//! Keeping the line registered: REGISTER with refresh before expiry, OPTIONS pings to
//! notice a registrar that went away or restarted, and backoff while it is gone.

use std::sync::Arc;
use std::time::Duration;

use opencti_core::{Error, ErrorKind, Result};

use crate::config::SipConfig;
use crate::stack::{Registered, SipStack, StackError};

/// Whether the line is registered; reported on every change.
pub(crate) trait LinkReport: Send + Sync {
    fn up(&self);
    fn down(&self, reason: String);
    fn stopped(&self) -> bool;
}

/// One REGISTER, bounded in time, with its failure as a connector error. The message
/// names the registrar and the user, never the password.
pub(crate) async fn register_once(
    stack: &dyn SipStack,
    config: &SipConfig,
    expires: u32,
) -> Result<Registered> {
    let who = format!("{} at {}", config.aor(), config.registrar);
    match tokio::time::timeout(config.timeouts.register, stack.register(expires)).await {
        Ok(Ok(registered)) => Ok(registered),
        Ok(Err(StackError::Unauthorized(code))) => Err(Error::new(
            ErrorKind::Unauthorized,
            format!("the registrar refused the credentials of {who} ({code} after the digest answer): check the user name and password"),
        )),
        Ok(Err(StackError::Status(code, reason))) => Err(Error::new(
            ErrorKind::Rejected,
            format!("the registrar refused to register {who}: {code} {reason}"),
        )),
        Ok(Err(e @ StackError::Unreachable(_))) => Err(Error::new(
            ErrorKind::LinkDown,
            format!("the registrar for {who} did not answer: {e}"),
        )),
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::Other,
            format!("registering {who} failed: {e}"),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::LinkDown,
            format!(
                "the registrar for {who} did not answer within {:?}",
                config.timeouts.register
            ),
        )),
    }
}

/// When to refresh a registration the registrar granted for `granted` seconds: at
/// about 80 %, and never later than 30 s before it runs out.
pub(crate) fn refresh_after(granted: u32) -> Duration {
    let granted = u64::from(granted.max(1));
    let at = (granted * 4 / 5).min(granted.saturating_sub(30).max(granted / 2));
    Duration::from_secs(at.max(1))
}

/// Keeps the line registered until `link.stopped()`. `first` is what the initial
/// REGISTER granted.
pub(crate) async fn keep_registered(
    stack: Arc<dyn SipStack>,
    config: SipConfig,
    first: Registered,
    link: Arc<dyn LinkReport>,
) {
    let mut up = true;
    let mut refresh_at = tokio::time::Instant::now() + refresh_after(first.expires);
    let mut backoff = Duration::from_millis(250);
    let ping_every = config.timeouts.keepalive;
    loop {
        if link.stopped() {
            return;
        }
        if up {
            // Sleep until the refresh, pinging the registrar on the way.
            let wake = match ping_every {
                Some(every) => (tokio::time::Instant::now() + every).min(refresh_at),
                None => refresh_at,
            };
            tokio::time::sleep_until(wake).await;
            if link.stopped() {
                return;
            }
            if tokio::time::Instant::now() < refresh_at {
                let alive = tokio::time::timeout(config.timeouts.register, stack.ping())
                    .await
                    .unwrap_or(false);
                if alive {
                    continue;
                }
                up = false;
                link.down(format!(
                    "the registrar {} stopped answering",
                    config.registrar
                ));
                continue;
            }
        }
        match register_once(stack.as_ref(), &config, config.register_expires).await {
            Ok(registered) => {
                backoff = Duration::from_millis(250);
                refresh_at = tokio::time::Instant::now() + refresh_after(registered.expires);
                if !up {
                    up = true;
                    link.up();
                }
            }
            Err(e) => {
                if up {
                    up = false;
                    link.down(e.message().to_owned());
                }
                let jitter =
                    Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(config.timeouts.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(10), Duration::from_secs(5));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
        for g in 1..5000 {
            assert!(refresh_after(g) < Duration::from_secs(u64::from(g)) || g == 1);
        }
    }
}
