//! Fuzzes the AMI decoder with arbitrary bytes, limits and chunking.
//!
//! The first four input bytes choose the limits, whether a banner is expected, and the
//! chunk sizes; the rest is the stream. Checked: no panic; after each chunk is drained
//! the buffer holds at most `max_message_bytes`; and the frames and errors are the same
//! as when the stream is decoded in one piece.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use opencti_asterisk_ami::{AmiCodec, DecoderConfig, Error, Frame, PushDecoder};

fn decode_whole(config: DecoderConfig, input: &[u8]) -> Vec<Result<Frame, Error>> {
    let mut codec = AmiCodec::with_config(config);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [bytes_sel, headers_sel, flags, seed, stream @ ..] = data else {
        return;
    };
    let config = DecoderConfig::new()
        .with_max_message_bytes(usize::from(*bytes_sel) * 8 + 1)
        .with_max_headers(usize::from(*headers_sel % 32))
        .with_banner(flags & 1 == 1);
    let max_chunk = usize::from(flags >> 1) + 1;

    let mut decoder = PushDecoder::with_config(config);
    let mut chunked = Vec::new();
    let mut rest = stream;
    let mut state = u32::from(*seed) | 1;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max_chunk + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        decoder.push(chunk);
        assert!(decoder.buffered() <= config.max_message_bytes() + chunk.len());
        chunked.extend(decoder.frames());
        assert!(decoder.buffered() <= config.max_message_bytes());
    }
    loop {
        match decoder.finish() {
            Ok(Some(frame)) => chunked.push(Ok(frame)),
            Ok(None) => break,
            Err(e) => chunked.push(Err(e)),
        }
    }
    assert_eq!(chunked, decode_whole(config, stream));
});
