//! The control handle: makes the simulated outside world act, and injects faults.

use std::time::Duration;

use opencti_core::{Address, CallData, CallId, CallState, DeviceId, Error, ErrorKind, Result};

use crate::config::FarEnd;
use crate::switch::{SimSwitch, SwitchStats};

/// Drives the far end of a [`SimSwitch`], the way tower-test's `Handle` drives a mock:
/// customers call, far ends answer and hang up, the switch refuses or delays a command,
/// the link drops and comes back, events arrive late, twice or out of order.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> opencti_core::Result<()> {
/// use opencti_sim::{Control, SimSwitch};
/// let switch = SimSwitch::builder().agent("alice", "1001", &["support"]).queue("support").build()?;
/// let control: Control = switch.control();
/// control.customer_calls("support", "+441632960001").call()?;
/// assert_eq!(control.waiting("support"), 1, "nobody is logged in yet");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Control {
    switch: SimSwitch,
}

impl Control {
    pub(crate) fn new(switch: SimSwitch) -> Self {
        Control { switch }
    }

    /// An outside caller `from` calls `to`: a queue (by id or number) or an agent's device.
    /// Configure the call on the returned builder, then place it with
    /// [`CallerBuilder::call`].
    pub fn customer_calls(&self, to: &str, from: &str) -> CallerBuilder {
        CallerBuilder {
            switch: self.switch.clone(),
            to: to.to_string(),
            from: from.to_string(),
            data: CallData::new(),
            patience: None,
            talk: None,
        }
    }

    /// The other side of `call` at `device` hangs up.
    pub fn far_end_hangs_up(&self, device: &DeviceId, call: &CallId) -> Result<()> {
        self.switch.with(|w| w.far_end_hangs_up(device, call))
    }

    /// The outside party that `device` is calling on `call` answers.
    pub fn far_end_answers(&self, device: &DeviceId, call: &CallId) -> Result<()> {
        self.switch.with(|w| w.far_end_answers(device, call))
    }

    /// From now on, calls to the outside number `number` behave as `behaviour`.
    pub fn set_far_end(&self, number: &str, behaviour: FarEnd) {
        self.switch.with(|w| w.set_far_end(number, behaviour));
    }

    /// The calls on a device, as the switch sees them.
    pub fn calls_at(&self, device: &DeviceId) -> Vec<(CallId, CallState)> {
        self.switch.with(|w| w.calls_at(device))
    }

    /// How many calls wait in a queue (by id).
    pub fn waiting(&self, queue: &str) -> usize {
        self.switch.with(|w| {
            opencti_core::QueueId::new(queue)
                .ok()
                .and_then(|q| w.queue_by_id(&q))
                .map_or(0, |q| w.waiting(q))
        })
    }

    /// Counters of queued, answered and abandoned calls.
    pub fn stats(&self) -> SwitchStats {
        self.switch.stats()
    }

    /// The switch refuses the next command from `device` with `error`.
    pub fn reject_next(&self, device: &DeviceId, error: Error) -> Result<()> {
        self.with_line(device, |l| l.faults.reject_next = Some(error))
    }

    /// The switch accepts the next command from `device` but carries it out only after
    /// `delay`.
    pub fn delay_next(&self, device: &DeviceId, delay: Duration) -> Result<()> {
        self.with_line(device, |l| l.faults.delay_next = Some(delay))
    }

    /// The next `count` events for `device` arrive `delay` late.
    pub fn deliver_late(&self, device: &DeviceId, delay: Duration, count: usize) -> Result<()> {
        self.with_line(device, |l| {
            if count > 0 {
                l.faults.late = Some((delay, count));
            }
        })
    }

    /// The next `count` events for `device` arrive twice.
    pub fn deliver_twice(&self, device: &DeviceId, count: usize) -> Result<()> {
        self.with_line(device, |l| l.faults.twice = count)
    }

    /// The next two events for `device` arrive in swapped order.
    pub fn swap_next_two(&self, device: &DeviceId) -> Result<()> {
        self.with_line(device, |l| l.faults.swap_next = true)
    }

    /// The link to `device`'s session drops: it sees `link_down`, loses every event until
    /// the link is back, and its commands are refused.
    pub fn drop_link(&self, device: &DeviceId) -> Result<()> {
        self.with_line(device, |l| l.link_down("simulated link failure"))
    }

    /// The link comes back: the session sees `link_up` and resynchronises.
    pub fn restore_link(&self, device: &DeviceId) -> Result<()> {
        self.with_line(device, |l| l.link_up())
    }

    fn with_line(&self, device: &DeviceId, f: impl FnOnce(&mut crate::switch::Line)) -> Result<()> {
        self.switch.with(|w| match w.lines.get_mut(device) {
            Some(line) => {
                f(line);
                Ok(())
            }
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("no session is attached to device {}", device),
            )),
        })
    }
}

/// A customer call being set up by [`Control::customer_calls`].
#[derive(Debug)]
#[must_use = "the call is placed only by call()"]
pub struct CallerBuilder {
    switch: SimSwitch,
    to: String,
    from: String,
    data: CallData,
    patience: Option<Duration>,
    talk: Option<Duration>,
}

impl CallerBuilder {
    /// The caller abandons if not answered within `patience`.
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = Some(patience);
        self
    }

    /// Once answered, the caller talks this long, then hangs up.
    pub fn talk_for(mut self, talk: Duration) -> Self {
        self.talk = Some(talk);
        self
    }

    /// Data that comes with the call (an IVR's result, an account number).
    pub fn data(mut self, data: CallData) -> Self {
        self.data = data;
        self
    }

    /// Places the call.
    pub fn call(self) -> Result<()> {
        let from = Address::new(&self.from)?;
        let (to, data, patience, talk) = (self.to, self.data, self.patience, self.talk);
        self.switch
            .with(|w| w.outside_call(from, &to, data, patience, talk))
    }
}
