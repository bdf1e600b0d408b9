//! Inbound framing: bytes from Asterisk, in chunks of any size, to [`Frame`]s.
//!
//! [`AmiCodec`] is a pure state machine over a caller-owned `BytesMut` (the shape of a
//! tokio codec); [`PushDecoder`] owns the buffer for callers that just push bytes.
//!
//! Line rules: a line ends at `\n`; one `\r` before it is dropped. An empty line ends a
//! message; empty lines before a message are skipped. A header line is `Key: Value`:
//! the key is everything before the first `:` (non-empty), the value everything after
//! it minus one space. The decoder remembers how far it has parsed the buffered bytes,
//! so a message that arrives one byte at a time is still scanned once.

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};

use crate::action::Action;
use crate::error::{quote, Error, ErrorKind, Result};
use crate::frame::{Banner, Frame};
use crate::message::{
    classify, known_number, word, Batch, KnownIndex, Layout, Message, Span, NOT_KNOWN,
};

/// A batch of messages decoded together is closed once its text reaches this size, so
/// that a message kept long keeps at most this much text (plus its own) with it.
const BATCH_BYTES: usize = 64 * 1024;

/// Default for [`DecoderConfig::max_message_bytes`]: 1 MiB.
///
/// The largest message in the Asterisk 22 captures is 2.6 KB; CLI output through
/// `Action: Command` (`dialplan show` on a large system) is what comes near this.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Highest accepted [`DecoderConfig::max_message_bytes`]: 1 GiB. Header offsets are
/// stored as `u32`, and replacing invalid UTF-8 can triple a message's length.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 1 << 30;

/// Default for [`DecoderConfig::max_headers`]: 16,384 (`Output` lines count one each).
pub const DEFAULT_MAX_HEADERS: usize = 16 * 1024;

/// Limits and options of an [`AmiCodec`].
///
/// ```
/// use opencti_asterisk_ami::{AmiCodec, DecoderConfig};
///
/// let config = DecoderConfig::new()
///     .with_max_message_bytes(64 * 1024)
///     .with_max_headers(1024);
/// let codec = AmiCodec::with_config(config);
/// assert_eq!(codec.config().max_headers(), 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    max_message_bytes: usize,
    max_headers: usize,
    expect_banner: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig::new()
    }
}

impl DecoderConfig {
    /// The defaults: [`DEFAULT_MAX_MESSAGE_BYTES`], [`DEFAULT_MAX_HEADERS`], and a banner
    /// expected as the first line.
    pub const fn new() -> Self {
        DecoderConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            expect_banner: true,
        }
    }

    /// Largest message accepted, in bytes, counting its line endings and the blank line
    /// that ends it (extra blank lines between messages are not counted). Also bounds
    /// the banner line. Clamped to `1..=`[`MAX_MESSAGE_BYTES_LIMIT`].
    pub const fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = if bytes > MAX_MESSAGE_BYTES_LIMIT {
            MAX_MESSAGE_BYTES_LIMIT
        } else if bytes == 0 {
            // One byte lets a lone `\r` wait for its `\n`, so the result does not depend
            // on where the input was split.
            1
        } else {
            bytes
        };
        self
    }

    /// Most headers accepted in one message.
    pub const fn with_max_headers(mut self, headers: usize) -> Self {
        self.max_headers = headers;
        self
    }

    /// Whether the first line is the banner (`true`, the default, for a fresh
    /// connection) or the stream starts with a message.
    pub const fn with_banner(mut self, expect_banner: bool) -> Self {
        self.expect_banner = expect_banner;
        self
    }

    /// See [`with_max_message_bytes`](Self::with_max_message_bytes).
    pub const fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// See [`with_max_headers`](Self::with_max_headers).
    pub const fn max_headers(&self) -> usize {
        self.max_headers
    }

    /// See [`with_banner`](Self::with_banner).
    pub const fn expects_banner(&self) -> bool {
        self.expect_banner
    }
}

/// Where the decoder is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the banner line.
    Banner,
    /// Reading messages.
    Messages,
    /// Recovering from an error: dropping bytes up to and including the next blank line.
    SkipToBlankLine,
    /// Recovering from an over-long banner: dropping bytes up to the end of the line.
    SkipToEndOfLine,
}

