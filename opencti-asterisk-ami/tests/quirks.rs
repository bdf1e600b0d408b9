//! The framing quirks, limits and error recovery of the decoder, one by one.

mod common;

use bytes::BytesMut;
use common::{decode_chunked, decode_whole, fixture, messages_ok, Decoded};
use opencti_asterisk_ami::{AmiCodec, DecoderConfig, ErrorKind, Frame, Message, PushDecoder};

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

fn no_banner() -> DecoderConfig {
    DecoderConfig::new().with_banner(false)
}

/// Decodes `input` whole and in every chunk size 1..=16, asserting identical results.
fn decode_all_ways(config: DecoderConfig, input: &[u8]) -> Decoded {
    let whole = decode_whole(config, input);
    for size in 1..=16 {
        assert_eq!(
            decode_chunked(config, input, &[size]),
            whole,
            "chunk size {size} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    whole
}

fn headers(m: &Message) -> Vec<(&str, &str)> {
    m.headers().collect()
}

fn kinds(decoded: &Decoded) -> Vec<String> {
    decoded
        .iter()
        .map(|f| match f {
            Ok(Frame::Banner(_)) => "banner".to_owned(),
            Ok(Frame::Message(m)) => format!("msg:{}", m.get("N").unwrap_or("?")),
            Err(e) => format!("err:{}", e.kind()),
        })
        .collect()
}

#[test]
fn bare_lf_line_endings() {
    let input =
        b"Asterisk Call Manager/11.0.0\nResponse: Success\nPing: Pong\n\nEvent: X\nA: 1\n\n";
    let decoded = decode_all_ways(DecoderConfig::new(), input);
    let msgs = messages_ok(&decoded);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        headers(msgs[0]),
        [("Response", "Success"), ("Ping", "Pong")]
    );
    assert_eq!(headers(msgs[1]), [("Event", "X"), ("A", "1")]);
}

#[test]
fn crlf_then_lf_and_mixed_endings() {
    // `\r\n\n`: the line ends with CRLF, the blank line is a bare LF.
    let input =
        b"Response: Success\r\nMessage: ok\r\n\nEvent: X\nA: 1\r\n\r\nEvent: Y\r\nB: 2\n\r\n";
    let decoded = decode_all_ways(no_banner(), input);
    let msgs = messages_ok(&decoded);
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].get("Message"), Some("ok"));
    assert_eq!(headers(msgs[1]), [("Event", "X"), ("A", "1")]);
    assert_eq!(headers(msgs[2]), [("Event", "Y"), ("B", "2")]);
}

#[test]
fn the_real_lf_quirk_in_the_park_capture() {
    // Asterisk 22 ends `Message: Park successful` with a bare LF, then sends CRLF CRLF.
    let bytes = fixture("09_park_and_retrieve.txt");
    let quirk = b"Park successful\n\r\n\r\nEvent: ";
    assert!(bytes.windows(quirk.len()).any(|w| w == quirk));
    let decoded = decode_whole(DecoderConfig::new(), &bytes);
    let msgs = messages_ok(&decoded);
    let i = msgs
        .iter()
        .position(|m| m.text() == Some("Park successful"))
        .unwrap_or_else(|| panic!("park response not found"));
    assert_eq!(msgs[i].action_id(), Some("09_park_and_retrieve-40"));
    assert_eq!(msgs[i].len(), 3);
    assert_eq!(msgs[i + 1].event(), Some("VarSet"));
}

#[test]
fn extra_blank_lines_anywhere_between_messages() {
    let input = b"Asterisk Call Manager/1.0\r\n\r\n\n\r\nN: 1\r\n\r\n\r\n\n\r\nN: 2\n\n\n\nN: 3\r\n\r\n\r\n";
    let decoded = decode_all_ways(DecoderConfig::new(), input);
    assert_eq!(kinds(&decoded), ["banner", "msg:1", "msg:2", "msg:3"]);
}

#[test]
fn empty_values_and_values_with_colons() {
    let input = b"Event: Newchannel\r\nAccountCode:\r\nLanguage: \r\nExten:   2000 \r\n\
Filter: Event: Newchannel\r\nTime: 05:13:24\r\nURL:http://x/y\r\n\r\n";
    let decoded = decode_all_ways(no_banner(), input);
    let msgs = messages_ok(&decoded);
    assert_eq!(
        headers(msgs[0]),
        [
            ("Event", "Newchannel"),
            ("AccountCode", ""),
            ("Language", ""),
            ("Exten", "  2000 "),
            ("Filter", "Event: Newchannel"),
            ("Time", "05:13:24"),
            ("URL", "http://x/y"),
        ]
    );
}

