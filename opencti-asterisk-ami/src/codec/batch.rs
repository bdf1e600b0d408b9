//! Building the messages of a read: one shared text and one span table for the
//! messages decoded together, copied again with U+FFFD where a message is not UTF-8.

use std::sync::Arc;

use bytes::BytesMut;

use crate::message::{Batch, KnownIndex, Layout, Message, Span};

use super::scan::header_span;
use super::{AmiCodec, State};
use crate::error::Result;

impl AmiCodec {
    /// The current message (its header lines `self.scan` bytes long) is complete and
    /// starts `offset` bytes into the pending messages' text. Its headers are in the
    /// span table already.
    pub(super) fn add_pending(&mut self, offset: usize) {
        // Offsets fit in u32: a batch is closed past BATCH_BYTES, and a message (even
        // after lossy UTF-8 replacement) is at most 3 * MAX_MESSAGE_BYTES_LIMIT bytes.
        let start = offset as u32;
        self.pending.push(Layout {
            start,
            end: start + self.scan as u32,
            first: self.first as u32,
            count: self.headers() as u32,
            index: self.index,
            lossy: false,
        });
        self.first = self.spans.len();
        self.index = KnownIndex::default();
    }

    /// Builds the pending messages, whose text is `region`, onto `out`: one text (a
    /// copy of `region`) and one span table for all of them.
    pub(super) fn build_pending(&mut self, region: &[u8], out: &mut Vec<Message>) {
        let Some(last) = self.pending.last() else {
            return;
        };
        // Without the blank line that ends the last message.
        let region = &region[..last.end as usize];
        let batch = match std::str::from_utf8(region) {
            Ok(text) => Batch {
                text: text.to_owned(),
                spans: self.spans.get(..self.first).unwrap_or_default().to_vec(),
            },
            Err(_) => lossy_batch(&mut self.pending, &self.spans, region),
        };
        // The current message's headers, if any, now start the table.
        self.spans.drain(..self.first);
        self.first = 0;
        self.emit_pending(&Arc::new(batch), out);
    }

    /// Decodes the complete messages at the front of `read` (what reads from the
    /// connection appended) onto `out`: [`find_read`](Self::find_read), then
    /// [`DecodedRead::into_messages`].
    #[cfg(test)]
    pub(crate) fn decode_read(
        &mut self,
        read: &mut Vec<u8>,
        spare: Spare,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let (decoded, result) = self.find_read(read, spare);
        decoded.into_messages(out);
        result
    }

    /// Finds the complete messages at the front of `read` (what reads from the
    /// connection appended), to be made into messages by [`DecodedRead::into_messages`]
    /// (on another thread, say), as one batch made of `read`'s own bytes: no copy but of
    /// what follows them (the start of the next message), which moves to the front of
    /// `spare`'s text, which then becomes `read`. `spare` holds the buffers of a read
    /// whose messages are all gone, to reuse (or none). Rules and errors as for
    /// [`decode`](Self::decode); on an error, the messages before the bad one are found
    /// all the same.
    pub(crate) fn find_read(
        &mut self,
        read: &mut Vec<u8>,
        spare: Spare,
    ) -> (DecodedRead, Result<()>) {
        if self.searched > read.len() {
            self.restart_line();
            self.clear_message();
        }
        if self.state != State::Messages {
            // A banner, or a bad message being skipped: rare, and done on a copy.
            let mut buf = BytesMut::from(&read[..]);
            let mut built = Vec::new();
            let decoded = self.decode_batch(&mut buf, &mut built);
            read.clear();
            read.extend_from_slice(&buf);
            return (DecodedRead(Decoded::Built(built)), decoded);
        }
        let found = self.find_messages(read, usize::MAX, usize::MAX);
        let consumed = found.consumed.min(read.len());
        let result = match found.error {
            Some(error) => Err(error),
            None => Ok(()),
        };
        if self.pending.is_empty() {
            read.drain(..consumed);
            return (DecodedRead(Decoded::Built(Vec::new())), result);
        }
        let Spare {
            batch: Batch { text, mut spans },
            mut layouts,
        } = spare;
        let mut next = text.into_bytes();
        next.clear();
        next.extend_from_slice(&read[consumed..]);
        let mut text = std::mem::replace(read, next);
        text.truncate(found.base);
        // The table's rows for the current message, if any, move to the front of the
        // spare table, which becomes the decoder's.
        spans.clear();
        spans.extend_from_slice(self.spans.get(self.first..).unwrap_or_default());
        let mut own = std::mem::replace(&mut self.spans, spans);
        own.truncate(self.first);
        self.first = 0;
        layouts.clear();
        std::mem::swap(&mut layouts, &mut self.pending);
        let raw = Raw {
            text,
            spans: own,
            layouts,
            region: found.region,
        };
        (DecodedRead(Decoded::Raw(raw)), result)
    }

