//! One line (an agent at a device) on an AMI link: its translator, the session's sink,
//! and the command mapping. Commands become AMI actions (the mapping is in the crate
//! docs); events come from the link's reader through the line's [`Translator`] straight
//! into the session's `EventSink`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use opencti_core::{
    Address, Capabilities, ChosenState, Command, CommandId, CommandKind, Error, ErrorKind, Event,
    Line, Request, Result,
};

use crate::action::{Action, AmiValue};
use crate::client::AmiClient;
use crate::config::{AmiConfig, AnswerMode};
use crate::device::{DeviceMatcher, LineId};
use crate::link::{lock, Board};
use crate::message::Message;
use crate::switchboard::Outputs;
use crate::translate::{CallTarget, EventOut, LineBook, Translator, TranslatorConfig};

/// The prefix of the `ChannelId` every `make_call` gives its channel: a channel whose
/// `Uniqueid` starts with it was placed by an opencti desk (outbound), even after a
/// reconnect.
pub const ORIGINATE_PREFIX: &str = "opencti-";

struct Shared {
    config: Arc<AmiConfig>,
    /// The link's switchboard and sinks, shared by every line.
    board: Arc<Mutex<Board>>,
    /// This line's place on the switchboard.
    id: LineId,
    /// Set when the line is closed: its place may be another line's afterwards.
    closed: AtomicBool,
    /// The link's client, shared by every line.
    client: Arc<OnceLock<AmiClient>>,
    /// The agent's device interface (`PJSIP/1001`).
    device: String,
    agent: String,
    /// The queues the agent works in.
    queues: Vec<String>,
    /// Makes this line's `ChannelId`s unique on the PBX.
    nonce: String,
    next_call: AtomicU64,
}

/// One line of an [`AmiLink`](crate::AmiLink). Cheap to clone.
#[derive(Clone)]
pub(crate) struct AmiLine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AmiLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiLine")
            .field("address", &self.shared.config.address)
            .field("username", &self.shared.config.username)
            .field("device", &self.shared.config.device)
            .field("queues", &self.shared.queues)
            .finish_non_exhaustive()
    }
}

fn value(text: &str) -> Result<AmiValue> {
    Ok(AmiValue::new(text)?)
}

pub(crate) fn action(name: &'static str, headers: &[(&str, &str)]) -> Result<Action> {
    let mut action = Action::new(name)?;
    for (key, text) in headers {
        action = action.try_header(key, text).map_err(|e| {
            Error::new(ErrorKind::BadInput, format!("{name} {key}: {e}")).with_source(e)
        })?;
    }
    Ok(action)
}

pub(crate) fn hangup_action(channel: &str, cause: u16) -> Result<Action> {
    action(
        "Hangup",
        &[("Channel", channel), ("Cause", &cause.to_string())],
    )
}

/// Escapes a value for an `Originate` `Variable:` header, which Asterisk splits on `,`
/// with its application-argument parser (backslash escapes, quotes and brackets are
/// special there).
pub fn escape_variable_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '"' | '(' | ')' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn not_found(call: &opencti_core::CallId) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("call {call} is not (or no longer) on the agent's device at Asterisk"),
    )
}

fn rejected(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Rejected, message.into())
}

impl AmiLine {
    /// The book of `line`'s agent at its device (or at the device the config names),
    /// working in `queues`.
    pub(crate) fn book(config: &AmiConfig, line: &Line, queues: &[String]) -> Result<LineBook> {
        let device = config
            .device
            .clone()
            .unwrap_or_else(|| line.device.as_str().to_owned());
        value(&device)?;
        Ok(LineBook::new(TranslatorConfig {
            device: DeviceMatcher::new(device),
            queues: queues.to_vec(),
            hold: config.hold.clone(),
            originate_prefix: ORIGINATE_PREFIX.into(),
        }))
    }