#[test]
fn utf8_split_mid_character_in_every_position() {
    let text = "Event: NewCallerid\r\nCallerIDName: Zoë Ångström 日本 🎧\r\nUniqueid: 1.2\r\n\r\n";
    let input = text.as_bytes();
    let whole = decode_whole(no_banner(), input);
    let msgs = messages_ok(&whole);
    assert_eq!(msgs[0].get("CallerIDName"), Some("Zoë Ångström 日本 🎧"));
    assert!(!msgs[0].is_lossy());
    for cut in 1..input.len() {
        let mut decoder = PushDecoder::with_config(no_banner());
        decoder.push(&input[..cut]);
        let mut out: Decoded = decoder.frames().collect();
        decoder.push(&input[cut..]);
        out.extend(decoder.frames());
        assert_eq!(out, whole, "split at byte {cut}");
    }
}

#[test]
fn invalid_utf8_is_replaced_not_rejected() {
    let input = b"Event: Newchannel\r\nCallerIDName: Jos\xe9 \xc3\r\nUniqueid: 1.\xff2\r\n\r\nEvent: Next\r\n\r\n";
    let decoded = decode_all_ways(no_banner(), input);
    let msgs = messages_ok(&decoded);
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].is_lossy());
    assert_eq!(msgs[0].get("CallerIDName"), Some("Jos\u{fffd} \u{fffd}"));
    assert_eq!(msgs[0].get("Uniqueid"), Some("1.\u{fffd}2"));
    assert!(!msgs[1].is_lossy());
}

#[test]
fn repeated_headers_keep_their_order() {
    let input = b"Event: Newchannel\r\nChanVariable: A=1\r\nChannel: Local/1@x\r\n\
ChanVariable: B=2\r\nchanvariable: C=3\r\n\r\n";
    let decoded = decode_all_ways(no_banner(), input);
    let m = messages_ok(&decoded)[0];
    assert_eq!(
        m.get_all("ChanVariable").collect::<Vec<_>>(),
        ["A=1", "B=2", "C=3"]
    );
    assert_eq!(m.get("chanvariable"), Some("A=1"));
    let keys: Vec<&str> = m.headers().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "Event",
            "ChanVariable",
            "Channel",
            "ChanVariable",
            "chanvariable"
        ]
    );
}

