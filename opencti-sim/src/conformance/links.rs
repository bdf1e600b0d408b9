//! The link cases: two agents' sessions on one [`SharedLink`], calling each other,
//! transferring to each other, and living through the link dropping while both are busy.
//!
//! A backend gives a [`LinkFixture`]: the shared link, two lines on it, and a
//! [`LinkStimulus`] that knows each device's number and can cut the link and let it come
//! back (the switch goes on meanwhile).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use opencti_core::{
    AgentId, CallData, CallId, CallState, Command, CommandKind, DesktopInterface, DeviceId,
    Dialable, ErrorKind, EventEnvelope, EventStream, Result, Session, SharedLink,
};
use tokio::sync::Mutex;

use super::{CaseResult, Outcome, Report};

/// Makes the far end and the link act, for the link cases.
#[async_trait]
pub trait LinkStimulus: Send + Sync {
    /// The number another agent dials to ring `device`.
    fn number_of(&self, device: &DeviceId) -> Dialable;

    /// A number that rings and is answered within a few seconds (a customer).
    fn answering_number(&self) -> Dialable;

    /// Cuts the link to the switch; calls on the switch go on.
    async fn drop_link(&self) -> Result<()>;

    /// Lets the link come back.
    async fn restore_link(&self) -> Result<()>;
}

/// A shared link with two lines or more, their agents logged out and no calls.
pub struct LinkFixture {
    /// The link the sessions share.
    pub link: SharedLink,
    /// The lines on it, (agent, device): the cases act on the first two; the others
    /// must see none of it.
    pub lines: Vec<(AgentId, DeviceId)>,
    /// Makes the far end and the link act.
    pub stimulus: Arc<dyn LinkStimulus>,
}

/// Gives each link case a fresh fixture.
#[async_trait]
pub trait LinkBackend: Send + Sync {
    /// A fresh shared link with two lines.
    async fn link_fixture(&self) -> Result<LinkFixture>;
}

type Step<T = ()> = std::result::Result<T, String>;

struct LineUnderTest {
    session: Session,
    events: Mutex<EventStream>,
    device: DeviceId,
}