    /// The line at place `id` of `board`, for `line`'s agent at `device`.
    pub(crate) fn new(
        config: Arc<AmiConfig>,
        client: Arc<OnceLock<AmiClient>>,
        board: Arc<Mutex<Board>>,
        id: LineId,
        line: &Line,
        device: String,
        queues: Vec<String>,
    ) -> AmiLine {
        AmiLine {
            shared: Arc::new(Shared {
                config,
                board,
                id,
                closed: AtomicBool::new(false),
                client,
                device,
                agent: line.agent.as_str().to_owned(),
                queues,
                nonce: format!("{:08x}", fastrand::u32(..)),
                next_call: AtomicU64::new(1),
            }),
        }
    }

    /// The line's place on the switchboard.
    pub(crate) fn id(&self) -> LineId {
        self.shared.id
    }

    /// Runs `f` on the line's translator and the session's sink.
    pub(crate) fn with_translator<T>(
        &self,
        f: impl FnOnce(&mut Translator<'_>, &mut dyn EventOut) -> T,
    ) -> Option<T> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut board = lock(&self.shared.board);
        let Board { switchboard, sinks } = &mut *board;
        let mut translator = switchboard.translator(self.shared.id)?;
        Some(f(&mut translator, sinks.output(self.shared.id)))
    }

    /// The line is closed: nothing more goes through it.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    fn up_client(&self) -> Result<&AmiClient> {
        match self.shared.client.get() {
            Some(c) if c.is_up() => Ok(c),
            _ => Err(Error::new(
                ErrorKind::LinkDown,
                "the link to the Asterisk AMI is down",
            )),
        }
    }

    /// Sends an action that `call`'s pending command waits on; if Asterisk refuses it,
    /// the translator stops waiting for that call's confirmation.
    async fn send_for(
        &self,
        client: &AmiClient,
        call: &opencti_core::CallId,
        action: Action,
    ) -> Result<()> {
        let sent = client.send(action).await.map(|_| ());
        if sent.is_err() {
            self.with_translator(|t, _| t.clear_pending(call));
        }
        sent
    }

    fn target(&self, call: &opencti_core::CallId) -> Result<CallTarget> {
        self.with_translator(|t, _| t.target(call))
            .flatten()
            .ok_or_else(|| not_found(call))
    }

    async fn queue_actions(
        &self,
        name: &'static str,
        extra: &[(&str, &str)],
    ) -> Result<Vec<Result<Message>>> {
        let client = self.up_client()?;
        let device = self.interface();
        let mut results = Vec::new();
        if self.shared.queues.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{name}: device {} works in no queue at Asterisk, so it has no agent state there",
                    self.shared.device
                ),
            ));
        }
        for queue in &self.shared.queues {
            let mut headers: Vec<(&str, &str)> = vec![("Queue", queue), ("Interface", &device)];
            headers.extend_from_slice(extra);
            let a = action(name, &headers)?;
            results.push(client.send(a).await);
        }
        Ok(results)
    }

    /// The agent's device interface (from the config, else the session's device id).
    fn interface(&self) -> String {
        self.shared.device.clone()
    }

    /// Settles a queue command: any failure is an error naming the queues; a command
    /// that changed nothing (the agent was already there) is confirmed by restating.
    fn settle_queue(
        &self,
        what: &str,
        id: CommandId,
        results: Vec<Result<Message>>,
        already: bool,
    ) -> Result<()> {
        let queues = &self.shared.queues;
        let failures: Vec<String> = results
            .iter()
            .zip(queues)
            .filter_map(|(r, q)| r.as_ref().err().map(|e| format!("{q}: {}", e.message())))
            .collect();
        if failures.len() == results.len() && already {
            // Asterisk refused because the agent is already where it was asked to go.
            self.with_translator(|t, out| t.restate_agent(id, out));
            return Ok(());
        }
        if !failures.is_empty() {
            return Err(rejected(format!(
                "{what} failed in {} of {} queues: {}",
                failures.len(),
                results.len(),
                failures.join("; ")
            )));
        }
        if already {
            self.with_translator(|t, out| t.restate_agent(id, out));
        }
        Ok(())
    }
}

