//! Line scanning: the current message's lines from where the last call stopped, each
//! header's key, value and well-known key number found while its line is read.

use crate::error::{quote, Error, ErrorKind};
use crate::message::{classify, known_number, word, Span, NOT_KNOWN};

use super::{first_line, AmiCodec};

impl AmiCodec {
    /// Scans the lines of the current message from where the last call stopped,
    /// recording header spans, up to a blank line, a bad line, or the end of the buffer.
    ///
    /// A partial line is not searched again when more bytes arrive, so input that
    /// trickles in byte by byte still costs linear time.
    #[inline]
    pub(super) fn scan_lines(&mut self, buf: &[u8]) -> Scan {
        let from = self.searched;
        let Some(rest) = buf.get(from..) else {
            return Scan::NeedMore;
        };
        for rel in memchr::memchr_iter(b'\n', rest) {
            let pos = from + rel;
            let start = self.scan;
            let end = pos + 1;
            let line_end = if pos > start && buf[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            if line_end == start {
                return Scan::Blank { end };
            }
            if end > self.config.max_message_bytes {
                let error = self.too_large_error("message", buf);
                return Scan::Bad { error, end };
            }
            if self.spans.len() >= self.config.max_headers {
                let limit = self.config.max_headers;
                let error = Error::new(
                    ErrorKind::TooManyHeaders,
                    format!(
                        "AMI message starting with {} has more than {limit} headers (the \
                         limit max_headers = {limit}); skipping it up to the next blank line",
                        quote(first_line(buf, usize::MAX))
                    ),
                );
                return Scan::Bad { error, end };
            }
            match find_key(buf, start, line_end) {
                Some((colon, known)) if colon > start => {
                    self.index.note(known, self.spans.len());
                    self.spans.push(header_span(buf, start, colon, line_end));
                }
                _ => {
                    let error = Error::new(
                        ErrorKind::MalformedLine,
                        format!(
                            "malformed AMI line {}: expected `Key: Value`; skipping the \
                             message up to the next blank line",
                            quote(&buf[start..line_end])
                        ),
                    );
                    return Scan::Bad { error, end };
                }
            }
            self.scan = end;
        }
        self.searched = buf.len();
        Scan::NeedMore
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

/// The first `:` in `buf[start..end]`, as [`find_colon`] finds it, and the number of
/// the well-known key before it ([`NOT_KNOWN`] if none): the key is classified from the
/// same 16 bytes the colon is looked for in.
#[inline]
fn find_key(buf: &[u8], start: usize, end: usize) -> Option<(usize, u8)> {
    if let Some(head) = buf.get(start..start + 16) {
        let (lo, hi) = head.split_at(8);
        let (lo, hi) = (word(lo), word(hi));
        let mask = u128::from(colon_word(lo)) | (u128::from(colon_word(hi)) << 64);
        if mask != 0 {
            let len = (mask.trailing_zeros() / 8) as usize;
            let colon = start + len;
            return (colon < end).then(|| (colon, known_number(lo, hi, len)));
        }
    }
    let colon = find_colon(buf, start, end)?;
    let known = buf
        .get(start..colon)
        .and_then(classify)
        .map_or(NOT_KNOWN, |k| k as u8);
    Some((colon, known))
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
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(b':'));
    // A byte of `x` is zero exactly where `word` has a `:`.
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
}