/// The AMI decoder: turns the server's bytes into a [`Frame::Banner`] and then
/// [`Frame::Message`]s.
///
/// Drive it like a tokio codec: append what the socket returned to a `BytesMut` and
/// call [`decode`](Self::decode) until it returns `Ok(None)`. It consumes the bytes of
/// each frame it returns and keeps the rest; pass the same buffer every time, only
/// appending to it (or call [`reset`](Self::reset) after clearing it).
///
/// # Behavior
///
/// - Accepts `\r\n` and bare `\n` line endings, mixed (Asterisk 22 ends `Message: Park
///   successful` with `\n` and then `\r\n\r\n`), extra blank lines between messages,
///   empty values (`Key:` and `Key: `), values containing `: `, and frames split
///   anywhere, even inside a UTF-8 character.
/// - Invalid UTF-8 is replaced by U+FFFD (lossy, see [`Message::is_lossy`]), never an
///   error: an event must not be lost to a stray Latin-1 caller name.
/// - A message larger than [`DecoderConfig::max_message_bytes`], with more headers
///   than [`DecoderConfig::max_headers`], or with a line that is not `Key: Value` gives
///   an `Err` naming the limit or the line. Every such error is recoverable: the
///   decoder drops the bad message's bytes as they arrive, up to the next blank line,
///   and the next call carries on with the following message.
/// - Memory is bounded: after `decode` returns `Ok(None)`, the buffer holds at most
///   `max_message_bytes` bytes.
///
/// (`tokio_util::codec::FramedRead` ends its stream after the first `Err`; a reader
/// that should survive a bad message calls `decode` in its own read loop.)
///
/// ```
/// use bytes::BytesMut;
/// use opencti_asterisk_ami::{AmiCodec, Frame};
///
/// let mut codec = AmiCodec::new();
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(b"Asterisk Call Manager/11.0.0\r\nResponse: Succ");
/// let banner = codec.decode(&mut buf)?;
/// assert!(matches!(banner, Some(Frame::Banner(b)) if b.version() == "11.0.0"));
/// assert_eq!(codec.decode(&mut buf)?, None); // the response is not complete yet
///
/// buf.extend_from_slice(b"ess\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n");
/// let msg = codec.decode(&mut buf)?.and_then(Frame::into_message).expect("a message");
/// assert_eq!(msg.response(), Some("Success"));
/// assert_eq!(msg.action_id(), Some("1"));
/// assert!(buf.is_empty());
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AmiCodec {
    config: DecoderConfig,
    state: State,
    /// Offset in the buffer of the current line's first byte; the current message (or
    /// banner) starts at offset 0.
    scan: usize,
    /// Offset up to which the buffer has been searched (`scan <= searched <= len`).
    searched: usize,
    /// Headers of the current message parsed so far, as offsets from its start.
    spans: Vec<Span>,
    /// Where the current message's well-known keys are.
    index: KnownIndex,
    /// While skipping: the current line already had content that was dropped.
    skip_line_dirty: bool,
    /// Messages complete but not yet built (they are built together, sharing a text).
    pending: Vec<Layout>,
    /// The pending messages' headers, as offsets into their batch's text.
    pending_spans: Vec<Span>,
    /// Where [`decode`](Self::decode) takes its one message from.
    one: Vec<Message>,
}

impl Default for AmiCodec {
    fn default() -> Self {
        AmiCodec::new()
    }
}

impl AmiCodec {
    /// A decoder with the default [`DecoderConfig`], expecting the banner first.
    pub fn new() -> Self {
        AmiCodec::with_config(DecoderConfig::new())
    }

    /// A decoder for a stream that starts with a message (no banner).
    pub fn without_banner() -> Self {
        AmiCodec::with_config(DecoderConfig::new().with_banner(false))
    }

