//! The behaviour cases, and the context they run in.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::{
    CallData, CallId, CallState, ChosenState, Command, CommandKind, Confirmation, DesktopInterface,
    DtmfDigits, ErrorKind, Event, EventEnvelope, EventStream, PartyId, ReasonCode, Session,
};
use tokio::sync::Mutex;

use super::{Case, CaseFuture, Fixture, Stimulus};

type Step<T = ()> = Result<T, String>;

/// What a case works with: the session over the connector, its events, the far end.
pub(crate) struct Ctx {
    session: Session,
    events: Mutex<EventStream>,
    stimulus: Arc<dyn Stimulus>,
    fixture: Fixture,
    wait: Duration,
}

impl Ctx {
    pub(crate) async fn start(fixture: Fixture, wait: Duration) -> Step<Ctx> {
        let session = Session::builder(
            fixture.connector.clone(),
            fixture.agent.clone(),
            fixture.device.clone(),
        )
        .command_timeout(wait)
        .start_timeout(wait)
        .start()
        .await
        .map_err(|e| format!("the session did not start: {}", e))?;
        let events = Mutex::new(session.subscribe());
        Ok(Ctx {
            session,
            events,
            stimulus: fixture.stimulus.clone(),
            fixture,
            wait,
        })
    }

    fn desk(&self) -> &dyn DesktopInterface {
        &self.session
    }

    /// Every event the connector sent was accepted by the state machines.
    pub(crate) fn finish(&self) -> Step {
        let stats = self.session.stats();
        if stats.rejected > 0 {
            let last = self
                .session
                .last_rejected()
                .map(|r| {
                    format!(
                        "; the last: {} ({})",
                        serde_json::to_string(&r.event).unwrap_or_else(|_| r.event.name().into()),
                        r.error.message
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "{} events from the connector did not fit the core state machines{}",
                stats.rejected, last
            ));
        }
        Ok(())
    }

    pub(crate) async fn stop(&self) -> opencti_core::Result<()> {
        self.session.stop().await
    }

    pub(crate) fn supports(&self, kind: CommandKind) -> bool {
        self.desk().capabilities().supports(kind)
    }

    /// Runs a command and checks that the right event confirmed it.
    async fn exec(&self, command: Command, confirmed_by: &[&str]) -> Step<Confirmation> {
        let kind = command.kind();
        let confirmation = self
            .desk()
            .execute(command)
            .await
            .map_err(|e| format!("{} failed: {}", kind, e))?;
        let name = confirmation.event.event.name();
        if !confirmed_by.contains(&name) {
            return Err(format!(
                "{} was confirmed by {}, expected one of {:?}",
                kind, name, confirmed_by
            ));
        }
        if confirmation.event.command != Some(confirmation.command) {
            return Err(format!(
                "{}'s confirming event does not carry the command id",
                kind
            ));
        }
        Ok(confirmation)
    }

    /// Waits for the next event that satisfies `wanted`.
    async fn expect(
        &self,
        what: &str,
        wanted: impl Fn(&EventEnvelope) -> bool,
    ) -> Step<Arc<EventEnvelope>> {
        let mut events = self.events.lock().await;
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let next = tokio::time::timeout_at(deadline, events.next())
                .await
                .map_err(|_| format!("no {} within {:?}", what, self.wait))?;
            match next {
                None => return Err(format!("the session closed while waiting for {}", what)),
                Some(Err(e)) => return Err(format!("while waiting for {}: {}", what, e)),
                Some(Ok(event)) if wanted(&event) => return Ok(event),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn expect_on(&self, name: &str, call: &CallId) -> Step<Arc<EventEnvelope>> {
        self.expect(&format!("{} for call {}", name, call), |e| {
            e.event.name() == name && e.call() == Some(call)
        })
        .await
    }

    async fn login_ready(&self) -> Step {
        if self.supports(CommandKind::Login) {
            self.exec(Command::Login {}, &["agent_state_changed"])
                .await?;
        }
        if self.supports(CommandKind::SetAgentState) {
            self.exec(
                Command::SetAgentState {
                    state: ChosenState::Ready,
                    after_call: false,
                },
                &["agent_state_changed"],
            )
            .await?;
        }
        Ok(())
    }

    /// A call offered to the device by the far end.
    async fn offered_call(&self) -> Step<CallId> {
        self.stimulus
            .call_device(&self.fixture.device)
            .await
            .map_err(|e| format!("the far end could not call the device: {}", e))?;
        let offered = self
            .expect("call_offered", |e| e.event.name() == "call_offered")
            .await?;
        offered
            .call()
            .cloned()
            .ok_or_else(|| "call_offered without a call".to_string())
    }

    /// A connected call: dialled out if the connector can, else answered.
    async fn connected_call(&self) -> Step<CallId> {
        if self.supports(CommandKind::MakeCall) {
            let made = self
                .exec(
                    Command::MakeCall {
                        to: self.stimulus.answering_number(),
                        data: CallData::new(),
                    },
                    &["call_initiated"],
                )
                .await?;
            let call = made
                .call()
                .cloned()
                .ok_or_else(|| "make_call confirmed without a call".to_string())?;
            self.expect_on("call_connected", &call).await?;
            Ok(call)
        } else {
            let call = self.offered_call().await?;
            self.exec(Command::Answer { call: call.clone() }, &["call_connected"])
                .await?;
            Ok(call)
        }
    }

    fn state_of(&self, call: &CallId) -> Option<CallState> {
        self.desk().snapshot().call(call).map(|c| c.state)
    }

    fn check_state(&self, call: &CallId, state: CallState) -> Step {
        match self.state_of(call) {
            Some(s) if s == state => Ok(()),
            other => Err(format!(
                "call {} should be {} on the panel, is {:?}",
                call, state, other
            )),
        }
    }

    fn check_no_calls(&self) -> Step {
        let snap = self.desk().snapshot();
        if snap.calls.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the panel still shows calls: {:?}",
                snap.calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>()
            ))
        }
    }

