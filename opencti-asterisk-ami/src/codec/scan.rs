//! Line scanning: the current message's lines from where the last call stopped, each
//! header's key, value and well-known key number found while its line is read.

use crate::error::{quote, Error, ErrorKind};
use crate::message::{known_number, word, Span, LONGEST_KEY, NOT_KNOWN};

use super::{first_line, AmiCodec};

impl AmiCodec {
    /// Scans the lines of the current message from where the last call stopped,
    /// recording header spans, up to a blank line, a bad line, or the end of the buffer.
    ///
    /// Each line is read a word at a time, without a branch per byte: its key's `:`
    /// in the words from its start (the key classified from the same words), its
    /// newline in the words after the `:` (see [`header_line`]). A line the words do
    /// not settle (the buffer's end, a key or value longer than they hold, no `:`) is
    /// read by the exact, slower [`any_line`].
    ///
    /// A partial line is not searched again when more bytes arrive (only its first
    /// words are read again), so input that trickles in byte by byte still costs
    /// linear time.
    #[inline]
    pub(super) fn scan_lines(&mut self, buf: &[u8]) -> Scan {
        let max_bytes = self.config.max_message_bytes;
        let max_headers = self.config.max_headers;
        let searched = self.searched;
        let mut start = self.scan;
        // Worked on in locals, so that the loop keeps them in registers.
        let first = self.first;
        let mut spans = std::mem::take(&mut self.spans);
        let mut index = self.index;
        let found = loop {
            let (span, known, end) = match header_line(buf, start, searched) {
                Some(header) => header,
                None => match any_line(buf, start, searched) {
                    Line::Partial => break Scan::NeedMore,
                    Line::Blank { end } => break Scan::Blank { end },
                    Line::Header { span, known, end } => (span, known, end),
                    Line::Malformed { line_end, end } => {
                        break self.bad_line(buf, start, line_end, end, spans.len() - first);
                    }
                },
            };
            let headers = spans.len() - first;
            if end > max_bytes || headers >= max_headers {
                break self.bad_line(buf, start, end, end, headers);
            }
            index.note(known, headers);
            spans.push(span);
            start = end;
        };
        self.spans = spans;
        self.index = index;
        self.scan = start;
        if let Scan::NeedMore = found {
            self.searched = buf.len();
        }
        found
    }

    /// The error for the line `buf[start..end]` of a message with `headers` headers
    /// before it, checked in this order: the message is over
    /// [`max_message_bytes`](super::DecoderConfig::max_message_bytes), it is over
    /// [`max_headers`](super::DecoderConfig::max_headers), or else the line (its text
    /// `buf[start..line_end]`) is malformed.
    #[cold]
    fn bad_line(
        &self,
        buf: &[u8],
        start: usize,
        line_end: usize,
        end: usize,
        headers: usize,
    ) -> Scan {
        let max_headers = self.config.max_headers;
        let error = if end > self.config.max_message_bytes {
            self.too_large_error("message", buf)
        } else if headers >= max_headers {
            Error::new(
                ErrorKind::TooManyHeaders,
                format!(
                    "AMI message starting with {} has more than {max_headers} headers (the \
                     limit max_headers = {max_headers}); skipping it up to the next blank line",
                    quote(first_line(buf, usize::MAX))
                ),
            )
        } else {
            Error::new(
                ErrorKind::MalformedLine,
                format!(
                    "malformed AMI line {}: expected `Key: Value`; skipping the message up to \
                     the next blank line",
                    quote(buf.get(start..line_end).unwrap_or_default())
                ),
            )
        };
        Scan::Bad { error, end }
    }
}

/// One line of a message, as [`header_line`] and [`any_line`] read it.
enum Line {
    /// The line is not complete yet.
    Partial,
    /// A blank line, ending at `end` (its line ending included).
    Blank { end: usize },
    /// A `Key: Value` line ending at `end`, its key the [`Known`](crate::message::Known)
    /// key numbered `known` ([`NOT_KNOWN`] if none).
    Header { span: Span, known: u8, end: usize },
    /// A line that is neither, its text `..line_end`, ending at `end`.
    Malformed { line_end: usize, end: usize },
}

