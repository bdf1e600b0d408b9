//! The crate's one error type: a kind to match on and a message a person can act on.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely enough to act on in code; the [`Error`]'s message has the
/// details (the limit, what was seen, the offending line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Inbound: the first line was not a banner of the form
    /// `Asterisk Call Manager/<version>`.
    BadBanner,
    /// Inbound: a line inside a message is not of the form `Key: Value`.
    MalformedLine,
    /// Inbound: a message grew past the decoder's `max_message_bytes`.
    MessageTooLarge,
    /// Inbound: a message has more headers than the decoder's `max_headers`; outbound:
    /// an action has more header lines than Asterisk keeps (128).
    TooManyHeaders,
    /// Inbound: the stream ended in the middle of a message.
    Truncated,
    /// Outbound: a `Key: Value` line is longer than Asterisk reads (1024 bytes with CRLF).
    LineTooLong,
    /// Outbound: a header key or action name is empty, reserved, or has a character
    /// outside `A-Z a-z 0-9 - _ .`.
    InvalidKey,
    /// Outbound: a header value contains CR, LF or NUL.
    InvalidValue,
}

impl ErrorKind {
    /// A short snake_case name for this kind, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadBanner => "bad_banner",
            ErrorKind::MalformedLine => "malformed_line",
            ErrorKind::MessageTooLarge => "message_too_large",
            ErrorKind::TooManyHeaders => "too_many_headers",
            ErrorKind::Truncated => "truncated",
            ErrorKind::LineTooLong => "line_too_long",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidValue => "invalid_value",
        }
    }

    /// Whether the decoder produced this error while reading from Asterisk (as opposed
    /// to refusing an outbound action). Inbound errors are recoverable: the decoder has
    /// already arranged to skip the offending message and can be called again.
    pub fn is_inbound(self) -> bool {
        matches!(
            self,
            ErrorKind::BadBanner
                | ErrorKind::MalformedLine
                | ErrorKind::MessageTooLarge
                | ErrorKind::TooManyHeaders
                | ErrorKind::Truncated
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one place an AMI protocol error becomes opencti's error: an action that cannot be
/// put on the wire (a value with a line break, a line or an action too long for
/// Asterisk) is `bad_input`; something Asterisk sent that is not AMI is `other`. The
/// protocol error stays attached as the source, and its message is kept.
impl From<Error> for opencti_core::Error {
    fn from(error: Error) -> Self {
        let kind = if error.kind().is_inbound() {
            opencti_core::ErrorKind::Other
        } else {
            opencti_core::ErrorKind::BadInput
        };
        opencti_core::Error::new(kind, error.to_string()).with_source(error)
    }
}

/// An AMI protocol error: a [`kind`](Error::kind) and a human-readable message.
///
/// Messages never contain a header value given to [`AmiValue`](crate::AmiValue) (it may
/// be a secret); they quote at most a short, escaped prefix of an offending inbound line.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

impl Error {
    /// An error of `kind` with a message for a person.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong, to match on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {}

/// Longest prefix of an offending line quoted in an error message.
const QUOTE_LIMIT: usize = 64;

/// A short, escaped rendering of untrusted bytes for an error message: at most
/// [`QUOTE_LIMIT`] bytes, invalid UTF-8 replaced, control characters escaped by `{:?}`.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let cut = bytes.len().min(QUOTE_LIMIT);
    let text = String::from_utf8_lossy(&bytes[..cut]);
    if cut < bytes.len() {
        format!("{text:?} (first {cut} of {} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_and_escapes() {
        let long = vec![b'a'; 200];
        let q = quote(&long);
        assert!(q.contains("first 64 of 200 bytes"), "{q}");
        assert_eq!(quote(b"a\tb\x00"), "\"a\\tb\\0\"");
        assert_eq!(quote(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn kinds_have_names() {
        assert_eq!(ErrorKind::LineTooLong.to_string(), "line_too_long");
        assert!(ErrorKind::MalformedLine.is_inbound());
        assert!(!ErrorKind::InvalidValue.is_inbound());
        let e = Error::new(ErrorKind::InvalidKey, "bad key");
        assert_eq!(e.kind(), ErrorKind::InvalidKey);
        assert_eq!(e.to_string(), "bad key");
        assert_eq!(e.message(), "bad key");
    }
}
