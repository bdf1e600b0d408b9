//! Decoder throughput on a realistic stream of call events.
//!
//! The stream is the 22 call-lifecycle events (Newchannel, Newstate, DialBegin,
//! DialEnd, BridgeEnter, BridgeLeave, Hangup) of the real Asterisk 22 capture
//! `tests/fixtures/05_two_party_call.txt`, byte for byte, repeated to 100,000 events
//! (about 430 bytes and 19 headers an event). It is fed to the decoder in 16 KiB reads,
//! as a socket would deliver it.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-ami cargo bench -p opencti-asterisk-ami --bench codec`

mod common;

use std::sync::LazyLock;

use bytes::BytesMut;
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use opencti_asterisk_ami::{test_support, AmiCodec, Frame, PushDecoder};

const EVENTS: usize = 100_000;
const READ_SIZE: usize = 16 * 1024;

struct Stream {
    bytes: Vec<u8>,
    events: usize,
    headers: usize,
}

static STREAM: LazyLock<Stream> = LazyLock::new(|| {
    let call_events = common::call_events();
    let mut bytes = Vec::new();
    let mut headers = 0;
    for m in call_events.iter().cycle().take(EVENTS) {
        // The raw text as Asterisk sent it (CRLF lines), and the blank line.
        bytes.extend_from_slice(m.as_str().as_bytes());
        bytes.extend_from_slice(b"\r\n");
        headers += m.len();
    }
    Stream {
        bytes,
        events: EVENTS,
        headers,
    }
});

fn main() {
    let s = &*STREAM;
    println!(
        "stream: {} events, {} bytes ({:.0} bytes and {:.1} headers an event)",
        s.events,
        s.bytes.len(),
        s.bytes.len() as f64 / s.events as f64,
        s.headers as f64 / s.events as f64
    );
    divan::main();
}

/// Tokio-codec style: each 16 KiB read is appended to a reused `BytesMut`, then
/// `decode` runs until it needs more bytes. Each event is touched (its type read).
#[divan::bench(sample_count = 30)]
fn decode(bencher: Bencher<'_, '_>) {
    let s = &*STREAM;
    bencher
        .counter(ItemsCount::new(s.events))
        .counter(BytesCount::new(s.bytes.len()))
        .bench(|| {
            let mut codec = AmiCodec::without_banner();
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut events = 0usize;
            for read in black_box(&s.bytes[..]).chunks(READ_SIZE) {
                buf.extend_from_slice(read);
                while let Ok(Some(frame)) = codec.decode(&mut buf) {
                    if let Frame::Message(m) = frame {
                        events += usize::from(m.event().is_some());
                        black_box(m);
                    }
                }
            }
            assert_eq!(events, s.events);
        });
}

/// As `decode`, plus the lookups a translator makes on every event: `Event`,
/// `Uniqueid`, `Linkedid`, `Channel` and `ChannelState`.
#[divan::bench(sample_count = 30)]
fn decode_and_lookup(bencher: Bencher<'_, '_>) {
    let s = &*STREAM;
    bencher
        .counter(ItemsCount::new(s.events))
        .counter(BytesCount::new(s.bytes.len()))
        .bench(|| {
            let mut codec = AmiCodec::without_banner();
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut found = 0usize;
            for read in black_box(&s.bytes[..]).chunks(READ_SIZE) {
                buf.extend_from_slice(read);
                while let Ok(Some(Frame::Message(m))) = codec.decode(&mut buf) {
                    for key in ["Event", "Uniqueid", "Linkedid", "Channel", "ChannelState"] {
                        found += usize::from(black_box(m.get(key)).is_some());
                    }
                }
            }
            black_box(found);
        });
}

/// The connection's decoder: each read's complete messages decoded together (the
/// read's own bytes their shared text, one span table a read, the buffers reused),
/// each event's type read.
#[divan::bench(sample_count = 30)]
fn decode_read(bencher: Bencher<'_, '_>) {
    let s = &*STREAM;
    bencher
        .counter(ItemsCount::new(s.events))
        .counter(BytesCount::new(s.bytes.len()))
        .bench(|| {
            let mut decoder = test_support::ReadDecoder::new();
            let mut messages = Vec::new();
            let mut events = 0usize;
            for read in black_box(&s.bytes[..]).chunks(READ_SIZE) {
                let decoded = decoder.read(read, &mut messages);
                assert!(decoded.is_ok());
                for m in messages.drain(..) {
                    events += usize::from(m.event().is_some());
                    black_box(m);
                }
            }
            assert_eq!(events, s.events);
        });
}

/// The push API, same reads.
#[divan::bench(sample_count = 30)]
fn push_decoder(bencher: Bencher<'_, '_>) {
    let s = &*STREAM;
    bencher
        .counter(ItemsCount::new(s.events))
        .counter(BytesCount::new(s.bytes.len()))
        .bench(|| {
            let mut decoder = PushDecoder::with_config(
                opencti_asterisk_ami::DecoderConfig::new().with_banner(false),
            );
            let mut events = 0usize;
            for read in black_box(&s.bytes[..]).chunks(READ_SIZE) {
                decoder.push(read);
                for frame in decoder.frames() {
                    events += usize::from(frame.is_ok());
                }
            }
            assert_eq!(events, s.events);
        });
}
