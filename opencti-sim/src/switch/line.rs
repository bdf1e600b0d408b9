//! One attached session's line: where a device's events leave the switch, and where the
//! delivery faults a test asked for are applied.

use std::time::Duration;

use opencti_core::{Error, Event, EventSink};

/// Faults a test can inject on one line.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The next command is refused with this error.
    pub(crate) reject_next: Option<Error>,
    /// The next command takes effect only after this long.
    pub(crate) delay_next: Option<Duration>,
    /// The next `n` events arrive this much later.
    pub(crate) late: Option<(Duration, usize)>,
    /// The next `n` events arrive twice.
    pub(crate) twice: usize,
    /// The next two events arrive in swapped order.
    pub(crate) swap_next: bool,
    held_back: Option<Event>,
}

#[derive(Debug)]
pub(crate) struct Line {
    pub(crate) sink: EventSink,
    pub(crate) up: bool,
    pub(crate) faults: Faults,
}

impl Line {
    pub(crate) fn new(sink: EventSink) -> Self {
        Line {
            sink,
            up: true,
            faults: Faults::default(),
        }
    }

    /// Sends an event to the session, through whatever faults are armed. Events are lost
    /// while the link is down, as they would be on a real link.
    pub(crate) fn deliver(&mut self, event: Event) {
        if !self.up {
            return;
        }
        let faults = &mut self.faults;
        if faults.swap_next {
            match faults.held_back.take() {
                None => {
                    faults.held_back = Some(event);
                    return;
                }
                Some(first) => {
                    faults.swap_next = false;
                    self.send(event);
                    self.send(first);
                    return;
                }
            }
        }
        self.send(event);
    }

    fn send(&mut self, event: Event) {
        if let Some((delay, left)) = self.faults.late.as_mut() {
            let delay = *delay;
            *left -= 1;
            if *left == 0 {
                self.faults.late = None;
            }
            let sink = self.sink.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                sink.emit(event);
            });
            return;
        }
        if self.faults.twice > 0 {
            self.faults.twice -= 1;
            self.sink.emit(event.clone());
        }
        self.sink.emit(event);
    }

    pub(crate) fn link_down(&mut self, reason: &str) {
        if self.up {
            self.up = false;
            self.faults.held_back = None;
            self.sink.emit(Event::LinkDown {
                reason: reason.to_string(),
            });
        }
    }

    pub(crate) fn link_up(&mut self) {
        if !self.up {
            self.up = true;
            self.sink.emit(Event::LinkUp);
        }
    }
}
