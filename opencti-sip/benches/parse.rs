//! Benchmarks of the parsing opencti-sip does itself, per message:
//! `cargo bench -p opencti-sip --bench parse`.

use divan::{black_box, Bencher};
use opencti_sip::{dialog_info, media, sdp, sipfrag};

fn main() {
    divan::main();
}

const SDP: &[u8] =
    b"v=0\r\no=- 1795242957 1795242958 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 20180 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

const DIALOG_INFO: &[u8] = br#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="4" state="full" entity="sip:1002@127.0.0.1">
  <dialog id="a84b4c76e66710" call-id="9c7a3f2b@127.0.0.1" local-tag="1928301774" remote-tag="4b2f" direction="recipient">
    <state>confirmed</state>
    <remote><identity>sip:1003@127.0.0.1</identity><target uri="sip:1003@127.0.0.1:5090"/></remote>
    <local><identity>sip:1002@127.0.0.1</identity><target uri="sip:1002@127.0.0.1:5092"/></local>
  </dialog>
</dialog-info>"#;

#[divan::bench]
fn sdp_parse(bencher: Bencher<'_, '_>) {
    bencher
        .counter(divan::counter::BytesCount::new(SDP.len()))
        .bench(|| {
            sdp::parse(black_box(SDP))
                .map(|m| m.port)
                .unwrap_or_default()
        });
}

#[divan::bench]
fn dialog_info_parse(bencher: Bencher<'_, '_>) {
    bencher
        .counter(divan::counter::BytesCount::new(DIALOG_INFO.len()))
        .bench(|| {
            dialog_info::parse(black_box(DIALOG_INFO))
                .map(|d| d.dialogs.len())
                .unwrap_or_default()
        });
}

#[divan::bench]
fn sipfrag_parse() -> Option<sipfrag::FragStatus> {
    sipfrag::parse_status(black_box(b"SIP/2.0 200 OK\r\n"))
}

#[divan::bench]
fn pcmu_encode_frame(bencher: Bencher<'_, '_>) {
    let frame: Vec<i16> = (0..160)
        .map(|i| ((i * 397) % 20000) as i16 - 10000)
        .collect();
    bencher.bench(|| {
        black_box(&frame)
            .iter()
            .map(|s| media::ulaw_encode(*s))
            .fold(0u32, |a, b| a.wrapping_add(u32::from(b)))
    });
}
