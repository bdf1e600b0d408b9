//! Helpers shared by the integration tests: fixture loading and chunked decoding.

#![allow(dead_code)]

use std::path::PathBuf;

use opencti_asterisk_ami::test_support::DeviceReplay;
use opencti_asterisk_ami::{AmiCodec, DecoderConfig, Error, Frame, PushDecoder};

/// `tests/fixtures/` of this crate.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The names (without `.txt`) of every server capture in `tests/fixtures/`.
pub fn capture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap_or_else(|e| panic!("read fixtures dir: {e}"))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".txt")?;
            (!stem.ends_with(".client") && !stem.ends_with(".timeline")).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// The raw bytes of a fixture file.
pub fn fixture(file: &str) -> Vec<u8> {
    let path = fixtures_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// What decoding produced, errors as their messages so results compare with `==`.
pub type Decoded = Vec<Result<Frame, Error>>;

/// Decodes `input` fed in chunks whose sizes come from `sizes` (cycled), draining the
/// decoder after each chunk, then finishing the stream. Also checks the memory bound
/// after every chunk.
pub fn decode_chunked(config: DecoderConfig, input: &[u8], sizes: &[usize]) -> Decoded {
    assert!(!sizes.is_empty() && sizes.iter().all(|&s| s > 0));
    let mut decoder = PushDecoder::with_config(config);
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        decoder.push(chunk);
        assert!(
            decoder.buffered() <= config.max_message_bytes() + chunk.len(),
            "buffer {} > limit {} + chunk {}",
            decoder.buffered(),
            config.max_message_bytes(),
            chunk.len()
        );
        out.extend(decoder.frames());
        assert!(decoder.buffered() <= config.max_message_bytes());
    }
    loop {
        match decoder.finish() {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => break,
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// Decodes `input` handed over in one piece with the tokio-style API.
pub fn decode_whole(config: DecoderConfig, input: &[u8]) -> Decoded {
    let mut codec = AmiCodec::with_config(config);
    let mut buf = bytes::BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

/// Only the messages, panicking on any error or a second banner.
pub fn messages_ok(decoded: &Decoded) -> Vec<&opencti_asterisk_ami::Message> {
    decoded
        .iter()
        .filter_map(|frame| match frame {
            Ok(Frame::Message(m)) => Some(m),
            Ok(Frame::Banner(_)) => None,
            Err(e) => panic!("unexpected decode error: {e}"),
        })
        .collect()
}

/// A small deterministic generator (xorshift64*) for reproducible random splits.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        (self.next_u64() % max as u64) as usize + 1
    }
}

/// A replay of `device`'s translation in `queues`, configured as the captures were made.
pub fn translator(device: &str, queues: &[&str]) -> DeviceReplay {
    DeviceReplay::new(device, queues)
}

/// Feeds the events of a capture (raw bytes as Asterisk sent them) to `t`; returns the
/// canonical events as compact strings (`name call [cause]`, `agent_state_changed
/// state`) and the replay. Every event must fit the desk's state.
pub fn canonical_events(capture: &[u8], mut t: DeviceReplay) -> (Vec<String>, DeviceReplay) {
    let mut decoder = PushDecoder::new();
    decoder.push(capture);
    for frame in decoder.frames() {
        if let Ok(Frame::Message(m)) = frame {
            if m.is_event() {
                t.translate(&m);
            }
        }
    }
    assert!(
        t.rejected().is_empty(),
        "events that do not fit the desk's state: {:?}",
        t.rejected()
    );
    let names = t
        .events()
        .iter()
        .map(|(e, _)| {
            let json = serde_json::to_value(e).unwrap_or_default();
            match (e.call(), json.get("cause"), json.get("state")) {
                (Some(c), Some(cause), _) => {
                    format!("{} {c} {}", e.name(), cause.as_str().unwrap_or(""))
                }
                (Some(c), None, _) => format!("{} {c}", e.name()),
                (None, _, Some(state)) => {
                    format!("{} {}", e.name(), state["state"].as_str().unwrap_or(""))
                }
                _ => e.name().to_string(),
            }
        })
        .collect();
    (names, t)
}
