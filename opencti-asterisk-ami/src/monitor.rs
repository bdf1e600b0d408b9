//! A supervisor joining an agent's call: Asterisk's `ChanSpy`, started by an `Originate`
//! that rings the supervisor's own device.
//!
//! `listen` spies quietly (`q`), `whisper` lets the agent alone hear the supervisor
//! (`w`), `barge` lets everyone hear them (`B`); every mode ends when the agent's call
//! does (`E`). The agent's device is the channel prefix ChanSpy looks for, with the `-`
//! Asterisk puts before each channel's suffix, so that `PJSIP/1001` does not also match
//! `PJSIP/10010`.

use opencti_core::{DeviceId, Error, ErrorKind, MonitorMode, Result};

use crate::client::AmiClient;
use crate::line::action;

/// How long the supervisor's phone rings before Asterisk gives up.
const RING_MS: &str = "30000";

/// ChanSpy's options for `mode`.
fn options(mode: MonitorMode) -> &'static str {
    match mode {
        MonitorMode::Listen => "qE",
        MonitorMode::Whisper => "qEw",
        MonitorMode::Barge => "qEB",
        // A mode this crate does not know: refused before anything is sent.
        _ => "",
    }
}

/// The device as a channel interface ChanSpy can take: `TECH/resource` with nothing that
/// could end ChanSpy's argument (a `,`, `|`, `(`, `)`), or a bad-input error naming it.
fn interface(what: &str, device: &DeviceId) -> Result<String> {
    let text = device.as_str();
    let (tech, resource) = text.split_once('/').unwrap_or(("", ""));
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
    };
    if plain(tech, "") && plain(resource, "@.+-") {
        Ok(text.to_owned())
    } else {
        Err(Error::new(
            ErrorKind::BadInput,
            format!(
                "{what} device {text:?} is not a channel interface ChanSpy can take: expected TECH/resource with letters, digits and _@.+- only (such as PJSIP/1001)"
            ),
        ))
    }
}

/// The `Originate` that rings `supervisor` and joins them to `agent`'s call as `mode`
/// says; sent, and answered once Asterisk has queued it.
pub(crate) async fn monitor(
    client: &AmiClient,
    supervisor: &DeviceId,
    agent: &DeviceId,
    mode: MonitorMode,
) -> Result<()> {
    let flags = options(mode);
    if flags.is_empty() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("Asterisk cannot {} here", mode.as_str()),
        ));
    }
    let channel = interface("the supervisor's", supervisor)?;
    let spied = interface("the agent's", agent)?;
    let data = format!("{spied}-,{flags}");
    // Shown on the supervisor's phone: what it is joining.
    let caller_id = format!("\"{} {}\" <>", mode.as_str(), spied);
    let originate = action(
        "Originate",
        &[
            ("Channel", &channel),
            ("Application", "ChanSpy"),
            ("Data", &data),
            ("Timeout", RING_MS),
            ("CallerID", &caller_id),
            ("Async", "true"),
        ],
    )?;
    client.send(originate).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(text: &str) -> DeviceId {
        DeviceId::new(text).unwrap()
    }

    #[test]
    fn each_mode_has_its_chanspy_options() {
        assert_eq!(options(MonitorMode::Listen), "qE");
        assert_eq!(options(MonitorMode::Whisper), "qEw");
        assert_eq!(options(MonitorMode::Barge), "qEB");
    }

    #[test]
    fn only_a_plain_channel_interface_reaches_chanspy() {
        assert_eq!(interface("x", &device("PJSIP/1001")).unwrap(), "PJSIP/1001");
        assert!(interface("x", &device("Local/1001@agents")).is_ok());
        for bad in [
            "1001",
            "PJSIP/",
            "/1001",
            "PJSIP/1001,B",
            "PJSIP/1(x)",
            "PJSIP/a|b",
        ] {
            let error = interface("the agent's", &device(bad)).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BadInput, "{bad}");
            assert!(error.message().contains(bad), "{}", error.message());
        }
    }
}
