//! Outbound actions, built only from validated keys and values.
//!
//! Asterisk splits what a client sends on `\n` (and drops `\r`), so a CR or LF in a key
//! or value would inject headers, or a whole second action, and a NUL ends a header
//! early. [`AmiKey`] and [`AmiValue`] cannot hold them; [`Action::encode`] refuses what
//! Asterisk would silently drop (lines over 1024 bytes, more than 128 header lines).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use crate::error::{quote, Error, ErrorKind, Result};

/// Longest line Asterisk reads, in bytes, `\r\n` included: its per-session input buffer
/// holds 1024 bytes, and a longer line is discarded with a warning in its log only.
pub const MAX_LINE_BYTES: usize = 1024;

/// Most header lines (the `Action` line included) Asterisk keeps from one action
/// (`AST_MAX_MANHEADERS`); it ignores the lines past that.
pub const MAX_ACTION_HEADERS: usize = 128;

/// Keys that [`Action`] writes itself; a header with one of these names is refused.
const RESERVED_KEYS: [&str; 2] = ["Action", "ActionID"];

/// Keys whose values [`Action`]'s `Debug` hides: the login secret and the MD5 challenge
/// answer.
const SECRET_KEYS: [&str; 2] = ["Secret", "Key"];

/// A header name for an outbound action: non-empty, made of ASCII letters, digits,
/// `-`, `_` and `.` only (so no CR, LF, NUL, `:` or space).
///
/// ```
/// use opencti_asterisk_ami::{AmiKey, ErrorKind};
///
/// let key = AmiKey::new("Channel")?;
/// assert_eq!(key.as_str(), "Channel");
/// let injected = AmiKey::new("Channel: x\r\nAction: Hangup");
/// assert_eq!(injected.err().map(|e| e.kind()), Some(ErrorKind::InvalidKey));
/// assert!(AmiKey::new("").is_err());
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmiKey(Cow<'static, str>);

impl AmiKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<AmiKey> {
        let key = key.into();
        check_key(&key, "header key")?;
        Ok(AmiKey(Cow::Owned(key)))
    }

    /// Validates a `'static` key without allocating.
    pub fn from_static(key: &'static str) -> Result<AmiKey> {
        check_key(key, "header key")?;
        Ok(AmiKey(Cow::Borrowed(key)))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AmiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for AmiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for AmiKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for AmiKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<AmiKey> {
        AmiKey::new(s)
    }
}

impl TryFrom<&str> for AmiKey {
    type Error = Error;

    fn try_from(s: &str) -> Result<AmiKey> {
        AmiKey::new(s)
    }
}

impl TryFrom<String> for AmiKey {
    type Error = Error;

    fn try_from(s: String) -> Result<AmiKey> {
        AmiKey::new(s)
    }
}

/// A header value for an outbound action: any text without CR, LF or NUL.
///
/// Values marked [`secret`](AmiValue::secret) print as `<redacted>` in `Debug`.
///
/// ```
/// use opencti_asterisk_ami::{AmiValue, ErrorKind};
///
/// let exten = AmiValue::new("Local/1001@agents")?;
/// assert_eq!(exten.as_str(), "Local/1001@agents");
/// let injected = AmiValue::new("1001\r\nAction: Originate");
/// assert_eq!(injected.err().map(|e| e.kind()), Some(ErrorKind::InvalidValue));
/// assert_eq!(AmiValue::from(30_000u32).as_str(), "30000");
/// assert_eq!(format!("{:?}", AmiValue::secret("hunter2")?), "<redacted>");
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AmiValue {
    text: Cow<'static, str>,
    secret: bool,
}

impl AmiValue {
    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<AmiValue> {
        let value = value.into();
        check_value(&value)?;
        Ok(AmiValue {
            text: Cow::Owned(value),
            secret: false,
        })
    }

    /// Validates a `'static` value without allocating.
    pub fn from_static(value: &'static str) -> Result<AmiValue> {
        check_value(value)?;
        Ok(AmiValue {
            text: Cow::Borrowed(value),
            secret: false,
        })
    }

    /// Validates `value` and marks it secret: `Debug` shows `<redacted>`.
    pub fn secret(value: impl Into<String>) -> Result<AmiValue> {
        let mut value = AmiValue::new(value)?;
        value.secret = true;
        Ok(value)
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the value is marked secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    fn from_display(value: impl fmt::Display) -> AmiValue {
        // Numbers and booleans never contain CR, LF or NUL.
        AmiValue {
            text: Cow::Owned(value.to_string()),
            secret: false,
        }
    }
}

impl fmt::Debug for AmiValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<redacted>")
        } else {
            fmt::Debug::fmt(self.as_str(), f)
        }
    }
}