/// The common line, read from words: a key of at most [`LONGEST_KEY`] bytes whose `:`
/// comes before any newline, and the newline within the 16 bytes after the `:` (or
/// found by `memchr` past them, from where the last search stopped: `searched`): its
/// span, the number of its key ([`NOT_KNOWN`] if none) and where it ends. `None` for
/// any other line (a blank one, say), or too near the buffer's end.
#[inline]
fn header_line(buf: &[u8], start: usize, searched: usize) -> Option<(Span, u8, usize)> {
    // The words read below all lie in these bytes: one bounds check for all of them.
    let line: &[u8; 48] = buf.get(start..start + 48)?.try_into().ok()?;
    let (w0, w1) = (word(&line[..8]), word(&line[8..16]));
    // The first `:` or `\n` (or `*` or 0x1a, which the exact path then deals with).
    let mut at = first_of(stop_bytes(w0), stop_bytes(w1));
    let mut w2 = 0;
    if at == 16 {
        w2 = word(&line[16..24]);
        at = 16 + first_of(stop_bytes(w2), 0);
        if at > LONGEST_KEY {
            return None;
        }
    }
    if at == 0 || line.get(at) != Some(&b':') {
        return None;
    }
    let known = known_number([w0, w1, w2], at);
    let value = line.get(at + 1..at + 17)?;
    let (v0, v1) = (word(&value[..8]), word(&value[8..]));
    let colon = start + at;
    let (nl, cr) = match first_of(newline_bytes(v0), newline_bytes(v1)) {
        16 => {
            let from = searched.max(colon + 17);
            let nl = from + memchr::memchr(b'\n', buf.get(from..)?)?;
            (nl, buf.get(nl - 1) == Some(&b'\r'))
        }
        rel => (
            colon + 1 + rel,
            value.get(rel.wrapping_sub(1)) == Some(&b'\r'),
        ),
    };
    let line_end = nl - usize::from(cr);
    let value_start = colon + 1 + usize::from(v0 as u8 == b' ');
    // Offsets fit in u32: a message (even after lossy UTF-8 replacement) is at most
    // 3 * MAX_MESSAGE_BYTES_LIMIT < u32::MAX bytes.
    let span = Span {
        key_start: start as u32,
        key_end: colon as u32,
        // A space after the `:` is not the line's end: `value_start <= line_end`.
        value_start: value_start as u32,
        value_end: line_end as u32,
    };
    Some((span, known, nl + 1))
}
/// Any line, read exactly: its newline in the [`Window`] from its start (or found by
/// `memchr` past it, from where the last search stopped: `searched`), its key's `:` in
/// the window's first [`KEY_WINDOW`] bytes (or past them).
fn any_line(buf: &[u8], start: usize, searched: usize) -> Line {
    let window = Window::at(buf, start);
    let nl = match window.newline() {
        Some(rel) => start + rel,
        None => {
            let from = searched.max(start + WINDOW);
            match buf.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)) {
                Some(rel) => from + rel,
                None => return Line::Partial,
            }
        }
    };
    let end = nl + 1;
    let line_end = if nl > start && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    if line_end == start {
        return Line::Blank { end };
    }
    let key = match window.colon() {
        // The first `:` of the window may lie past the line's end (in the next line):
        // then the line has none.
        Some(len) => (start + len < line_end).then(|| (start + len, window.known(len))),
        // A key longer than the window is none of the well-known ones.
        None => find_colon(buf, start + KEY_WINDOW, line_end).map(|c| (c, NOT_KNOWN)),
    };
    match key {
        Some((colon, known)) if colon > start => Line::Header {
            span: header_span(buf, start, colon, line_end),
            known,
            end,
        },
        _ => Line::Malformed { line_end, end },
    }
}

/// Offset of the first marked byte in the 16 little-endian bytes `lo` then `hi` (each
/// from a `*_bytes` function below), 16 if none.
#[inline]
fn first_of(lo: u64, hi: u64) -> usize {
    ((u128::from(lo) | u128::from(hi) << 64).trailing_zeros() / 8) as usize
}

