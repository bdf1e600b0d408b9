//! Screen pop and call logging: the CRM side of a desktop, as Salesforce Open CTI's
//! `screenPop` and `saveLog` do it.
//!
//! When a call is offered to an agent, the gateway looks the caller up in the [`Crm`] and
//! sends every browser of that agent a `{"screen_pop":{...}}` message. When a call ends,
//! it writes a [`CallLogEntry`]; when the agent completes wrap-up with a disposition, it
//! records the disposition on the calls of that wrap-up.

use std::sync::Arc;

use async_trait::async_trait;
use opencti_core::{AgentId, CallId, DeviceId, Direction, Event, Result, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::call_log::CallLog;

/// A contact as a screen pop shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// The person's name.
    pub name: String,
    /// Their company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Their account number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Their service tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Notes for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A contact with the number to call them on: one entry of the agent's phone book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhoneContact {
    /// The number to call.
    pub number: String,
    /// Who answers it.
    pub contact: Contact,
}

/// What the browser gets when a call is offered: `{"screen_pop":{"call":..,"number":..,"contact":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScreenPop {
    /// The offered call.
    pub call: CallId,
    /// The caller's number.
    pub number: String,
    /// The contact, if the CRM knows the number.
    pub contact: Option<Contact>,
}

/// One call, as the call log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLogEntry {
    /// The agent.
    pub agent: AgentId,
    /// The agent's device.
    pub device: DeviceId,
    /// The call.
    pub call: CallId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The other party's number, where known.
    pub number: Option<String>,
    /// The ACD queue, for an ACD call.
    pub queue: Option<String>,
    /// When the call reached the device (offered or dialled).
    pub started_at: Timestamp,
    /// When it was answered, if it was.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Timestamp,
    /// How it ended (`normal`, `transferred`, `no_answer`, ...).
    pub outcome: String,
    /// Everyone else who was on the call.
    pub parties: Vec<String>,
}

/// The CRM behind screen pops and the call log.
#[async_trait]
pub trait Crm: Send + Sync {
    /// The contact for a caller's number.
    async fn lookup(&self, number: &str) -> Result<Option<Contact>>;

    /// Records a call that ended.
    async fn log_call(&self, entry: &CallLogEntry) -> Result<()>;

    /// Records the wrap-up disposition of an agent's calls.
    async fn set_disposition(
        &self,
        agent: &AgentId,
        calls: &[CallId],
        disposition: &str,
    ) -> Result<()>;

    /// Up to `limit` contacts whose name, number or company contains `text` (any case),
    /// for the agent to call or transfer to; an empty `text` lists the first `limit`.
    /// A CRM without a phone book keeps the default, which finds nobody.
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<PhoneContact>> {
        let _ = (text, limit);
        Ok(Vec::new())
    }
}

/// Watches one agent's session for as long as it runs: screen pops out, and, when
/// `log_calls`, the call log in (a site on NATS leaves the log to one follower of its
/// stream instead, so that several gateways do not each write it).
pub(crate) fn watch(
    session: crate::sessions::AgentLine,
    crm: Arc<dyn Crm>,
    pops: broadcast::Sender<Arc<ScreenPop>>,
    log_calls: bool,
) {
    let mut events = opencti_core::DesktopInterface::subscribe(&session);
    let mut commands = session.subscribe_commands();
    let snapshot = opencti_core::DesktopInterface::snapshot(&session);
    let (agent, device) = (snapshot.agent, snapshot.device);
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut log = CallLog::new();
        loop {
            tokio::select! {
                // A command is published before the event that confirms it: reading
                // commands first keeps each disposition ahead of its wrap-up's end.
                biased;
                command = commands.recv() => match command {
                    Ok(accepted) => log.command(&agent, &device, &accepted),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                event = events.next() => {
                    let Some(event) = event else { return };
                    let Ok(event) = event else {
                        tracing::warn!(agent = %agent, "call logger fell behind; some calls may be missing from the log");
                        continue;
                    };
                    if let Event::CallOffered { call, from: Some(number), .. } = &event.event {
                        let contact = crm.lookup(number.as_str()).await.unwrap_or_else(|error| {
                            tracing::warn!(%error, "contact lookup failed");
                            None
                        });
                        let _ = pops.send(Arc::new(ScreenPop {
                            call: call.clone(),
                            number: number.as_str().to_string(),
                            contact,
                        }));
                    }
                    let Some(write) = log.event(&event) else { continue };
                    if !log_calls {
                        continue;
                    }
                    if let Err(error) = write.write_to(crm.as_ref()).await {
                        tracing::warn!(%error, agent = %agent, "could not write the call log");
                    }
                }
            }
        }
    });
}

/// A CRM that knows nobody and keeps nothing: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCrm;

#[async_trait]
impl Crm for NoCrm {
    async fn lookup(&self, _number: &str) -> Result<Option<Contact>> {
        Ok(None)
    }
    async fn log_call(&self, _entry: &CallLogEntry) -> Result<()> {
        Ok(())
    }
    async fn set_disposition(&self, _: &AgentId, _: &[CallId], _: &str) -> Result<()> {
        Ok(())
    }
}
