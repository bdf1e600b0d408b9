//! Erlang B, Erlang C (M/M/c) and Erlang A (M/M/c+M): the formulas a planner checks the
//! simulator against.
//!
//! Erlang B and C use the usual recursion on the number of agents, carried in logarithms
//! so that nothing overflows for thousands of agents. Erlang A is computed from the exact
//! stationary distribution of the M/M/c+M birth-death process (Palm's model, as in Garnett,
//! Mandelbaum & Reiman 2002), truncated where the tail is below 1e-16 of the total, so it
//! is exact to floating-point precision rather than an asymptotic approximation:
//!
//! - states `n = 0, 1, ...` (calls in the system); births at rate `λ`, deaths at rate
//!   `min(n, c)·μ + max(n − c, 0)·θ` (service completions and abandonments);
//! - by PASTA an arriving caller sees that distribution: it waits when `n ≥ c`, and with
//!   `j = n − c` callers ahead it is reached after `j + 1` steps whose rates are
//!   `c·μ + k·θ`, `k = j, ..., 0`, while its own patience runs out at rate `θ`;
//! - the chance it is answered, its mean wait when answered, and the chance it is answered
//!   within `T` follow from that phase-type time: the first two in closed form, the third
//!   by uniformisation of the small Markov chain of "callers ahead".

use opencti_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// The queue the formulas describe: `agents` agents, Poisson arrivals, exponential
/// handling times and, for Erlang A, exponential patience.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueueModel {
    /// Number of agents (servers), at least 1.
    pub agents: u32,
    /// Mean arrival rate, in calls per hour.
    pub calls_per_hour: f64,
    /// Mean handling time, in seconds.
    pub handle_secs: f64,
    /// Mean patience, in seconds; `None` for callers who never give up (Erlang C).
    pub patience_secs: Option<f64>,
}

impl QueueModel {
    /// The offered load in Erlangs (arrival rate × handling time).
    pub fn load_erlangs(&self) -> f64 {
        self.calls_per_hour / 3600.0 * self.handle_secs
    }

    /// Erlang C figures when `patience_secs` is `None`, Erlang A figures otherwise, for
    /// a service-level threshold of `threshold_secs`.
    ///
    /// ```
    /// use opencti_sim::planner::erlang::QueueModel;
    /// let model = QueueModel { agents: 10, calls_per_hour: 160.0, handle_secs: 180.0, patience_secs: None };
    /// let figures = model.figures(20.0).unwrap();
    /// assert!((figures.prob_wait - 0.4092).abs() < 1e-4);
    /// ```
    pub fn figures(&self, threshold_secs: f64) -> Result<ErlangFigures> {
        match self.patience_secs {
            None => erlang_c_figures(self, threshold_secs),
            Some(_) => erlang_a_figures(self, threshold_secs),
        }
    }
}

/// What the formulas predict for a queue in steady state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErlangFigures {
    /// Offered load, Erlangs.
    pub load_erlangs: f64,
    /// Probability that an arriving caller waits at all (finds every agent busy).
    pub prob_wait: f64,
    /// Probability that a caller abandons (0 for Erlang C).
    pub prob_abandon: f64,
    /// Average speed of answer: the mean wait of answered calls, seconds.
    pub asa_secs: f64,
    /// Mean wait of all calls, answered or abandoned, seconds.
    pub mean_wait_secs: f64,
    /// Fraction of offered calls answered within the threshold (abandoned calls are in
    /// the denominator).
    pub service_level: f64,
    /// Fraction of answered calls answered within the threshold.
    pub service_level_of_answered: f64,
    /// Fraction of the agents' time spent handling calls: carried load / agents.
    pub occupancy: f64,
    /// Mean number of callers waiting.
    pub mean_queue_length: f64,
}

/// Erlang B: the probability that a call finds all `agents` busy in a loss system
/// offered `load` Erlangs (`load ≥ 0`; NaN otherwise). Stable for any number of agents.
///
/// ```
/// use opencti_sim::planner::erlang::erlang_b;
/// assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-15);
/// ```
pub fn erlang_b(agents: u32, load: f64) -> f64 {
    (-ln_inverse_erlang_b(agents, load)).exp()
}

