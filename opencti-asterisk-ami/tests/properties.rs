//! Property tests: no panic and bounded memory on any input, results independent of
//! how the input is split, encode/decode round trips, and injection-proof values.

mod common;

use bytes::BytesMut;
use common::{decode_chunked, decode_whole};
use opencti_asterisk_ami::{
    Action, AmiCodec, AmiKey, AmiValue, DecoderConfig, ErrorKind, Frame, MAX_ACTION_HEADERS,
};
use proptest::prelude::*;

/// Bytes that are mostly AMI-shaped (so the parser's paths are all reached), with
/// arbitrary bytes mixed in.
fn ami_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => any::<u8>().prop_map(|b| vec![b]),
        3 => Just(b"\r\n".to_vec()),
        3 => Just(b"\n".to_vec()),
        2 => Just(b"\r".to_vec()),
        2 => Just(b": ".to_vec()),
        1 => Just(b":".to_vec()),
        2 => Just(b"Event".to_vec()),
        1 => Just(b"Response".to_vec()),
        1 => Just(b"Asterisk Call Manager/11.0.0".to_vec()),
        2 => Just(b"Value".to_vec()),
        1 => Just("é日🎧".as_bytes().to_vec()),
        1 => Just(vec![0xc3]),
        1 => Just(vec![0xff, 0xfe]),
        1 => "[a-zA-Z0-9 ]{0,40}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(token, 0..200).prop_map(|tokens| tokens.concat())
}

fn config() -> impl Strategy<Value = DecoderConfig> {
    (1usize..300, 0usize..12, any::<bool>()).prop_map(|(bytes, headers, banner)| {
        DecoderConfig::new()
            .with_max_message_bytes(bytes)
            .with_max_headers(headers)
            .with_banner(banner)
    })
}

fn valid_key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,24}".prop_filter("reserved by Action", |k| {
        !k.eq_ignore_ascii_case("Action") && !k.eq_ignore_ascii_case("ActionID")
    })
}

