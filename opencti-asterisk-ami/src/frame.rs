//! What the decoder yields: the banner line once, then messages.

use std::fmt;

use crate::error::{quote, Error, ErrorKind, Result};
use crate::message::Message;

/// One unit decoded from the server's byte stream.
///
/// The banner is a frame of its own because Asterisk sends it alone on connect and then
/// waits for the client's `Login`: a client that needs the version must see it before
/// any message arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The first line, `Asterisk Call Manager/<version>` (no blank line follows it).
    Banner(Banner),
    /// A response or an event.
    Message(Message),
}

impl Frame {
    /// The message, if this frame is one.
    pub fn into_message(self) -> Option<Message> {
        match self {
            Frame::Message(message) => Some(message),
            Frame::Banner(_) => None,
        }
    }

    /// The message, if this frame is one.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Frame::Message(message) => Some(message),
            Frame::Banner(_) => None,
        }
    }

    /// The banner, if this frame is one.
    pub fn as_banner(&self) -> Option<&Banner> {
        match self {
            Frame::Banner(banner) => Some(banner),
            Frame::Message(_) => None,
        }
    }
}

/// The greeting line, such as `Asterisk Call Manager/11.0.0` (AMI 11 is Asterisk 22).
///
/// ```
/// use opencti_asterisk_ami::Banner;
///
/// let banner = Banner::parse(b"Asterisk Call Manager/11.0.0")?;
/// assert_eq!(banner.product(), "Asterisk Call Manager");
/// assert_eq!(banner.version(), "11.0.0");
/// # Ok::<(), opencti_asterisk_ami::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    line: String,
    slash: usize,
}

impl Banner {
    /// Parses a banner line (without its line ending): `<product>/<version>`, both parts
    /// non-empty, and no `:` (which would make it look like a header).
    pub fn parse(line: &[u8]) -> Result<Banner> {
        let bad = || {
            Error::new(
                ErrorKind::BadBanner,
                format!(
                    "expected the AMI banner `Asterisk Call Manager/<version>` as the first \
                     line, got {}",
                    quote(line)
                ),
            )
        };
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let slash = text.rfind('/').ok_or_else(bad)?;
        if slash == 0 || slash + 1 == text.len() || text.contains(':') {
            return Err(bad());
        }
        Ok(Banner {
            line: text.to_owned(),
            slash,
        })
    }

    /// The whole line, without its line ending.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The part before the last `/`: `Asterisk Call Manager`.
    pub fn product(&self) -> &str {
        self.line.get(..self.slash).unwrap_or_default()
    }

    /// The part after the last `/`: the AMI protocol version (`11.0.0`), which is not
    /// the Asterisk version (`CoreSettings` reports that).
    pub fn version(&self) -> &str {
        self.line.get(self.slash + 1..).unwrap_or_default()
    }
}

impl fmt::Display for Banner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        let b = Banner::parse(b"Asterisk Call Manager/1.0").expect("valid banner");
        assert_eq!((b.product(), b.version()), ("Asterisk Call Manager", "1.0"));
        assert_eq!(b.to_string(), "Asterisk Call Manager/1.0");
        for bad in [
            &b"Response: Success"[..],
            b"Asterisk Call Manager",
            b"/1.0",
            b"Asterisk/",
            b"a/b: c",
            b"\xffAsterisk/1",
        ] {
            let e = Banner::parse(bad).expect_err("invalid banner");
            assert_eq!(e.kind(), ErrorKind::BadBanner);
            assert!(e.message().contains("expected the AMI banner"), "{e}");
        }
    }

    #[test]
    fn frame_accessors() {
        let b = Banner::parse(b"Asterisk Call Manager/11.0.0").expect("valid banner");
        let f = Frame::Banner(b.clone());
        assert_eq!(f.as_banner(), Some(&b));
        assert!(f.as_message().is_none());
        assert!(f.into_message().is_none());
    }
}