impl LineUnderTest {
    async fn expect(
        &self,
        what: &str,
        wait: Duration,
        wanted: impl Fn(&EventEnvelope) -> bool,
    ) -> Step<Arc<EventEnvelope>> {
        let mut events = self.events.lock().await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => return Err(format!("{}: no {} within {:?}", self.device, what, wait)),
                Ok(None) => return Err(format!("{}: the session closed", self.device)),
                Ok(Some(Err(e))) => return Err(format!("{}: {}", self.device, e)),
                Ok(Some(Ok(event))) if wanted(&event) => return Ok(event),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn expect_named(
        &self,
        name: &str,
        call: Option<&CallId>,
        wait: Duration,
    ) -> Step<Arc<EventEnvelope>> {
        let what = match call {
            Some(c) => format!("{name} on {c}"),
            None => name.to_string(),
        };
        self.expect(&what, wait, |e| {
            e.event.name() == name && (call.is_none() || e.call() == call)
        })
        .await
    }

    fn calls(&self) -> Vec<CallId> {
        self.session
            .snapshot()
            .calls
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    fn check_fitted(&self) -> Step {
        if self.session.stats().rejected == 0 {
            return Ok(());
        }
        let last = self
            .session
            .last_rejected()
            .map(|r| format!("; the last: {} ({})", r.event.name(), r.error.message))
            .unwrap_or_default();
        Err(format!(
            "{}: {} events did not fit the state machines{}",
            self.device,
            self.session.stats().rejected,
            last
        ))
    }
}

struct Ctx {
    desks: [LineUnderTest; 2],
    /// The link's other lines: bystanders.
    others: Vec<LineUnderTest>,
    stimulus: Arc<dyn LinkStimulus>,
    wait: Duration,
}

impl Ctx {
    async fn start(fixture: LinkFixture, wait: Duration) -> Step<Ctx> {
        let mut desks = Vec::new();
        for (agent, device) in fixture.lines.iter().cloned() {
            let session = fixture
                .link
                .session(agent, device.clone())
                .command_timeout(wait)
                .start_timeout(wait)
                .start()
                .await
                .map_err(|e| format!("the session for {device} did not start: {e}"))?;
            let events = Mutex::new(session.subscribe());
            desks.push(LineUnderTest {
                session,
                events,
                device,
            });
        }
        if desks.len() < 2 {
            return Err("a link fixture has two lines or more".into());
        }
        let others = desks.split_off(2);
        let [a, b]: [LineUnderTest; 2] = desks
            .try_into()
            .map_err(|_| "a link fixture has two lines or more".to_string())?;
        Ok(Ctx {
            desks: [a, b],
            others,
            stimulus: fixture.stimulus,
            wait,
        })
    }

    fn supports(&self, kind: CommandKind) -> bool {
        self.desks
            .iter()
            .all(|d| d.session.capabilities().supports(kind))
    }

    async fn exec(&self, desk: &LineUnderTest, command: Command) -> Step<Option<CallId>> {
        let kind = command.kind();
        desk.session
            .execute(command)
            .await
            .map(|c| c.call().cloned())
            .map_err(|e| format!("{}: {} failed: {}", desk.device, kind, e))
    }

    /// A connected call from `desk` to `to`.
    async fn call(&self, desk: &LineUnderTest, to: Dialable) -> Step<CallId> {
        let call = self.dial(desk, to).await?;
        desk.expect_named("call_connected", Some(&call), self.wait)
            .await?;
        Ok(call)
    }

    /// A call from `desk` to `to`, placed (not yet answered).
    async fn dial(&self, desk: &LineUnderTest, to: Dialable) -> Step<CallId> {
        self.exec(
            desk,
            Command::MakeCall {
                to,
                data: CallData::new(),
            },
        )
        .await?
        .ok_or_else(|| "make_call confirmed without a call".to_string())
    }

    /// `desk` takes the call it is offered (answering if it must).
    async fn take_offer(&self, desk: &LineUnderTest) -> Step<CallId> {
        let offered = desk.expect_named("call_offered", None, self.wait).await?;
        let call = offered
            .call()
            .cloned()
            .ok_or("call_offered without a call")?;
        let connected = |desk: &LineUnderTest| {
            desk.session.snapshot().call(&call).map(|c| c.state) == Some(CallState::Connected)
        };
        if !connected(desk) && desk.session.capabilities().supports(CommandKind::Answer) {
            match desk
                .session
                .execute(Command::Answer { call: call.clone() })
                .await
            {
                Ok(_) => return Ok(call),
                // A phone that answers by itself may have been quicker.
                Err(e) if e.kind() == ErrorKind::InvalidState => {}
                Err(e) => return Err(format!("{}: answer failed: {}", desk.device, e)),
            }
        }
        if !connected(desk) {
            desk.expect_named("call_connected", Some(&call), self.wait)
                .await?;
        }
        Ok(call)
    }

    async fn until_idle(&self, desk: &LineUnderTest) -> Step {
        let deadline = tokio::time::Instant::now() + self.wait;
        while !desk.calls().is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{}: calls left on the panel: {:?}",
                    desk.device,
                    desk.calls()
                ));
            }
            let _ = desk.expect("any event", left, |_| true).await;
        }
        Ok(())
    }

    /// Every event fitted every session; the bystanders have no call.
    fn check(&self) -> Step {
        for desk in self.desks.iter().chain(&self.others) {
            desk.check_fitted()?;
        }
        for desk in &self.others {
            if !desk.calls().is_empty() {
                return Err(format!(
                    "{} took no part, yet shows calls {:?}",
                    desk.device,
                    desk.calls()
                ));
            }
        }
        Ok(())
    }

    async fn stop(&self) {
        for desk in self.desks.iter().chain(&self.others) {
            let _ = desk.session.stop().await;
        }
    }
}

struct LinkCase {
    name: &'static str,
    needs: &'static [CommandKind],
    run: for<'a> fn(
        &'a Ctx,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Step> + Send + 'a>>,
}

fn cases() -> Vec<LinkCase> {
    use CommandKind::*;
    vec![
        LinkCase {
            name: "call_between_agents",
            needs: &[MakeCall, Hangup],
            run: |ctx| Box::pin(call_between_agents(ctx)),
        },
        LinkCase {
            name: "transfer_between_agents",
            needs: &[MakeCall, BlindTransfer, Hangup],
            run: |ctx| Box::pin(transfer_between_agents(ctx)),
        },
        LinkCase {
            name: "link_drops_while_both_are_busy",
            needs: &[MakeCall, Hangup],
            run: |ctx| Box::pin(link_drops_while_both_are_busy(ctx)),
        },
    ]
}