    /// The pending messages onto `out`, in `batch`.
    fn emit_pending(&mut self, batch: &Arc<Batch>, out: &mut Vec<Message>) {
        out.extend(self.pending.drain(..).map(|layout| batch.message(layout)));
    }
}

/// The buffers a read is decoded into, reused from a read whose messages are all gone.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    /// The text and span table.
    pub(crate) batch: Batch,
    /// Where each message is in them.
    pub(crate) layouts: Vec<Layout>,
}

/// A read's messages, found by [`AmiCodec::find_read`]: made into [`Message`]s by
/// [`into_messages`](Self::into_messages), which checks their text is UTF-8.
#[derive(Debug)]
pub(crate) struct DecodedRead(Decoded);

#[derive(Debug)]
enum Decoded {
    /// Found in the read's own bytes, not yet checked.
    Raw(Raw),
    /// Decoded from a copy (the rare path), or none.
    Built(Vec<Message>),
}

/// A read's bytes, span table and layouts; the layouts count from `region`.
#[derive(Debug)]
struct Raw {
    text: Vec<u8>,
    spans: Vec<Span>,
    layouts: Vec<Layout>,
    region: usize,
}

impl DecodedRead {
    /// Whether the read had no complete message.
    pub(crate) fn is_empty(&self) -> bool {
        match &self.0 {
            Decoded::Raw(raw) => raw.layouts.is_empty(),
            Decoded::Built(built) => built.is_empty(),
        }
    }

    /// The messages onto `out`, sharing the read's bytes as their text once checked to
    /// be UTF-8 (or a copy with U+FFFD where they are not: lossy, see
    /// [`Message::is_lossy`]). Returns the emptied list of layouts, to reuse.
    pub(crate) fn into_messages(self, out: &mut Vec<Message>) -> Vec<Layout> {
        let Raw {
            text,
            spans,
            mut layouts,
            region,
        } = match self.0 {
            Decoded::Raw(raw) => raw,
            Decoded::Built(built) => {
                out.extend(built);
                return Vec::new();
            }
        };
        let batch = match String::from_utf8(text) {
            Ok(text) => {
                let offset = region as u32;
                for layout in &mut layouts {
                    layout.start += offset;
                    layout.end += offset;
                }
                Batch { text, spans }
            }
            Err(invalid) => {
                let bytes = invalid.into_bytes();
                let end = layouts
                    .last()
                    .map_or(region, |last| region + last.end as usize);
                let text = bytes.get(region..end).unwrap_or_default();
                lossy_batch(&mut layouts, &spans, text)
            }
        };
        let batch = Arc::new(batch);
        out.extend(layouts.drain(..).map(|layout| batch.message(layout)));
        layouts
    }
}

