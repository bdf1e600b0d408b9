//! One inbound AMI message (a response or an event) and the banner line: the decoder's
//! output.
//!
//! A [`Message`] is one string (the message's header lines as received) plus the byte
//! ranges of each key and value in it, so decoding costs two allocations per message
//! however many headers it has, and lookups borrow from it.

use std::fmt;

use crate::codec::AmiCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::Frame;

/// Byte ranges of one header's key and value inside [`Message::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) key_start: u32,
    pub(crate) key_end: u32,
    pub(crate) value_start: u32,
    pub(crate) value_end: u32,
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
#[derive(Clone)]
pub struct Message {
    text: String,
    spans: Box<[Span]>,
    lossy: bool,
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

    pub(crate) fn from_parts(text: String, spans: Box<[Span]>, lossy: bool) -> Message {
        Message { text, spans, lossy }
    }

    /// The value of the first header named `key` (ASCII case-insensitive), if any.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|span| self.key_is(span, key))
            .map(|span| self.value_of(span))
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
            spans: self.spans.iter(),
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
            spans: self.spans.iter(),
        }
    }

    /// The header at `index` (0-based, in order received).
    pub fn header(&self, index: usize) -> Option<(&str, &str)> {
        self.spans
            .get(index)
            .map(|span| (self.key_of(span), self.value_of(span)))
    }

    /// Number of headers (repeats included).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the message has no header (never true for a decoded message).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `Event` header: the event's type (`Newchannel`, `Hangup`, ...).
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// The `Response` header: `Success`, `Error`, `Goodbye`, ... (also present on the
    /// `OriginateResponse` event).
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    /// The `ActionID` header that ties a response, and the events an action generates,
    /// to the action.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// The `Message` header, Asterisk's human-readable explanation of a response.
    pub fn text(&self) -> Option<&str> {
        self.get("Message")
    }

    /// Whether this is an event or a response; `Event:` wins over `Response:`.
    pub fn kind(&self) -> MessageKind {
        let mut response = false;
        for span in self.spans.iter() {
            if self.key_is(span, "Event") {
                return MessageKind::Event;
            }
            response |= self.key_is(span, "Response");
        }
        if response {
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
        &self.text
    }

    /// Whether some bytes were not valid UTF-8 and were replaced by U+FFFD. The decoder
    /// never rejects a message for its encoding: dropping an event would be worse.
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// Whether the header's key is `key`, ASCII case-insensitively; compares lengths
    /// first, so most headers are ruled out without touching their text.
    #[inline]
    fn key_is(&self, span: &Span, key: &str) -> bool {
        span.key_end.wrapping_sub(span.key_start) as usize == key.len()
            && self
                .text
                .as_bytes()
                .get(span.key_start as usize..span.key_end as usize)
                .is_some_and(|k| k.eq_ignore_ascii_case(key.as_bytes()))
    }

    #[inline]
    fn key_of(&self, span: &Span) -> &str {
        self.text
            .get(span.key_start as usize..span.key_end as usize)
            .unwrap_or_default()
    }

    #[inline]
    fn value_of(&self, span: &Span) -> &str {
        self.text
            .get(span.value_start as usize..span.value_end as usize)
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
    fn prefix_lookup_is_case_insensitive_and_utf8_safe() {
        let m = parse("DestBridgeUniqueid: b1\nDESTCHANNEL: c\nDé: x\nD: y\n");
        let rest: Vec<_> = m.headers_with_prefix("dest").collect();
        assert_eq!(rest, [("BridgeUniqueid", "b1"), ("CHANNEL", "c")]);
        // A prefix cutting a multi-byte character matches nothing and does not panic.
        assert_eq!(m.headers_with_prefix("D\u{e9}").count(), 1);
        assert_eq!(m.headers_with_prefix("D\u{c3}").count(), 0);
    }
}
