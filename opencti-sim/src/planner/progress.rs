//! How far a run has got, for a progress bar.

use serde::{Deserialize, Serialize};

/// A snapshot of a run in progress, handed to the callback of
/// [`run_with_progress`](super::run_with_progress).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Calls arrived so far, warm-up included.
    pub calls_arrived: u64,
    /// Calls arrived in the measured window so far.
    pub calls_measured: u64,
    /// Simulated time, seconds.
    pub simulated_secs: f64,
    /// How much of the arrivals are done, from 0 to 1 (measured calls over the target,
    /// or simulated time over the length). The drain after the last arrival is short and
    /// not counted; the final call has exactly 1.
    pub fraction_done: f64,
}
