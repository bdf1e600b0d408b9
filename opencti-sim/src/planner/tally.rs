//! Running totals kept while the simulation runs: a few counters and sums per queue and
//! per agent, never a per-call history, so memory does not grow with the calls handled.

use super::report::{ratio, CallFigures};

/// Totals for the measured calls of one queue (or several, added up).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CallTally {
    pub(super) offered: u64,
    pub(super) answered: u64,
    pub(super) abandoned: u64,
    pub(super) waited: u64,
    pub(super) answered_within: u64,
    pub(super) answer_wait_sum: f64,
    pub(super) answer_wait_max: f64,
    pub(super) abandon_wait_sum: f64,
    pub(super) handle_sum: f64,
}

impl CallTally {
    /// A call answered after waiting `wait` seconds, with the threshold `threshold`.
    pub(super) fn answered(&mut self, wait: f64, threshold: f64) {
        self.answered += 1;
        self.answer_wait_sum += wait;
        if wait > self.answer_wait_max {
            self.answer_wait_max = wait;
        }
        if wait <= threshold {
            self.answered_within += 1;
        }
    }

    /// A caller who hung up after waiting `wait` seconds.
    pub(super) fn abandoned(&mut self, wait: f64) {
        self.abandoned += 1;
        self.abandon_wait_sum += wait;
    }

    /// Adds another tally into this one.
    pub(super) fn add(&mut self, other: &CallTally) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.abandoned += other.abandoned;
        self.waited += other.waited;
        self.answered_within += other.answered_within;
        self.answer_wait_sum += other.answer_wait_sum;
        self.answer_wait_max = self.answer_wait_max.max(other.answer_wait_max);
        self.abandon_wait_sum += other.abandon_wait_sum;
        self.handle_sum += other.handle_sum;
    }

    /// The figures these totals amount to.
    pub(super) fn figures(&self) -> CallFigures {
        let offered = self.offered as f64;
        let answered = self.answered as f64;
        CallFigures {
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            waited: self.waited,
            answered_within_threshold: self.answered_within,
            service_level: ratio(self.answered_within as f64, offered),
            service_level_of_answered: ratio(self.answered_within as f64, answered),
            asa_secs: ratio(self.answer_wait_sum, answered),
            max_answer_wait_secs: self.answer_wait_max,
            prob_wait: ratio(self.waited as f64, offered),
            abandon_rate: ratio(self.abandoned as f64, offered),
            mean_abandon_wait_secs: ratio(self.abandon_wait_sum, self.abandoned as f64),
            mean_handle_secs: ratio(self.handle_sum, answered),
        }
    }
}

/// Totals for one agent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AgentTally {
    /// Measured calls answered.
    pub(super) handled: u64,
    /// Talk time inside the measured window, seconds.
    pub(super) talk_secs: f64,
    /// Wrap-up time inside the measured window, seconds.
    pub(super) wrap_secs: f64,
    /// Events produced for the agent.
    pub(super) events: u64,
}

/// The measured window `[from, to)`; `to` is infinite until the run stops taking calls.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) from: f64,
    pub(super) to: f64,
}

impl Window {
    /// Whether a call arriving at `at` is measured (before `to` is known, any call after
    /// the warm-up is).
    pub(super) fn contains(&self, at: f64) -> bool {
        at >= self.from && at < self.to
    }

    /// The part of `[start, end)` inside the window. Called when an interval ends, so
    /// that `to` is known whenever the interval reaches past it.
    pub(super) fn overlap(&self, start: f64, end: f64) -> f64 {
        (end.min(self.to) - start.max(self.from)).max(0.0)
    }

    /// The window's length (once `to` is known).
    pub(super) fn length(&self) -> f64 {
        (self.to - self.from).max(0.0)
    }
}
