//! How a simulated contact centre is set up: agents, queues, extensions, far ends.

use std::time::Duration;

use opencti_core::{AgentId, DeviceId, Dialable, Error, ErrorKind, QueueId, Result};
use serde::{Deserialize, Serialize};

/// An agent: who logs in, at which device, with which skills (queues served).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The agent's id.
    pub id: AgentId,
    /// The agent's device: dialling its id rings it.
    pub device: DeviceId,
    /// The queues the agent serves.
    pub skills: Vec<QueueId>,
}

/// An ACD queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// The queue's id.
    pub id: QueueId,
    /// A number that reaches the queue when dialled or transferred to, if any.
    pub number: Option<Dialable>,
    /// Higher is served first when agents serve several queues.
    pub priority: u8,
    /// How long an offered call rings at an agent before it returns to the queue
    /// (ring-no-answer); the agent is made not ready with reason `no_answer`.
    pub ring_timeout: Duration,
    /// After-call work imposed on the agent after each call from this queue.
    pub wrap_up: Duration,
    /// The service-level threshold: a caller answered within it counts as answered in
    /// time.
    pub service_level: Duration,
}

impl QueueConfig {
    /// A queue with no number, priority 0, 15 s ring timeout, no wrap-up and a 20 s
    /// service-level threshold.
    pub fn new(id: QueueId) -> Self {
        QueueConfig {
            id,
            number: None,
            priority: 0,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::ZERO,
            service_level: opencti_core::queue::DEFAULT_THRESHOLD,
        }
    }
}

/// What an outside number (or an extension with no agent) does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "behaviour", rename_all = "snake_case")]
pub enum FarEnd {
    /// Answers after ringing this long.
    Answer {
        /// Ringing time.
        #[serde(with = "crate::config::seconds")]
        after: Duration,
    },
    /// Rings until the caller gives up.
    NoAnswer,
    /// Is busy: the call fails at once.
    Busy,
    /// Does not exist: the call fails at once.
    Unreachable,
}

/// The whole centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentreConfig {
    /// The agents.
    pub agents: Vec<AgentConfig>,
    /// The queues.
    pub queues: Vec<QueueConfig>,
    /// Internal extensions with no agent (a supervisor, a help desk), and how they answer.
    pub extensions: Vec<(DeviceId, FarEnd)>,
    /// What outside numbers do unless told otherwise.
    pub far_end: FarEnd,
    /// What the centre's call ids start with: `<call_ids>-1`, `<call_ids>-2`, ... A
    /// centre that runs again (a gateway restarted) and keeps a call log should start
    /// them differently each time (see [`CentreConfig::unique_call_ids`]).
    #[serde(default = "default_call_ids")]
    pub call_ids: String,
}

fn default_call_ids() -> String {
    "call".into()
}

impl Default for CentreConfig {
    fn default() -> Self {
        CentreConfig {
            agents: Vec::new(),
            queues: Vec::new(),
            extensions: Vec::new(),
            far_end: FarEnd::Answer {
                after: Duration::from_secs(3),
            },
            call_ids: default_call_ids(),
        }
    }
}

impl CentreConfig {
    /// A call-id prefix no other run of a centre has: `call-` with the time in
    /// milliseconds and 16 random bits, in base 36, so that call ids stay unique across
    /// restarts and across gateways sharing a call log.
    pub fn unique_call_ids() -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let salt = u128::from(fastrand::u16(..));
        format!("call-{}", base36((millis << 16) | salt))
    }

    /// Checks that ids are unique and every skill names a queue.
    pub fn validate(&self) -> Result<()> {
        let config = |m: String| Error::new(ErrorKind::Config, m);
        if let Err(e) = opencti_core::CallId::new(format!("{}-1", self.call_ids)) {
            return Err(config(format!(
                "call_ids {:?}: {}",
                self.call_ids,
                e.message()
            )));
        }
        for (i, a) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|b| b.id == a.id) {
                return Err(config(format!("agent {} is defined twice", a.id)));
            }
            if self.agents[..i].iter().any(|b| b.device == a.device) {
                return Err(config(format!(
                    "device {} is given to two agents ({} and another)",
                    a.device, a.id
                )));
            }
            for skill in &a.skills {
                if !self.queues.iter().any(|q| &q.id == skill) {
                    return Err(config(format!(
                        "agent {} serves queue {}, which is not defined",
                        a.id, skill
                    )));
                }
            }
        }
        for (i, q) in self.queues.iter().enumerate() {
            if self.queues[..i].iter().any(|p| p.id == q.id) {
                return Err(config(format!("queue {} is defined twice", q.id)));
            }
            if q.ring_timeout.is_zero() {
                return Err(config(format!(
                    "queue {} has a ring timeout of zero: offered calls could never be answered",
                    q.id
                )));
            }
        }
        for (device, _) in &self.extensions {
            if self.agents.iter().any(|a| &a.device == device) {
                return Err(config(format!(
                    "extension {} is also an agent's device",
                    device
                )));
            }
        }
        Ok(())
    }
}

/// Durations as (fractional) seconds in files.
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(|_| {
            serde::de::Error::custom(format!(
                "{} is not a valid number of seconds (it must be zero or more)",
                secs
            ))
        })
    }
}

/// `n` in base 36, lower case.
fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
