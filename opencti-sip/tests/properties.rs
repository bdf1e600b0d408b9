//! Property tests of the parsing that is ours (SDP, sipfrag, dialog-info, RTP): never a
//! panic on any input, bounded output, and what we write we read back.

use opencti_sip::dialog_info;
use opencti_sip::media::{alaw_decode, alaw_encode, rtp_payload, ulaw_decode, ulaw_encode};
use opencti_sip::sdp::{self, Codec, LocalMedia, MediaDirection};
use opencti_sip::sipfrag;
use proptest::prelude::*;

fn direction() -> impl Strategy<Value = MediaDirection> {
    prop_oneof![
        Just(MediaDirection::SendRecv),
        Just(MediaDirection::SendOnly),
        Just(MediaDirection::RecvOnly),
        Just(MediaDirection::Inactive),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sdp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = sdp::parse(&bytes);
    }

    #[test]
    fn sdp_like_text_never_panics(lines in proptest::collection::vec(
        "(v=0|m=audio [0-9]{0,6} RTP/AVP( [0-9]{1,4}){0,5}|c=IN IP[46] [0-9a-f.:]{0,20}|a=(sendonly|recvonly|inactive|sendrecv|rtpmap:[0-9]{1,3} [A-Za-z-]{0,15}/8000)|[a-z]=.{0,20})", 0..12)) {
        let text = lines.join("\r\n");
        if let Ok(m) = sdp::parse(text.as_bytes()) {
            prop_assert!(m.payloads.len() <= 32);
            prop_assert!(m.payloads.iter().all(|pt| *pt < 128));
        }
    }

    #[test]
    fn what_we_offer_we_read_back(port in 1u16.., version in any::<u64>(), dir in direction(),
                                  pcma_first in any::<bool>(), te in proptest::option::of(96u8..128),
                                  v6 in any::<bool>()) {
        let codecs = if pcma_first { vec![Codec::Pcma, Codec::Pcmu] } else { vec![Codec::Pcmu, Codec::Pcma] };
        let address = if v6 { "::1".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
        let local = LocalMedia { session_id: 1, version, address, port, codecs: codecs.clone(), telephone_event: te, direction: dir };
        let back = sdp::parse(local.to_sdp().as_bytes()).unwrap();
        prop_assert_eq!(back.port, port);
        prop_assert_eq!(back.address, address);
        prop_assert_eq!(back.direction, dir);
        prop_assert_eq!(back.telephone_event, te);
        prop_assert_eq!(back.codec(), Some(codecs[0]));
        prop_assert_eq!(back.is_hold(), matches!(dir, MediaDirection::SendOnly | MediaDirection::Inactive));
    }

    #[test]
    fn answers_to_a_hold_never_send_both_ways(dir in direction(), holding in any::<bool>()) {
        let answer = dir.answer(holding);
        if !dir.receives() { prop_assert!(!answer.sends()); }
        if !dir.sends() { prop_assert!(!answer.receives()); }
        if holding { prop_assert!(!answer.receives()); }
    }

    #[test]
    fn sipfrag_never_panics_and_reads_status_lines(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                                    code in 100u16..700) {
        let _ = sipfrag::parse_status(&bytes);
        let line = format!("SIP/2.0 {code} Whatever\r\n");
        prop_assert_eq!(sipfrag::parse_status(line.as_bytes()).map(|s| s.code), Some(code));
    }

    #[test]
    fn dialog_info_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = dialog_info::parse(&bytes);
    }

    #[test]
    fn dialog_info_like_text_never_panics(parts in proptest::collection::vec(
        "(<dialog-info( state=\"(full|partial)\")?>|</dialog-info>|<dialog( id=\"[a-z0-9&;]{0,6}\")?( direction=\"(initiator|recipient)\")?/?>|</dialog>|<state>(early|confirmed|terminated|x)</state>|<remote>|</remote>|<identity>sip:[0-9]{1,4}@h</identity>|<|>|/|\"|=)", 0..24)) {
        let text = parts.concat();
        if let Ok(doc) = dialog_info::parse(text.as_bytes()) {
            prop_assert!(doc.dialogs.len() <= dialog_info::MAX_DIALOGS);
        }
    }

    #[test]
    fn generated_dialog_info_reads_back(ids in proptest::collection::vec("[a-z0-9]{1,8}", 1..5), confirmed in any::<bool>()) {
        let state = if confirmed { "confirmed" } else { "early" };
        let body: String = ids.iter().map(|id| format!("<dialog id=\"{id}\" direction=\"recipient\"><state>{state}</state></dialog>")).collect();
        let doc = dialog_info::parse(format!("<?xml version=\"1.0\"?><dialog-info state=\"full\">{body}</dialog-info>").as_bytes()).unwrap();
        prop_assert_eq!(doc.dialogs.len(), ids.len());
        for (d, id) in doc.dialogs.iter().zip(&ids) {
            prop_assert_eq!(&d.id, id);
        }
    }

    #[test]
    fn rtp_payload_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some((pt, payload)) = rtp_payload(&bytes) {
            prop_assert!(pt < 128);
            prop_assert!(payload.len() <= bytes.len());
        }
    }

    #[test]
    fn g711_is_monotonic_and_close(a in any::<i16>()) {
        let u = i32::from(ulaw_decode(ulaw_encode(a)));
        let l = i32::from(alaw_decode(alaw_encode(a)));
        let a = i32::from(a);
        // G.711 keeps the sign and the error within the segment's step.
        let step = (a.abs() / 16).max(16) * 2 + 16;
        prop_assert!((u - a).abs() <= step, "ulaw {} -> {}", a, u);
        prop_assert!((l - a).abs() <= step, "alaw {} -> {}", a, l);
    }
}