    /// A decoder with the given limits and options.
    pub fn with_config(config: DecoderConfig) -> Self {
        AmiCodec {
            config,
            state: if config.expect_banner {
                State::Banner
            } else {
                State::Messages
            },
            scan: 0,
            searched: 0,
            spans: Vec::with_capacity(32),
            index: KnownIndex::default(),
            skip_line_dirty: false,
            pending: Vec::new(),
            pending_spans: Vec::new(),
            one: Vec::with_capacity(1),
        }
    }

    /// The decoder's limits and options.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Forgets any partial frame and starts again as new (expecting the banner if so
    /// configured): for a reconnect. Clear the buffer too.
    pub fn reset(&mut self) {
        *self = AmiCodec::with_config(self.config);
    }

    /// Decodes the next frame from `buf`, consuming its bytes; `Ok(None)` means more
    /// bytes are needed. See the type's docs for the rules and errors.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        if self.searched > buf.len() {
            // The caller replaced the buffer: start over on what it holds now.
            self.restart_line();
            self.clear_message();
        }
        loop {
            match self.state {
                State::Banner => return self.decode_banner(buf),
                State::Messages => {
                    let mut one = std::mem::take(&mut self.one);
                    let decoded = self.decode_messages(buf, 1, &mut one);
                    let message = one.pop();
                    self.one = one;
                    return decoded.map(|()| message.map(Frame::Message));
                }
                State::SkipToBlankLine => {
                    if !self.skip_to_blank_line(buf) {
                        return Ok(None);
                    }
                    self.state = State::Messages;
                }
                State::SkipToEndOfLine => {
                    match memchr::memchr(b'\n', buf) {
                        Some(nl) => buf.advance(nl + 1),
                        None => {
                            buf.clear();
                            return Ok(None);
                        }
                    }
                    self.state = State::Messages;
                }
            }
        }
    }

    /// Decodes every complete message in `buf` onto `out`, consuming their bytes; the
    /// messages of one call share one text (closed every 64 KiB), so a read's worth of
    /// events costs two allocations. Rules and errors as for [`decode`](Self::decode):
    /// on an error, the messages before the bad one are on `out` already. A banner (in
    /// a stream that expects one) is decoded and dropped.
    pub(crate) fn decode_batch(
        &mut self,
        buf: &mut BytesMut,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        if self.searched > buf.len() {
            self.restart_line();
            self.clear_message();
        }
        loop {
            match self.state {
                State::Messages => return self.decode_messages(buf, usize::MAX, out),
                _ => match self.decode(buf)? {
                    Some(Frame::Message(message)) => out.push(message),
                    Some(Frame::Banner(_)) => {}
                    None => return Ok(()),
                },
            }
        }
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: returns the
    /// remaining complete frames, then a [`Truncated`](ErrorKind::Truncated) error if a
    /// partial message is left (its bytes are dropped), then `Ok(None)`.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let leftover = buf.iter().any(|&b| b != b'\r' && b != b'\n');
        let partial = matches!(self.state, State::Banner | State::Messages)
            && (leftover || !self.spans.is_empty());
        let dropped = buf.len();
        buf.clear();
        self.restart_line();
        let headers = self.spans.len();
        self.clear_message();
        if partial {
            let what = if self.state == State::Banner {
                "the banner line".to_owned()
            } else {
                format!("a message ({headers} complete header lines)")
            };
            return Err(Error::new(
                ErrorKind::Truncated,
                format!(
                    "the AMI stream ended inside {what}: its {dropped} buffered bytes were \
                     dropped"
                ),
            ));
        }
        Ok(None)
    }

    /// Encodes `action` onto `dst` (delegates to [`Action::encode`]), so that one value
    /// can serve as both halves of a tokio-style codec.
    pub fn encode(&mut self, action: &Action, dst: &mut BytesMut) -> Result<()> {
        action.encode(dst)
    }

    fn decode_banner(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        loop {
            let from = self.searched;
            let Some(rel) = buf.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)) else {
                if buf.len() > self.config.max_message_bytes {
                    let error = self.too_large_error("banner line", buf);
                    buf.clear();
                    self.restart_line();
                    self.state = State::SkipToEndOfLine;
                    return Err(error);
                }
                self.searched = buf.len();
                return Ok(None);
            };
            let nl = from + rel;
            self.restart_line();
            let line = trim_cr(&buf[..nl]);
            if line.is_empty() {
                buf.advance(nl + 1);
                continue;
            }
            if nl + 1 > self.config.max_message_bytes {
                let error = self.too_large_error("banner line", buf);
                buf.advance(nl + 1);
                self.state = State::Messages;
                return Err(error);
            }
            let parsed = Banner::parse(line);
            self.state = match &parsed {
                Ok(_) => State::Messages,
                // A header-like line means the stream started mid-message (or without a
                // banner): drop the rest of that message too.
                Err(_) if line.contains(&b':') => State::SkipToBlankLine,
                Err(_) => State::Messages,
            };
            self.skip_line_dirty = false;
            buf.advance(nl + 1);
            return parsed.map(|banner| Some(Frame::Banner(banner)));
        }
    }

    /// Decodes up to `limit` complete messages onto `out` (see
    /// [`decode_batch`](Self::decode_batch)). The buffer is consumed once, at the end:
    /// `base` is where the current message starts in it, `region` where the text of the
    /// messages not yet built starts.
    fn decode_messages(
        &mut self,
        buf: &mut BytesMut,
        limit: usize,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let mut base = 0;
        let mut region = 0;
        let mut decoded = 0;
        while decoded < limit {
            if base - region >= BATCH_BYTES {
                self.build_pending(&buf[region..base], out);
                region = base;
            }
            match self.scan_lines(&buf[base..]) {
                Scan::NeedMore => {
                    if buf.len() - base > self.config.max_message_bytes {
                        let error = self.too_large_error("message", &buf[base..]);
                        let consumed = base + self.scan;
                        self.build_pending(&buf[region..base], out);
                        return Err(self.start_skipping(buf, consumed, error));
                    }
                    break;
                }
                Scan::Blank { end } => {
                    if self.spans.is_empty() {
                        // Before any header: an extra blank line between messages.
                        base += end;
                        if self.pending.is_empty() {
                            region = base;
                        }
                        self.restart_line();
                        continue;
                    }
                    if end > self.config.max_message_bytes {
                        // Complete, so nothing is left to skip.
                        let error = self.too_large_error("message", &buf[base..]);
                        self.build_pending(&buf[region..base], out);
                        buf.advance(base + end);
                        self.restart_line();
                        self.clear_message();
                        return Err(error);
                    }
                    self.add_pending(base - region);
                    base += end;
                    decoded += 1;
                    self.restart_line();
                }
                Scan::Bad { error, end } => {
                    self.build_pending(&buf[region..base], out);
                    return Err(self.start_skipping(buf, base + end, error));
                }
            }
        }
        self.build_pending(&buf[region..base], out);
        // What is left is the current message's start: its scan offsets count from it.
        buf.advance(base);
        Ok(())
    }

    /// The current message (its header lines `self.scan` bytes long) is complete and
    /// starts `offset` bytes into the pending messages' text.
    fn add_pending(&mut self, offset: usize) {
        // Offsets fit in u32: a batch is closed past BATCH_BYTES, and a message (even
        // after lossy UTF-8 replacement) is at most 3 * MAX_MESSAGE_BYTES_LIMIT bytes.
        let shift = offset as u32;
        let first = self.pending_spans.len() as u32;
        self.pending_spans
            .extend(self.spans.iter().map(|span| span.shifted(shift)));
        self.pending.push(Layout {
            start: shift,
            end: shift + self.scan as u32,
            first,
            count: self.spans.len() as u32,
            index: self.index,
            lossy: false,
        });
        self.clear_message();
    }

    /// Builds the pending messages, whose text is `region`, onto `out`: one shared text
    /// and one span table for all of them.
    fn build_pending(&mut self, region: &[u8], out: &mut Vec<Message>) {
        let Some(last) = self.pending.last() else {
            return;
        };
        // Without the blank line that ends the last message.
        let region = &region[..last.end as usize];
        let batch = match std::str::from_utf8(region) {
            Ok(text) => Batch {
                text: Arc::from(text),
                spans: Arc::from(self.pending_spans.as_slice()),
            },
            Err(_) => self.lossy_batch(region),
        };
        out.extend(self.pending.drain(..).map(|layout| batch.message(layout)));
        self.pending_spans.clear();
    }

    /// The pending messages' batch when some are not valid UTF-8: those are copied with
    /// U+FFFD for the invalid bytes (lossy, see [`Message::is_lossy`]) and indexed
    /// again; the others are copied as they are.
    fn lossy_batch(&mut self, region: &[u8]) -> Batch {
        let mut text = String::with_capacity(region.len() + region.len() / 8);
        let mut spans = Vec::with_capacity(self.pending_spans.len());
        for layout in &mut self.pending {
            let (start, end) = (layout.start as usize, layout.end as usize);
            let raw = region.get(start..end).unwrap_or_default();
            let offset = text.len() as u32;
            let first = spans.len() as u32;
            match std::str::from_utf8(raw) {
                Ok(valid) => {
                    text.push_str(valid);
                    let own = self
                        .pending_spans
                        .get(layout.first as usize..(layout.first + layout.count) as usize)
                        .unwrap_or_default();
                    spans.extend(own.iter().map(|s| s.rebased(layout.start, offset)));
                }
                Err(_) => {
                    // Replacement keeps every ASCII byte (CR, LF, `:`), so the lines and
                    // headers are the same; only the offsets move.
                    let replaced = String::from_utf8_lossy(raw);
                    let mut own = Vec::with_capacity(layout.count as usize);
                    index_headers(replaced.as_bytes(), &mut own);
                    layout.index = KnownIndex::of_spans(&replaced, &own);
                    layout.count = own.len() as u32;
                    layout.lossy = true;
                    text.push_str(&replaced);
                    spans.extend(own.iter().map(|s| s.shifted(offset)));
                }
            }
            layout.start = offset;
            layout.end = text.len() as u32;
            layout.first = first;
        }
        Batch {
            text: Arc::from(text),
            spans: Arc::from(spans),
        }
    }

    /// Forgets the current message's headers.
    fn clear_message(&mut self) {
        self.spans.clear();
        self.index = KnownIndex::default();
    }

    /// Scans the lines of the current message from where the last call stopped,
    /// recording header spans, up to a blank line, a bad line, or the end of the buffer.
    ///
    /// A partial line is not searched again when more bytes arrive, so input that
    /// trickles in byte by byte still costs linear time.
    #[inline]
    fn scan_lines(&mut self, buf: &[u8]) -> Scan {
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

    /// Forgets the position in the buffer: call after consuming bytes from its front.
    fn restart_line(&mut self) {
        self.scan = 0;
        self.searched = 0;
    }

    /// Drops `buf[..consumed]` (whole lines of the bad message, none blank), switches to
    /// skipping, and lets the skipper deal with what follows. Returns the error to give.
    fn start_skipping(&mut self, buf: &mut BytesMut, consumed: usize, error: Error) -> Error {
        buf.advance(consumed.min(buf.len()));
        self.restart_line();
        self.clear_message();
        self.skip_line_dirty = false;
        self.state = State::SkipToBlankLine;
        error
    }

    /// Drops lines up to and including the next blank one. Returns `true` when it was
    /// found, `false` when more input is needed (having kept at most one byte, a `\r`
    /// that may start the blank line).
    fn skip_to_blank_line(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match memchr::memchr(b'\n', buf) {
                Some(nl) => {
                    let blank = !self.skip_line_dirty && (nl == 0 || (nl == 1 && buf[0] == b'\r'));
                    buf.advance(nl + 1);
                    self.skip_line_dirty = false;
                    if blank {
                        return true;
                    }
                }
                None => {
                    if buf.is_empty() {
                        return false;
                    }
                    if !self.skip_line_dirty && buf.len() == 1 && buf[0] == b'\r' {
                        return false;
                    }
                    self.skip_line_dirty = true;
                    buf.clear();
                    return false;
                }
            }
        }
    }

    /// The error for a banner or message over `max_message_bytes`, quoting its start.
    ///
    /// Called only once more than `max_message_bytes` of it are buffered, and it quotes
    /// only from those bytes, so the text is the same however the input was split.
    fn too_large_error(&self, what: &str, buf: &[u8]) -> Error {
        let limit = self.config.max_message_bytes;
        let start = quote(first_line(buf, limit.saturating_add(1)));
        let rest = if what == "message" {
            "skipping it up to the next blank line"
        } else {
            "skipping it"
        };
        Error::new(
            ErrorKind::MessageTooLarge,
            format!(
                "AMI {what} starting with {start} is larger than {limit} bytes (the limit \
                 max_message_bytes = {limit}); {rest}"
            ),
        )
    }
}