fn valid_value() -> impl Strategy<Value = String> {
    // Any text without CR, LF or NUL, including leading/trailing spaces and `: `.
    prop_oneof![
        "[^\r\n\u{0}]{0,40}",
        "[ :a-z]{0,12}",
        Just(String::new()),
        Just(" leading and trailing ".to_owned()),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    (
        "[A-Za-z][A-Za-z0-9]{0,20}",
        proptest::option::of(valid_value()),
        prop::collection::vec((valid_key(), valid_value()), 0..(MAX_ACTION_HEADERS - 2)),
    )
        .prop_map(|(name, id, headers)| {
            let mut action = Action::new(name).unwrap_or_else(|e| panic!("{e}"));
            if let Some(id) = id {
                action.set_action_id(AmiValue::new(id).unwrap_or_else(|e| panic!("{e}")));
            }
            for (k, v) in headers {
                action.push_header(
                    AmiKey::new(k).unwrap_or_else(|e| panic!("{e}")),
                    AmiValue::new(v).unwrap_or_else(|e| panic!("{e}")),
                );
            }
            action
        })
}

fn expected_lines(action: &Action) -> Vec<(String, String)> {
    let mut lines = vec![("Action".to_owned(), action.name().to_owned())];
    if let Some(id) = action.id() {
        lines.push(("ActionID".to_owned(), id.to_owned()));
    }
    lines.extend(action.headers().map(|(k, v)| (k.to_owned(), v.to_owned())));
    lines
}

fn decoded_lines(frame: &Frame) -> Vec<(String, String)> {
    match frame {
        Frame::Message(m) => m
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Frame::Banner(b) => panic!("unexpected banner {b}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, any limits, any chunking: no panic, the buffer never holds more than
    /// the limit plus one chunk (checked inside `decode_chunked` after every push and
    /// after every drain), and the frames and errors are exactly those of decoding the
    /// input in one piece.
    #[test]
    fn arbitrary_input_never_panics_and_memory_stays_bounded(
        input in ami_ish_bytes(),
        config in config(),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let whole = decode_whole(config, &input);
        let chunked = decode_chunked(config, &input, &sizes);
        prop_assert_eq!(chunked, whole);
    }

    /// Raw arbitrary bytes (no AMI shape at all) with default limits.
    #[test]
    fn raw_random_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in prop::collection::vec(1usize..64, 1..8),
    ) {
        let config = DecoderConfig::new().with_max_message_bytes(512);
        let whole = decode_whole(config, &input);
        prop_assert_eq!(decode_chunked(config, &input, &sizes), whole);
    }

    /// Encoding then decoding gives back exactly the action's lines, in order, for a
    /// stream of several actions split anywhere.
    #[test]
    fn encode_then_decode_round_trips(
        actions in prop::collection::vec(action(), 1..4),
        sizes in prop::collection::vec(1usize..200, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for action in &actions {
            action.encode(&mut wire).unwrap_or_else(|e| panic!("{e}"));
        }
        let config = DecoderConfig::new().with_banner(false);
        let decoded = decode_chunked(config, &wire, &sizes);
        prop_assert_eq!(decoded.len(), actions.len());
        for (frame, action) in decoded.iter().zip(&actions) {
            let frame = frame.as_ref().unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(decoded_lines(frame), expected_lines(action));
        }
    }

    /// The encoded bytes contain a line break only as the `\r\n` ending each line and
    /// the final blank line: no value can add a line.
    #[test]
    fn encoded_actions_have_exactly_their_own_lines(action in action()) {
        let bytes = action.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        let lf = bytes.iter().filter(|&&b| b == b'\n').count();
        let cr = bytes.iter().filter(|&&b| b == b'\r').count();
        prop_assert_eq!(lf, action.line_count() + 1);
        prop_assert_eq!(cr, lf);
        prop_assert!(!bytes.contains(&0));
        prop_assert!(bytes.ends_with(b"\r\n\r\n"));
        let mut codec = AmiCodec::without_banner();
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = codec.decode(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(frame.is_some());
        prop_assert!(buf.is_empty());
    }

    /// Every string with a CR, LF or NUL anywhere is refused as a value and as a key,
    /// and the error never repeats the value.
    #[test]
    fn values_with_cr_lf_or_nul_are_rejected(
        prefix in ".{0,20}",
        bad in prop::sample::select(vec!['\r', '\n', '\0']),
        suffix in ".{0,20}",
    ) {
        let text = format!("{prefix}{bad}{suffix}");
        let err = AmiValue::new(text.clone()).err();
        prop_assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::InvalidValue));
        prop_assert_eq!(AmiValue::secret(text.clone()).err().map(|e| e.kind()), Some(ErrorKind::InvalidValue));
        prop_assert_eq!(AmiKey::new(text.clone()).err().map(|e| e.kind()), Some(ErrorKind::InvalidKey));
        prop_assert!(Action::new(text).is_err());
    }

    /// A rejected value (it may be a password) never shows in the error.
    #[test]
    fn rejected_values_are_not_echoed(
        secret in "[A-Z]{10}",
        bad in prop::sample::select(vec!['\r', '\n', '\0']),
        suffix in "[A-Z]{0,10}",
    ) {
        let err = AmiValue::secret(format!("{secret}{bad}{suffix}")).err();
        let message = err.map(|e| e.message().to_owned()).unwrap_or_default();
        prop_assert!(message.contains("would let it inject"), "{}", message);
        prop_assert!(!message.contains(&secret), "{}", message);
    }

    /// Every string without CR, LF or NUL is a valid value, kept as is.
    #[test]
    fn values_without_cr_lf_or_nul_are_accepted(text in "[^\r\n\u{0}]{0,60}") {
        let value = AmiValue::new(text.clone());
        prop_assert_eq!(value.map(|v| v.as_str().to_owned()).ok(), Some(text));
    }

    /// Keys accept exactly ASCII letters, digits, `-`, `_` and `.`.
    #[test]
    fn keys_accept_only_their_charset(text in ".{0,12}") {
        let allowed = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        prop_assert_eq!(AmiKey::new(text).is_ok(), allowed);
    }

    /// Generated messages with every line-ending style and extra blank lines decode to
    /// the generated headers, however the stream is split.
    #[test]
    fn generated_streams_decode_to_their_headers(
        messages in prop::collection::vec(
            prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[^\r\n]{0,30}"), 1..20),
            1..6,
        ),
        endings in prop::collection::vec(prop::sample::select(vec!["\r\n", "\n"]), 1..7),
        extra_blank in prop::collection::vec(0usize..3, 1..7),
        sizes in prop::collection::vec(1usize..100, 1..8),
    ) {
        let mut wire = String::from("Asterisk Call Manager/11.0.0\r\n");
        for (i, headers) in messages.iter().enumerate() {
            let eol = endings[i % endings.len()];
            for _ in 0..extra_blank[i % extra_blank.len()] {
                wire.push_str(eol);
            }
            for (k, v) in headers {
                wire.push_str(&format!("{k}: {v}{eol}"));
            }
            wire.push_str(eol);
        }
        let decoded = decode_chunked(DecoderConfig::new(), wire.as_bytes(), &sizes);
        prop_assert_eq!(decoded.len(), messages.len() + 1);
        prop_assert!(matches!(decoded[0], Ok(Frame::Banner(_))));
        for (frame, headers) in decoded[1..].iter().zip(&messages) {
            let frame = frame.as_ref().unwrap_or_else(|e| panic!("{e}"));
            let expected: Vec<(String, String)> = headers.clone();
            prop_assert_eq!(decoded_lines(frame), expected);
        }
    }
}