/// Writes the value itself, secret or not: it is what goes on the wire.
impl fmt::Display for AmiValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for AmiValue {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for AmiValue {
    type Err = Error;

    fn from_str(s: &str) -> Result<AmiValue> {
        AmiValue::new(s)
    }
}

impl TryFrom<&str> for AmiValue {
    type Error = Error;

    fn try_from(s: &str) -> Result<AmiValue> {
        AmiValue::new(s)
    }
}

impl TryFrom<String> for AmiValue {
    type Error = Error;

    fn try_from(s: String) -> Result<AmiValue> {
        AmiValue::new(s)
    }
}

macro_rules! value_from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for AmiValue {
            fn from(value: $t) -> AmiValue {
                AmiValue::from_display(value)
            }
        }
    )*};
}

value_from_display!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool);

/// An outbound AMI action: `Action: <name>`, an optional `ActionID`, then headers in
/// the order added (repeats allowed, e.g. several `Variable` headers).
///
/// The builder cannot fail once it has a name, since keys and values are already
/// validated; [`encode`](Action::encode) checks the limits Asterisk enforces silently.
///
/// ```
/// use opencti_asterisk_ami::{Action, AmiKey, AmiValue};
///
/// let action = Action::new("Originate")?
///     .action_id(AmiValue::new("desk-42")?)
///     .header(AmiKey::new("Channel")?, AmiValue::new("Local/1001@agents")?)
///     .try_header("Context", "from-agents")?
///     .try_header("Exten", "2000")?
///     .header(AmiKey::new("Priority")?, AmiValue::from(1u32))
///     .try_header("Async", "true")?;
/// assert_eq!(
///     action.to_bytes()?,
///     b"Action: Originate\r\nActionID: desk-42\r\nChannel: Local/1001@agents\r\n\
///       Context: from-agents\r\nExten: 2000\r\nPriority: 1\r\nAsync: true\r\n\r\n"
/// );
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct Action {
    name: AmiKey,
    action_id: Option<AmiValue>,
    headers: Vec<(AmiKey, AmiValue)>,
}

impl Action {
    /// An action named `name` (`Login`, `Originate`, ...), validated like a key.
    pub fn new(name: impl Into<String>) -> Result<Action> {
        let name = name.into();
        check_key(&name, "action name")?;
        Ok(Action {
            name: AmiKey(Cow::Owned(name)),
            action_id: None,
            headers: Vec::new(),
        })
    }

    /// Adds a header (after the ones already added).
    pub fn header(mut self, key: AmiKey, value: AmiValue) -> Action {
        self.headers.push((key, value));
        self
    }

    /// Validates `key` and `value` and adds the header.
    pub fn try_header(self, key: &str, value: &str) -> Result<Action> {
        Ok(self.header(AmiKey::new(key)?, AmiValue::new(value)?))
    }

    /// Adds a header in place.
    pub fn push_header(&mut self, key: AmiKey, value: AmiValue) {
        self.headers.push((key, value));
    }

    /// Sets the `ActionID` (written right after the `Action` line), replacing any.
    pub fn action_id(mut self, id: AmiValue) -> Action {
        self.action_id = Some(id);
        self
    }

    /// Sets the `ActionID` in place, replacing any: for the client that stamps actions.
    pub fn set_action_id(&mut self, id: AmiValue) {
        self.action_id = Some(id);
    }

    /// The action's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The `ActionID`, if set.
    pub fn id(&self) -> Option<&str> {
        self.action_id.as_ref().map(AmiValue::as_str)
    }

    /// The headers added, in order (without `Action` and `ActionID`).
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of the header `key` (ASCII case-insensitive) among those added.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Number of lines [`encode`](Self::encode) writes before the blank line.
    pub fn line_count(&self) -> usize {
        1 + usize::from(self.action_id.is_some()) + self.headers.len()
    }

