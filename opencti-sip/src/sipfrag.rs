//! `message/sipfrag` (RFC 3420) as a REFER's NOTIFY carries it (RFC 3515): the status
//! line of the transfer target's answer, which says how the transfer went.

/// The status a sipfrag reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragStatus {
    /// The SIP status code (100 to 699).
    pub code: u16,
}

impl FragStatus {
    /// Whether the transfer has reached its end (a final answer).
    pub fn is_final(self) -> bool {
        self.code >= 200
    }

    /// Whether the transfer succeeded (a final 2xx).
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Reads the status line of a sipfrag body (`SIP/2.0 200 OK`); `None` when the body is
/// not one. Only the first line is read, at most 256 bytes of it.
///
/// ```
/// use opencti_sip::sipfrag::parse_status;
/// assert_eq!(parse_status(b"SIP/2.0 200 OK\r\n").unwrap().code, 200);
/// assert!(parse_status(b"SIP/2.0 180 Ringing").unwrap().is_final() == false);
/// assert!(parse_status(b"INVITE sip:x SIP/2.0").is_none());
/// ```
pub fn parse_status(body: &[u8]) -> Option<FragStatus> {
    let end = body
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(body.len())
        .min(256);
    let line = std::str::from_utf8(&body[..end]).ok()?.trim();
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    (100..700).contains(&code).then_some(FragStatus { code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert!(parse_status(b"SIP/2.0 202 Accepted").is_some_and(|s| s.is_success()));
        assert!(parse_status(b"SIP/2.0 486 Busy Here\r\n")
            .is_some_and(|s| s.is_final() && !s.is_success()));
        assert_eq!(parse_status(b"SIP/2.0 99 x"), None);
        assert_eq!(parse_status(b"SIP/2.0 2000 x"), None);
        assert_eq!(parse_status(b""), None);
        assert_eq!(parse_status(b"SIP/2.0"), None);
    }
}
