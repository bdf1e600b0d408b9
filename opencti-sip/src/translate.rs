//! Translation from SIP terms to canonical ones: status codes and dialog ends to
//! [`Cause`]s, URIs to [`Address`]es.

use opencti_core::{Address, Cause, DisplayName};

use crate::stack::DialogEnd;

/// The canonical cause of a final SIP error response to an INVITE.
///
/// ```
/// use opencti_core::Cause;
/// use opencti_sip::cause_from_status;
/// assert_eq!(cause_from_status(486), Cause::Busy);
/// assert_eq!(cause_from_status(404), Cause::InvalidNumber);
/// assert_eq!(cause_from_status(487), Cause::Cancelled);
/// ```
pub fn cause_from_status(code: u16) -> Cause {
    match code {
        486 | 600 => Cause::Busy,
        408 | 480 => Cause::NoAnswer,
        603 | 403 | 401 | 407 => Cause::Rejected,
        404 | 410 | 484 | 485 | 604 => Cause::InvalidNumber,
        487 => Cause::Cancelled,
        500..=599 => Cause::Congestion,
        _ => Cause::Other,
    }
}

/// How a dialog's end reads on the panel, given whether the call had been connected.
pub(crate) fn cause_from_end(end: &DialogEnd, connected: bool) -> Cause {
    match end {
        DialogEnd::RemoteBye | DialogEnd::LocalBye => Cause::Normal,
        DialogEnd::RemoteCancel | DialogEnd::LocalCancel => Cause::Cancelled,
        DialogEnd::Declined => Cause::Rejected,
        DialogEnd::Failed(code) => cause_from_status(*code),
        DialogEnd::Timeout if connected => Cause::Vanished,
        DialogEnd::Timeout => Cause::Unreachable,
    }
}

/// The address to show for a SIP URI: its user part when there is one (`1002`), else the
/// URI without parameters. `None` for text an [`Address`] cannot hold.
///
/// ```
/// use opencti_sip::address_from_uri;
/// assert_eq!(address_from_uri("sip:1002@127.0.0.1:5060;transport=udp").unwrap().as_str(), "1002");
/// assert_eq!(address_from_uri("sip:pbx.example").unwrap().as_str(), "sip:pbx.example");
/// ```
pub fn address_from_uri(uri: &str) -> Option<Address> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"));
    let shown = match rest {
        Some(rest) => match rest.split_once('@') {
            Some((user, _)) if !user.is_empty() => user.split(';').next().unwrap_or(user),
            _ => uri.split(';').next().unwrap_or(uri),
        },
        None => uri,
    };
    Address::new(shown).ok()
}

/// A display name, if it is one.
pub(crate) fn display_name(name: &str) -> Option<DisplayName> {
    let name = name.trim().trim_matches('"').trim();
    if name.is_empty() {
        None
    } else {
        DisplayName::new(name).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends() {
        assert_eq!(cause_from_end(&DialogEnd::Timeout, true), Cause::Vanished);
        assert_eq!(
            cause_from_end(&DialogEnd::Timeout, false),
            Cause::Unreachable
        );
        assert_eq!(
            cause_from_end(&DialogEnd::Failed(503), false),
            Cause::Congestion
        );
        assert_eq!(
            cause_from_end(&DialogEnd::RemoteCancel, false),
            Cause::Cancelled
        );
    }

    #[test]
    fn addresses_refuse_control_characters() {
        assert!(address_from_uri("sip:a\u{7}b@h").is_none());
        assert_eq!(
            display_name("\"Alice\"").map(|n| n.as_str().to_owned()),
            Some("Alice".into())
        );
        assert!(display_name("  ").is_none());
    }
}
