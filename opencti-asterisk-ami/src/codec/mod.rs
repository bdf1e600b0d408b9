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

use bytes::{Buf, BufMut, BytesMut};

use crate::action::Action;
use crate::error::{quote, Error, ErrorKind, Result};
use crate::frame::{Banner, Frame};
use crate::message::{KnownIndex, Layout, Message, Span};

mod batch;
mod scan;

pub(crate) use batch::{DecodedRead, Spare};

use scan::{trim_cr, Scan};

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

/// What [`AmiCodec::find_messages`] found at the front of a buffer.
struct Found {
    /// The pending messages' text is `buf[region..base]`.
    region: usize,
    base: usize,
    /// Bytes of `buf` to drop (the pending messages' and any before or after them that
    /// are done with).
    consumed: usize,
    /// The error that stopped the search, if one did.
    error: Option<Error>,
    /// The search stopped at its limit of messages or bytes: more may follow.
    full: bool,
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
    /// Headers of the pending messages, then those of the current message parsed so
    /// far, each as offsets from its message's start: the table the pending messages'
    /// batch shares.
    spans: Vec<Span>,
    /// Where the current message's headers start in `spans`.
    first: usize,
    /// Where the current message's well-known keys are.
    index: KnownIndex,
    /// While skipping: the current line already had content that was dropped.
    skip_line_dirty: bool,
    /// Messages complete but not yet built (they are built together, sharing a text).
    pending: Vec<Layout>,
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
            first: 0,
            index: KnownIndex::default(),
            skip_line_dirty: false,
            pending: Vec::new(),
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
            && (leftover || self.headers() > 0);
        let dropped = buf.len();
        buf.clear();
        self.restart_line();
        let headers = self.headers();
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
    /// [`decode_batch`](Self::decode_batch)), each batch's text copied from `buf`.
    fn decode_messages(
        &mut self,
        buf: &mut BytesMut,
        limit: usize,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let mut decoded = 0;
        loop {
            let found = self.find_messages(buf, limit - decoded, BATCH_BYTES);
            decoded += self.pending.len();
            self.build_pending(&buf[found.region..found.base], out);
            buf.advance(found.consumed);
            match found.error {
                Some(error) => return Err(error),
                None if found.full && decoded < limit => {}
                None => return Ok(()),
            }
        }
    }

    /// Finds up to `limit` complete messages at the front of `buf`, adding them to the
    /// pending ones (the caller builds them), until their text reaches `batch_bytes`.
    /// Says where their text is and how much of `buf` is consumed (the caller drops
    /// it); the scan offsets then count from there.
    fn find_messages(&mut self, buf: &[u8], limit: usize, batch_bytes: usize) -> Found {
        // Where the current message starts in `buf`, and where the text of the messages
        // not yet built starts.
        let mut base = 0;
        let mut region = 0;
        let mut decoded = 0;
        let found = |region, base, consumed, error, full| Found {
            region,
            base,
            consumed,
            error,
            full,
        };
        while decoded < limit {
            if base - region >= batch_bytes {
                return found(region, base, base, None, true);
            }
            match self.scan_lines(&buf[base..]) {
                Scan::NeedMore => {
                    if buf.len() - base > self.config.max_message_bytes {
                        let error = self.too_large_error("message", &buf[base..]);
                        let consumed = base + self.scan;
                        self.start_skipping();
                        return found(region, base, consumed, Some(error), false);
                    }
                    break;
                }
                Scan::Blank { end } => {
                    if self.headers() == 0 {
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
                        self.restart_line();
                        self.clear_message();
                        return found(region, base, base + end, Some(error), false);
                    }
                    self.add_pending(base - region);
                    base += end;
                    decoded += 1;
                    self.restart_line();
                }
                Scan::Bad { error, end } => {
                    self.start_skipping();
                    return found(region, base, base + end, Some(error), false);
                }
            }
        }
        // What is left is the current message's start: its scan offsets count from it.
        found(region, base, base, None, decoded == limit)
    }

    /// Number of headers of the current message parsed so far.
    fn headers(&self) -> usize {
        self.spans.len() - self.first
    }

    /// Forgets the current message's headers.
    fn clear_message(&mut self) {
        self.spans.truncate(self.first);
        self.index = KnownIndex::default();
    }

    /// Forgets the position in the buffer: call after consuming bytes from its front.
    fn restart_line(&mut self) {
        self.scan = 0;
        self.searched = 0;
    }

    /// Switches to skipping the current message, once the caller has dropped its bytes
    /// read so far (whole lines, none blank): the skipper deals with what follows.
    fn start_skipping(&mut self) {
        self.restart_line();
        self.clear_message();
        self.skip_line_dirty = false;
        self.state = State::SkipToBlankLine;
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

    /// Every frame of `input`, decoded to its end (the codec's other tests use it too).
    pub(super) fn messages(input: &[u8], codec: &mut AmiCodec) -> Vec<Result<Frame>> {
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
    fn replaced_buffer_does_not_panic() {
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::from(&b"Event: partial-line-long"[..]);
        assert_eq!(codec.decode(&mut buf).ok(), Some(None));
        let mut other = BytesMut::from(&b"A: 1\n\n"[..]);
        let frame = codec.decode(&mut other);
        assert!(matches!(frame, Ok(Some(Frame::Message(_)))), "{frame:?}");
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