/// Erlang C: the probability that a call waits in an M/M/c queue with `agents` agents
/// offered `load` Erlangs (`load ≥ 0`; NaN otherwise); 1 when `load >= agents` (the
/// queue is unstable and everyone waits).
///
/// ```
/// use opencti_sim::planner::erlang::erlang_c;
/// assert!((erlang_c(10, 8.0) - 0.40918).abs() < 1e-5);
/// ```
pub fn erlang_c(agents: u32, load: f64) -> f64 {
    let c = f64::from(agents);
    if load >= c {
        return 1.0;
    }
    // C = c·B / (c − A(1 − B)) = c / (y(c − A) + A) with y = 1/B, which may be huge.
    let y = ln_inverse_erlang_b(agents, load).exp();
    c / (y * (c - load) + load)
}

/// Erlang C figures for an M/M/c queue (patience is ignored), in closed form.
pub fn erlang_c_figures(model: &QueueModel, threshold_secs: f64) -> Result<ErlangFigures> {
    check(model, threshold_secs)?;
    let c = f64::from(model.agents);
    let load = model.load_erlangs();
    if load >= c {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "Erlang C has no steady state for {load:.3} Erlangs on {} agents: the queue grows without bound",
                model.agents
            ),
        ));
    }
    let prob_wait = erlang_c(model.agents, load);
    // Service completions when all are busy outpace arrivals by (c − A)/AHT per second.
    let drain = (c - load) / model.handle_secs;
    let asa = prob_wait / drain;
    let service_level = 1.0 - prob_wait * (-drain * threshold_secs).exp();
    Ok(ErlangFigures {
        load_erlangs: load,
        prob_wait,
        prob_abandon: 0.0,
        asa_secs: asa,
        mean_wait_secs: asa,
        service_level,
        service_level_of_answered: service_level,
        occupancy: load / c,
        mean_queue_length: asa * model.calls_per_hour / 3600.0,
    })
}

/// Erlang A figures for an M/M/c+M queue, from its exact birth-death solution.
///
/// `patience_secs` must be set (use [`erlang_c_figures`] for patient callers).
pub fn erlang_a_figures(model: &QueueModel, threshold_secs: f64) -> Result<ErlangFigures> {
    check(model, threshold_secs)?;
    let Some(patience) = model.patience_secs else {
        return Err(Error::new(
            ErrorKind::BadInput,
            "Erlang A needs a mean patience; use Erlang C for callers who never give up",
        ));
    };
    birth_death(
        model.agents,
        model.calls_per_hour / 3600.0,
        1.0 / model.handle_secs,
        1.0 / patience,
        threshold_secs,
    )
}

fn check(model: &QueueModel, threshold_secs: f64) -> Result<()> {
    let bad = |what: &str, value: f64| {
        Err(Error::new(
            ErrorKind::BadInput,
            format!("{what} must be a positive number; got {value}"),
        ))
    };
    if model.agents == 0 {
        return Err(Error::new(
            ErrorKind::BadInput,
            "the queue needs at least one agent",
        ));
    }
    if !(model.calls_per_hour.is_finite() && model.calls_per_hour > 0.0) {
        return bad("calls_per_hour", model.calls_per_hour);
    }
    if !(model.handle_secs.is_finite() && model.handle_secs > 0.0) {
        return bad("handle_secs", model.handle_secs);
    }
    if let Some(p) = model.patience_secs {
        if !(p.is_finite() && p > 0.0) {
            return bad("patience_secs", p);
        }
    }
    if !(threshold_secs.is_finite() && threshold_secs >= 0.0) {
        return Err(Error::new(
            ErrorKind::BadInput,
            format!("the service-level threshold must be zero or more; got {threshold_secs}"),
        ));
    }
    Ok(())
}

/// `ln(1/B(c, A))` by the recursion `1/B(k) = 1 + (k/A)·1/B(k−1)`, in logarithms.
fn ln_inverse_erlang_b(agents: u32, load: f64) -> f64 {
    let mut ln_y = 0.0_f64;
    for k in 1..=agents {
        let k = f64::from(k);
        // ln(1 + (k/A)·y) = ln(k/A) + ln y + ln(1 + A/(k·y)).
        ln_y = (k / load).ln() + ln_y + (load / k * (-ln_y).exp()).ln_1p();
    }
    ln_y
}

