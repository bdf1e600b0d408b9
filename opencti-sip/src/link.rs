//! [`SipLink`]: one SIP endpoint (one socket, one set of transports) serving the lines
//! of many agents, each its own account with its own REGISTER: the
//! `opencti_core::SwitchLink` for SIP.
//!
//! The link owns the endpoint and watches the registrar (OPTIONS pings); each open line
//! ([`SipLine`]) owns its account's registration, its calls and its session's sink.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use opencti_core::{
    Capabilities, DeviceId, Dialable, Error, ErrorKind, EventSink, Line, LinkStatus, Request,
    Result, SwitchLink, SwitchState,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{SipAccount, SipConfig};
use crate::line::{self, stack_error, SipLine};
use crate::monitor::DeviceEvents;
use crate::registration::{refresh_after, register_once};
use crate::rsip::RsipEndpoint;
use crate::stack::SipEndpoint;

struct Shared {
    config: SipConfig,
    /// One line only, whatever its device: the config's account serves it
    /// ([`SipConnector`](crate::SipConnector)).
    single: bool,
    accounts: Mutex<HashMap<DeviceId, SipAccount>>,
    lines: Mutex<HashMap<DeviceId, SipLine>>,
    endpoint: OnceLock<Arc<dyn SipEndpoint>>,
    status: Arc<OnceLock<LinkStatus>>,
    /// Whether the registrar answers; the lines' refresh tasks wait while it does not.
    up: watch::Sender<bool>,
    stopped: AtomicBool,
    stop: CancellationToken,
}

impl Shared {
    fn accounts(&self) -> MutexGuard<'_, HashMap<DeviceId, SipAccount>> {
        // Nothing panics while holding these; a poisoned lock still guards a valid map.
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lines(&self) -> MutexGuard<'_, HashMap<DeviceId, SipLine>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_lines(&self) -> Vec<SipLine> {
        self.lines().values().cloned().collect()
    }
}