async fn call_between_agents(ctx: &Ctx) -> Step {
    let [a, b] = &ctx.desks;
    let to_b = ctx.stimulus.number_of(&b.device);
    let outgoing = ctx.dial(a, to_b).await?;
    let incoming = ctx.take_offer(b).await?;
    a.expect_named("call_connected", Some(&outgoing), ctx.wait)
        .await?;
    if !a.calls().contains(&outgoing) || !b.calls().contains(&incoming) {
        return Err("each desk should show its side of the call".into());
    }
    ctx.exec(a, Command::Hangup { call: outgoing }).await?;
    b.expect_named("call_ended", Some(&incoming), ctx.wait)
        .await?;
    ctx.until_idle(a).await?;
    ctx.until_idle(b).await
}

async fn transfer_between_agents(ctx: &Ctx) -> Step {
    let [a, b] = &ctx.desks;
    let customer = ctx.call(a, ctx.stimulus.answering_number()).await?;
    ctx.exec(
        a,
        Command::BlindTransfer {
            call: customer.clone(),
            to: ctx.stimulus.number_of(&b.device),
        },
    )
    .await?;
    ctx.until_idle(a).await?;
    let taken = ctx.take_offer(b).await?;
    ctx.exec(b, Command::Hangup { call: taken }).await?;
    ctx.until_idle(b).await
}

async fn link_drops_while_both_are_busy(ctx: &Ctx) -> Step {
    let [a, b] = &ctx.desks;
    let call_a = ctx.call(a, ctx.stimulus.answering_number()).await?;
    let call_b = ctx.call(b, ctx.stimulus.answering_number()).await?;
    ctx.stimulus
        .drop_link()
        .await
        .map_err(|e| format!("the link could not be cut: {e}"))?;
    for desk in [a, b] {
        desk.expect_named("link_down", None, ctx.wait).await?;
        let call = desk
            .calls()
            .first()
            .cloned()
            .ok_or("no call on the panel while the link is down")?;
        match desk.session.execute(Command::Hangup { call }).await {
            Err(e) if e.kind() == ErrorKind::LinkDown => {}
            other => {
                return Err(format!(
                    "{}: a command while the link is down must be refused as link_down, got {:?}",
                    desk.device,
                    other.map(|c| c.event.event.name())
                ))
            }
        }
    }
    ctx.stimulus
        .restore_link()
        .await
        .map_err(|e| format!("the link could not come back: {e}"))?;
    for (desk, call) in [(a, &call_a), (b, &call_b)] {
        desk.expect_named("link_up", None, ctx.wait).await?;
        desk.expect_named("resynced", None, ctx.wait).await?;
        if desk.calls() != vec![call.clone()] {
            return Err(format!(
                "{}: after the link came back the panel should show {} alone, shows {:?}",
                desk.device,
                call,
                desk.calls()
            ));
        }
    }
    ctx.exec(a, Command::Hangup { call: call_a }).await?;
    ctx.exec(b, Command::Hangup { call: call_b }).await?;
    ctx.until_idle(a).await?;
    ctx.until_idle(b).await
}

/// Runs the link cases on fresh fixtures from `backend`, waiting up to `wait` for each
/// expected event.
pub(super) async fn run(backend: &dyn LinkBackend, wait: Duration) -> Report {
    let mut results = Vec::new();
    for case in cases() {
        let outcome = match backend.link_fixture().await {
            Err(e) => Outcome::Failed {
                reason: format!("the backend gave no link fixture: {e}"),
            },
            Ok(fixture) => match Ctx::start(fixture, wait).await {
                Err(reason) => Outcome::Failed { reason },
                Ok(ctx) => {
                    let outcome = match case.needs.iter().find(|k| !ctx.supports(**k)) {
                        Some(missing) => Outcome::Skipped {
                            reason: format!("the link does not support {missing}"),
                        },
                        None => match (case.run)(&ctx).await.and_then(|()| ctx.check()) {
                            Ok(()) => Outcome::Passed,
                            Err(reason) => Outcome::Failed { reason },
                        },
                    };
                    ctx.stop().await;
                    outcome
                }
            },
        };
        results.push(CaseResult {
            name: case.name,
            outcome,
        });
    }
    Report { cases: results }
}