/// The high bit of the first `:`, `\n`, `*` or 0x1a byte of `word` (the bytes that
/// are `:` with bits 4 and 5 ignored: one test for the key's end and the line's), and
/// perhaps of bytes after it.
#[inline]
fn stop_bytes(word: u64) -> u64 {
    first_zero_byte((word | 0x3030_3030_3030_3030) ^ 0x3a3a_3a3a_3a3a_3a3a)
}

/// The high bit of the first `\n` byte of `word`, and perhaps of bytes after it.
#[inline]
fn newline_bytes(word: u64) -> u64 {
    first_zero_byte(word ^ 0x0a0a_0a0a_0a0a_0a0a)
}

/// The high bit of the first zero byte of `x`, and perhaps of bytes after it (a borrow
/// from a zero byte can mark the byte above it): exact for the first one, which is all
/// [`first_of`] looks at, in fewer steps than [`byte_word`].
#[inline]
fn first_zero_byte(x: u64) -> u64 {
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

/// Bytes of a line [`any_line`] reads at once from its start: its newline is looked
/// for in all of them.
const WINDOW: usize = 32;

/// Bytes of a [`Window`] its key's `:` is looked for in: the longest key the well-known
/// keys' table classifies, and the `:` after it (three words).
const KEY_WINDOW: usize = LONGEST_KEY + 1;

/// The [`WINDOW`] bytes from a line's start as little-endian words, zero past the end of
/// the buffer (a zero byte is neither `\n` nor `:`, so a partial line stays partial).
struct Window([u64; WINDOW / 8]);

impl Window {
    #[inline]
    fn at(buf: &[u8], start: usize) -> Window {
        match buf.get(start..start + WINDOW) {
            Some(bytes) => Window::of(bytes),
            None => {
                let mut padded = [0u8; WINDOW];
                let tail = buf.get(start..).unwrap_or_default();
                if let Some(head) = padded.get_mut(..tail.len()) {
                    head.copy_from_slice(tail);
                }
                Window::of(&padded)
            }
        }
    }

    /// `bytes` has [`WINDOW`] bytes.
    #[inline]
    fn of(bytes: &[u8]) -> Window {
        Window([
            word(bytes.get(..8).unwrap_or_default()),
            word(bytes.get(8..16).unwrap_or_default()),
            word(bytes.get(16..24).unwrap_or_default()),
            word(bytes.get(24..32).unwrap_or_default()),
        ])
    }

    /// Offset of the first `\n`, if the window has one.
    #[inline]
    fn newline(&self) -> Option<usize> {
        let [w0, w1, w2, w3] = self.0;
        first_byte(
            u128::from(byte_word(w0, b'\n')) | u128::from(byte_word(w1, b'\n')) << 64,
            u128::from(byte_word(w2, b'\n')) | u128::from(byte_word(w3, b'\n')) << 64,
        )
    }

    /// Offset of the first `:` in the first [`KEY_WINDOW`] bytes, if any.
    #[inline]
    fn colon(&self) -> Option<usize> {
        let [w0, w1, w2, _] = self.0;
        first_byte(
            u128::from(colon_word(w0)) | u128::from(colon_word(w1)) << 64,
            u128::from(colon_word(w2)),
        )
    }

    /// The number of the well-known key of the first `len` bytes ([`NOT_KNOWN`] if
    /// none); `len` is below [`KEY_WINDOW`].
    #[inline]
    fn known(&self, len: usize) -> u8 {
        let [w0, w1, w2, _] = self.0;
        known_number([w0, w1, w2], len)
    }
}

/// Offset of the first byte whose high bit is set in the 32 little-endian bytes `lo`
/// then `hi`, if any.
#[inline]
fn first_byte(lo: u128, hi: u128) -> Option<usize> {
    if lo != 0 {
        Some((lo.trailing_zeros() / 8) as usize)
    } else if hi != 0 {
        Some(16 + (hi.trailing_zeros() / 8) as usize)
    } else {
        None
    }
}

/// What [`AmiCodec::scan_lines`] found.
pub(super) enum Scan {
    /// No complete line left: more bytes are needed.
    NeedMore,
    /// A blank line ends at `end` (its line ending included).
    Blank { end: usize },
    /// The line ending at `end` breaks a rule; the message must be skipped.
    Bad { error: Error, end: usize },
}

/// Offset of the first `:` in `buf[start..end]`.
///
/// Keys are short (`Event`, `Uniqueid`, `ChannelStateDesc`), so the 16 bytes from
/// `start` are tested at once, without a branch per byte (SWAR: SIMD within two
/// `u64`s); a longer key, or the end of the buffer, takes the byte loop.
#[inline]
fn find_colon(buf: &[u8], start: usize, end: usize) -> Option<usize> {
    if let Some(head) = buf.get(start..start + 16) {
        let (lo, hi) = head.split_at(8);
        let mask = u128::from(colon_bytes(lo)) | (u128::from(colon_bytes(hi)) << 64);
        if mask != 0 {
            // The first `:` may lie past the line's end (in the next line): then the
            // line has none.
            let colon = start + (mask.trailing_zeros() / 8) as usize;
            return (colon < end).then_some(colon);
        }
    }
    let line = buf.get(start..end)?;
    line.iter().position(|&b| b == b':').map(|i| start + i)
}

/// High bit set in each byte of the little-endian word `bytes` that is a `:`; exact
/// (no carries between bytes). `bytes` has 8 bytes.
#[inline]
fn colon_bytes(bytes: &[u8]) -> u64 {
    colon_word(<[u8; 8]>::try_from(bytes).map_or(0, u64::from_le_bytes))
}

/// [`colon_bytes`] of a word.
#[inline]
fn colon_word(word: u64) -> u64 {
    byte_word(word, b':')
}

/// High bit set in each byte of `word` that is `byte`; exact (no carries between
/// bytes).
#[inline]
fn byte_word(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(byte));
    // A byte of `x` is zero exactly where `word` has `byte`.
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The span of the header line `buf[start..line_end]` whose first `:` is at `colon`
/// (`start < colon < line_end`): the value starts after the `:` and one space.
#[inline]
pub(super) fn header_span(buf: &[u8], start: usize, colon: usize, line_end: usize) -> Span {
    let mut value_start = colon + 1;
    if value_start < line_end && buf[value_start] == b' ' {
        value_start += 1;
    }
    // Offsets fit in u32: a message (even after lossy UTF-8 replacement) is at most
    // 3 * MAX_MESSAGE_BYTES_LIMIT < u32::MAX bytes.
    Span {
        key_start: start as u32,
        key_end: colon as u32,
        value_start: value_start as u32,
        value_end: line_end as u32,
    }
}

#[inline]
pub(super) fn trim_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::frame::Frame;
    use crate::message::KNOWN_KEYS;

    #[test]
    fn a_partial_line_is_not_searched_again() {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::from(&b"Event: X\r\nOutput: "[..]);
        for _ in 0..1000 {
            assert_eq!(codec.decode(&mut buf).ok(), Some(None));
            assert_eq!(codec.searched, buf.len(), "resumes at the end");
            assert_eq!(codec.scan, 10, "the partial line starts after the first");
            buf.extend_from_slice(b"abc ");
        }
        buf.extend_from_slice(b"\r\n\r\n");
        let frame = codec
            .decode(&mut buf)
            .ok()
            .flatten()
            .and_then(Frame::into_message);
        assert_eq!(
            frame.and_then(|m| m.get("Output").map(str::len)),
            Some(4000)
        );
    }

    #[test]
    fn colon_search_fast_path_and_fallback() {
        let line = b"ConnectedLineName: x\nA: b\n";
        assert_eq!(find_colon(line, 0, 20), Some(17));
        assert_eq!(find_colon(b"Ab: c", 0, 5), Some(2));
        // The first `:` in the 16-byte window belongs to the next line.
        assert_eq!(find_colon(b"abc\nd: eeeeeeeeeeeeeeee", 0, 3), None);
        // No `:` in the window and the line is longer than it.
        assert_eq!(
            find_colon(b"abcdefghijklmnopqrstuvwxyz: 1\n", 0, 29),
            Some(26)
        );
        assert_eq!(colon_bytes(b"a:b:cdef"), 0x0000_0000_8000_8000);
    }

    /// The headers of every message of `input`, read plainly (split at `\n`, one `\r`
    /// dropped, the key before the first `:`, one space dropped from the value); the
    /// input holds no malformed line.
    fn plainly(input: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut messages = vec![Vec::new()];
        for line in input.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                if messages.last().is_some_and(|m| !m.is_empty()) {
                    messages.push(Vec::new());
                }
                continue;
            };
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if let Some(m) = messages.last_mut() {
                m.push((line[..colon].to_vec(), value.to_vec()));
            }
        }
        messages.retain(|m| !m.is_empty());
        messages
    }

    /// Every message of `input` through the batch decoder, fed in `chunk`-byte reads.
    fn decoded(input: &[u8], chunk: usize) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            assert!(codec.decode_batch(&mut buf, &mut out).is_ok());
        }
        out.iter()
            .map(|m| {
                m.headers()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn keys_and_values_ending_at_every_word_boundary() {
        // Keys and values of every length around the words the scan reads (8, 16, 24
        // bytes from a line's start, 16 from its `:`), lines of both endings, values
        // holding the bytes the key search stops at (`:`, `*`, 0x1a) and the ones a
        // borrow can mark after a `:` or `\n` (`;`, 0x0b).
        let mut input = Vec::new();
        let mut n = 0usize;
        for key_len in 1..=27 {
            for value_len in [0, 1, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 23, 31, 40] {
                let key: Vec<u8> = (0..key_len).map(|i| b'A' + ((i + n) % 26) as u8).collect();
                let value: Vec<u8> = (0..value_len)
                    .map(|i| b"x:;*\x1a\x0b y"[(i + n) % 8])
                    .collect();
                input.extend_from_slice(&key);
                input.extend_from_slice(if n.is_multiple_of(3) { b":" } else { b": " });
                input.extend_from_slice(&value);
                input.extend_from_slice(if n.is_multiple_of(2) { b"\r\n" } else { b"\n" });
                n += 1;
                if n.is_multiple_of(5) {
                    input.extend_from_slice(if n.is_multiple_of(10) { b"\r\n" } else { b"\n" });
                }
            }
        }
        input.extend_from_slice(b"Last: 1\r\n\r\n");
        let expected = plainly(&input);
        assert!(expected.len() > 80, "{}", expected.len());
        for chunk in [1, 3, 8, 16, 23, 24, 25, 64, 4096, input.len()] {
            assert!(decoded(&input, chunk) == expected, "reads of {chunk} bytes");
        }
    }

    #[test]
    fn well_known_keys_are_indexed_wherever_they_fall() {
        // Each well-known key at offsets that put its end on and around the words the
        // scan reads, with an unknown key of the same length after it.
        for pad in 0..24 {
            let mut text = format!("P{}: x\r\n", "p".repeat(pad));
            for (_, name) in KNOWN_KEYS {
                text.push_str(&format!("{name}: {}\r\n", name.len()));
                text.push_str(&format!("{}Q: other\r\n", &name[..name.len() - 1]));
            }
            text.push_str("\r\n");
            let mut codec = AmiCodec::without_banner();
            let mut buf = BytesMut::from(text.as_bytes());
            let mut out = Vec::new();
            assert!(codec.decode_batch(&mut buf, &mut out).is_ok());
            let [m] = &out[..] else { panic!("{out:?}") };
            assert_eq!(m.len(), 1 + 2 * KNOWN_KEYS.len());
            for (known, name) in KNOWN_KEYS {
                let len = name.len().to_string();
                assert_eq!(m.known(known), Some(len.as_str()), "{name} after {pad}");
            }
            assert!(!m.repeats_known());
        }
    }
}