/// One SIP endpoint shared by the lines of many agents: share it between the sessions
/// of a contact centre with `opencti_core::SharedLink`, or run it for a single line
/// with [`SipConnector`](crate::SipConnector). Cheap to clone; clones share the link.
///
/// **Shared** by every line: the endpoint (one local address and port, UDP plus TCP on
/// the same port with [`Transport::Tcp`](crate::Transport::Tcp), the one TLS connection
/// to the registrar with [`Transport::Tls`](crate::Transport::Tls)), the transaction and
/// dialog layers, and the config's registrar, domain, timeouts, media and policies.
/// **Per line**: its [`SipAccount`] (user and digest credentials), its REGISTER and
/// refreshes, its calls with their RTP streams, and the agent state it keeps. A new
/// INVITE rings on the line whose account its Request-URI user (else its To user) names;
/// an INVITE for no open account gets 404.
///
/// **Up and down.** The link is up while the registrar answers: [`start`] binds the
/// transports and fails with `link_down` when the registrar answers neither an OPTIONS
/// ping nor, for lines opened before the start, their REGISTER within
/// `timeouts.register`; from then on OPTIONS every `timeouts.keepalive` watch it, and
/// when it stops answering every session hears `link_down`. When it answers again every
/// open line registers again, then every session hears `link_up` and resynchronises. A
/// line's own registration is that line's: [`open_line`] fails with `unauthorized` for
/// refused credentials (the other lines carry on), and a refresh that fails later while
/// the registrar answers is reported as `link_down` on that line's session only, then
/// `link_up` when a retry succeeds (`LinkStatus::line_down`, `LinkStatus::line_up`).
///
/// [`start`]: SwitchLink::start
/// [`open_line`]: SwitchLink::open_line
///
/// ```no_run
/// # async fn centre() -> opencti_core::Result<()> {
/// use std::sync::Arc;
/// use opencti_core::{AgentId, DeviceId, SharedLink};
/// use opencti_sip::{password_from_file, SipAccount, SipConfig, SipLink};
///
/// let config = SipConfig::new("10.0.0.5:5060".parse().expect("address"), "1001", password_from_file("/run/secrets/sip-1001")?);
/// let sip = SipLink::new(config)?; // serves device "1001" with the config's account
/// sip.add_account(DeviceId::new("1002")?, SipAccount::new("1002", password_from_file("/run/secrets/sip-1002")?))?;
/// let link = SharedLink::start(Arc::new(sip)).await?;
/// let alice = link.session(AgentId::new("alice")?, DeviceId::new("1001")?).start().await?;
/// let bob = link.session(AgentId::new("bob")?, DeviceId::new("1002")?).start().await?;
/// # drop((alice, bob)); Ok(()) }
/// ```
#[derive(Clone)]
pub struct SipLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SipLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipLink")
            .field("registrar", &self.shared.config.registrar)
            .field("local", &self.local_addr())
            .field("accounts", &self.shared.accounts().len())
            .field("lines", &self.shared.lines().len())
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl SipLink {
    /// A link with the shared settings of `config` (checked now; nothing is sent before
    /// `start`). The config's own account (`user`, `auth_user`, `password`) serves the
    /// device named like its user; add the other agents with
    /// [`add_account`](SipLink::add_account).
    pub fn new(config: SipConfig) -> Result<SipLink> {
        let link = SipLink::with(config, false)?;
        let device = DeviceId::new(link.shared.config.user.clone())?;
        let account = link.shared.config.account();
        link.shared.accounts().insert(device, account);
        Ok(link)
    }

    /// A link for one line whose account is the config's, whatever its device id.
    pub(crate) fn single(config: SipConfig) -> Result<SipLink> {
        SipLink::with(config, true)
    }

    fn with(config: SipConfig, single: bool) -> Result<SipLink> {
        config.validate()?;
        Ok(SipLink {
            shared: Arc::new(Shared {
                config,
                single,
                accounts: Mutex::new(HashMap::new()),
                lines: Mutex::new(HashMap::new()),
                endpoint: OnceLock::new(),
                status: Arc::new(OnceLock::new()),
                up: watch::channel(false).0,
                stopped: AtomicBool::new(false),
                stop: CancellationToken::new(),
            }),
        })
    }

    /// Adds the account that serves `device`'s line (checked now). One account per
    /// device and per SIP user; any time before the line opens.
    pub fn add_account(&self, device: DeviceId, account: SipAccount) -> Result<()> {
        self.shared.config.for_account(&account).validate()?;
        let mut accounts = self.shared.accounts();
        if accounts.contains_key(&device) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("device {device} has a SIP account on this link already"),
            ));
        }
        if let Some((other, _)) = accounts
            .iter()
            .find(|(_, a)| a.user.eq_ignore_ascii_case(&account.user))
        {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "the SIP user {} serves device {other} on this link already",
                    account.user
                ),
            ));
        }
        accounts.insert(device, account);
        Ok(())
    }

    /// The shared config (its account is the line of the device named like its user).
    pub fn config(&self) -> &SipConfig {
        &self.shared.config
    }

    /// The local SIP address every line uses, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.endpoint.get().map(|e| e.local_addr())
    }

    /// Whether the link is up: started, and the registrar answers.
    pub fn is_up(&self) -> bool {
        *self.shared.up.borrow()
    }

    /// Whether `device`'s line is open and its account registered now.
    pub fn is_registered(&self, device: &DeviceId) -> bool {
        self.shared
            .lines()
            .get(device)
            .is_some_and(|l| l.is_registered())
    }

    /// Watches other extensions (busy lamp field) through `device`'s line: subscribes,
    /// with that line's account, to the dialog event package (RFC 4235) of each and
    /// reports their state changes on the returned stream. Needs the line open and a
    /// registrar with a presence server.
    pub async fn monitor(
        &self,
        device: &DeviceId,
        extensions: &[Dialable],
    ) -> Result<DeviceEvents> {
        self.line(device)?.monitor(extensions).await
    }

    /// The one line of a link made with [`single`](SipLink::single).
    pub(crate) fn only_line(&self) -> Option<SipLine> {
        self.shared.lines().values().next().cloned()
    }

    fn line(&self, device: &DeviceId) -> Result<SipLine> {
        self.shared.lines().get(device).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("line {device} is not open on this SIP link"),
            )
        })
    }

    fn account_for(&self, device: &DeviceId) -> Result<SipAccount> {
        if self.shared.single {
            return Ok(self.shared.config.account());
        }
        self.shared.accounts().get(device).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("no SIP account for device {device}: add one with SipLink::add_account"),
            )
        })
    }

    /// Opens `line`'s account on the endpoint (once) and registers it.
    async fn register_line(&self, line: &SipLine, endpoint: &Arc<dyn SipEndpoint>) -> Result<()> {
        if line.stack().is_err() {
            let stack = endpoint
                .account(line.config())
                .map_err(|e| stack_error("opening the SIP account", e))?;
            line.attach(stack, self.shared.up.subscribe());
        }
        let stack = line.stack()?;
        let config = line.config();
        let registered = register_once(stack.as_ref(), config, config.register_expires).await?;
        line.set_refresh_at(tokio::time::Instant::now() + refresh_after(registered.expires));
        line.shared.registered.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn close_all(&self) {
        let lines: Vec<SipLine> = self.shared.lines().drain().map(|(_, l)| l).collect();
        for line in lines {
            line.close().await;
        }
    }
}

