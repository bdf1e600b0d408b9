//! One inbound AMI message (a response or an event) and the banner line: the decoder's
//! output.
//!
//! A [`Message`] is a range of a shared text (the header lines as received) plus the
//! byte ranges of each key and value in it. The decoder makes one text and one range
//! table for all the messages of a read (on a connection, the read's own bytes, with no
//! copy), so decoding allocates per read, not per message; lookups borrow from the
//! text. The well-known keys (`Event`,
//! `Uniqueid`, `Channel`, `ActionID`, ...) are classified once while decoding, so looking
//! one up does not scan the headers.

use std::fmt;
use std::sync::Arc;

use crate::codec::AmiCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::Frame;

mod known;

#[cfg(test)]
pub(crate) use known::KNOWN_KEYS;
pub(crate) use known::{classify, known_number, word, Known, KnownIndex, LONGEST_KEY, NOT_KNOWN};
use known::{ABSENT, FAR};

/// Byte ranges of one header's key and value in its message's text, as offsets from the
/// message's start (so that they need no change when the message is copied, or decoded
/// into a batch's text at any place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) key_start: u32,
    pub(crate) key_end: u32,
    pub(crate) value_start: u32,
    pub(crate) value_end: u32,
}

/// Where one message is in its batch's shared text and span table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The message's lines: `text[start..end]`.
    pub(crate) start: u32,
    pub(crate) end: u32,
    /// The message's headers: `spans[first..first + count]`, offsets from `start`.
    pub(crate) first: u32,
    pub(crate) count: u32,
    pub(crate) index: KnownIndex,
    pub(crate) lossy: bool,
}

/// The messages decoded together: one text, one span table. Once its messages are
/// gone, its two buffers can be reused for the next read (see
/// [`AmiCodec::find_read`]).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) text: String,
    pub(crate) spans: Vec<Span>,
}

impl Batch {
    /// The message at `layout` in this batch.
    pub(crate) fn message(self: &Arc<Batch>, layout: Layout) -> Message {
        Message {
            batch: self.clone(),
            layout,
        }
    }
}

/// What an inbound message is, by its first identifying header.
///
/// Asterisk's `OriginateResponse` event carries both `Event:` and `Response:`, so
/// `Event:` wins: a message is an [`Event`](MessageKind::Event) whenever it has an
/// `Event` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Has an `Event` header.
    Event,
    /// Has a `Response` header and no `Event` header: the answer to an action.
    Response,
    /// Neither (not sent by Asterisk 22; kept rather than dropped).
    Other,
}

/// One inbound AMI message: an ordered list of `Key: Value` headers.
///
/// Headers keep their order and repeat as Asterisk sent them (`ChanVariable`,
/// `Output`, `Variable`, prefixed `Dest*`/`Transferer*` blocks), so this is a list, not a
/// map. Keys are compared ASCII case-insensitively, as Asterisk does.
///
/// A value is the text after the first `:` of its line, minus one following space, with
/// the line ending removed; other spaces are kept (CLI `Output:` lines are aligned with
/// them).
///
/// ```
/// use opencti_asterisk_ami::{Message, MessageKind};
///
/// let msg = Message::parse(
///     "Event: VarSet\r\nChannel: Local/1001@agents-00000001;1\r\n\
///      Variable: ANSWEREDTIME\r\nValue: \r\nUniqueid: 1795238010.1\r\n",
/// )?;
/// assert_eq!(msg.kind(), MessageKind::Event);
/// assert_eq!(msg.event(), Some("VarSet"));
/// assert_eq!(msg.get("uniqueid"), Some("1795238010.1"));
/// assert_eq!(msg.get("Value"), Some(""));
/// assert_eq!(msg.len(), 5);
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
///
/// A message decoded from a connection shares its text with the other messages of the
/// same read (at most 64 KiB of them, and the start of a message left from the read
/// before): keeping one message keeps that text.
#[derive(Clone)]
pub struct Message {
    batch: Arc<Batch>,
    layout: Layout,
}

impl Message {
    /// Parses `text` as exactly one message (no banner): `Key: Value` lines with `\r\n`
    /// or `\n` endings; the last line's ending and the final blank line are optional.
    ///
    /// Meant for tests and tools; a connection uses [`AmiCodec`]. Fails on a malformed
    /// line, an empty text, or text after the message's blank line.
    pub fn parse(text: &str) -> Result<Message> {
        let mut codec = AmiCodec::without_banner();
        let mut buf = bytes::BytesMut::with_capacity(text.len() + 2);
        buf.extend_from_slice(text.as_bytes());
        // Ends the last line and the message if the text does not; extra blank lines
        // are skipped.
        buf.extend_from_slice(b"\n\n");
        let first = codec.decode_eof(&mut buf)?;
        let message = match first {
            Some(Frame::Message(message)) => message,
            // Unreachable without a banner, but a clear error beats a panic.
            Some(Frame::Banner(_)) | None => {
                return Err(Error::new(
                    ErrorKind::MalformedLine,
                    "no AMI message in the text: it holds no `Key: Value` line",
                ))
            }
        };
        match codec.decode_eof(&mut buf) {
            Ok(None) => Ok(message),
            Ok(Some(_)) | Err(_) => Err(Error::new(
                ErrorKind::MalformedLine,
                "the text holds more than one AMI message (something follows the blank line)",
            )),
        }
    }

