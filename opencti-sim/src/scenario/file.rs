//! The scenario file format (TOML), and its reader.
//!
//! ```toml
//! name = "Support desk, one morning hour"
//! seed = 42
//! far_end = { behaviour = "answer", after = 3 }   # what outside numbers do (optional)
//!
//! [[queue]]
//! id = "support"
//! number = "5000"        # dialling or transferring to it reaches the queue (optional)
//! priority = 1           # higher is served first (optional, 0)
//! ring_timeout = 15      # seconds an offer rings before it returns to the queue (15)
//! wrap_up = 30           # seconds of after-call work (0)
//!
//! [[agent]]
//! id = "alice"
//! device = "1001"
//! skills = ["support"]
//!
//! [[extension]]          # an internal number with no agent
//! device = "1900"
//! behaviour = "answer"   # answer | no_answer | busy | unreachable
//! after = 2              # seconds of ringing, for answer
//!
//! [[arrivals]]           # random calls: Poisson arrivals, exponential times
//! queue = "support"
//! calls_per_hour = 120
//! talk = 180             # mean seconds of talk once answered
//! patience = 60          # mean seconds before abandoning (optional: waits for ever)
//! start = 0              # seconds (0)
//! duration = 3600        # seconds of arrivals (3600)
//!
//! [[call]]               # one call at a set time
//! at = 5
//! to = "support"         # a queue id, a queue's number, or an agent's device
//! from = "+441632960001"
//! talk = 120             # optional: talks until someone hangs up
//! patience = 30          # optional
//! data = { account = "A-1001" }
//! ```
//!
//! Times are seconds (fractions allowed). Unknown fields are refused. Every error names
//! the file, the line, and what was expected.

use std::ops::Range;
use std::time::Duration;

use opencti_core::{
    Address, AgentId, CallData, DeviceId, Dialable, Error, ErrorKind, QueueId, Result,
};
use serde::Deserialize;
use toml::Spanned;

use super::{Arrivals, Scenario, ScriptedCall};
use crate::config::{AgentConfig, CentreConfig, FarEnd, QueueConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    seed: u64,
    far_end: Option<Spanned<RawFarEnd>>,
    #[serde(default, rename = "queue")]
    queues: Vec<Spanned<RawQueue>>,
    #[serde(default, rename = "agent")]
    agents: Vec<Spanned<RawAgent>>,
    #[serde(default, rename = "extension")]
    extensions: Vec<Spanned<RawExtension>>,
    #[serde(default)]
    arrivals: Vec<Spanned<RawArrivals>>,
    #[serde(default, rename = "call")]
    calls: Vec<Spanned<RawCall>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    id: Spanned<String>,
    number: Option<Spanned<String>>,
    #[serde(default)]
    priority: u8,
    ring_timeout: Option<Spanned<f64>>,
    wrap_up: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Spanned<String>,
    device: Spanned<String>,
    #[serde(default)]
    skills: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFarEnd {
    behaviour: Spanned<String>,
    after: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    device: Spanned<String>,
    behaviour: Spanned<String>,
    after: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrivals {
    queue: Spanned<String>,
    calls_per_hour: Spanned<f64>,
    talk: Spanned<f64>,
    patience: Option<Spanned<f64>>,
    start: Option<Spanned<f64>>,
    duration: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    at: Spanned<f64>,
    to: Spanned<String>,
    from: Spanned<String>,
    talk: Option<Spanned<f64>>,
    patience: Option<Spanned<f64>>,
    #[serde(default)]
    data: Option<Spanned<toml::Table>>,
}

/// Where errors point.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: &Range<usize>, message: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Config,
            format!("{}:{}: {}", self.origin, self.line(span), message),
        )
    }

    fn valid<T>(&self, value: &Spanned<String>, make: impl Fn(&str) -> Result<T>) -> Result<T> {
        make(value.get_ref()).map_err(|e| self.error(&value.span(), e.message()))
    }

    fn seconds(&self, value: &Spanned<f64>, what: &str) -> Result<Duration> {
        let secs = *value.get_ref();
        if !secs.is_finite() || secs < 0.0 {
            return Err(self.error(
                &value.span(),
                format!("{} must be zero or more seconds, not {}", what, secs),
            ));
        }
        Duration::try_from_secs_f64(secs)
            .map_err(|_| self.error(&value.span(), format!("{} is too large", what)))
    }

    fn positive_seconds(&self, value: &Spanned<f64>, what: &str) -> Result<Duration> {
        let d = self.seconds(value, what)?;
        if d.is_zero() {
            return Err(self.error(&value.span(), format!("{} must be more than zero", what)));
        }
        Ok(d)
    }

    fn far_end(&self, behaviour: &Spanned<String>, after: &Option<Spanned<f64>>) -> Result<FarEnd> {
        Ok(match behaviour.get_ref().as_str() {
            "answer" => FarEnd::Answer {
                after: match after {
                    Some(a) => self.seconds(a, "after")?,
                    None => Duration::from_secs(3),
                },
            },
            "no_answer" => FarEnd::NoAnswer,
            "busy" => FarEnd::Busy,
            "unreachable" => FarEnd::Unreachable,
            other => {
                return Err(self.error(
                    &behaviour.span(),
                    format!(
                    "unknown behaviour `{}`, expected one of answer, no_answer, busy, unreachable",
                    other
                ),
                ))
            }
        })
    }
}