    fn check_allowed_are_supported(&self, call: Option<&CallId>) -> Step {
        let allowed = self.desk().allowed_commands(call);
        let capabilities = self.desk().capabilities();
        match allowed.iter().find(|k| !capabilities.supports(*k)) {
            Some(k) => Err(format!("{} is offered but not supported", k)),
            None => Ok(()),
        }
    }

    async fn hang_up(&self, call: &CallId) -> Step {
        self.exec(Command::Hangup { call: call.clone() }, &["call_ended"])
            .await?;
        Ok(())
    }
}

macro_rules! case {
    ($name:ident, [$($need:ident),*], |$ctx:ident| $body:block) => {
        fn $name<'a>($ctx: &'a Ctx) -> CaseFuture<'a> {
            Box::pin(async move $body)
        }
    };
}

pub(crate) fn all() -> Vec<Case> {
    use CommandKind::*;
    vec![
        Case {
            name: "agent_states",
            needs: &[Login, Logout, SetAgentState],
            run: agent_states,
        },
        Case {
            name: "inbound_answer_and_hang_up",
            needs: &[Answer, Hangup],
            run: inbound_answer_and_hang_up,
        },
        Case {
            name: "far_end_hangs_up",
            needs: &[Answer],
            run: far_end_hangs_up,
        },
        Case {
            name: "reject",
            needs: &[Reject],
            run: reject,
        },
        Case {
            name: "make_call",
            needs: &[MakeCall, Hangup],
            run: make_call,
        },
        Case {
            name: "hold_and_retrieve",
            needs: &[Hold, Retrieve, Hangup],
            run: hold_and_retrieve,
        },
        Case {
            name: "send_dtmf",
            needs: &[SendDtmf, Hangup],
            run: send_dtmf,
        },
        Case {
            name: "set_call_data",
            needs: &[SetCallData, Hangup],
            run: set_call_data,
        },
        Case {
            name: "blind_transfer",
            needs: &[BlindTransfer],
            run: blind_transfer,
        },
        Case {
            name: "consult_and_transfer",
            needs: &[Consult, CompleteTransfer],
            run: consult_and_transfer,
        },
        Case {
            name: "consult_and_conference",
            needs: &[Consult, CompleteConference, Hangup],
            run: consult_and_conference,
        },
        Case {
            name: "after_call_state",
            needs: &[Login, SetAgentState, Hangup],
            run: after_call_state,
        },
        Case {
            name: "refusals_are_typed",
            needs: &[],
            run: refusals_are_typed,
        },
    ]
}

