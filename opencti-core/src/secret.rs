//! Secrets (passwords, AMI secrets, API keys) that must never show in output.

use std::fmt;
use std::path::Path;

use crate::{Error, ErrorKind, Result};

/// A password or secret. `Debug` and `Display` print `<redacted>`, errors name where a
/// secret came from and never its text; only [`Secret::expose_secret`] gives the text,
/// for the one place that sends it (a login, a digest).
///
/// ```
/// use opencti_core::Secret;
/// let secret = Secret::new("hunter2");
/// assert_eq!(format!("{secret:?} {secret}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(secret.expose_secret(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret given as a value.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// Reads a secret from a file (such as a mounted container secret): its first line,
    /// without the line ending. `what` names the secret in errors ("AMI secret",
    /// "SIP password"); the error names the file, never its content.
    pub fn from_file(path: impl AsRef<Path>, what: &str) -> Result<Secret> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the {} file {}: {}", what, path.display(), e),
            )
        })?;
        match text.lines().next() {
            Some(line) if !line.is_empty() => Ok(Secret(line.to_owned())),
            _ => Err(Error::new(
                ErrorKind::Config,
                format!("the {} file {} is empty", what, path.display()),
            )),
        }
    }

    /// The secret's text, for the one place that must send it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_gives_its_first_line_and_errors_never_show_the_text() {
        let dir = std::env::temp_dir().join(format!("opencti-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        assert_eq!(
            Secret::from_file(&file, "test secret")
                .unwrap()
                .expose_secret(),
            "s3cret"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = Secret::from_file(&file, "test secret").unwrap_err();
        assert!(err.message().starts_with("the test secret file"), "{}", err);
        let err = Secret::from_file(dir.join("missing"), "test secret").unwrap_err();
        assert!(
            err.message()
                .starts_with("cannot read the test secret file"),
            "{}",
            err
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