/// Parses scenario TOML; `origin` (a path) names the source in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
    let src = Source { text, origin };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.error(&span, e.message())
    })?;

    let mut queues = Vec::new();
    for q in &raw.queues {
        let q = q.get_ref();
        let id = src.valid(&q.id, |s| QueueId::new(s))?;
        if queues.iter().any(|known: &QueueConfig| known.id == id) {
            return Err(src.error(&q.id.span(), format!("queue {} is defined twice", id)));
        }
        let mut config = QueueConfig::new(id);
        config.priority = q.priority;
        if let Some(n) = &q.number {
            config.number = Some(src.valid(n, |s| Dialable::new(s))?);
        }
        if let Some(t) = &q.ring_timeout {
            config.ring_timeout = src.positive_seconds(t, "ring_timeout")?;
        }
        if let Some(w) = &q.wrap_up {
            config.wrap_up = src.seconds(w, "wrap_up")?;
        }
        queues.push(config);
    }
    let known_queues = |name: &Spanned<String>| -> Result<QueueId> {
        let id = src.valid(name, |s| QueueId::new(s))?;
        if queues.iter().any(|q| q.id == id) {
            Ok(id)
        } else {
            Err(src.error(
                &name.span(),
                format!(
                    "unknown queue `{}`, expected one of the queues defined: {}",
                    id,
                    list(queues.iter().map(|q| q.id.as_str()))
                ),
            ))
        }
    };

    let mut agents = Vec::new();
    for a in &raw.agents {
        let a = a.get_ref();
        let id = src.valid(&a.id, |s| AgentId::new(s))?;
        let device = src.valid(&a.device, |s| DeviceId::new(s))?;
        if agents.iter().any(|k: &AgentConfig| k.id == id) {
            return Err(src.error(&a.id.span(), format!("agent {} is defined twice", id)));
        }
        if agents.iter().any(|k: &AgentConfig| k.device == device) {
            return Err(src.error(
                &a.device.span(),
                format!("device {} is already another agent's", device),
            ));
        }
        let skills = a
            .skills
            .iter()
            .map(&known_queues)
            .collect::<Result<Vec<_>>>()?;
        agents.push(AgentConfig { id, device, skills });
    }

    let mut extensions = Vec::new();
    for e in &raw.extensions {
        let e = e.get_ref();
        let device = src.valid(&e.device, |s| DeviceId::new(s))?;
        if agents.iter().any(|a| a.device == device) {
            return Err(src.error(
                &e.device.span(),
                format!("extension {} is also an agent's device", device),
            ));
        }
        extensions.push((device, src.far_end(&e.behaviour, &e.after)?));
    }

    let far_end = match &raw.far_end {
        Some(f) => src.far_end(&f.get_ref().behaviour, &f.get_ref().after)?,
        None => CentreConfig::default().far_end,
    };

    let mut arrivals = Vec::new();
    for a in &raw.arrivals {
        let a = a.get_ref();
        let rate = *a.calls_per_hour.get_ref();
        super::check_rate(rate).map_err(|e| src.error(&a.calls_per_hour.span(), e.message()))?;
        arrivals.push(Arrivals {
            queue: known_queues(&a.queue)?,
            calls_per_hour: rate,
            talk: src.positive_seconds(&a.talk, "talk")?,
            patience: a
                .patience
                .as_ref()
                .map(|p| src.positive_seconds(p, "patience"))
                .transpose()?,
            start: a
                .start
                .as_ref()
                .map(|s| src.seconds(s, "start"))
                .transpose()?
                .unwrap_or_default(),
            duration: a
                .duration
                .as_ref()
                .map(|d| src.positive_seconds(d, "duration"))
                .transpose()?
                .unwrap_or(Duration::from_secs(3600)),
        });
    }

    let mut calls = Vec::new();
    for c in &raw.calls {
        let c = c.get_ref();
        let to = c.to.get_ref();
        let reachable = queues
            .iter()
            .any(|q| q.id.as_str() == to || q.number.as_ref().is_some_and(|n| n.as_str() == to))
            || agents.iter().any(|a| a.device.as_str() == to);
        if !reachable {
            return Err(src.error(
                &c.to.span(),
                format!(
                    "`{}` is not a queue, a queue number or an agent's device; expected one of: {}",
                    to,
                    list(
                        queues
                            .iter()
                            .map(|q| q.id.as_str())
                            .chain(agents.iter().map(|a| a.device.as_str()))
                    )
                ),
            ));
        }
        let mut data = CallData::new();
        if let Some(table) = &c.data {
            let pairs: Result<Vec<(String, String)>> = table
                .get_ref()
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k.clone(), s.to_string())),
                    None => Err(src.error(
                        &table.span(),
                        format!("data `{}` must be a string, not {}", k, v.type_str()),
                    )),
                })
                .collect();
            data =
                CallData::from_pairs(pairs?).map_err(|e| src.error(&table.span(), e.message()))?;
        }
        calls.push(ScriptedCall {
            at: src.seconds(&c.at, "at")?,
            to: to.clone(),
            from: src.valid(&c.from, |s| Address::new(s))?,
            talk: c
                .talk
                .as_ref()
                .map(|t| src.positive_seconds(t, "talk"))
                .transpose()?,
            patience: c
                .patience
                .as_ref()
                .map(|p| src.positive_seconds(p, "patience"))
                .transpose()?,
            data,
        });
    }

    let scenario = Scenario {
        name: raw.name.unwrap_or_else(|| origin.to_string()),
        seed: raw.seed,
        centre: CentreConfig {
            agents,
            queues,
            extensions,
            far_end,
            ..CentreConfig::default()
        },
        arrivals,
        calls,
    };
    scenario
        .validate()
        .map_err(|e| Error::new(ErrorKind::Config, format!("{}: {}", origin, e.message())))?;
    Ok(scenario)
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "(none defined)".to_string()
    } else {
        names.join(", ")
    }
}