case!(agent_states, [Login, Logout, SetAgentState], |ctx| {
    let login = ctx
        .exec(Command::Login {}, &["agent_state_changed"])
        .await?;
    if let Event::AgentStateChanged { state } = &login.event.event {
        if !state.is_logged_in() {
            return Err("login confirmed by a logged-out state".into());
        }
    }
    ctx.exec(
        Command::SetAgentState {
            state: ChosenState::Ready,
            after_call: false,
        },
        &["agent_state_changed"],
    )
    .await?;
    if ctx.desk().snapshot().agent_state.name() != "ready" {
        return Err("ready confirmed, but the agent is not ready".into());
    }
    let reason = ReasonCode::new("break").map_err(|e| e.to_string())?;
    ctx.exec(
        Command::SetAgentState {
            state: ChosenState::NotReady {
                reason: Some(reason),
            },
            after_call: false,
        },
        &["agent_state_changed"],
    )
    .await?;
    if ctx.desk().snapshot().agent_state.name() != "not_ready" {
        return Err("not_ready confirmed, but the agent is not not_ready".into());
    }
    ctx.check_allowed_are_supported(None)?;
    ctx.exec(Command::Logout { reason: None }, &["agent_state_changed"])
        .await?;
    if ctx.desk().snapshot().agent_state.is_logged_in() {
        return Err("logout confirmed, but the agent is logged in".into());
    }
    Ok(())
});

case!(inbound_answer_and_hang_up, [Answer, Hangup], |ctx| {
    ctx.login_ready().await?;
    let call = ctx.offered_call().await?;
    ctx.check_state(&call, CallState::Offered)?;
    if !ctx
        .desk()
        .allowed_commands(Some(&call))
        .contains(CommandKind::Answer)
    {
        return Err("answer is not offered for a ringing call".into());
    }
    ctx.check_allowed_are_supported(Some(&call))?;
    ctx.exec(Command::Answer { call: call.clone() }, &["call_connected"])
        .await?;
    ctx.check_state(&call, CallState::Connected)?;
    if ctx.supports(CommandKind::Login) && ctx.desk().snapshot().agent_state.name() != "busy" {
        return Err("the agent should be busy on a connected call".into());
    }
    ctx.hang_up(&call).await?;
    ctx.check_no_calls()
});

case!(far_end_hangs_up, [Answer], |ctx| {
    let call = ctx.offered_call().await?;
    ctx.exec(Command::Answer { call: call.clone() }, &["call_connected"])
        .await?;
    ctx.stimulus
        .far_end_hangs_up(&ctx.fixture.device, &call)
        .await
        .map_err(|e| format!("the far end could not hang up: {}", e))?;
    ctx.expect_on("call_ended", &call).await?;
    ctx.check_no_calls()
});

case!(reject, [Reject], |ctx| {
    let call = ctx.offered_call().await?;
    ctx.exec(
        Command::Reject { call: call.clone() },
        &["call_ended", "call_diverted"],
    )
    .await?;
    if ctx.state_of(&call).is_some() {
        ctx.expect_on("call_ended", &call).await?;
    }
    ctx.check_no_calls()
});

case!(make_call, [MakeCall, Hangup], |ctx| {
    ctx.login_ready().await?;
    let call = ctx.connected_call().await?;
    ctx.check_state(&call, CallState::Connected)?;
    ctx.check_allowed_are_supported(Some(&call))?;
    ctx.hang_up(&call).await?;
    ctx.check_no_calls()
});

case!(hold_and_retrieve, [Hold, Retrieve, Hangup], |ctx| {
    let call = ctx.connected_call().await?;
    ctx.exec(Command::Hold { call: call.clone() }, &["call_held"])
        .await?;
    ctx.check_state(&call, CallState::Held)?;
    let allowed = ctx.desk().allowed_commands(Some(&call));
    if allowed.contains(CommandKind::Hold) || !allowed.contains(CommandKind::Retrieve) {
        return Err(format!(
            "a held call should offer retrieve and not hold; offers {}",
            allowed
        ));
    }
    ctx.exec(
        Command::Retrieve { call: call.clone() },
        &["call_retrieved"],
    )
    .await?;
    ctx.check_state(&call, CallState::Connected)?;
    ctx.hang_up(&call).await?;
    ctx.check_no_calls()
});

case!(send_dtmf, [SendDtmf, Hangup], |ctx| {
    let call = ctx.connected_call().await?;
    let digits = DtmfDigits::new("12#").map_err(|e| e.to_string())?;
    ctx.exec(
        Command::SendDtmf {
            call: call.clone(),
            digits,
        },
        &["dtmf_sent"],
    )
    .await?;
    ctx.hang_up(&call).await
});