/// Watches the registrar with OPTIONS: reports the link down when it stops answering,
/// and, when it answers again, registers every open line again and reports it up.
async fn keep_alive(link: SipLink, endpoint: Arc<dyn SipEndpoint>, every: Duration) {
    let shared = &link.shared;
    let config = &shared.config;
    let mut up = true;
    let mut backoff = Duration::from_millis(250);
    loop {
        let wait = if up {
            every
        } else {
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
            backoff + jitter
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.stop.cancelled() => return,
        }
        let alive = tokio::time::timeout(config.timeouts.register, endpoint.ping())
            .await
            .unwrap_or(false);
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        match (up, alive) {
            (true, true) => {}
            (true, false) => {
                up = false;
                tracing::warn!(registrar = %config.registrar, "SIP: the registrar stopped answering");
                shared.up.send_replace(false);
                for line in shared.open_lines() {
                    line.shared.registered.store(false, Ordering::SeqCst);
                }
                if let Some(status) = shared.status.get() {
                    status.down(&format!(
                        "SIP: the registrar {} stopped answering",
                        config.registrar
                    ));
                }
            }
            (false, false) => backoff = (backoff * 2).min(config.timeouts.max_backoff),
            (false, true) => {
                up = true;
                backoff = Duration::from_millis(250);
                let mut registering = tokio::task::JoinSet::new();
                for line in shared.open_lines() {
                    let (link, endpoint) = (link.clone(), endpoint.clone());
                    registering.spawn(async move {
                        let result = link.register_line(&line, &endpoint).await;
                        (line, result)
                    });
                }
                let mut refused = Vec::new();
                while let Some(done) = registering.join_next().await {
                    if let Ok((line, Err(e))) = done {
                        refused.push((line, e));
                    }
                }
                tracing::info!(registrar = %config.registrar, "SIP: the registrar answers again");
                shared.up.send_replace(true);
                if let Some(status) = shared.status.get() {
                    status.up();
                }
                for (line, e) in refused {
                    // This line's account is refused although the registrar answers: its
                    // session only hears it; its refresh task retries.
                    line.set_refresh_at(tokio::time::Instant::now() + backoff);
                    line.report(false, &format!("SIP: {}", e.message()));
                }
            }
        }
    }
}

#[async_trait]
impl SwitchLink for SipLink {
    fn capabilities(&self) -> Capabilities {
        line::capabilities()
    }