    /// Checks what Asterisk would otherwise drop without telling: at most
    /// [`MAX_ACTION_HEADERS`] lines, each at most [`MAX_LINE_BYTES`] with its `\r\n`;
    /// and that no added header is named `Action` or `ActionID`.
    pub fn validate(&self) -> Result<()> {
        let lines = self.line_count();
        if lines > MAX_ACTION_HEADERS {
            return Err(Error::new(
                ErrorKind::TooManyHeaders,
                format!(
                    "action {} has {lines} header lines; Asterisk keeps at most \
                     {MAX_ACTION_HEADERS} and would silently ignore the rest: split it",
                    self.name()
                ),
            ));
        }
        for (key, _) in &self.headers {
            if let Some(reserved) = RESERVED_KEYS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(key.as_str()))
            {
                return Err(Error::new(
                    ErrorKind::InvalidKey,
                    format!(
                        "header {reserved:?} is written by Action itself: use Action::new \
                         for the name and Action::action_id for the ActionID"
                    ),
                ));
            }
        }
        for (key, value) in self.lines() {
            let len = line_len(key, value);
            if len > MAX_LINE_BYTES {
                return Err(Error::new(
                    ErrorKind::LineTooLong,
                    format!(
                        "header {key} of action {} makes a {len}-byte line; Asterisk reads \
                         at most {MAX_LINE_BYTES} bytes a line (CRLF included) and would \
                         discard it",
                        self.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes the action with `\r\n` line endings and the terminating blank line, after
    /// [`validate`](Self::validate); on error nothing is written.
    pub fn encode<B: BufMut>(&self, dst: &mut B) -> Result<()> {
        self.validate()?;
        for (key, value) in self.lines() {
            dst.put_slice(key.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(value.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }

    /// The encoded action as a new vector; see [`encode`](Self::encode).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let len = self.lines().map(|(k, v)| line_len(k, v)).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(len);
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Every line as `(key, value)`: `Action`, `ActionID` if set, then the headers.
    fn lines(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        std::iter::once(("Action", self.name()))
            .chain(self.action_id.as_ref().map(|id| ("ActionID", id.as_str())))
            .chain(self.headers())
    }
}

/// Shows the lines; values of `Secret` and `Key` headers, and values marked secret,
/// appear as `<redacted>`.
impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a AmiKey, &'a AmiValue);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hide = SECRET_KEYS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(self.0.as_str()));
                if hide {
                    f.write_str("<redacted>")
                } else {
                    fmt::Debug::fmt(self.1, f)
                }
            }
        }
        let mut map = f.debug_map();
        map.entry(&"Action", &self.name);
        if let Some(id) = &self.action_id {
            map.entry(&"ActionID", id);
        }
        for (key, value) in &self.headers {
            map.entry(key, &Redacted(key, value));
        }
        map.finish()
    }
}

/// Wire length of `key: value\r\n`.
fn line_len(key: &str, value: &str) -> usize {
    key.len() + 2 + value.len() + 2
}

fn check_key(key: &str, what: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("AMI {what} is empty"),
        ));
    }
    if let Some(pos) = key
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "AMI {what} {} has a character not allowed at byte {pos} (allowed: ASCII \
                 letters, digits, '-', '_' and '.'; never CR, LF, NUL, ':' or space)",
                quote(key.as_bytes())
            ),
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<()> {
    if let Some(pos) = memchr::memchr3(b'\r', b'\n', b'\0', value.as_bytes()) {
        let name = match value.as_bytes()[pos] {
            b'\r' => "a carriage return (CR)",
            b'\n' => "a line feed (LF)",
            _ => "a NUL byte",
        };
        // The value itself stays out of the message: it may be a secret.
        return Err(Error::new(
            ErrorKind::InvalidValue,
            format!(
                "AMI header value contains {name} at byte {pos} of {}; CR, LF and NUL \
                 would let it inject headers or a second action",
                value.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &'static str) -> AmiKey {
        match AmiKey::from_static(k) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    fn value(v: &str) -> AmiValue {
        match AmiValue::new(v) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn keys() {
        for good in ["Channel", "ActionID", "Header1", "X-Foo_bar.baz", "a"] {
            assert!(AmiKey::new(good).is_ok(), "{good}");
        }
        for bad in ["", "Chan nel", "Key:", "a\r", "b\n", "c\0", "Kéy", "a/b"] {
            let e = AmiKey::new(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidKey);
        }
        let e = AmiKey::new("Bad: x").expect_err("colon");
        assert!(
            e.message().contains("\"Bad: x\"") && e.message().contains("byte 3"),
            "{e}"
        );
        assert_eq!(
            "Exten".parse::<AmiKey>().map(|k| k.to_string()).ok(),
            Some("Exten".into())
        );
        assert!(AmiKey::try_from(String::from("x y")).is_err());
    }

    #[test]
    fn values_never_echo_their_text() {
        let e = AmiValue::new("s3cret\nAction: Logoff").expect_err("LF");
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(!e.message().contains("s3cret"), "{e}");
        assert!(e.message().contains("line feed (LF) at byte 6"), "{e}");
        assert!(AmiValue::new("a\rb")
            .expect_err("CR")
            .message()
            .contains("(CR)"));
        assert!(AmiValue::new("a\0b")
            .expect_err("NUL")
            .message()
            .contains("NUL"));
        assert_eq!(
            AmiValue::new("").map(|v| v.to_string()).ok(),
            Some(String::new())
        );
        assert_eq!(AmiValue::from(true).as_str(), "true");
        assert_eq!(AmiValue::from(-3i64).as_str(), "-3");
        assert!(AmiValue::from_static("x: y").is_ok());
    }

    #[test]
    fn encode_and_debug_redacts() {
        let login = Action::new("Login")
            .and_then(|a| a.try_header("Username", "opencti"))
            .and_then(|a| a.try_header("Secret", "opencti-secret"))
            .map(|a| a.action_id(value("c-1")));
        let login = match login {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let debug = format!("{login:?}");
        assert!(!debug.contains("opencti-secret"), "{debug}");
        assert!(debug.contains("\"Secret\": <redacted>"), "{debug}");
        assert_eq!(
            login.to_bytes().ok().as_deref(),
            Some(&b"Action: Login\r\nActionID: c-1\r\nUsername: opencti\r\nSecret: opencti-secret\r\n\r\n"[..])
        );
        assert_eq!(login.get("username"), Some("opencti"));
        assert_eq!(login.id(), Some("c-1"));
        assert_eq!(login.line_count(), 4);

        let hidden = Action::new("Foo").map(|a| {
            a.header(
                key("Password"),
                AmiValue::secret("pw").unwrap_or_else(|e| panic!("{e}")),
            )
        });
        assert!(!format!("{hidden:?}").contains("pw\""));
    }

    #[test]
    fn limits() {
        // 1024 bytes with CRLF is accepted, 1025 refused.
        let long = "x".repeat(MAX_LINE_BYTES - "Data: \r\n".len());
        let ok = Action::new("Foo").map(|a| a.header(key("Data"), value(&long)));
        assert!(matches!(ok.map(|a| a.to_bytes()), Ok(Ok(_))));
        let too_long = Action::new("Foo").map(|a| a.header(key("Data"), value(&(long + "x"))));
        let err = too_long.and_then(|a| a.to_bytes()).expect_err("too long");
        assert_eq!(err.kind(), ErrorKind::LineTooLong);
        assert!(err.message().contains("1025-byte line"), "{err}");

        let mut action = Action::new("UpdateConfig").unwrap_or_else(|e| panic!("{e}"));
        action.set_action_id(value("u-1"));
        for i in 0..126 {
            action.push_header(key("Var"), AmiValue::from(i));
        }
        assert_eq!(action.line_count(), 128);
        let mut out = bytes::BytesMut::new();
        assert!(action.encode(&mut out).is_ok());
        action.push_header(key("Var"), value("one too many"));
        let mut out = bytes::BytesMut::new();
        let err = action.encode(&mut out).expect_err("too many");
        assert_eq!(err.kind(), ErrorKind::TooManyHeaders);
        assert!(err.message().contains("129 header lines"), "{err}");
        assert!(out.is_empty(), "nothing written on error");
    }

    #[test]
    fn reserved_and_bad_names() {
        let a = Action::new("Ping").map(|a| a.header(key("actionid"), value("x")));
        let err = a.and_then(|a| a.to_bytes()).expect_err("reserved");
        assert_eq!(err.kind(), ErrorKind::InvalidKey);
        assert!(Action::new("Ping\r\nAction: Originate").is_err());
        assert!(Action::new("").is_err());
        let e = Action::new("Log in").expect_err("space");
        assert!(e.message().contains("action name"), "{e}");
    }
}