/// The most states (callers waiting) the truncated chain may need.
const MAX_QUEUE_STATES: usize = 10_000_000;

/// The exact M/M/c+M (θ > 0) or M/M/c (θ = 0, needs λ < cμ) figures, rates per second.
pub(crate) fn birth_death(
    agents: u32,
    lambda: f64,
    mu: f64,
    theta: f64,
    threshold: f64,
) -> Result<ErlangFigures> {
    let c = f64::from(agents);
    let cmu = c * mu;
    if theta <= 0.0 && lambda >= cmu {
        return Err(Error::new(
            ErrorKind::Config,
            "no steady state: patient callers and a load at or above the number of agents",
        ));
    }
    // Unnormalised log-weights of the states n = c + j, relative to n = c:
    // w_j = Π_{k=1..j} λ / (cμ + kθ). States below c add up to w_0 / B(c, A).
    let ln_below = ln_inverse_erlang_b(agents, lambda / mu);
    let mut ln_w: Vec<f64> = vec![0.0];
    let mut ln_max = ln_below.max(0.0);
    loop {
        let j = ln_w.len();
        let rate = lambda / (cmu + j as f64 * theta);
        let next = ln_w[j - 1] + rate.ln();
        ln_w.push(next);
        ln_max = ln_max.max(next);
        // Once the ratio is below one the tail beyond j is at most w_j·r/(1−r).
        if rate < 1.0 {
            let tail = next + (rate / (1.0 - rate)).ln();
            if tail < ln_max - 16.0 * std::f64::consts::LN_10 - 2.0 {
                break;
            }
        }
        if j >= MAX_QUEUE_STATES {
            return Err(Error::new(
                ErrorKind::Config,
                "the queue's stationary distribution has too long a tail to compute",
            ));
        }
    }
    // ln_below already includes the state n = c itself (Σ_{n≤c} π_n = π_c / B).
    let scale: f64 =
        (ln_below - ln_max).exp() + ln_w[1..].iter().map(|l| (l - ln_max).exp()).sum::<f64>();
    let ln_norm = ln_max + scale.ln();
    // p[j]: probability that an arriving caller finds c + j calls in the system.
    let p: Vec<f64> = ln_w.iter().map(|l| (l - ln_norm).exp()).collect();
    let prob_wait: f64 = p.iter().sum();
    let mean_queue: f64 = p.iter().enumerate().map(|(j, pj)| j as f64 * pj).sum();

    // For a caller with j ahead: answered with probability Π_{k≤j} r_k/(r_k+θ), and
    // E[wait; answered] = that × Σ_{k≤j} 1/(r_k+θ), r_k = cμ + kθ.
    let mut answered_given = Vec::with_capacity(p.len());
    let mut answered_waiting = 0.0;
    let mut wait_answered = 0.0;
    let mut product = 1.0;
    let mut sum = 0.0;
    for (j, pj) in p.iter().enumerate() {
        let r = cmu + j as f64 * theta;
        product *= r / (r + theta);
        sum += 1.0 / (r + theta);
        answered_given.push(product);
        answered_waiting += pj * product;
        wait_answered += pj * product * sum;
    }
    let prob_answered = (1.0 - prob_wait) + answered_waiting;
    let prob_abandon = if theta > 0.0 {
        theta * mean_queue / lambda
    } else {
        0.0
    };
    let within = reached_within(cmu, theta, p.len(), threshold);
    let answered_within: f64 = p
        .iter()
        .zip(&answered_given)
        .zip(&within)
        .map(|((pj, aj), wj)| pj * aj * wj)
        .sum();
    let service_level = (1.0 - prob_wait) + answered_within;
    Ok(ErlangFigures {
        load_erlangs: lambda / mu,
        prob_wait,
        prob_abandon,
        asa_secs: wait_answered / prob_answered,
        mean_wait_secs: mean_queue / lambda,
        service_level,
        service_level_of_answered: service_level / prob_answered,
        occupancy: lambda * prob_answered / mu / c,
        mean_queue_length: mean_queue,
    })
}