impl AmiLine {
    async fn make_call(
        &self,
        id: CommandId,
        to: &opencti_core::Dialable,
        data: &opencti_core::CallData,
    ) -> Result<()> {
        let client = self.up_client()?;
        let config = &self.shared.config;
        let n = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        let channel_id = format!("{ORIGINATE_PREFIX}{}-{n}", self.shared.nonce);
        let action_id = client.next_action_id();
        let device = self.interface();
        let ring_ms = config.timeouts.originate_ring.as_millis().to_string();
        let mut headers: Vec<(&str, String)> = vec![
            ("Channel", device),
            ("Context", config.outbound_context.clone()),
            ("Exten", to.as_str().to_owned()),
            ("Priority", "1".into()),
            ("Timeout", ring_ms),
            ("ChannelId", channel_id.clone()),
            ("Async", "true".into()),
        ];
        if let Some(cid) = &config.caller_id {
            headers.push(("CallerID", cid.clone()));
        }
        for (key, val) in data.iter() {
            headers.push((
                "Variable",
                format!(
                    "OPENCTI_{}={}",
                    key.as_str(),
                    escape_variable_value(val.as_str())
                ),
            ));
        }
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let originate = action("Originate", &refs)?.action_id(value(&action_id)?);
        let address = Address::new(to.as_str())?;
        self.with_translator(|t, _| {
            t.expect_originate(action_id.clone(), &channel_id, id, address, data.clone())
        });
        match client.send(originate).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.with_translator(|t, _| t.forget_originate(&action_id));
                Err(e)
            }
        }
    }

    async fn hangup(&self, call: &opencti_core::CallId) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        if target.is_consult {
            // Ends the consultation and returns the agent to the held call (capture 13).
            self.with_translator(|t, _| t.expect_cancel_consult(call));
            let a = action("CancelAtxfer", &[("Channel", &target.device_channel)])?;
            return client.send(a).await.map(|_| ());
        }
        if target.has_consult {
            // Hang up the held party; the consultation goes on.
            if target.primary_peers.is_empty() {
                return Err(rejected(format!(
                    "call {call} has no party left to hang up; end the consultation instead"
                )));
            }
            for peer in &target.primary_peers {
                client.send(hangup_action(peer, 16)?).await?;
            }
            return Ok(());
        }
        client
            .send(hangup_action(&target.device_channel, 16)?)
            .await
            .map(|_| ())
    }

    async fn hold(&self, call: &opencti_core::CallId) -> Result<()> {
        let client = self.up_client()?;
        let Some(hold) = self.shared.config.hold.clone() else {
            return Err(Error::new(ErrorKind::Unsupported, "hold is not configured"));
        };
        let target = self.target(call)?;
        let [party] = target.peers.as_slice() else {
            return Err(rejected(format!(
                "hold needs exactly one other party in the call (it has {}): Redirect cannot hold a conference",
                target.peers.len()
            )));
        };
        if !target.bridged || target.is_consult {
            return Err(rejected(
                "hold is only possible on a bridged, non-consultation call",
            ));
        }
        self.with_translator(|t, _| t.expect_hold(call, party));
        let a = action(
            "Redirect",
            &[
                ("Channel", party),
                ("Context", &hold.context),
                ("Exten", &hold.music_exten),
                ("Priority", "1"),
                ("ExtraChannel", &target.device_channel),
                ("ExtraContext", &hold.context),
                ("ExtraExten", &hold.wait_exten),
                ("ExtraPriority", "1"),
            ],
        )?;
        self.send_for(client, call, a).await
    }

    async fn retrieve(&self, call: &opencti_core::CallId) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        let (true, Some(party)) = (target.redirect_held, target.held_party.as_deref()) else {
            return Err(rejected(
                "this call was not put on hold by this connector (it was held at the phone or by a consultation); retrieve it there, or end the consultation",
            ));
        };
        let a = action(
            "Bridge",
            &[
                ("Channel1", &target.device_channel),
                ("Channel2", party),
                ("Tone", "no"),
            ],
        )?;
        client.send(a).await.map(|_| ())
    }

    async fn blind_transfer(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        to: &opencti_core::Dialable,
    ) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        let context = &self.shared.config.outbound_context;
        if let (true, Some(party)) = (target.redirect_held, target.held_party.as_deref()) {
            // The party waits on music on hold: send it on (capture 11), then hang up
            // the agent's silent leg. Asterisk emits no transfer event for a Redirect.
            let a = action(
                "Redirect",
                &[
                    ("Channel", party),
                    ("Context", context),
                    ("Exten", to.as_str()),
                    ("Priority", "1"),
                ],
            )?;
            client.send(a).await?;
            let address = Address::new(to.as_str())?;
            self.with_translator(|t, out| t.redirect_transferred(call, address, id, out));
            client.send_detached(hangup_action(&target.device_channel, 16)?);
            return Ok(());
        }
        if !target.bridged {
            return Err(rejected(
                "blind transfer needs the call to be connected (bridged)",
            ));
        }
        let a = action(
            "BlindTransfer",
            &[
                ("Channel", &target.device_channel),
                ("Context", context),
                ("Exten", to.as_str()),
            ],
        )?;
        client.send(a).await.map(|_| ())
    }

    async fn consult(
        &self,
        call: &opencti_core::CallId,
        to: &opencti_core::Dialable,
    ) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        if !target.bridged || target.is_consult || target.has_consult || target.redirect_held {
            return Err(rejected(
                "consult needs a connected call (Atxfer works from the agent's bridged leg; retrieve a held call first)",
            ));
        }
        let address = Address::new(to.as_str()).ok();
        self.with_translator(|t, _| t.expect_consult(call, address));
        let a = action(
            "Atxfer",
            &[
                ("Channel", &target.device_channel),
                ("Exten", to.as_str()),
                ("Context", &self.shared.config.outbound_context),
            ],
        )?;
        self.send_for(client, call, a).await
    }

    async fn complete_transfer(&self, call: &opencti_core::CallId) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        if !target.is_consult {
            return Err(rejected("complete_transfer applies to a consultation call"));
        }
        // The transferer hanging up completes an attended transfer (capture 12).
        self.with_translator(|t, _| t.expect_complete_transfer(call));
        self.send_for(client, call, hangup_action(&target.device_channel, 16)?)
            .await
    }

    async fn complete_conference(&self, call: &opencti_core::CallId) -> Result<()> {
        let client = self.up_client()?;
        let Some(context) = self.shared.config.conference_context.clone() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "conference is not configured (conference_context)",
            ));
        };
        let target = self.target(call)?;
        if !target.is_consult {
            return Err(rejected(
                "complete_conference applies to a consultation call (made with consult)",
            ));
        }
        let [target_party] = target.peers.as_slice() else {
            return Err(rejected(format!(
                "the consultation needs exactly one other party to conference (it has {})",
                target.peers.len()
            )));
        };
        if target.primary_peers.is_empty() {
            return Err(rejected(
                "the call the consultation is about has no party left to conference",
            ));
        }
        // A room per conference: digits only, so that `_X.` matches it.
        let room = format!("{}", 100_000_000 + fastrand::u32(..900_000_000));
        self.with_translator(|t, _| t.expect_conference(call));
        let redirect = |channel: &str, extra: Option<&str>| {
            let mut headers = vec![
                ("Channel", channel),
                ("Context", context.as_str()),
                ("Exten", room.as_str()),
                ("Priority", "1"),
            ];
            if let Some(extra) = extra {
                headers.extend_from_slice(&[
                    ("ExtraChannel", extra),
                    ("ExtraContext", context.as_str()),
                    ("ExtraExten", room.as_str()),
                    ("ExtraPriority", "1"),
                ]);
            }
            action("Redirect", &headers)
        };
        // First the held party, alone in the first call's bridge: that bridge empties,
        // which ends Asterisk's attended transfer (its "transferee hung up" case: the
        // consultation bridge turns into a plain bridge and nothing is transferred).
        // Then the agent and the target together (one dual Redirect, like hold, so
        // neither is hung up when the other leaves the plain bridge).
        let mut result = Ok(());
        for party in &target.primary_peers {
            if let Err(e) = client.send(redirect(party, None)?).await {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            result = client
                .send(redirect(target_party, Some(&target.device_channel))?)
                .await
                .map(|_| ());
        }
        if result.is_err() {
            self.with_translator(|t, _| t.clear_pending(call));
        }
        result
    }

    async fn drop_party(
        &self,
        call: &opencti_core::CallId,
        party: &opencti_core::PartyId,
    ) -> Result<()> {
        let client = self.up_client()?;
        self.target(call)?;
        let channel = self
            .with_translator(|t, _| t.party_channel(call, party))
            .flatten()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("party {party} is not (or no longer) in call {call}"),
                )
            })?;
        client.send(hangup_action(&channel, 16)?).await.map(|_| ())
    }

    async fn send_dtmf(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        digits: &opencti_core::DtmfDigits,
    ) -> Result<()> {
        let client = self.up_client()?.clone();
        let target = self.target(call)?;
        let Some(party) = target.peers.first().cloned() else {
            return Err(rejected(
                "send_dtmf needs another party in the call to play the digits to",
            ));
        };
        let mut chars = digits.as_str().chars();
        let play = |digit: char| {
            action(
                "PlayDTMF",
                &[
                    ("Channel", &party),
                    ("Digit", &digit.to_string()),
                    ("Duration", "100"),
                ],
            )
        };
        // The first digit is awaited here so that a refusal is the command's answer; the
        // rest are played in order in the background (each answer comes after its digit
        // has been played, capture 17), and the last one confirms the command.
        let Some(first) = chars.next() else {
            return Err(Error::new(ErrorKind::BadInput, "no DTMF digits"));
        };
        client.send(play(first)?).await?;
        let rest: Vec<Action> = chars.map(play).collect::<Result<_>>()?;
        let connector = self.clone();
        let (call, digits) = (call.clone(), digits.clone());
        tokio::spawn(async move {
            for a in rest {
                if let Err(e) = client.send(a).await {
                    connector.with_translator(|_, out| {
                        out.emit(Event::CommandFailed { error: e.to_body() }, Some(id))
                    });
                    return;
                }
            }
            connector.with_translator(|t, out| {
                t.emit_confirmation(Event::DtmfSent { call, digits }, id, out)
            });
        });
        Ok(())
    }

    async fn set_call_data(
        &self,
        id: CommandId,
        call: &opencti_core::CallId,
        data: &opencti_core::CallData,
    ) -> Result<()> {
        let client = self.up_client()?;
        let target = self.target(call)?;
        for (key, val) in data.iter() {
            let variable = format!("OPENCTI_{}", key.as_str());
            let a = action(
                "Setvar",
                &[
                    ("Channel", &target.device_channel),
                    ("Variable", &variable),
                    ("Value", val.as_str()),
                ],
            )?;
            client.send(a).await?;
        }
        self.with_translator(|t, out| {
            t.emit_confirmation(
                Event::CallDataChanged {
                    call: call.clone(),
                    data: data.clone(),
                },
                id,
                out,
            )
        });
        Ok(())
    }
}