/// The first line of `buf` (without its ending), looking at most at `within` bytes and
/// quoting at most 64 of them.
fn first_line(buf: &[u8], within: usize) -> &[u8] {
    let head = &buf[..buf.len().min(within).min(64)];
    let end = memchr::memchr2(b'\r', b'\n', head).unwrap_or(head.len());
    &head[..end]
}

/// What [`AmiCodec::scan_lines`] found.
enum Scan {
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
fn header_span(buf: &[u8], start: usize, colon: usize, line_end: usize) -> Span {
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
fn trim_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

/// Parses the line `buf[start..]` (line ending removed) as `Key: Value`; `None` if it
/// has no `:` or an empty key.
fn parse_header(buf: &[u8], start: usize) -> Option<Span> {
    let colon = start + memchr::memchr(b':', buf.get(start..)?)?;
    (colon > start).then(|| header_span(buf, start, colon, buf.len()))
}

/// Indexes the header lines of a complete message's text (already known to be valid:
/// every non-blank line has a key).
fn index_headers(text: &[u8], spans: &mut Vec<Span>) {
    let mut start = 0;
    while start < text.len() {
        let nl = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |rel| start + rel);
        let line_end = if nl > start && text[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if let Some(span) = parse_header(&text[..line_end], start) {
            spans.push(span);
        }
        start = nl + 1;
    }
}

/// The decoder with its own buffer: push bytes as they arrive, take frames out.
///
/// Memory stays bounded if frames are taken out after each push: the buffer then
/// never holds more than `max_message_bytes` plus the last pushed chunk.
///
/// ```
/// use opencti_asterisk_ami::{Frame, PushDecoder};
///
/// let mut decoder = PushDecoder::new();
/// let mut events = Vec::new();
/// for chunk in [&b"Asterisk Call Manager/11.0.0\r\nEvent: Hangup\r\nCau"[..], b"se: 16\r\n\r\n"] {
///     decoder.push(chunk);
///     for frame in decoder.frames() {
///         if let Frame::Message(msg) = frame? {
///             events.push(msg);
///         }
///     }
/// }
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].get("Cause"), Some("16"));
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PushDecoder {
    codec: AmiCodec,
    buf: BytesMut,
}