/// For a caller with `j` callers ahead (j < `states`): the probability that the
/// exponentially tilted wait, the sum over k = j..0 of Exp(cμ + (k+1)θ), is at most `t`.
///
/// Multiplied by the chance of being answered, it is the chance of being answered within
/// `t`. All `j` at once: `u_j(t)` solves `u_j' = a_j (u_{j−1} − u_j)`, `u_{−1} = 1`,
/// `u_j(0) = 0`, `a_j = cμ + (j+1)θ`, by uniformisation over steps short enough that the
/// Poisson weights neither underflow nor need many terms.
fn reached_within(cmu: f64, theta: f64, states: usize, t: f64) -> Vec<f64> {
    let mut u = vec![0.0; states];
    if t <= 0.0 {
        return u;
    }
    let rate = |j: usize| cmu + (j as f64 + 1.0) * theta;
    let lambda_max = rate(states - 1);
    // Steps with Λh ≤ 200: e^{−200} is far from underflow, and about Λh + 8√(Λh) terms
    // reach 1 − 1e-16, so the work is about 1.5 Λt per state.
    let steps = (lambda_max * t / 200.0).ceil().max(1.0);
    let h = t / steps;
    let lh = lambda_max * h;
    let mut weights = Vec::new();
    let mut w = (-lh).exp();
    let mut total = 0.0;
    let mut n = 0.0;
    while total < 1.0 - 1e-16 && weights.len() < 1_000 {
        weights.push(w);
        total += w;
        n += 1.0;
        w *= lh / n;
    }
    // Spread the Poisson mass left out (< 1e-16) over the terms kept, so that no
    // probability leaks away step after step and u can converge to exactly 1.
    for weight in &mut weights {
        *weight /= total;
    }
    let jump: Vec<f64> = (0..states).map(|j| rate(j) / lambda_max).collect();
    let mut power = vec![0.0; states];
    let mut next = vec![0.0; states];
    let mut acc = vec![0.0; states];
    for _ in 0..steps as u64 {
        // u ← Σ_n weight_n · P^n u, where (P v)_j = q_j v_{j−1} + (1 − q_j) v_j, v_{−1} = 1.
        power.copy_from_slice(&u);
        for (a, v) in acc.iter_mut().zip(&power) {
            *a = weights[0] * v;
        }
        for weight in &weights[1..] {
            let mut before = 1.0;
            for j in 0..states {
                let q = jump[j];
                next[j] = q * before + (1.0 - q) * power[j];
                before = power[j];
            }
            std::mem::swap(&mut power, &mut next);
            for (a, v) in acc.iter_mut().zip(&power) {
                *a += weight * v;
            }
        }
        std::mem::swap(&mut u, &mut acc);
        if u.iter().all(|v| *v >= 1.0 - 1e-14) {
            // Everyone has been reached: later steps change nothing that matters.
            break;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erlang_b_matches_textbook_values_and_the_direct_sum() {
        // B(c, A) = (A^c/c!) / Σ_{k≤c} A^k/k!, summed directly for small c.
        for &(c, a) in &[(1u32, 1.0), (5, 3.0), (10, 8.0), (20, 25.0)] {
            let mut term = 1.0;
            let mut sum = 1.0;
            for k in 1..=c {
                term *= a / f64::from(k);
                sum += term;
            }
            assert!(close(erlang_b(c, a), term / sum, 1e-12), "B({c}, {a})");
        }
        // A classic table value: 10 trunks offered 5 Erlangs block 1.84 %.
        assert!((erlang_b(10, 5.0) - 0.018_385).abs() < 1e-6);
    }

    #[test]
    fn erlang_c_matches_textbook_values() {
        // c = 10, A = 8: P(wait) = 0.4092 (e.g. Cooper, Introduction to Queueing Theory).
        assert!((erlang_c(10, 8.0) - 0.409_18).abs() < 1e-5);
        // c = 2, A = 1: C = 2·B/(2 − 1 + B), B = 0.2 → 1/3 exactly.
        assert!(close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-13));
        // c = 1: M/M/1 waits with probability ρ.
        assert!(close(erlang_c(1, 0.7), 0.7, 1e-13));
        assert_eq!(erlang_c(5, 5.0), 1.0);
    }

    #[test]
    fn erlang_c_is_stable_for_hundreds_and_thousands_of_agents() {
        for &(c, a) in &[(500u32, 480.0), (2_000, 1_950.0), (5_000, 100.0)] {
            let p = erlang_c(c, a);
            assert!(
                p.is_finite() && (0.0..=1.0).contains(&p),
                "C({c}, {a}) = {p}"
            );
        }
        assert!(erlang_c(5_000, 100.0) < 1e-100);
        // More agents, less waiting.
        assert!(erlang_c(500, 480.0) > erlang_c(501, 480.0));
    }

    #[test]
    fn the_birth_death_solution_without_patience_reproduces_the_closed_form() {
        // Independent check of both: the truncated birth-death chain with θ = 0 and the
        // uniformised waiting-time distribution against Erlang C's closed forms.
        for &(c, cph, aht) in &[
            (10u32, 160.0, 180.0),
            (50, 900.0, 180.0),
            (100, 1_800.0, 180.0),
            (300, 5_760.0, 180.0),
        ] {
            let model = QueueModel {
                agents: c,
                calls_per_hour: cph,
                handle_secs: aht,
                patience_secs: None,
            };
            let closed = erlang_c_figures(&model, 20.0).expect("stable");
            let chain = birth_death(c, cph / 3600.0, 1.0 / aht, 0.0, 20.0).expect("stable");
            assert!(
                close(chain.prob_wait, closed.prob_wait, 1e-10),
                "{c}: {chain:?} {closed:?}"
            );
            assert!(close(chain.asa_secs, closed.asa_secs, 1e-9), "{c}");
            assert!(
                close(chain.service_level, closed.service_level, 1e-10),
                "{c}"
            );
            assert!(close(chain.occupancy, closed.occupancy, 1e-12), "{c}");
            assert!(
                close(chain.mean_queue_length, closed.mean_queue_length, 1e-9),
                "{c}"
            );
            assert_eq!(chain.prob_abandon, 0.0);
        }
    }

    #[test]
    fn erlang_a_with_very_patient_callers_tends_to_erlang_c() {
        let c = QueueModel {
            agents: 10,
            calls_per_hour: 160.0,
            handle_secs: 180.0,
            patience_secs: None,
        };
        let a = QueueModel {
            patience_secs: Some(1e9),
            ..c
        };
        let (c, a) = (c.figures(20.0).expect("c"), a.figures(20.0).expect("a"));
        assert!(close(a.prob_wait, c.prob_wait, 1e-5));
        assert!(close(a.asa_secs, c.asa_secs, 1e-5));
        assert!(close(a.service_level, c.service_level, 1e-5));
        assert!(a.prob_abandon < 1e-6);
    }

    #[test]
    fn erlang_a_is_self_consistent() {
        // Answered + abandoned = 1, computed two independent ways: the abandonment flow
        // θ·E[queue]/λ, and the per-caller chance of being answered; and the service
        // level tends to the answered fraction as the threshold grows.
        for &(c, cph, aht, patience) in &[
            (10u32, 160.0, 180.0, 120.0),
            (10, 400.0, 180.0, 60.0),
            (50, 1_000.0, 180.0, 300.0),
            (100, 1_800.0, 180.0, 180.0),
            (100, 2_400.0, 180.0, 90.0),
        ] {
            let model = QueueModel {
                agents: c,
                calls_per_hour: cph,
                handle_secs: aht,
                patience_secs: Some(patience),
            };
            let f = model.figures(20.0).expect("figures");
            let answered = f.occupancy * f64::from(c) / f.load_erlangs;
            assert!(
                close(answered + f.prob_abandon, 1.0, 1e-10),
                "{model:?}: {f:?}"
            );
            let forever = model.figures(1e6).expect("figures");
            assert!(close(forever.service_level, answered, 1e-9), "{forever:?}");
            assert!(close(forever.service_level_of_answered, 1.0, 1e-9));
            let zero = model.figures(0.0).expect("figures");
            assert!(close(zero.service_level, 1.0 - f.prob_wait, 1e-12));
            // Mean wait of everyone = E[queue]/λ (Little) = P(ab)/θ.
            assert!(close(f.mean_wait_secs, f.prob_abandon * patience, 1e-10));
            assert!(f.service_level < forever.service_level);
        }
    }

    #[test]
    fn erlang_a_matches_a_direct_computation_of_a_small_case() {
        // c = 1, λ = 1, μ = 1, θ = 1: the chain is an M/M/1 with total death rate n in
        // state n, i.e. the M/M/∞ Poisson(1) distribution. P(wait) = P(n ≥ 1) = 1 − e^{-1};
        // E[queue] = Σ (n−1)⁺ p_n = E[n] − P(n ≥ 1) = 1 − (1 − e^{-1}) = e^{-1};
        // P(ab) = θ·E[queue]/λ = e^{-1}.
        let f = birth_death(1, 1.0, 1.0, 1.0, 0.5).expect("figures");
        let e1 = (-1.0_f64).exp();
        assert!(close(f.prob_wait, 1.0 - e1, 1e-13), "{f:?}");
        assert!(close(f.prob_abandon, e1, 1e-13), "{f:?}");
        // A caller finding 1 in system (j = 0) waits Exp(1) for service against Exp(1)
        // patience: answered w.p. 1/2 and within t w.p. (1 − e^{−2t})/2. With j = 1:
        // stages Exp(2) then Exp(1) against patience: answered w.p. 2/3·1/2 and within t
        // w.p. (1/3)·P(Exp(3) + Exp(2) ≤ t). Check the service level term by term.
        let t: f64 = 0.5;
        let mut expected = e1; // p_0: answered at once
        let mut fact = 1.0;
        for n in 1..60 {
            fact *= f64::from(n);
            let pn = e1 / fact;
            let j = n - 1; // callers ahead
                           // Answered within t: Π_{k≤j} r_k/(r_k+1) × P(Σ_{k≤j} Exp(r_k+1) ≤ t), r_k = 1 + k.
            let rates: Vec<f64> = (0..=j).map(|k| f64::from(k) + 2.0).collect();
            let answered: f64 = (0..=j)
                .map(|k| (f64::from(k) + 1.0) / (f64::from(k) + 2.0))
                .product();
            expected += pn * answered * hypoexponential_cdf(&rates, t);
        }
        assert!(
            close(f.service_level, expected, 1e-10),
            "{} vs {}",
            f.service_level,
            expected
        );
    }

    /// P(Σ Exp(rate_i) ≤ t) for distinct rates, by the classical partial-fraction formula
    /// (fine for the few small rates used here).
    fn hypoexponential_cdf(rates: &[f64], t: f64) -> f64 {
        let mut survival = 0.0;
        for (i, &ri) in rates.iter().enumerate() {
            let mut coeff = 1.0;
            for (k, &rk) in rates.iter().enumerate() {
                if k != i {
                    coeff *= rk / (rk - ri);
                }
            }
            survival += coeff * (-ri * t).exp();
        }
        1.0 - survival
    }

    #[test]
    fn bad_inputs_are_refused() {
        let model = QueueModel {
            agents: 0,
            calls_per_hour: 10.0,
            handle_secs: 10.0,
            patience_secs: None,
        };
        assert_eq!(
            model.figures(20.0).expect_err("no agents").kind(),
            ErrorKind::BadInput
        );
        let model = QueueModel { agents: 2, ..model };
        assert!(model.figures(-1.0).is_err());
        let unstable = QueueModel {
            calls_per_hour: 720.0,
            ..model
        };
        assert_eq!(
            unstable.figures(20.0).expect_err("unstable").kind(),
            ErrorKind::Config
        );
        let impatient = QueueModel {
            patience_secs: Some(30.0),
            ..unstable
        };
        assert!(impatient.figures(20.0).is_ok());
        assert!(erlang_a_figures(&model, 20.0).is_err());
    }
}
