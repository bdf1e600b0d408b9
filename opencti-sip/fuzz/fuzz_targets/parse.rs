//! Fuzzes every parser opencti-sip owns with the same bytes: SDP, sipfrag, dialog-info
//! XML and RTP. Checked: no panic; what is read stays within the documented bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use opencti_sip::{dialog_info, media, sdp, sipfrag};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = sdp::parse(data) {
        assert!(m.payloads.len() <= 32);
        let _ = m.codec();
        let _ = m.is_hold();
    }
    if let Some(s) = sipfrag::parse_status(data) {
        assert!((100..700).contains(&s.code));
    }
    if let Ok(doc) = dialog_info::parse(data) {
        assert!(doc.dialogs.len() <= dialog_info::MAX_DIALOGS);
    }
    if let Some((pt, payload)) = media::rtp_payload(data) {
        assert!(pt < 128 && payload.len() <= data.len());
    }
});