case!(set_call_data, [SetCallData, Hangup], |ctx| {
    let call = ctx.connected_call().await?;
    let data = CallData::from_pairs([("case", "C-1")]).map_err(|e| e.to_string())?;
    ctx.exec(
        Command::SetCallData {
            call: call.clone(),
            data,
        },
        &["call_data_changed"],
    )
    .await?;
    let snapshot = ctx.desk().snapshot();
    let value = snapshot
        .call(&call)
        .and_then(|c| c.data.get("case"))
        .map(|v| v.as_str().to_string());
    if value.as_deref() != Some("C-1") {
        return Err(format!(
            "the call's data should hold case=C-1, holds {:?}",
            value
        ));
    }
    ctx.hang_up(&call).await
});

case!(blind_transfer, [BlindTransfer], |ctx| {
    let call = ctx.connected_call().await?;
    ctx.exec(
        Command::BlindTransfer {
            call: call.clone(),
            to: ctx.stimulus.second_number(),
        },
        &["call_transferred"],
    )
    .await?;
    if ctx.state_of(&call).is_some() {
        ctx.expect_on("call_ended", &call).await?;
    }
    ctx.check_no_calls()
});

case!(consult_and_transfer, [Consult, CompleteTransfer], |ctx| {
    let primary = ctx.connected_call().await?;
    let consult = ctx
        .exec(
            Command::Consult {
                call: primary.clone(),
                to: ctx.stimulus.second_number(),
            },
            &["call_initiated"],
        )
        .await?
        .call()
        .cloned()
        .ok_or("consult confirmed without a call")?;
    let snapshot = ctx.desk().snapshot();
    let link = snapshot.call(&consult).and_then(|c| c.consult_of.clone());
    if link.as_ref() != Some(&primary) {
        return Err(format!(
            "the consult call should link to {}, links to {:?}",
            primary, link
        ));
    }
    ctx.check_state(&primary, CallState::Held)?;
    ctx.expect_on("call_connected", &consult).await?;
    ctx.exec(
        Command::CompleteTransfer {
            call: consult.clone(),
        },
        &["call_transferred"],
    )
    .await?;
    for call in [&primary, &consult] {
        if ctx.state_of(call).is_some() {
            ctx.expect_on("call_ended", call).await?;
        }
    }
    ctx.check_no_calls()
});

case!(
    consult_and_conference,
    [Consult, CompleteConference, Hangup],
    |ctx| {
        let primary = ctx.connected_call().await?;
        let consult = ctx
            .exec(
                Command::Consult {
                    call: primary.clone(),
                    to: ctx.stimulus.second_number(),
                },
                &["call_initiated"],
            )
            .await?
            .call()
            .cloned()
            .ok_or("consult confirmed without a call")?;
        ctx.expect_on("call_connected", &consult).await?;
        let done = ctx
            .exec(
                Command::CompleteConference {
                    call: consult.clone(),
                },
                &["call_conferenced"],
            )
            .await?;
        let conference = done
            .call()
            .cloned()
            .ok_or("call_conferenced without a call")?;
        for call in [&primary, &consult] {
            if call != &conference && ctx.state_of(call).is_some() {
                ctx.expect_on("call_ended", call).await?;
            }
        }
        let role = ctx.desk().snapshot().call(&conference).map(|c| c.role);
        if role != Some(opencti_core::CallRole::Conference) {
            return Err(format!(
                "the conference call should have the conference role, has {:?}",
                role
            ));
        }
        ctx.hang_up(&conference).await?;
        ctx.check_no_calls()
    }
);

case!(after_call_state, [Login, SetAgentState, Hangup], |ctx| {
    ctx.login_ready().await?;
    let call = ctx.connected_call().await?;
    let queued = ctx
        .desk()
        .execute(Command::SetAgentState {
            state: ChosenState::NotReady { reason: None },
            after_call: true,
        })
        .await;
    if !ctx.desk().capabilities().next_state_after_call {
        return match queued {
            Err(e) if e.kind() == ErrorKind::Unsupported => ctx.hang_up(&call).await,
            other => Err(format!(
                "after_call is not a capability, so it must be refused as unsupported; got {:?}",
                other.map(|c| c.event.event.name())
            )),
        };
    }
    queued.map_err(|e| format!("set_agent_state after the call failed: {}", e))?;
    let state = ctx.desk().snapshot().agent_state;
    if state.chosen() != (ChosenState::NotReady { reason: None }) || !state.is_derived() {
        return Err(format!(
            "during the call the agent should be busy, then not ready; is {}",
            state
        ));
    }
    ctx.hang_up(&call).await?;
    // Wrap-up, if the switch imposes it, ends in the queued state.
    if ctx.desk().snapshot().agent_state.name() == "wrap_up"
        && ctx.supports(CommandKind::CompleteWrapUp)
    {
        ctx.exec(
            Command::CompleteWrapUp { disposition: None },
            &["agent_state_changed"],
        )
        .await?;
    }
    let state = ctx.desk().snapshot().agent_state;
    if state.name() != "not_ready" {
        return Err(format!(
            "after the call the agent should be not_ready, is {}",
            state
        ));
    }
    Ok(())
});