impl AmiLine {
    /// Hands a checked command to Asterisk.
    pub(crate) async fn submit(&self, request: Request) -> Result<()> {
        let id = request.id;
        match &request.command {
            Command::Login {} => {
                let already = self
                    .with_translator(|t, _| !t.book.agent_is(&ChosenState::LoggedOut))
                    .unwrap_or(false);
                let member_name = self.shared.agent.clone();
                let results = self
                    .queue_actions(
                        "QueueAdd",
                        &[("Paused", "true"), ("MemberName", &member_name)],
                    )
                    .await?;
                self.settle_queue("login (QueueAdd)", id, results, already)
            }
            Command::Logout { .. } => {
                let already = self
                    .with_translator(|t, _| t.book.agent_is(&ChosenState::LoggedOut))
                    .unwrap_or(false);
                let results = self.queue_actions("QueueRemove", &[]).await?;
                self.settle_queue("logout (QueueRemove)", id, results, already)
            }
            Command::SetAgentState { state, after_call } => {
                if *after_call {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "Asterisk queues cannot hold a state change until after the call",
                    ));
                }
                let already = self
                    .with_translator(|t, _| t.book.agent_is(state))
                    .unwrap_or(false);
                let results = match state {
                    ChosenState::Ready => {
                        self.queue_actions("QueuePause", &[("Paused", "false")])
                            .await?
                    }
                    ChosenState::NotReady { reason } => {
                        let reason = reason.as_ref().map(|r| r.as_str().to_owned());
                        let mut extra = vec![("Paused", "true")];
                        if let Some(r) = &reason {
                            extra.push(("Reason", r));
                        }
                        self.queue_actions("QueuePause", &extra).await?
                    }
                    ChosenState::LoggedOut => {
                        return Err(Error::new(
                            ErrorKind::BadInput,
                            "set_agent_state takes ready or not_ready; use logout",
                        ))
                    }
                };
                self.settle_queue("set_agent_state (QueuePause)", id, results, already)
            }
            Command::MakeCall { to, data } => self.make_call(id, to, data).await,
            Command::Answer { call } => {
                if self.shared.config.answer != AnswerMode::PhoneAnswersItself {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "AMI cannot answer a phone; configure AnswerMode::PhoneAnswersItself if the phone auto-answers",
                    ));
                }
                // Nothing to send: the phone answers by itself and the resulting
                // call_connected confirms the command.
                self.target(call).map(|_| ())
            }
            Command::Reject { call } => {
                let client = self.up_client()?;
                let target = self.target(call)?;
                client
                    .send(hangup_action(&target.device_channel, 21)?)
                    .await
                    .map(|_| ())
            }
            Command::Hangup { call } => self.hangup(call).await,
            Command::Hold { call } => self.hold(call).await,
            Command::Retrieve { call } => self.retrieve(call).await,
            Command::BlindTransfer { call, to } => self.blind_transfer(id, call, to).await,
            Command::Consult { call, to } => self.consult(call, to).await,
            Command::CompleteTransfer { call } => self.complete_transfer(call).await,
            Command::CompleteConference { call } => self.complete_conference(call).await,
            Command::DropParty { call, party } => self.drop_party(call, party).await,
            Command::SendDtmf { call, digits } => self.send_dtmf(id, call, digits).await,
            Command::SetCallData { call, data } => self.set_call_data(id, call, data).await,
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the Asterisk AMI connector does not support {}",
                    other.kind()
                ),
            )),
        }
    }
}

/// What a line can do with `config`.
pub(crate) fn capabilities(config: &AmiConfig, any_line_queues: bool) -> Capabilities {
    use CommandKind::*;
    let mut caps = Capabilities::none()
        .with(MakeCall)
        .with(Hangup)
        .with(Reject)
        .with(BlindTransfer)
        .with(Consult)
        .with(CompleteTransfer)
        .with(SendDtmf)
        .with(SetCallData);
    if config.hold.is_some() {
        caps = caps.with(Hold).with(Retrieve);
    }
    if config.conference_context.is_some() {
        caps = caps.with(CompleteConference).with(DropParty);
    }
    if !config.queues.is_empty() || any_line_queues {
        caps = caps.with(Login).with(Logout).with(SetAgentState);
    }
    if config.answer == AnswerMode::PhoneAnswersItself {
        caps = caps.with(Answer);
    }
    caps.with_next_state_after_call(false).with_wrap_up(false)
}
