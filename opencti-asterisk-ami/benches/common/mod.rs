//! The call stream the benchmarks share: the 22 call events (Newchannel, Newstate,
//! DialBegin, DialEnd, BridgeEnter, BridgeLeave, Hangup) of the real Asterisk 22 capture
//! `tests/fixtures/05_two_party_call.txt`, about 430 bytes and 19 headers each,
//! restamped with fresh ids for every call.

#![allow(dead_code)]

use std::sync::LazyLock;

use opencti_asterisk_ami::{Frame, Message, PushDecoder};

const CAPTURE: &[u8] = include_bytes!("../../tests/fixtures/05_two_party_call.txt");
const CALL_EVENTS: [&str; 7] = [
    "Newchannel",
    "Newstate",
    "DialBegin",
    "DialEnd",
    "BridgeEnter",
    "BridgeLeave",
    "Hangup",
];

/// Events a call has in the stream.
pub const EVENTS_A_CALL: usize = 22;

/// The agent's device in the capture.
pub const CAPTURED_DEVICE: &str = "Local/1001@agents";

/// The call events of the capture, in order.
pub fn call_events() -> Vec<Message> {
    let mut decoder = PushDecoder::new();
    decoder.push(CAPTURE);
    let events: Vec<Message> = decoder
        .frames()
        .filter_map(|f| f.ok().and_then(Frame::into_message))
        .filter(|m| m.event().is_some_and(|e| CALL_EVENTS.contains(&e)))
        .collect();
    assert_eq!(events.len(), EVENTS_A_CALL, "call events in the capture");
    events
}

/// The captured call as text (CRLF lines, a blank line after each event).
static ONE_CALL: LazyLock<String> = LazyLock::new(|| {
    call_events()
        .iter()
        .map(|m| format!("{}\r\n", m.as_str()))
        .collect()
});

/// Call `i` at the agent device `device`, with ids of its own.
pub fn call(i: usize, device: &str) -> String {
    let base = 1_800_000_000 + i;
    ONE_CALL
        .replace("1795238031.6", &format!("{base}.6"))
        .replace("1795238031.7", &format!("{base}.7"))
        .replace("1795238032.8", &format!("{base}.8"))
        .replace("1795238032.9", &format!("{base}.9"))
        .replace("00000003;", &format!("{:08x};", 2 * i))
        .replace("00000004;", &format!("{:08x};", 2 * i + 1))
        .replace(
            "6a91b094-7ae0-48e6-afbd-de6547d6c4ec",
            &format!("{i:08x}-7ae0-48e6-afbd-de6547d6c4ec"),
        )
        .replace(CAPTURED_DEVICE, device)
}