#[test]
fn prefixed_blocks_of_the_attended_transfer_event() {
    let bytes = fixture("12_attended_transfer.txt");
    let decoded = decode_whole(DecoderConfig::new(), &bytes);
    let msgs = messages_ok(&decoded);
    let m = msgs
        .iter()
        .find(|m| m.event() == Some("AttendedTransfer"))
        .unwrap_or_else(|| panic!("no AttendedTransfer"));
    assert_eq!(m.get("Result"), Some("Success"));
    let orig: Vec<(&str, &str)> = m.headers_with_prefix("OrigTransferer").collect();
    assert_eq!(orig[0], ("Channel", "Local/1001@agents-00000014;1"));
    assert!(orig.contains(&("Uniqueid", "1795238100.43")));
    assert!(orig.contains(&("AccountCode", "")));
    // The blocks stay in wire order: Orig*, then Second*, then Transferee*.
    let first_of = |prefix: &str| {
        m.headers()
            .position(|(k, _)| k.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* header"))
    };
    assert!(first_of("OrigTransferer") < first_of("SecondTransferer"));
    assert!(first_of("SecondTransferer") < first_of("Transferee"));
}

#[test]
fn command_output_lines_from_the_capture() {
    let bytes = fixture("16_command.txt");
    let decoded = decode_whole(DecoderConfig::new(), &bytes);
    let msgs = messages_ok(&decoded);
    let output = |id: &str| -> Vec<String> {
        let m = msgs
            .iter()
            .find(|m| m.action_id() == Some(id))
            .unwrap_or_else(|| panic!("no response {id}"));
        assert_eq!(m.text(), Some("Command output follows"));
        m.get_all("Output").map(str::to_owned).collect()
    };

    let version = output("16_command-99");
    assert_eq!(version.len(), 1);
    assert!(version[0].starts_with("Asterisk 22.10.1 built by root"));

    let queue = output("16_command-103");
    assert_eq!(queue.len(), 7);
    assert_eq!(queue[1], "   Members: ");
    assert!(queue[2].starts_with("      Agent 1001 (Local/1001@agents)"));
    assert_eq!(queue[5], "");
    assert_eq!(queue[6], "");

    let channels = output("16_command-101");
    assert!(
        channels[0].starts_with("Channel ")
            && channels[0].ends_with("Application(Data)             ")
    );
    assert_eq!(channels[5], "4 active channels");

    let unknown = msgs
        .iter()
        .find(|m| m.action_id() == Some("16_command-105"))
        .unwrap_or_else(|| panic!("no response 105"));
    assert_eq!(unknown.response(), Some("Error"));
    assert_eq!(unknown.get_all("Output").count(), 1);
    let total: usize = msgs.iter().map(|m| m.get_all("output").count()).sum();
    assert_eq!(total, 25);
}

#[test]
fn oversized_message_errors_then_resynchronises() {
    let config = no_banner().with_max_message_bytes(64);
    let big = format!("N: big\r\nData: {}\r\nMore: x\r\n\r\n", "x".repeat(200));
    let input = format!("N: 1\r\n\r\n{big}N: 2\r\n\r\n");
    let decoded = decode_all_ways(config, input.as_bytes());
    assert_eq!(kinds(&decoded), ["msg:1", "err:message_too_large", "msg:2"]);
    let Some(Err(e)) = decoded.get(1) else {
        panic!("{decoded:?}")
    };
    assert!(e.message().contains("larger than 64 bytes"), "{e}");
    assert!(e.message().contains("max_message_bytes = 64"), "{e}");
    assert!(e.message().contains("starting with \"N: big\""), "{e}");
}

#[test]
fn oversized_single_line_without_newline_keeps_memory_bounded() {
    let config = no_banner().with_max_message_bytes(100);
    let mut decoder = PushDecoder::with_config(config);
    let mut errors = 0;
    for _ in 0..10_000 {
        decoder.push(&[b'a'; 97]);
        for frame in decoder.frames() {
            match frame {
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
                    errors += 1;
                }
                Ok(f) => panic!("unexpected frame {f:?}"),
            }
        }
        assert!(decoder.buffered() <= 100, "buffered {}", decoder.buffered());
    }
    assert_eq!(errors, 1, "one error per oversized message, not per chunk");
    decoder.push(b"\r\n\r\nN: after\r\n\r\n");
    let frames: Decoded = decoder.frames().collect();
    assert_eq!(kinds(&frames), ["msg:after"]);
}

#[test]
fn complete_message_just_over_the_limit() {
    // "N: 12345\r\n" (10 bytes) + "\r\n" = 12 bytes: fits a limit of 12, not 11.
    let input = b"N: 12345\r\n\r\nN: 2\r\n\r\n";
    let ok = decode_all_ways(no_banner().with_max_message_bytes(12), input);
    assert_eq!(kinds(&ok), ["msg:12345", "msg:2"]);
    let err = decode_all_ways(no_banner().with_max_message_bytes(11), input);
    assert_eq!(kinds(&err), ["err:message_too_large", "msg:2"]);
}

#[test]
fn too_many_headers_errors_then_resynchronises() {
    let config = no_banner().with_max_headers(4);
    let input = b"N: 1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n\
N: many\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\nN: 3\r\n\r\n";
    let decoded = decode_all_ways(config, input);
    assert_eq!(kinds(&decoded), ["msg:1", "err:too_many_headers", "msg:3"]);
    let Some(Err(e)) = decoded.get(1) else {
        panic!("{decoded:?}")
    };
    assert!(
        e.message().contains("\"N: many\" has more than 4 headers"),
        "{e}"
    );
    assert!(e.message().contains("max_headers = 4"), "{e}");
}

