//! One line of a [`SipLink`](crate::SipLink): one agent's account on the shared
//! endpoint, with its registration state, its calls, the agent state it keeps, and the
//! mapping of the session's commands onto what [`commands`](crate::commands) sends.
//! What the far end does comes back through [`dialogs`](crate::dialogs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use opencti_core::{
    Capabilities, ChosenState, Command, CommandId, CommandKind, DeviceId, Error, ErrorKind, Event,
    EventSink, LinkStatus, Request, Result, SwitchState,
};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::calls::{CallTable, SipCall};
use crate::config::{NotReadyPolicy, SipConfig};
use crate::monitor::{self, Monitor};
use crate::stack::{Admission, SipStack, StackError};

/// The line's own state, shared by the event task and the commands: the session's sink,
/// the locally kept agent state (a plain SIP line has no switch that knows it), and the
/// SIP dialogs behind the calls. Call and agent state for the desktop are the core
/// session's; this is only what the user agent needs to speak SIP.
pub(crate) struct LineState {
    pub(crate) sink: Option<EventSink>,
    pub(crate) agent: ChosenState,
    pub(crate) calls: CallTable,
}

/// One line: its account's config, its stack account, its calls and its session's sink.
pub(crate) struct Shared {
    /// The link's config with this line's account (user, auth user, password).
    pub(crate) config: SipConfig,
    /// The device the line's session names.
    device: DeviceId,
    /// The link's status, for this line's own trouble.
    status: Arc<OnceLock<LinkStatus>>,
    line: Mutex<LineState>,
    pub(crate) stack: OnceLock<Arc<dyn SipStack>>,
    pub(crate) monitor: Monitor,
    /// The line was closed.
    pub(crate) stopped: AtomicBool,
    /// The line's account is registered.
    pub(crate) registered: AtomicBool,
    /// When the registration is due for its refresh (none before the first REGISTER).
    refresh_at: Mutex<tokio::time::Instant>,
    /// Wakes the refresh task when `refresh_at` moves.
    pub(crate) rescheduled: Notify,
    /// Cancelled when the line closes: its tasks stop.
    pub(crate) closed: CancellationToken,
    next_call: AtomicU64,
    nonce: String,
}

impl Shared {
    pub(crate) fn line(&self) -> MutexGuard<'_, LineState> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LineState {
    pub(crate) fn emit(&self, event: Event, command: Option<CommandId>) {
        if let Some(sink) = &self.sink {
            match command {
                Some(id) => sink.emit_for(id, event),
                None => sink.emit(event),
            }
        }
    }
}

/// A refresh time far enough away to mean "not registered yet".
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A line: cheap to clone; clones share it.
#[derive(Clone)]
pub(crate) struct SipLine {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) fn stack_error(what: &str, e: StackError) -> Error {
    match e {
        StackError::Unreachable(why) => {
            Error::new(ErrorKind::LinkDown, format!("{what}: no answer ({why})"))
        }
        StackError::Unauthorized(code) => Error::new(
            ErrorKind::Unauthorized,
            format!("{what}: credentials refused ({code})"),
        ),
        StackError::Status(code, reason) => Error::new(
            ErrorKind::Rejected,
            format!("{what}: the far end answered {code} {reason}"),
        ),
        StackError::NoDialog => Error::new(
            ErrorKind::NotFound,
            format!("{what}: the call's dialog is gone"),
        ),
        StackError::Other(why) => Error::new(ErrorKind::Other, format!("{what}: {why}")),
    }
}

pub(crate) fn not_found(call: &opencti_core::CallId) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("call {call} is not (or no longer) on this SIP line"),
    )
}

impl SipLine {
    /// A line for the account in `config` (already checked), with `sink` for its events.
    pub(crate) fn new(
        config: SipConfig,
        sink: EventSink,
        device: DeviceId,
        status: Arc<OnceLock<LinkStatus>>,
    ) -> SipLine {
        SipLine {
            shared: Arc::new(Shared {
                config,
                device,
                status,
                line: Mutex::new(LineState {
                    sink: Some(sink),
                    agent: ChosenState::LoggedOut,
                    calls: CallTable::default(),
                }),
                stack: OnceLock::new(),
                monitor: Monitor::default(),
                stopped: AtomicBool::new(false),
                registered: AtomicBool::new(false),
                refresh_at: Mutex::new(tokio::time::Instant::now() + NEVER),
                rescheduled: Notify::new(),
                closed: CancellationToken::new(),
                next_call: AtomicU64::new(1),
                nonce: format!("{:06x}", fastrand::u32(..0x100_0000)),
            }),
        }
    }