    /// This message with a text and span table of its own, so that keeping it does not
    /// keep the other messages decoded with it.
    pub(crate) fn detached(&self) -> Message {
        let Layout {
            start,
            end,
            first,
            count,
            ..
        } = self.layout;
        if start == 0
            && first == 0
            && end as usize == self.batch.text.len()
            && count as usize == self.batch.spans.len()
        {
            return self.clone();
        }
        Message {
            batch: Arc::new(Batch {
                text: self.as_str().to_owned(),
                spans: self.spans().to_vec(),
            }),
            layout: Layout {
                start: 0,
                end: end - start,
                first: 0,
                ..self.layout
            },
        }
    }

    /// The batch this message shares with the others decoded with it.
    pub(crate) fn batch(&self) -> &Arc<Batch> {
        &self.batch
    }

    /// This message's headers.
    #[inline]
    fn spans(&self) -> &[Span] {
        let Layout { first, count, .. } = self.layout;
        self.batch
            .spans
            .get(first as usize..first as usize + count as usize)
            .unwrap_or_default()
    }

    /// The value of the first header with the well-known key `key`: one index lookup.
    #[inline]
    pub(crate) fn known(&self, key: Known) -> Option<&str> {
        match self.layout.index.first[key as usize] {
            ABSENT => None,
            FAR => self.scan(key.name()),
            position => self
                .spans()
                .get(usize::from(position - 1))
                .map(|span| self.value_of(span)),
        }
    }

    /// Whether some well-known key appears more than once (then [`known`](Self::known)
    /// gives the first of them).
    #[inline]
    pub(crate) fn repeats_known(&self) -> bool {
        self.layout.index.repeats
    }

    /// The value of the first header named `key`, by scanning the headers.
    fn scan(&self, key: &str) -> Option<&str> {
        self.spans()
            .iter()
            .find(|span| self.key_is(span, key))
            .map(|span| self.value_of(span))
    }

