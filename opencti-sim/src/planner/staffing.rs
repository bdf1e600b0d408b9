//! A staffing sweep: the same traffic simulated with each of a range of agent counts,
//! with the Erlang C or Erlang A figures beside each.

use opencti_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::chart::{ChartPoint, StaffingChart};
use super::erlang::{ErlangFigures, QueueModel};
use super::{run, CountingSink, OverallFigures, PlannerConfig, PlannerQueue};

/// The formula a sweep's simulated figures are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Formula {
    /// Erlang C (M/M/c): callers who never give up.
    ErlangC,
    /// Erlang A (M/M/c+M): callers with exponential patience.
    ErlangA,
}

impl Formula {
    /// Its usual name, `"Erlang C"` or `"Erlang A"`.
    pub fn name(self) -> &'static str {
        match self {
            Formula::ErlangC => "Erlang C",
            Formula::ErlangA => "Erlang A",
        }
    }
}

/// One agent count of a [`Staffing`] sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffingPoint {
    /// The number of agents.
    pub agents: u32,
    /// What the planner measured with that many agents; `None` when callers never give
    /// up and they are offered at least as many Erlangs as there are agents: the queue
    /// grows without bound and there is no day to measure.
    pub simulated: Option<OverallFigures>,
    /// What the sweep's [`Formula`] predicts; `None` when there is no formula (the queue
    /// has wrap-up) or no steady state (as for `simulated`).
    pub analytic: Option<ErlangFigures>,
}

/// The figures of one queue's traffic over a range of agent counts: what
/// [`sweep`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staffing {
    /// The traffic: the queue every point serves.
    pub queue: PlannerQueue,
    /// The service-level threshold, seconds.
    pub service_level_secs: f64,
    /// The formula of [`StaffingPoint::analytic`]; `None` with wrap-up, which neither
    /// Erlang C nor Erlang A models.
    pub formula: Option<Formula>,
    /// One point per agent count, in the order they were asked for.
    pub points: Vec<StaffingPoint>,
}

impl Staffing {
    /// A title naming the traffic, e.g. `Staffing for 480 calls/h, handle time 60 s,
    /// service level within 20 s`, with the patience and wrap-up when there are some.
    pub fn title(&self) -> String {
        let q = &self.queue;
        let mut title = format!(
            "Staffing for {} calls/h, handle time {} s",
            q.calls_per_hour, q.handle_secs
        );
        if let Some(p) = q.patience_secs {
            title.push_str(&format!(", patience {p} s"));
        }
        if let Some(w) = q.wrap_up_secs {
            title.push_str(&format!(", wrap-up {w} s"));
        }
        title.push_str(&format!(
            ", service level within {} s",
            self.service_level_secs
        ));
        title
    }

    /// The fewest agents whose simulated service level is at least `target` (a fraction
    /// from 0 to 1), among the counts swept.
    pub fn fewest_simulated_meeting(&self, target: f64) -> Option<u32> {
        self.fewest(target, |p| p.simulated.map(|s| s.calls.service_level))
    }

    /// The fewest agents whose analytic service level is at least `target` (a fraction
    /// from 0 to 1), among the counts swept.
    pub fn fewest_analytic_meeting(&self, target: f64) -> Option<u32> {
        self.fewest(target, |p| p.analytic.map(|a| a.service_level))
    }

    fn fewest(&self, target: f64, level: impl Fn(&StaffingPoint) -> Option<f64>) -> Option<u32> {
        self.points
            .iter()
            .filter(|p| level(p).is_some_and(|l| l >= target))
            .map(|p| p.agents)
            .min()
    }