    /// Gives the line its account on the endpoint, starts taking its events and keeps
    /// it registered (while `link_up`) once it has registered the first time.
    pub(crate) fn attach(&self, stack: Arc<dyn SipStack>, link_up: watch::Receiver<bool>) {
        let events = stack.take_events();
        if self.shared.stack.set(stack).is_err() {
            return;
        }
        if let Some(events) = events {
            tokio::spawn(crate::dialogs::run_events(self.clone(), events));
        }
        tokio::spawn(crate::registration::keep_registered(self.clone(), link_up));
    }

    /// Whether the line was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// When the registration is due for its refresh.
    pub(crate) fn refresh_at(&self) -> tokio::time::Instant {
        *self
            .shared
            .refresh_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Sets when the registration is due for its refresh.
    pub(crate) fn set_refresh_at(&self, at: tokio::time::Instant) {
        *self
            .shared
            .refresh_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = at;
        self.shared.rescheduled.notify_one();
    }

    pub(crate) fn config(&self) -> &SipConfig {
        &self.shared.config
    }

    /// Whether the line's account is registered now.
    pub(crate) fn is_registered(&self) -> bool {
        self.shared.registered.load(Ordering::SeqCst)
    }

    /// Watches other extensions (busy lamp field): subscribes to the dialog event
    /// package (RFC 4235) of each and reports their state changes on the returned
    /// stream. Needs the line open on a started link and a registrar with a presence
    /// server.
    pub(crate) async fn monitor(
        &self,
        extensions: &[opencti_core::Dialable],
    ) -> Result<monitor::DeviceEvents> {
        let stack = self.stack()?;
        let events = self.shared.monitor.subscribe();
        for ext in extensions {
            let resource = self.shared.config.target_uri(ext);
            self.shared.monitor.watch(&resource, ext.as_str());
            stack
                .subscribe(&resource, "dialog", "application/dialog-info+xml", 600)
                .await
                .map_err(|e| stack_error(&format!("SUBSCRIBE to {resource}"), e))?;
        }
        Ok(events)
    }

    pub(crate) fn stack(&self) -> Result<Arc<dyn SipStack>> {
        match self.shared.stack.get() {
            Some(s) if !self.shared.stopped.load(Ordering::SeqCst) => Ok(s.clone()),
            _ => Err(Error::new(
                ErrorKind::LinkDown,
                format!(
                    "the SIP line {} is not started (or closed)",
                    self.shared.config.aor()
                ),
            )),
        }
    }

    pub(crate) fn up_stack(&self) -> Result<Arc<dyn SipStack>> {
        let stack = self.stack()?;
        if !self.is_registered() {
            return Err(Error::new(
                ErrorKind::LinkDown,
                format!("the line {} is not registered", self.shared.config.aor()),
            ));
        }
        Ok(stack)
    }

    fn admission_for(&self, state: &ChosenState) -> Admission {
        match (state, &self.shared.config.not_ready) {
            (ChosenState::NotReady { .. }, NotReadyPolicy::Busy) => Admission::Busy,
            (ChosenState::NotReady { .. }, NotReadyPolicy::Divert(to)) => {
                Admission::Divert(self.shared.config.target_uri(to))
            }
            _ => Admission::Offer,
        }
    }

    fn set_agent(&self, id: CommandId, state: ChosenState) -> Result<()> {
        let stack = self.stack()?;
        stack.set_admission(self.admission_for(&state));
        let mut desk = self.shared.line();
        desk.agent = state.clone();
        desk.emit(
            Event::AgentStateChanged {
                state: state.to_agent_state(),
            },
            Some(id),
        );
        Ok(())
    }

    /// This line alone cannot be served (`up` false: its registration was lost while
    /// the registrar answers) or is served again: its session alone hears it.
    pub(crate) fn report(&self, up: bool, reason: &str) {
        if let Some(status) = self.shared.status.get() {
            if up {
                status.line_up(&self.shared.device);
            } else {
                status.line_down(&self.shared.device, reason);
            }
        }
    }

    pub(crate) fn new_call_id(&self) -> Result<opencti_core::CallId> {
        let n = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        opencti_core::CallId::new(format!("sip-{}-{n}", self.shared.nonce))
    }

    /// Hands a checked command to the SIP side.
    pub(crate) async fn submit(&self, request: Request) -> Result<()> {
        let id = request.id;
        match &request.command {
            Command::Login {} => self.set_agent(id, ChosenState::NotReady { reason: None }),
            Command::Logout { .. } => self.set_agent(id, ChosenState::LoggedOut),
            Command::SetAgentState { state, after_call } => {
                if *after_call {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the SIP line cannot queue a state change until after the call",
                    ));
                }
                if *state == ChosenState::LoggedOut {
                    return Err(Error::new(
                        ErrorKind::BadInput,
                        "set_agent_state takes ready or not_ready; use logout",
                    ));
                }
                self.set_agent(id, state.clone())
            }
            Command::MakeCall { to, data } => self.place_call(id, to, None, data.clone()).await,
            Command::Answer { call } => self.answer(id, call).await,
            Command::Reject { call } => self.reject(id, call).await,
            Command::Hangup { call } => self.hangup(id, call).await,
            Command::Hold { call } => self.rehold(id, call, true).await,
            Command::Retrieve { call } => self.rehold(id, call, false).await,
            Command::SendDtmf { call, digits } => self.send_dtmf(id, call, digits).await,
            Command::BlindTransfer { call, to } => self.blind_transfer(id, call, to).await,
            Command::Consult { call, to } => self.consult(id, call, to).await,
            Command::CompleteTransfer { call } => self.complete_transfer(id, call).await,
            Command::SetCallData { call, data } => {
                // A plain SIP line keeps call data on the desk only.
                let mut desk = self.shared.line();
                let c = desk.calls.by_id(call).ok_or_else(|| not_found(call))?;
                c.data.merge(data)?;
                desk.emit(
                    Event::CallDataChanged {
                        call: call.clone(),
                        data: data.clone(),
                    },
                    Some(id),
                );
                Ok(())
            }
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!("the SIP connector does not support {}", other.kind()),
            )),
        }
    }

    /// The line's own view: the agent state it keeps and its calls.
    pub(crate) fn snapshot(&self) -> SwitchState {
        let desk = self.shared.line();
        SwitchState {
            agent: desk.agent.to_agent_state(),
            calls: desk.calls.iter().map(SipCall::to_call).collect(),
            withheld: Vec::new(),
        }
    }

    /// Closes the line: hangs up its calls, unregisters its account (expires 0) and
    /// stops routing to it. Nothing more goes into its sink.
    pub(crate) async fn close(&self) {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.closed.cancel();
        let calls = self.shared.line().calls.drain();
        self.shared.line().sink = None;
        if let Some(stack) = self.shared.stack.get().cloned() {
            for call in calls {
                let _ = tokio::time::timeout(Duration::from_secs(2), stack.hangup(&call.key)).await;
            }
            if self.shared.registered.swap(false, Ordering::SeqCst) {
                let _ = tokio::time::timeout(Duration::from_secs(2), stack.register(0)).await;
            }
            stack.close();
        }
        self.shared.registered.store(false, Ordering::SeqCst);
    }
}

/// What a SIP line can do.
pub(crate) fn capabilities() -> Capabilities {
    use CommandKind::*;
    Capabilities::none()
        .with(Login)
        .with(Logout)
        .with(SetAgentState)
        .with(MakeCall)
        .with(Answer)
        .with(Reject)
        .with(Hangup)
        .with(Hold)
        .with(Retrieve)
        .with(SendDtmf)
        .with(BlindTransfer)
        .with(Consult)
        .with(CompleteTransfer)
        .with(SetCallData)
        .with_next_state_after_call(false)
        .with_wrap_up(false)
}