    /// The value of the first header named `key` (ASCII case-insensitive), if any.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        match classify(key.as_bytes()) {
            Some(known) => self.known(known),
            None => self.scan(key),
        }
    }

    /// The values of every header named `key` (ASCII case-insensitive), in order.
    ///
    /// ```
    /// # use opencti_asterisk_ami::Message;
    /// let msg = Message::parse("Response: Success\nOutput: line 1\nOutput:   line 2\n")?;
    /// let output: Vec<&str> = msg.get_all("Output").collect();
    /// assert_eq!(output, ["line 1", "  line 2"]);
    /// # Ok::<(), opencti_asterisk_ami::Error>(())
    /// ```
    pub fn get_all<'a>(&'a self, key: &'a str) -> GetAll<'a> {
        GetAll {
            message: self,
            spans: self.spans().iter(),
            key,
        }
    }

    /// Whether the message has a header named `key` (ASCII case-insensitive).
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The headers whose key starts with `prefix` (ASCII case-insensitive), as
    /// `(rest of the key, value)`, in order: the `OrigTransferer*` or `DestBridge*`
    /// block of a transfer event, say.
    ///
    /// ```
    /// # use opencti_asterisk_ami::Message;
    /// let msg = Message::parse(
    ///     "Event: BlindTransfer\nTransfererChannel: Local/1001@agents-1;1\n\
    ///      TransfererUniqueid: 17.1\nTransfereeChannel: Local/2000@customers-2;1\n",
    /// )?;
    /// let transferer: Vec<_> = msg.headers_with_prefix("Transferer").collect();
    /// assert_eq!(
    ///     transferer,
    ///     [("Channel", "Local/1001@agents-1;1"), ("Uniqueid", "17.1")]
    /// );
    /// # Ok::<(), opencti_asterisk_ami::Error>(())
    /// ```
    pub fn headers_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.headers().filter_map(move |(key, value)| {
            let head = key.as_bytes().get(..prefix.len())?;
            if head.eq_ignore_ascii_case(prefix.as_bytes()) {
                // `prefix.len()` is a char boundary of `key`: the bytes before it equal
                // `prefix` up to ASCII case, which keeps UTF-8 boundaries.
                key.get(prefix.len()..).map(|rest| (rest, value))
            } else {
                None
            }
        })
    }

    /// All headers as `(key, value)` pairs, in the order received.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            message: self,
            spans: self.spans().iter(),
        }
    }

    /// The header at `index` (0-based, in order received).
    pub fn header(&self, index: usize) -> Option<(&str, &str)> {
        self.spans()
            .get(index)
            .map(|span| (self.key_of(span), self.value_of(span)))
    }

    /// Number of headers (repeats included).
    pub fn len(&self) -> usize {
        self.layout.count as usize
    }

    /// Whether the message has no header (never true for a decoded message).
    pub fn is_empty(&self) -> bool {
        self.layout.count == 0
    }

    /// The `Event` header: the event's type (`Newchannel`, `Hangup`, ...).
    pub fn event(&self) -> Option<&str> {
        self.known(Known::Event)
    }

    /// The `Response` header: `Success`, `Error`, `Goodbye`, ... (also present on the
    /// `OriginateResponse` event).
    pub fn response(&self) -> Option<&str> {
        self.known(Known::Response)
    }

    /// The `ActionID` header that ties a response, and the events an action generates,
    /// to the action.
    pub fn action_id(&self) -> Option<&str> {
        self.known(Known::ActionId)
    }

    /// The `Message` header, Asterisk's human-readable explanation of a response.
    pub fn text(&self) -> Option<&str> {
        self.known(Known::Message)
    }

    /// Whether this is an event or a response; `Event:` wins over `Response:`.
    pub fn kind(&self) -> MessageKind {
        let first = &self.layout.index.first;
        if first[Known::Event as usize] != ABSENT {
            MessageKind::Event
        } else if first[Known::Response as usize] != ABSENT {
            MessageKind::Response
        } else {
            MessageKind::Other
        }
    }

    /// Whether the message has an `Event` header.
    pub fn is_event(&self) -> bool {
        self.kind() == MessageKind::Event
    }

    /// Whether the message is a response to an action (a `Response` header and no
    /// `Event` header).
    pub fn is_response(&self) -> bool {
        self.kind() == MessageKind::Response
    }

    /// The header lines as received, line endings included, without the blank line that
    /// ended the message (after lossy UTF-8 replacement if [`is_lossy`](Self::is_lossy)).
    pub fn as_str(&self) -> &str {
        self.batch
            .text
            .get(self.layout.start as usize..self.layout.end as usize)
            .unwrap_or_default()
    }

    /// Whether some bytes were not valid UTF-8 and were replaced by U+FFFD. The decoder
    /// never rejects a message for its encoding: dropping an event would be worse.
    pub fn is_lossy(&self) -> bool {
        self.layout.lossy
    }

    /// Whether the header's key is `key`, ASCII case-insensitively; compares lengths
    /// first, so most headers are ruled out without touching their text.
    #[inline]
    fn key_is(&self, span: &Span, key: &str) -> bool {
        span.key_end.wrapping_sub(span.key_start) as usize == key.len()
            && self
                .slice(span.key_start, span.key_end)
                .as_bytes()
                .eq_ignore_ascii_case(key.as_bytes())
    }

    #[inline]
    fn key_of(&self, span: &Span) -> &str {
        self.slice(span.key_start, span.key_end)
    }

    #[inline]
    fn value_of(&self, span: &Span) -> &str {
        self.slice(span.value_start, span.value_end)
    }

    /// The message's text from `from` to `to` (offsets from its start).
    #[inline]
    fn slice(&self, from: u32, to: u32) -> &str {
        let start = self.layout.start as usize;
        self.batch
            .text
            .get(start + from as usize..start + to as usize)
            .unwrap_or_default()
    }
}

/// Equal when the headers are equal, in order (line endings do not matter).
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.headers().eq(other.headers())
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers()).finish()
    }
}

/// Writes the message back in wire form: `Key: Value\r\n` lines and a blank line.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in self.headers() {
            write!(f, "{key}: {value}\r\n")?;
        }
        f.write_str("\r\n")
    }
}

impl<'a> IntoIterator for &'a Message {
    type Item = (&'a str, &'a str);
    type IntoIter = Headers<'a>;

    fn into_iter(self) -> Headers<'a> {
        self.headers()
    }
}

/// Iterator over a message's `(key, value)` headers; see [`Message::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    message: &'a Message,
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let span = self.spans.next()?;
        Some((self.message.key_of(span), self.message.value_of(span)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let span = self.spans.next_back()?;
        Some((self.message.key_of(span), self.message.value_of(span)))
    }
}

impl ExactSizeIterator for Headers<'_> {}

/// Iterator over the values of one key; see [`Message::get_all`].
#[derive(Debug, Clone)]
pub struct GetAll<'a> {
    message: &'a Message,
    spans: std::slice::Iter<'a, Span>,
    key: &'a str,
}