case!(refusals_are_typed, [], |ctx| {
    let nowhere = CallId::new("no-such-call").map_err(|e| e.to_string())?;
    match ctx.desk().execute(Command::Hold { call: nowhere }).await {
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unsupported) => {}
        other => {
            return Err(format!(
                "hold on an unknown call should be not_found, got {:?}",
                other.map(|c| c.event.event.name())
            ))
        }
    }
    let capabilities = ctx.desk().capabilities();
    for kind in CommandKind::ALL
        .into_iter()
        .filter(|k| !capabilities.supports(*k))
    {
        let Some(command) = sample(kind) else {
            continue;
        };
        match ctx.desk().execute(command).await {
            Err(e) if e.kind() == ErrorKind::Unsupported => {}
            other => {
                return Err(format!(
                    "{} is not a capability, so it must be refused as unsupported; got {:?}",
                    kind,
                    other.map(|c| c.event.event.name())
                ))
            }
        }
    }
    if capabilities.supports(CommandKind::Answer) && capabilities.supports(CommandKind::Hold) {
        let call = ctx.offered_call().await?;
        match ctx
            .desk()
            .execute(Command::Hold { call: call.clone() })
            .await
        {
            Err(e) if e.kind() == ErrorKind::InvalidState => {
                let allowed = e
                    .allowed()
                    .ok_or("the refusal should list the allowed commands")?;
                if !allowed.contains(CommandKind::Answer) {
                    return Err(format!(
                        "the refusal should allow answer; allows {}",
                        allowed
                    ));
                }
                if !e.message().contains("offered") {
                    return Err(format!("the refusal should name the state: {}", e));
                }
            }
            other => {
                return Err(format!(
                    "hold on a ringing call should be invalid_state, got {:?}",
                    other.map(|c| c.event.event.name())
                ))
            }
        }
        ctx.exec(Command::Answer { call: call.clone() }, &["call_connected"])
            .await?;
        ctx.hang_up(&call).await?;
    }
    Ok(())
});

/// A command of `kind` with throwaway arguments, for checking refusals.
fn sample(kind: CommandKind) -> Option<Command> {
    let call = CallId::new("sample").ok()?;
    let to = opencti_core::Dialable::new("2000").ok()?;
    Some(match kind {
        CommandKind::Login => Command::Login {},
        CommandKind::Logout => Command::Logout { reason: None },
        CommandKind::SetAgentState => Command::SetAgentState {
            state: ChosenState::Ready,
            after_call: false,
        },
        CommandKind::MakeCall => Command::MakeCall {
            to,
            data: CallData::new(),
        },
        CommandKind::Answer => Command::Answer { call },
        CommandKind::Reject => Command::Reject { call },
        CommandKind::Hangup => Command::Hangup { call },
        CommandKind::Hold => Command::Hold { call },
        CommandKind::Retrieve => Command::Retrieve { call },
        CommandKind::Alternate => Command::Alternate { call },
        CommandKind::Consult => Command::Consult { call, to },
        CommandKind::CompleteTransfer => Command::CompleteTransfer { call },
        CommandKind::BlindTransfer => Command::BlindTransfer { call, to },
        CommandKind::CompleteConference => Command::CompleteConference { call },
        CommandKind::DropParty => Command::DropParty {
            call,
            party: PartyId::new("p").ok()?,
        },
        CommandKind::SendDtmf => Command::SendDtmf {
            call,
            digits: DtmfDigits::new("1").ok()?,
        },
        CommandKind::SetCallData => Command::SetCallData {
            call,
            data: CallData::new(),
        },
        CommandKind::CompleteWrapUp => Command::CompleteWrapUp { disposition: None },
        _ => return None,
    })
}