    async fn start(&self, status: LinkStatus) -> Result<()> {
        if self.shared.status.set(status).is_err() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "this SIP link was started already",
            ));
        }
        let config = &self.shared.config;
        let tls = config.tls_trust()?;
        let endpoint: Arc<dyn SipEndpoint> = Arc::new(
            RsipEndpoint::start(config, tls)
                .await
                .map_err(|e| stack_error("starting the SIP stack", e))?,
        );
        let _ = self.shared.endpoint.set(endpoint.clone());
        let pending = self.shared.open_lines();
        let first = if pending.is_empty() {
            let alive = tokio::time::timeout(config.timeouts.register, endpoint.ping())
                .await
                .unwrap_or(false);
            if alive {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::LinkDown,
                    format!(
                        "the registrar {} did not answer OPTIONS within {:?}",
                        config.registrar, config.timeouts.register
                    ),
                ))
            }
        } else {
            // Lines opened before the start (a single line): their REGISTER is the
            // first word with the registrar, and its refusal the start's error.
            let mut first = Ok(());
            for line in &pending {
                if let Err(e) = self.register_line(line, &endpoint).await {
                    first = Err(e);
                    break;
                }
            }
            first
        };
        if let Err(e) = first {
            self.shared.stopped.store(true, Ordering::SeqCst);
            self.shared.stop.cancel();
            self.close_all().await;
            endpoint.shutdown();
            return Err(e);
        }
        tracing::debug!(local = %endpoint.local_addr(), "SIP: link up");
        self.shared.up.send_replace(true);
        if let Some(status) = self.shared.status.get() {
            status.up();
        }
        if let Some(every) = config.timeouts.keepalive {
            tokio::spawn(keep_alive(self.clone(), endpoint, every));
        }
        Ok(())
    }

    async fn open_line(&self, line: &Line, sink: EventSink) -> Result<()> {
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::LinkDown, "the SIP link is stopped"));
        }
        tracing::debug!(agent = %line.agent, device = %line.device, "SIP: opening a line");
        let account = self.account_for(&line.device)?;
        let opened = SipLine::new(
            self.shared.config.for_account(&account),
            sink,
            line.device.clone(),
            self.shared.status.clone(),
        );
        {
            let mut lines = self.shared.lines();
            if lines.contains_key(&line.device) || (self.shared.single && !lines.is_empty()) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("line {} is open on this SIP link already", line.device),
                ));
            }
            lines.insert(line.device.clone(), opened.clone());
        }
        // Before the start, or while the registrar is away, the line waits: the start
        // or the link's return registers it.
        let endpoint = match self.shared.endpoint.get() {
            Some(endpoint) if self.is_up() => endpoint.clone(),
            _ => return Ok(()),
        };
        if let Err(e) = self.register_line(&opened, &endpoint).await {
            self.shared.lines().remove(&line.device);
            opened.close().await;
            return Err(e);
        }
        Ok(())
    }

    async fn close_line(&self, line: &Line) -> Result<()> {
        let closed = self.shared.lines().remove(&line.device);
        if let Some(closed) = closed {
            closed.close().await;
        }
        Ok(())
    }

    async fn submit(&self, line: &Line, request: Request) -> Result<()> {
        self.line(&line.device)?.submit(request).await
    }

    async fn snapshot(&self, lines: &[Line]) -> Result<Vec<SwitchState>> {
        lines
            .iter()
            .map(|l| self.line(&l.device).map(|line| line.snapshot()))
            .collect()
    }

    async fn stop(&self) -> Result<()> {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.shared.stop.cancel();
        self.close_all().await;
        self.shared.up.send_replace(false);
        if let Some(endpoint) = self.shared.endpoint.get() {
            endpoint.shutdown();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use opencti_core::Secret;

    use super::*;

    fn config() -> SipConfig {
        SipConfig::new(
            "127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!()),
            "1001",
            Secret::new("secret"),
        )
    }

    fn device(d: &str) -> DeviceId {
        DeviceId::new(d).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn accounts_are_checked_and_named_by_device() {
        let link = SipLink::new(config()).unwrap_or_else(|e| panic!("{e}"));
        // The config's own account serves the device named like its user.
        assert_eq!(
            link.account_for(&device("1001")).map(|a| a.user).ok(),
            Some("1001".to_owned())
        );
        let missing = link.account_for(&device("1002")).map(|_| ());
        assert_eq!(missing.map_err(|e| e.kind()), Err(ErrorKind::Config));
        let bad = link.add_account(device("1002"), SipAccount::new("10 02", Secret::new("s")));
        assert_eq!(bad.map_err(|e| e.kind()), Err(ErrorKind::Config));
        let ok = link.add_account(device("1002"), SipAccount::new("1002", Secret::new("s")));
        assert!(ok.is_ok());
        let again = link.add_account(device("1002"), SipAccount::new("1003", Secret::new("s")));
        assert_eq!(again.map_err(|e| e.kind()), Err(ErrorKind::InvalidState));
        let same_user = link.add_account(device("desk"), SipAccount::new("1002", Secret::new("s")));
        assert_eq!(
            same_user.map_err(|e| e.kind()),
            Err(ErrorKind::InvalidState)
        );
        let text = format!("{link:?}");
        assert!(text.contains("accounts: 2"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn a_single_line_link_serves_any_device_with_the_config_account() {
        let link = SipLink::single(config()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            link.account_for(&device("desk-7")).map(|a| a.user).ok(),
            Some("1001".to_owned())
        );
        assert!(!link.is_up());
        assert!(link.local_addr().is_none());
    }
}
