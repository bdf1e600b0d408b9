//! Codec plus tracker plus translation on a realistic stream of call events.
//!
//! The stream is the 22 call-lifecycle events (Newchannel, Newstate, DialBegin,
//! DialEnd, BridgeEnter, BridgeLeave, Hangup; about 430 bytes and 19 headers each) of
//! the real Asterisk 22 capture `tests/fixtures/05_two_party_call.txt`, repeated with
//! fresh `Uniqueid`s, `Linkedid`s, channel names and bridge ids for every call, so the
//! tracker sees thousands of distinct calls. The agent's device is `Local/1001@agents`,
//! so every call is translated into canonical events (call_offered, call_connected,
//! party_joined, call_ended) into a counting sink. Bytes are fed in 16 KiB reads.
//!
//! Before the timed benches, `main` pushes 10,000,000 events through one translator and
//! prints the tracker's sizes and the process's resident memory at each million: flat
//! memory shows as constant figures.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-ami cargo bench -p opencti-asterisk-ami --bench translate`

mod common;

use std::sync::LazyLock;

use bytes::BytesMut;
use common::{call, CAPTURED_DEVICE, EVENTS_A_CALL};
use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use opencti_asterisk_ami::test_support::DeviceReplay;
use opencti_asterisk_ami::{AmiCodec, DecoderConfig, Frame, Message, PushDecoder};
use opencti_core::Event;

const CALLS: usize = 4_546; // 100,012 events
const READ_SIZE: usize = 16 * 1024;

struct Stream {
    bytes: Vec<u8>,
    events: usize,
}

static STREAM: LazyLock<Stream> = LazyLock::new(|| {
    let mut bytes = Vec::new();
    for i in 0..CALLS {
        bytes.extend_from_slice(call(i, CAPTURED_DEVICE).as_bytes());
    }
    Stream {
        bytes,
        events: CALLS * EVENTS_A_CALL,
    }
});

/// Counts the canonical events a desk took, as a session would receive them.
#[derive(Default)]
struct Count {
    events: u64,
    calls_ended: u64,
}

impl Count {
    fn take(&mut self, t: &mut DeviceReplay) {
        for (event, _) in t.drain_events() {
            self.events += 1;
            if matches!(event, Event::CallEnded { .. }) {
                self.calls_ended += 1;
            }
        }
    }
}

fn translator() -> DeviceReplay {
    DeviceReplay::new("Local/1001@agents", &["support"])
}

/// Decodes `bytes` in socket-sized reads and translates every event.
fn run(bytes: &[u8], t: &mut DeviceReplay, out: &mut Count) -> usize {
    let mut codec = AmiCodec::with_config(DecoderConfig::new().with_banner(false));
    let mut buf = BytesMut::with_capacity(READ_SIZE * 2);
    let mut n = 0;
    for chunk in bytes.chunks(READ_SIZE) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            if let Frame::Message(m) = frame {
                t.translate(&m);
                out.take(t);
                n += 1;
            }
        }
    }
    n
}

#[divan::bench]
fn codec_tracker_translate(bencher: Bencher<'_, '_>) {
    let stream = &*STREAM;
    bencher
        .counter(ItemsCount::new(stream.events))
        .counter(BytesCount::new(stream.bytes.len()))
        .with_inputs(translator)
        .bench_local_values(|mut t| {
            let mut out = Count::default();
            let n = run(&stream.bytes, &mut t, &mut out);
            assert_eq!(n, stream.events);
            assert_eq!(out.calls_ended, CALLS as u64);
            (t, out.events)
        });
}

#[divan::bench]
fn tracker_translate_only(bencher: Bencher<'_, '_>) {
    let stream = &*STREAM;
    let mut decoder = PushDecoder::with_config(DecoderConfig::new().with_banner(false));
    decoder.push(&stream.bytes);
    let messages: Vec<Message> = decoder
        .frames()
        .filter_map(|f| f.ok().and_then(Frame::into_message))
        .collect();
    bencher
        .counter(ItemsCount::new(messages.len()))
        .with_inputs(translator)
        .bench_local_values(|mut t| {
            let mut out = Count::default();
            for m in &messages {
                t.translate(m);
                out.take(&mut t);
            }
            (t, out.events)
        });
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// 10,000,000 events through one translator: tracker sizes and RSS per million.
fn flatness() {
    let stream = &*STREAM;
    let mut t = translator();
    let mut out = Count::default();
    let mut total = 0usize;
    let mut next_report = 1_000_000usize;
    println!("flatness: events, tracker channels, tracker bridges, open legs/calls, canonical events, RSS KiB");
    let start = std::time::Instant::now();
    while total < 10_000_000 {
        total += run(&stream.bytes, &mut t, &mut out);
        if total >= next_report {
            next_report += 1_000_000;
            println!(
                "flatness: {total:>9} {:>3} {:>3} {:?} {:>9} {:>7}",
                t.tracked().0,
                t.tracked().1,
                t.open_calls(),
                out.events,
                rss_kib()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "flatness: {total} events in {secs:.2} s = {:.0} events/s (one core, including the first-touch warm-up)",
        total as f64 / secs
    );
}

fn main() {
    if std::env::args().any(|a| a == "--bench") && std::env::var_os("SKIP_FLATNESS").is_none() {
        flatness();
    }
    divan::main();
}