#[test]
fn malformed_line_names_the_line_and_resynchronises() {
    let input =
        b"N: 1\r\n\r\nResponse: Follows\r\nPrivilege: Command\r\nthis is raw CLI output\r\n\
--END COMMAND--\r\n\r\nN: 2\r\n\r\n";
    let decoded = decode_all_ways(no_banner(), input);
    assert_eq!(kinds(&decoded), ["msg:1", "err:malformed_line", "msg:2"]);
    let Some(Err(e)) = decoded.get(1) else {
        panic!("{decoded:?}")
    };
    assert!(e.message().contains("\"this is raw CLI output\""), "{e}");
    assert!(e.message().contains("expected `Key: Value`"), "{e}");
}

#[test]
fn malformed_long_line_is_quoted_truncated_and_escaped() {
    let mut input = b"N: 1\r\n".to_vec();
    input.extend_from_slice(&[b'z'; 5000]);
    input.extend_from_slice(b"\x1b[0m\r\n\r\nN: 2\r\n\r\n");
    let decoded = decode_all_ways(no_banner(), &input);
    assert_eq!(kinds(&decoded), ["err:malformed_line", "msg:2"]);
    let Some(Err(e)) = decoded.first() else {
        panic!("{decoded:?}")
    };
    assert!(e.message().contains("first 64 of 5004 bytes"), "{e}");
    assert!(e.message().len() < 300, "{e}");
    let empty_key = decode_whole(no_banner(), b": value\r\n\r\nN: 2\r\n\r\n");
    assert_eq!(kinds(&empty_key), ["err:malformed_line", "msg:2"]);
}

#[test]
fn truncated_stream_reports_the_partial_message() {
    let decoded = decode_whole(no_banner(), b"N: 1\r\n\r\nEvent: Hangup\r\nCause: 1");
    assert_eq!(kinds(&decoded), ["msg:1", "err:truncated"]);
    let Some(Err(e)) = decoded.get(1) else {
        panic!("{decoded:?}")
    };
    assert!(e.message().contains("1 complete header lines"), "{e}");
    // Trailing blank lines are not a partial message.
    let clean = decode_whole(no_banner(), b"N: 1\r\n\r\n\r\n\r");
    assert_eq!(kinds(&clean), ["msg:1"]);
}

#[test]
fn missing_or_bad_banner() {
    // A stream that starts with a message: the banner error, then that message is
    // skipped, and the decoder carries on.
    let decoded = decode_all_ways(
        DecoderConfig::new(),
        b"Response: Success\r\nN: skipped\r\n\r\nN: 2\r\n\r\n",
    );
    assert_eq!(kinds(&decoded), ["err:bad_banner", "msg:2"]);
    let Some(Err(e)) = decoded.first() else {
        panic!("{decoded:?}")
    };
    assert!(e.message().contains("\"Response: Success\""), "{e}");

    // Garbage that does not look like a header costs only its own line.
    let decoded = decode_all_ways(DecoderConfig::new(), b"HELLO\r\nN: 1\r\n\r\n");
    assert_eq!(kinds(&decoded), ["err:bad_banner", "msg:1"]);

    // An endless banner line is cut at the limit.
    let config = DecoderConfig::new().with_max_message_bytes(32);
    let mut input = vec![b'A'; 100];
    input.extend_from_slice(b"/1.0\r\nN: 1\r\n\r\n");
    let decoded = decode_all_ways(config, &input);
    assert_eq!(kinds(&decoded), ["err:message_too_large", "msg:1"]);
}

#[test]
fn banner_alone_is_a_frame_before_any_message() {
    let mut codec = AmiCodec::new();
    let mut buf = BytesMut::from(BANNER);
    let frame = codec.decode(&mut buf);
    assert!(
        matches!(&frame, Ok(Some(Frame::Banner(b))) if b.version() == "11.0.0"),
        "{frame:?}"
    );
    assert!(buf.is_empty());
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
}

#[test]
fn tokio_style_buffer_reuse_over_many_messages() {
    let mut codec = AmiCodec::new();
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(BANNER);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Banner(_)))));
    let mut seen = 0;
    for i in 0..10_000 {
        buf.extend_from_slice(format!("Event: Tick\r\nN: {i}\r\n\r\n").as_bytes());
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let m = frame.into_message().unwrap_or_else(|| panic!("message"));
            assert_eq!(m.get("N"), Some(i.to_string().as_str()));
            seen += 1;
        }
    }
    assert_eq!(seen, 10_000);
    assert!(buf.capacity() <= 4096, "the buffer's space is reused");
}