impl<'a> Iterator for GetAll<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let message = self.message;
        let key = self.key;
        self.spans
            .by_ref()
            .find(|span| message.key_is(span, key))
            .map(|span| message.value_of(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        match Message::parse(text) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn lookups_are_case_insensitive_and_ordered() {
        let m = parse("Event: Newchannel\r\nChanVariable: a=1\r\nchanvariable: b=2\r\n\r\n");
        assert_eq!(m.get("EVENT"), Some("Newchannel"));
        assert_eq!(
            m.get_all("ChanVariable").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(m.get("missing"), None);
        assert!(m.contains("chanVARIABLE"));
        assert_eq!(m.header(1), Some(("ChanVariable", "a=1")));
        assert_eq!(m.header(3), None);
        assert_eq!(m.headers().next_back(), Some(("chanvariable", "b=2")));
        assert_eq!(m.headers().len(), 3);
    }

    #[test]
    fn kind_prefers_event() {
        let m = parse("Event: OriginateResponse\nResponse: Failure\nActionID: x-1\n");
        assert_eq!(m.kind(), MessageKind::Event);
        assert!(m.is_event());
        assert_eq!(m.response(), Some("Failure"));
        assert_eq!(m.action_id(), Some("x-1"));
        let r = parse("Response: Error\nMessage: Permission denied\n");
        assert_eq!(r.kind(), MessageKind::Response);
        assert!(r.is_response());
        assert_eq!(r.text(), Some("Permission denied"));
        assert_eq!(parse("Foo: bar\n").kind(), MessageKind::Other);
    }

    #[test]
    fn display_and_debug() {
        let m = parse("Response: Success\nPing: Pong\n");
        assert_eq!(m.to_string(), "Response: Success\r\nPing: Pong\r\n\r\n");
        assert_eq!(
            format!("{m:?}"),
            r#"{"Response": "Success", "Ping": "Pong"}"#
        );
        assert_eq!(m.as_str(), "Response: Success\nPing: Pong\n");
        // Equality ignores line endings.
        assert_eq!(m, parse("Response: Success\r\nPing: Pong\r\n\r\n"));
        assert_ne!(m, parse("Response: Success\r\nPing: Ping\r\n"));
    }

    #[test]
    fn parse_rejects_two_messages_and_empty_text() {
        let two = Message::parse("A: 1\r\n\r\nB: 2\r\n\r\n");
        assert!(matches!(two, Err(e) if e.kind() == ErrorKind::MalformedLine));
        assert!(Message::parse("").is_err());
        assert!(Message::parse("\r\n\r\n").is_err());
        assert!(Message::parse("no colon here").is_err());
    }

    #[test]
    fn index_lookups_agree_with_scanning() {
        let m = parse(
            "Privilege: call,all\nEVENT: Dial\nuniqueid: 1\nUniqueid: 2\nDestUniqueid: 3\n\
             Cause-txt: x\nEvent: again\nConnectedLineName: n\n",
        );
        for key in [
            "Event",
            "event",
            "Uniqueid",
            "DestUniqueid",
            "Cause",
            "Cause-txt",
            "ConnectedLineName",
            "Privilege",
            "Channel",
        ] {
            assert_eq!(m.get(key), m.scan(key), "{key}");
        }
        assert_eq!(m.event(), Some("Dial"));
        assert_eq!(m.get("Uniqueid"), Some("1"));
        assert!(m.repeats_known());
        assert!(!parse("Event: A\nUniqueid: 1\n").repeats_known());
    }

    #[test]
    fn keys_past_the_index_are_found_by_scanning() {
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!("Output: line {i}\n"));
        }
        text.push_str("Uniqueid: far\nEvent: Late\n");
        let m = parse(&text);
        assert_eq!(m.len(), 302);
        assert_eq!(m.get("Uniqueid"), Some("far"));
        assert_eq!(m.event(), Some("Late"));
        assert_eq!(m.kind(), MessageKind::Event);
        assert!(m.repeats_known(), "far keys take the scanning paths");
        assert_eq!(m.get("ActionID"), None);
    }

    #[test]
    fn prefix_lookup_is_case_insensitive_and_utf8_safe() {
        let m = parse("DestBridgeUniqueid: b1\nDESTCHANNEL: c\nDé: x\nD: y\n");
        let rest: Vec<_> = m.headers_with_prefix("dest").collect();
        assert_eq!(rest, [("BridgeUniqueid", "b1"), ("CHANNEL", "c")]);
        // A prefix cutting a multi-byte character matches nothing and does not panic.
        assert_eq!(m.headers_with_prefix("D\u{e9}").count(), 1);
        assert_eq!(m.headers_with_prefix("D\u{c3}").count(), 0);
    }
}