    /// The service levels as a chart, with `target` (a fraction from 0 to 1) as a dashed
    /// line if given; [`StaffingChart::to_svg`] draws it.
    pub fn chart(&self, target: Option<f64>) -> StaffingChart {
        StaffingChart {
            title: self.title(),
            service_level_secs: self.service_level_secs,
            analytic_label: self.formula.map(|f| f.name().to_owned()),
            target,
            points: self
                .points
                .iter()
                .map(|p| ChartPoint {
                    agents: p.agents,
                    analytic: p.analytic.map(|a| a.service_level),
                    simulated: p.simulated.map(|s| s.calls.service_level),
                })
                .collect(),
        }
    }
}

/// Simulates `config` once for each count in `agents`, and computes the Erlang C or
/// Erlang A figures beside each; `on_point` is called after each point (for a progress
/// display; pass `|_| ()` otherwise).
///
/// `config` must have one queue and one agent group, whose size each count replaces;
/// every other setting (length, warm-up, threshold, seed) is the same for every point.
/// The same seed gives every point the same arrivals, handling times and patience, so
/// the points differ by the staffing alone and the simulated curve is smoother than
/// independent runs would make it.
///
/// Fails with a `config` error if `config` has several queues or groups, if `agents` is
/// empty or holds 0, or if the configuration is invalid otherwise (see
/// [`PlannerConfig::validate`]), and with the planner's error if a run fails. A count
/// too small for callers who never give up is not an error: its point has no figures.
///
/// ```
/// use opencti_sim::planner::{sweep, PlannerConfig, RunLength};
/// // 480 calls an hour of 60 s: 8 Erlangs.
/// let config = PlannerConfig::single_queue(1, 480.0, 60.0).with_length(RunLength::Calls(5_000));
/// let staffing = sweep(&config, [8, 9, 10, 12], |_| ()).unwrap();
/// assert!(staffing.points[0].simulated.is_none(), "8 agents cannot keep up with 8 Erlangs");
/// let (nine, twelve) = (&staffing.points[1], &staffing.points[3]);
/// let level = |p: &opencti_sim::planner::StaffingPoint| p.simulated.unwrap().calls.service_level;
/// assert!(level(nine) < level(twelve));
/// assert_eq!(staffing.fewest_analytic_meeting(0.75), Some(10));
/// ```
pub fn sweep(
    config: &PlannerConfig,
    agents: impl IntoIterator<Item = u32>,
    mut on_point: impl FnMut(&StaffingPoint),
) -> Result<Staffing> {
    let ([queue], [_]) = (config.queues.as_slice(), config.agents.as_slice()) else {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "a staffing sweep varies the agents of one queue served by one group; this configuration has {} queue(s) and {} agent group(s)",
                config.queues.len(),
                config.agents.len()
            ),
        ));
    };
    let formula = match (queue.wrap_up_secs, queue.patience_secs) {
        (Some(_), _) => None,
        (None, None) => Some(Formula::ErlangC),
        (None, Some(_)) => Some(Formula::ErlangA),
    };
    let mut points = Vec::new();
    for count in agents {
        let mut point_config = config.clone();
        point_config.agents[0].count = count;
        let unbounded = queue.patience_secs.is_none() && queue.load_erlangs() >= f64::from(count);
        let simulated = if unbounded {
            // Check every other setting all the same: as if the callers gave up, which
            // lifts only the check that the queue keeps up.
            let mut impatient = point_config;
            impatient.queues[0].patience_secs = Some(1.0);
            impatient.validate()?;
            None
        } else {
            Some(run(&point_config, &mut CountingSink::new())?.overall)
        };
        let analytic = match formula {
            Some(_) if !unbounded => Some(
                QueueModel {
                    agents: count,
                    calls_per_hour: queue.calls_per_hour,
                    handle_secs: queue.handle_secs,
                    patience_secs: queue.patience_secs,
                }
                .figures(config.service_level_secs)?,
            ),
            _ => None,
        };
        let point = StaffingPoint {
            agents: count,
            simulated,
            analytic,
        };
        on_point(&point);
        points.push(point);
    }
    if points.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            "a staffing sweep needs at least one agent count",
        ));
    }
    Ok(Staffing {
        queue: queue.clone(),
        service_level_secs: config.service_level_secs,
        formula,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::RunLength;

    fn config() -> PlannerConfig {
        PlannerConfig::single_queue(1, 480.0, 60.0).with_length(RunLength::Calls(2_000))
    }

    #[test]
    fn each_count_is_simulated_with_the_formula_beside_it() {
        let staffing = sweep(&config(), [9, 10, 11], |_| ()).expect("sweep");
        assert_eq!(staffing.formula, Some(Formula::ErlangC));
        let counts: Vec<u32> = staffing.points.iter().map(|p| p.agents).collect();
        assert_eq!(counts, [9, 10, 11]);
        for point in &staffing.points {
            let simulated = point.simulated.expect("simulated");
            assert_eq!(simulated.agents, point.agents);
            assert_eq!(simulated.calls.offered, 2_000);
            let analytic = point.analytic.expect("analytic");
            assert!((analytic.occupancy - 8.0 / f64::from(point.agents)).abs() < 1e-12);
        }
    }

    #[test]
    fn counts_that_cannot_keep_up_have_no_figures_unless_callers_give_up() {
        let staffing = sweep(&config(), [7, 8, 9], |_| ()).expect("sweep");
        assert!(staffing.points[0].simulated.is_none());
        assert!(staffing.points[0].analytic.is_none());
        assert!(staffing.points[1].simulated.is_none());
        assert!(staffing.points[2].simulated.is_some());
        let impatient = sweep(&config().with_patience(30.0), [7, 8], |_| ()).expect("sweep");
        assert_eq!(impatient.formula, Some(Formula::ErlangA));
        assert!(impatient
            .points
            .iter()
            .all(|p| p.simulated.is_some() && p.analytic.is_some()));
    }

    #[test]
    fn wrap_up_has_no_formula() {
        let staffing = sweep(&config().with_wrap_up(10.0), [12], |_| ()).expect("sweep");
        assert_eq!(staffing.formula, None);
        assert!(staffing.points[0].analytic.is_none());
        assert!(staffing.points[0].simulated.is_some());
        assert!(staffing.chart(None).analytic_label.is_none());
    }

    #[test]
    fn bad_sweeps_are_refused() {
        let empty = sweep(&config(), [], |_| ()).expect_err("no counts");
        assert_eq!(empty.kind(), ErrorKind::Config);
        assert!(sweep(&config(), [0], |_| ()).is_err());
        // A bad setting is caught even where no run happens.
        let bad =
            sweep(&config().with_service_level_secs(-1.0), [3], |_| ()).expect_err("bad threshold");
        assert!(bad.message().contains("service_level_secs"), "{bad}");
        let mut two = config();
        two.agents.push(crate::planner::AgentGroup::new("other", 2));
        let err = sweep(&two, [10], |_| ()).expect_err("two groups");
        assert!(err.message().contains("one group"), "{err}");
    }

    #[test]
    fn the_title_names_the_traffic_and_the_fewest_agents_meeting_a_target_are_found() {
        let staffing = sweep(&config().with_patience(120.0), 8..=12, |_| ()).expect("sweep");
        assert_eq!(
            staffing.title(),
            "Staffing for 480 calls/h, handle time 60 s, patience 120 s, service level within 20 s"
        );
        let analytic: Vec<f64> = staffing
            .points
            .iter()
            .map(|p| p.analytic.expect("analytic").service_level)
            .collect();
        let expected =
            staffing.points[analytic.iter().position(|l| *l >= 0.9).expect("met")].agents;
        assert_eq!(staffing.fewest_analytic_meeting(0.9), Some(expected));
        assert_eq!(staffing.fewest_analytic_meeting(1.0), None);
        assert_eq!(staffing.fewest_simulated_meeting(0.0), Some(8));
        let mut seen = Vec::new();
        sweep(&config(), [10, 12], |p| seen.push(p.agents)).expect("sweep");
        assert_eq!(seen, [10, 12]);
    }
}
