//! The one public error type: a kind to match on, a message a person can act on, and a source.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::CommandSet;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely enough to act on in code.
///
/// Vendors map their own errors onto these kinds; the message carries the details.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command is not allowed in the current state (the error names the state and
    /// what is allowed instead).
    InvalidState,
    /// The connector or switch cannot do this at all (see `Capabilities`).
    Unsupported,
    /// A call, agent, device or party the request names does not exist.
    NotFound,
    /// The switch refused the request.
    Rejected,
    /// The confirming event did not arrive in time; the command may still take effect.
    Timeout,
    /// The link to the switch is down.
    LinkDown,
    /// Credentials were refused, or the caller may not act on this agent or device.
    Unauthorized,
    /// Input was malformed: a bad id, a control character, an unknown field.
    BadInput,
    /// The configuration is wrong or incomplete.
    Config,
    /// An event subscriber fell behind and events were skipped; resynchronise from a
    /// snapshot.
    Lagged,
    /// The session or connector has shut down.
    Closed,
    /// Too many requests: slow down and retry.
    RateLimited,
    /// A protocol or internal failure that fits no other kind.
    Other,
}

impl ErrorKind {
    /// The snake_case wire name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Timeout => "timeout",
            ErrorKind::LinkDown => "link_down",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Config => "config",
            ErrorKind::Lagged => "lagged",
            ErrorKind::Closed => "closed",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of every public opencti API.
///
/// ```
/// use opencti_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::BadInput, "digits must be 0-9, *, #, A-D; got 'x'");
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// assert_eq!(err.to_string(), "bad_input: digits must be 0-9, *, #, A-D; got 'x'");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    allowed: Option<CommandSet>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message that says what was wrong.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            allowed: None,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Attaches the commands that are allowed instead (for [`ErrorKind::InvalidState`]).
    #[must_use]
    pub fn with_allowed(mut self, allowed: CommandSet) -> Self {
        self.allowed = Some(allowed);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a refused command: what was allowed in the state it met.
    pub fn allowed(&self) -> Option<CommandSet> {
        self.allowed
    }

    /// The serialisable form of this error, as it travels on the wire.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            kind: self.kind,
            message: self.message.to_string(),
            allowed: self.allowed,
        }
    }

    pub(crate) fn bad_input(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::BadInput, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(allowed) = &self.allowed {
            d.field("allowed", allowed);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

impl From<ErrorBody> for Error {
    fn from(body: ErrorBody) -> Self {
        Error {
            kind: body.kind,
            message: body.message.into(),
            allowed: body.allowed,
            source: None,
        }
    }
}

/// An [`Error`] as JSON: `{"kind":"invalid_state","message":"...","allowed":["hangup"]}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error kind.
    pub kind: ErrorKind,
    /// What was wrong, for a person.
    pub message: String,
    /// For a refused command: the commands that were allowed instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<CommandSet>,
}
