//! Keeping a line registered: REGISTER with digest auth, refreshed before expiry, and
//! retried with backoff when a refresh fails. (Noticing a registrar that went away is
//! the link's: see [`crate::link`].)

use std::sync::atomic::Ordering;
use std::time::Duration;

use opencti_core::{Error, ErrorKind, Result};
use tokio::sync::watch;

use crate::config::SipConfig;
use crate::line::SipLine;
use crate::stack::{Registered, SipStack, StackError};

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

/// Keeps `line` registered until it closes: refreshes at about 80 % of the granted
/// lifetime. While the link is down (`link_up` false) it waits: the link registers every
/// line again when the registrar is back. A refresh refused or unanswered while the
/// link is up is this line's own loss: its session hears `link_down` (and `link_up` once
/// a retry, with exponential backoff, succeeds); the other lines carry on.
pub(crate) async fn keep_registered(line: SipLine, mut link_up: watch::Receiver<bool>) {
    let config = line.config().clone();
    let mut backoff = Duration::from_millis(250);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(line.refresh_at()) => {}
            () = line.shared.rescheduled.notified() => continue,
            () = line.shared.closed.cancelled() => return,
        }
        if !*link_up.borrow() {
            tokio::select! {
                changed = link_up.wait_for(|up| *up) => if changed.is_err() { return },
                () = line.shared.closed.cancelled() => return,
            }
            // The link registered the line again when it came back.
            continue;
        }
        if tokio::time::Instant::now() < line.refresh_at() {
            continue;
        }
        let Ok(stack) = line.stack() else {
            return;
        };
        match register_once(stack.as_ref(), &config, config.register_expires).await {
            Ok(registered) => {
                backoff = Duration::from_millis(250);
                line.set_refresh_at(
                    tokio::time::Instant::now() + refresh_after(registered.expires),
                );
                if !line.shared.registered.swap(true, Ordering::SeqCst) && !line.is_closed() {
                    tracing::info!(aor = %config.aor(), "SIP: registered again");
                    line.report(true, "");
                }
            }
            Err(e) => {
                if line.is_closed() {
                    return;
                }
                if *link_up.borrow() && line.shared.registered.swap(false, Ordering::SeqCst) {
                    tracing::warn!(aor = %config.aor(), reason = %e.message(), "SIP: registration lost");
                    line.report(false, &format!("SIP: {}", e.message()));
                }
                let jitter =
                    Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
                line.set_refresh_at(tokio::time::Instant::now() + backoff + jitter);
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
