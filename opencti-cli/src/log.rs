//! `--log <level>`: one line per event on standard error, for running the gateway as a
//! service. Spans are not kept; control characters in values are escaped, so that a
//! value cannot forge a line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Writes events at `max` and below to standard error.
pub(crate) struct StderrLog {
    max: Level,
}

/// Installs the log for the whole process; a no-op if one is installed already.
pub(crate) fn init(max: Level) {
    let _ = tracing::subscriber::set_global_default(StderrLog { max });
}

struct Line<'a> {
    text: &'a mut String,
    message: String,
}

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = escaped(&format!("{:?}", value));
        } else {
            let _ = write!(
                self.text,
                " {}={}",
                field.name(),
                escaped(&format!("{:?}", value))
            );
        }
    }
}

fn escaped(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time since the Unix epoch.
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        year,
        month,
        day,
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = String::new();
        let mut line = Line {
            text: &mut fields,
            message: String::new(),
        };
        event.record(&mut line);
        let message = line.message;
        let metadata = event.metadata();
        let text = format!(
            "{} {:>5} {}: {}{}\n",
            timestamp(SystemTime::now()),
            metadata.level(),
            metadata.target(),
            message,
            fields
        );
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_civil_utc() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_220_096_789);
        assert_eq!(timestamp(at), "2026-11-21T00:14:56.789Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn control_characters_cannot_forge_a_line() {
        assert_eq!(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
    }
}