/// The batch of the messages `pending` (their span table `table`, their text `region`)
/// when some are not valid UTF-8: those are copied with U+FFFD for the invalid bytes
/// (lossy, see [`Message::is_lossy`]) and indexed again; the others are copied as they
/// are.
fn lossy_batch(pending: &mut [Layout], table: &[Span], region: &[u8]) -> Batch {
    let mut text = String::with_capacity(region.len() + region.len() / 8);
    let mut spans = Vec::with_capacity(table.len());
    for layout in pending.iter_mut() {
        let (start, end) = (layout.start as usize, layout.end as usize);
        let raw = region.get(start..end).unwrap_or_default();
        let offset = text.len() as u32;
        let first = spans.len() as u32;
        match std::str::from_utf8(raw) {
            Ok(valid) => {
                text.push_str(valid);
                let own = table
                    .get(layout.first as usize..(layout.first + layout.count) as usize)
                    .unwrap_or_default();
                spans.extend_from_slice(own);
            }
            Err(_) => {
                // Replacement keeps every ASCII byte (CR, LF, `:`), so the lines and
                // headers are the same; only their offsets change.
                let replaced = String::from_utf8_lossy(raw);
                let mut own = Vec::with_capacity(layout.count as usize);
                index_headers(replaced.as_bytes(), &mut own);
                layout.index = KnownIndex::of_spans(&replaced, &own);
                layout.count = own.len() as u32;
                layout.lossy = true;
                text.push_str(&replaced);
                spans.extend_from_slice(&own);
            }
        }
        layout.start = offset;
        layout.end = text.len() as u32;
        layout.first = first;
    }
    Batch { text, spans }
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::codec::tests::messages;
    use crate::codec::DecoderConfig;
    use crate::error::ErrorKind;
    use crate::frame::Frame;

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

    /// The same through `decode_read`, as a connection reads: bytes appended to an
    /// owned buffer in `chunk`-byte reads, each read's batch made of the buffer's own
    /// bytes. Spares are batches whose messages are gone, their buffers holding stale
    /// text and rows, which must not show.
    fn read_batched(input: &[u8], chunk: usize) -> Vec<std::result::Result<Message, String>> {
        let mut codec = AmiCodec::without_banner();
        let mut read = Vec::new();
        let mut out = Vec::new();
        let mut decoded = Vec::new();
        let stale = || Spare {
            batch: Batch {
                text: "Stale: text\r\n".repeat(4),
                spans: vec![
                    Span {
                        key_start: 9,
                        key_end: 9,
                        value_start: 9,
                        value_end: 9
                    };
                    3
                ],
            },
            layouts: Vec::with_capacity(8),
        };
        for piece in input.chunks(chunk.max(1)) {
            read.extend_from_slice(piece);
            loop {
                let result = codec.decode_read(&mut read, stale(), &mut decoded);
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
        for chunk in [1, 2, 3, 5, 7, 16, 17, 64, MIXED.len()] {
            assert_eq!(
                read_batched(MIXED, chunk),
                expected,
                "owned reads of {chunk} bytes"
            );
        }
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
    fn a_read_becomes_its_messages_text_and_the_next_message_starts_the_spare() {
        let mut codec = AmiCodec::without_banner();
        let mut read = b"\r\nEvent: A\r\nUniqueid: 1\r\n\r\nEvent: B\r\nUniq".to_vec();
        let address = read.as_ptr();
        let spare = Spare {
            batch: Batch {
                text: String::with_capacity(1024),
                spans: Vec::new(),
            },
            layouts: Vec::new(),
        };
        let spare_address = spare.batch.text.as_ptr();
        let mut out = Vec::new();
        assert!(codec.decode_read(&mut read, spare, &mut out).is_ok());
        let [a] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(a.get("Uniqueid"), Some("1"));
        assert_eq!(a.as_str(), "Event: A\r\nUniqueid: 1\r\n");
        // No copy: the message's text is the read's buffer; the partial message moved
        // to the spare's, which the next read appends to.
        assert_eq!(a.batch().text.as_ptr(), address);
        assert_eq!(read.as_ptr(), spare_address);
        assert_eq!(read, b"Event: B\r\nUniq");
        read.extend_from_slice(b"ueid: 2\r\n\r\n");
        assert!(codec
            .decode_read(&mut read, Spare::default(), &mut out)
            .is_ok());
        assert_eq!(out[1].get("uniqueid"), Some("2"));
        assert_eq!(out[1].event(), Some("B"));
        assert!(read.is_empty());
        // An invalid byte: the batch is copied, with U+FFFD, and the rest is intact.
        read.extend_from_slice(b"Event: C\r\nName: \xff\r\n\r\nEvent: D\r\n\r\n");
        assert!(codec
            .decode_read(&mut read, Spare::default(), &mut out)
            .is_ok());
        assert_eq!(out[2].get("Name"), Some("\u{fffd}"));
        assert!(out[2].is_lossy() && !out[3].is_lossy());
        assert_eq!(out[3].event(), Some("D"));
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
            assert_eq!(out, read_batched(&input, chunk));
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
}
