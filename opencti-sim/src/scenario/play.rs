//! Plays a scenario's calls on a switch, at their times.

use std::time::Duration;

use opencti_core::{Address, CallData};
use tokio::time::Instant;

use super::{Arrivals, Scenario};
use crate::control::Control;

struct Planned {
    at: Duration,
    to: String,
    from: Address,
    talk: Option<Duration>,
    patience: Option<Duration>,
    data: CallData,
}

/// Every call of the scenario, in time order: the scripted ones, and the random ones drawn
/// from the seed.
fn plan(scenario: &Scenario) -> Vec<Planned> {
    let mut rng = fastrand::Rng::with_seed(scenario.seed);
    let mut calls: Vec<Planned> = scenario
        .calls
        .iter()
        .map(|c| Planned {
            at: c.at,
            to: c.to.clone(),
            from: c.from.clone(),
            talk: c.talk,
            patience: c.patience,
            data: c.data.clone(),
        })
        .collect();
    let mut caller = 0u32;
    for arrivals in &scenario.arrivals {
        draw(arrivals, &mut rng, &mut caller, &mut calls);
    }
    calls.sort_by_key(|c| c.at);
    calls
}

fn exponential(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    // 1 - U is in (0, 1], so the logarithm is finite.
    -mean * (1.0 - rng.f64()).ln()
}

fn draw(a: &Arrivals, rng: &mut fastrand::Rng, caller: &mut u32, out: &mut Vec<Planned>) {
    let mean_gap = 3600.0 / a.calls_per_hour;
    let end = (a.start + a.duration).as_secs_f64();
    let mut t = a.start.as_secs_f64();
    loop {
        t += exponential(rng, mean_gap);
        if t >= end {
            return;
        }
        *caller += 1;
        let from = Address::new(format!("+44163296{:04}", *caller % 10_000))
            .unwrap_or_else(|_| unreachable!("a generated number is a valid address"));
        let talk = Duration::from_secs_f64(exponential(rng, a.talk.as_secs_f64()));
        let patience = a
            .patience
            .map(|p| Duration::from_secs_f64(exponential(rng, p.as_secs_f64())));
        out.push(Planned {
            at: Duration::from_secs_f64(t),
            to: a.queue.as_str().to_string(),
            from,
            talk: Some(talk),
            patience,
            data: CallData::new(),
        });
    }
}

pub(super) fn spawn(scenario: Scenario, control: Control) -> tokio::task::JoinHandle<()> {
    let calls = plan(&scenario);
    let start = Instant::now();
    tokio::spawn(async move {
        for call in calls {
            tokio::time::sleep_until(start + call.at).await;
            let mut placing = control
                .customer_calls(&call.to, call.from.as_str())
                .data(call.data);
            if let Some(t) = call.talk {
                placing = placing.talk_for(t);
            }
            if let Some(p) = call.patience {
                placing = placing.patience(p);
            }
            if let Err(error) = placing.call() {
                tracing::warn!(%error, to = %call.to, "scenario call could not be placed");
            }
        }
    })
}
