//! Which link service of a site leads: a lease in a JetStream key-value bucket.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use opencti_core::{Error, ErrorKind, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::subject::Site;

/// The key of the lease in its bucket.
const KEY: &str = "leader";

/// The lease that makes one link service of a site the leader: the one that runs the
/// link to the phone system and the lines' sessions. Others wait in
/// [`acquire`](Lease::acquire) as standbys.
///
/// The lease is a key in the bucket `opencti_<site>_lease`, whose entries live `ttl`
/// after their last write. The leader writes it again every third of `ttl`, each write
/// conditional on the revision it last wrote, so two holders can never both renew. If
/// the leader dies its entry expires after at most `ttl`, and a standby's next attempt
/// (every quarter of `ttl`) creates it: a standby takes over within about `1.25 × ttl`
/// of the leader's last renewal. A leader that cannot renew for `ttl` (NATS out of
/// reach, or another holder's entry in place) has lost the lease
/// ([`lost`](Lease::lost)) and must stop serving.
#[derive(Debug)]
pub struct Lease {
    bucket: kv::Store,
    holder: String,
    revision: watch::Receiver<Option<u64>>,
    renewing: JoinHandle<()>,
}

impl Lease {
    /// Waits until `holder` (a name for this process, shown to the others) holds the
    /// site's lease, then keeps it renewed. `ttl` at least 300 ms.
    pub async fn acquire(
        jetstream: &jetstream::Context,
        site: &Site,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let ttl = ttl.max(Duration::from_millis(300));
        let bucket = jetstream
            .create_key_value(kv::Config {
                bucket: bucket_name(site),
                description: format!("opencti: which link service of site {site} leads"),
                history: 1,
                max_age: ttl,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable_nats(&format!("the lease bucket of site {site}"), &e))?;
        let mut logged = false;
        let revision = loop {
            match bucket.create(KEY, holder.to_owned().into()).await {
                Ok(revision) => break revision,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if !logged {
                        let leader = leader_in(&bucket).await.unwrap_or_default();
                        tracing::info!(%site, holder, leader, "standing by: another link service leads");
                        logged = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(%site, holder, error = %e, "could not try the lease; trying again");
                }
            }
            tokio::time::sleep(ttl / 4).await;
        };
        tracing::info!(%site, holder, "leading: this link service holds the lease");
        let (set, revision) = watch::channel(Some(revision));
        let renewing = tokio::spawn(renew(bucket.clone(), holder.to_owned(), ttl, set));
        Ok(Lease {
            bucket,
            holder: holder.to_owned(),
            revision,
            renewing,
        })
    }

    /// This holder's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lease is still held.
    pub fn is_held(&self) -> bool {
        self.revision.borrow().is_some()
    }

    /// Resolves when the lease is lost.
    pub async fn lost(&self) {
        let mut revision = self.revision.clone();
        let _ = revision.wait_for(Option::is_none).await;
    }

    /// Gives the lease up now, so that a standby takes over at once rather than after the
    /// lease expires.
    pub async fn release(self) {
        self.renewing.abort();
        let held = *self.revision.borrow();
        if let Some(revision) = held {
            if let Err(error) = self
                .bucket
                .delete_expect_revision(KEY, Some(revision))
                .await
            {
                tracing::warn!(holder = %self.holder, %error, "could not give the lease up; it expires on its own");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

/// Who holds the site's lease now, if anyone.
pub async fn leader(jetstream: &jetstream::Context, site: &Site) -> Result<Option<String>> {
    // No bucket yet: no link service has led this site.
    let bucket_stream = format!("KV_{}", bucket_name(site));
    if let Err(e) = jetstream.get_stream(&bucket_stream).await {
        if let jetstream::context::GetStreamErrorKind::JetStream(error) = e.kind() {
            if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND {
                return Ok(None);
            }
        }
        return Err(unreachable_nats(
            &format!("the lease bucket of site {site}"),
            &e,
        ));
    }
    let bucket = jetstream
        .get_key_value(bucket_name(site))
        .await
        .map_err(|e| unreachable_nats(&format!("the lease bucket of site {site}"), &e))?;
    Ok(leader_in(&bucket).await)
}

async fn leader_in(bucket: &kv::Store) -> Option<String> {
    let entry = bucket.entry(KEY).await.ok()??;
    (entry.operation == kv::Operation::Put)
        .then(|| String::from_utf8_lossy(&entry.value).into_owned())
}

fn bucket_name(site: &Site) -> String {
    format!("opencti_{site}_lease")
}

fn unreachable_nats(what: &str, error: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::LinkDown,
        format!("could not open {what} on NATS: {error}"),
    )
}

/// Writes the lease again every third of `ttl`; gives up (and says so) when no write
/// succeeded for `ttl`, or another holder's entry is in place.
async fn renew(bucket: kv::Store, holder: String, ttl: Duration, held: watch::Sender<Option<u64>>) {
    let mut last_write = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let Some(revision) = *held.borrow() else {
            return;
        };
        match bucket.update(KEY, holder.clone().into(), revision).await {
            Ok(next) => {
                held.send_replace(Some(next));
                last_write = tokio::time::Instant::now();
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::error!(holder, "the lease was taken over by another link service");
                held.send_replace(None);
                return;
            }
            Err(e) => {
                if last_write.elapsed() >= ttl {
                    tracing::error!(holder, error = %e, "the lease could not be renewed in time; it is lost");
                    held.send_replace(None);
                    return;
                }
                tracing::warn!(holder, error = %e, "could not renew the lease; trying again");
            }
        }
    }
}