impl PushDecoder {
    /// A push decoder with the default [`DecoderConfig`] (banner expected).
    pub fn new() -> Self {
        PushDecoder::with_config(DecoderConfig::new())
    }

    /// A push decoder with the given limits and options.
    pub fn with_config(config: DecoderConfig) -> Self {
        PushDecoder {
            codec: AmiCodec::with_config(config),
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// Appends bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.put_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or a recoverable
    /// error (see [`AmiCodec`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        self.codec.decode(&mut self.buf)
    }

    /// Every frame that is complete now, errors included; stops when more bytes are
    /// needed.
    pub fn frames(&mut self) -> Frames<'_> {
        Frames { decoder: self }
    }

    /// For when the stream has ended: the remaining frames, then a
    /// [`Truncated`](ErrorKind::Truncated) error if a partial message was left, then
    /// `Ok(None)`.
    pub fn finish(&mut self) -> Result<Option<Frame>> {
        self.codec.decode_eof(&mut self.buf)
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The decoder's limits and options.
    pub fn config(&self) -> &DecoderConfig {
        self.codec.config()
    }

    /// Drops buffered bytes and starts again as new (for a reconnect).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.codec.reset();
    }
}

/// Iterator over the frames complete so far; see [`PushDecoder::frames`].
#[derive(Debug)]
pub struct Frames<'a> {
    decoder: &'a mut PushDecoder,
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        self.decoder.next_frame().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(input: &[u8], codec: &mut AmiCodec) -> Vec<Result<Frame>> {
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

    #[test]
    fn skip_keeps_a_lone_cr_and_finds_split_blank_lines() {
        let mut codec = AmiCodec::without_banner();
        codec.state = State::SkipToBlankLine;
        let mut buf = BytesMut::from(&b"junk\r\nmore\r"[..]);
        assert!(!codec.skip_to_blank_line(&mut buf));
        assert!(buf.is_empty(), "dirty partial line dropped");
        buf.extend_from_slice(b"\n\r");
        assert!(!codec.skip_to_blank_line(&mut buf));
        assert_eq!(&buf[..], b"\r");
        buf.extend_from_slice(b"\nA: 1\n\n");
        assert!(codec.skip_to_blank_line(&mut buf));
        assert_eq!(&buf[..], b"A: 1\n\n");
    }

    #[test]
    fn lossy_path_reindexes() {
        let mut codec = AmiCodec::without_banner();
        let out = messages(
            b"Event: X\r\nName: Caf\xe9 \xff\xfe\r\nB: 2\r\n\r\n",
            &mut codec,
        );
        let [Ok(Frame::Message(m))] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert!(m.is_lossy());
        assert_eq!(m.get("Name"), Some("Caf\u{fffd} \u{fffd}\u{fffd}"));
        assert_eq!(m.get("B"), Some("2"));
    }

    #[test]
    fn replaced_buffer_does_not_panic() {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::from(&b"Event: partial-line-long"[..]);
        assert_eq!(codec.decode(&mut buf).ok(), Some(None));
        let mut other = BytesMut::from(&b"A: 1\n\n"[..]);
        let frame = codec.decode(&mut other);
        assert!(matches!(frame, Ok(Some(Frame::Message(_)))), "{frame:?}");
    }

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

    #[test]
    fn config_clamps_the_message_limit() {
        let c = DecoderConfig::new();
        assert_eq!(c.with_max_message_bytes(0).max_message_bytes(), 1);
        assert_eq!(
            c.with_max_message_bytes(usize::MAX).max_message_bytes(),
            MAX_MESSAGE_BYTES_LIMIT
        );
        assert_eq!(c.max_message_bytes(), DEFAULT_MAX_MESSAGE_BYTES);
        assert!(c.expects_banner() && !c.with_banner(false).expects_banner());
        assert_eq!(DecoderConfig::default(), c);
    }

    /// Every message of `input` through `decode_batch`, fed in `chunk`-byte reads,
    /// errors included in order, as `(message, error)` texts.
    fn batched(input: &[u8], chunk: usize) -> Vec<std::result::Result<Message, String>> {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut decoded = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let result = codec.decode_batch(&mut buf, &mut decoded);
                out.extend(decoded.drain(..).map(Ok));
                match result {
                    Ok(()) => break,
                    Err(e) => out.push(Err(e.to_string())),
                }
            }
        }
        out
    }

    /// The same through `decode`, one frame at a time, in one piece.
    fn single(input: &[u8]) -> Vec<std::result::Result<Message, String>> {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Message(m))) => out.push(Ok(m)),
                Ok(Some(Frame::Banner(_))) => {}
                Ok(None) => return out,
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    const MIXED: &[u8] =
        b"\r\nEvent: Newchannel\r\nChannel: PJSIP/1001-0001\r\nUniqueid: 1.1\r\n\r\n\
        \n\nEvent: Hangup\nCallerIDName: Caf\xe9 \xff\nUniqueid: 1.1\nCause: 16\n\n\
        Response: Success\r\nActionID: a-1\r\nMessage: ok\r\n\r\n\
        no colon here\r\nEvent: Skipped\r\n\r\n\
        Event: DialBegin\r\nDestUniqueid: 1.2\r\nDESTCHANNEL: Local/1@a-1;1\r\n\
        AVeryLongHeaderKeyThatIsLongerThanSixteenBytes: v\r\nConnectedLineName: x\r\n\r\n\
        Event: Last\r\nUniqueid: \xc3\r\n\r\n";

    #[test]
    fn batches_match_single_decoding_however_the_input_is_split() {
        let expected = single(MIXED);
        assert_eq!(expected.len(), 6, "{expected:?}");
        assert!(expected[3].is_err(), "the malformed line is an error");
        for chunk in [1, 2, 3, 5, 7, 16, 17, 64, MIXED.len()] {
            assert_eq!(batched(MIXED, chunk), expected, "reads of {chunk} bytes");
        }
        let [Ok(hangup), Ok(last)] = [&expected[1], &expected[5]] else {
            panic!("{expected:?}")
        };
        assert!(hangup.is_lossy() && last.is_lossy());
        assert_eq!(hangup.get("CallerIDName"), Some("Caf\u{fffd} \u{fffd}"));
        assert_eq!(hangup.get("Cause"), Some("16"));
        assert_eq!(last.get("uniqueid"), Some("\u{fffd}"));
        // The valid messages decoded with them are not lossy.
        let all = batched(MIXED, MIXED.len());
        assert!(all.iter().flatten().filter(|m| !m.is_lossy()).count() == 3);
    }

    #[test]
    fn one_batch_shares_its_text_and_keeps_every_lookup() {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::new();
        let mut text = Vec::new();
        for i in 0..300 {
            text.extend_from_slice(
                format!("Event: Newstate\r\nUniqueid: {i}.5\r\nChannelState: 6\r\n\r\n").as_bytes(),
            );
        }
        buf.extend_from_slice(&text);
        let mut out = Vec::new();
        assert!(codec.decode_batch(&mut buf, &mut out).is_ok());
        assert!(buf.is_empty());
        assert_eq!(out.len(), 300);
        for (i, m) in out.iter().enumerate() {
            assert_eq!(m.event(), Some("Newstate"));
            assert_eq!(m.get("Uniqueid"), Some(format!("{i}.5").as_str()));
            assert_eq!(
                m.as_str(),
                format!("Event: Newstate\r\nUniqueid: {i}.5\r\nChannelState: 6\r\n")
            );
            let own = m.detached();
            assert_eq!(&own, m);
            assert_eq!(own.as_str(), m.as_str());
            assert_eq!(own.get("ChannelState"), Some("6"));
        }
    }

    #[test]
    fn huge_headers_and_batches_past_the_batch_size() {
        let value = "x".repeat(100_000);
        let mut input = Vec::new();
        for i in 0..3 {
            input.extend_from_slice(
                format!("Event: Big\r\nOutput: {value}\r\nUniqueid: {i}\r\n\r\n").as_bytes(),
            );
        }
        for chunk in [4096, 65_536, input.len()] {
            let out = batched(&input, chunk);
            assert_eq!(out.len(), 3);
            for (i, m) in out.iter().enumerate() {
                let m = m.as_ref().expect("a message");
                assert_eq!(m.get("Output").map(str::len), Some(100_000));
                assert_eq!(m.get("Uniqueid"), Some(i.to_string().as_str()));
            }
        }
        // Over the limit: an error, then the next message.
        let mut codec = AmiCodec::with_config(
            DecoderConfig::new()
                .with_banner(false)
                .with_max_message_bytes(50_000),
        );
        let mut buf = BytesMut::from(&input[..]);
        buf.extend_from_slice(b"Event: Small\r\n\r\n");
        let mut out = Vec::new();
        let mut errors = 0;
        loop {
            match codec.decode_batch(&mut buf, &mut out) {
                Ok(()) => break,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
                    errors += 1;
                }
            }
        }
        assert_eq!(errors, 3);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event(), Some("Small"));
    }

    #[test]
    fn reset_expects_banner_again() {
        let mut codec = AmiCodec::new();
        let out = messages(b"Asterisk Call Manager/1.0\r\nA: 1\r\n", &mut codec);
        assert_eq!(out.len(), 2);
        codec.reset();
        let out = messages(b"Asterisk Call Manager/2.0\r\n", &mut codec);
        assert!(matches!(&out[..], [Ok(Frame::Banner(b))] if b.version() == "2.0"));
    }
}
