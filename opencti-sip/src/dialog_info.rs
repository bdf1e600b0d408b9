//! The dialog event package's body, `application/dialog-info+xml` (RFC 4235), as a
//! presence server (kamailio's `presence_dialoginfo`) sends it in NOTIFYs.
//!
//! Only what monitoring needs is read: each `<dialog>`'s id, direction and state, and
//! the remote identity. The reader is ours (a full XML parser for four elements would
//! be most of the dependency tree), bounded and never panics: fuzzed and property
//! tested.

/// The largest body read.
pub const MAX_DIALOG_INFO_BYTES: usize = 64 * 1024;
/// The most dialogs read from one body.
pub const MAX_DIALOGS: usize = 32;

/// A dialog's state (RFC 4235 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogPhase {
    /// `trying`
    Trying,
    /// `proceeding`
    Proceeding,
    /// `early`: ringing.
    Early,
    /// `confirmed`: talking.
    Confirmed,
    /// `terminated`
    Terminated,
}

/// One `<dialog>` of a dialog-info document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    /// The `id` attribute.
    pub id: String,
    /// Whether the watched extension placed the call (`direction="initiator"`) or
    /// receives it (`recipient`); `None` when absent.
    pub initiator: Option<bool>,
    /// The state.
    pub phase: DialogPhase,
    /// The remote identity, where given.
    pub remote: Option<String>,
}

/// A dialog-info document: its `state` attribute (`full` or `partial`) and dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfoDoc {
    /// Whether this is a full state (`state="full"`).
    pub full: bool,
    /// The dialogs, at most [`MAX_DIALOGS`].
    pub dialogs: Vec<DialogInfo>,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfoError(pub String);

impl std::fmt::Display for DialogInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dialog-info: {}", self.0)
    }
}

impl std::error::Error for DialogInfoError {}

/// Parses a dialog-info document.
///
/// ```
/// use opencti_sip::dialog_info::{parse, DialogPhase};
/// let xml = br#"<?xml version="1.0"?>
/// <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:1002@127.0.0.1">
///   <dialog id="abc" call-id="x" direction="recipient"><state>early</state>
///     <remote><identity>sip:1001@127.0.0.1</identity></remote></dialog>
/// </dialog-info>"#;
/// let doc = parse(xml).unwrap();
/// assert!(doc.full);
/// assert_eq!(doc.dialogs[0].phase, DialogPhase::Early);
/// assert_eq!(doc.dialogs[0].initiator, Some(false));
/// assert_eq!(doc.dialogs[0].remote.as_deref(), Some("sip:1001@127.0.0.1"));
/// ```
pub fn parse(body: &[u8]) -> Result<DialogInfoDoc, DialogInfoError> {
    if body.len() > MAX_DIALOG_INFO_BYTES {
        return Err(DialogInfoError(format!(
            "body of {} bytes is over the limit",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| DialogInfoError("not UTF-8".into()))?;
    let root_at = find_tag(text, "dialog-info", 0)
        .ok_or_else(|| DialogInfoError("no <dialog-info> element".into()))?;
    let root_end = text[root_at..]
        .find('>')
        .map(|i| root_at + i)
        .ok_or_else(|| DialogInfoError("unterminated <dialog-info> tag".into()))?;
    let full = attribute(&text[root_at..root_end], "state").as_deref() != Some("partial");
    let mut dialogs = Vec::new();
    let mut at = root_end;
    while let Some(start) = find_tag(text, "dialog", at) {
        if dialogs.len() >= MAX_DIALOGS {
            break;
        }
        let head_end = text[start..]
            .find('>')
            .map(|i| start + i)
            .ok_or_else(|| DialogInfoError("unterminated <dialog> tag".into()))?;
        let head = &text[start..head_end];
        let self_closing = head.ends_with('/');
        let end = if self_closing {
            head_end
        } else {
            find_close(text, "dialog", head_end)
                .ok_or_else(|| DialogInfoError("<dialog> without </dialog>".into()))?
        };
        let content = &text[head_end.min(end)..end];
        let id =
            attribute(head, "id").ok_or_else(|| DialogInfoError("<dialog> without id".into()))?;
        let initiator = match attribute(head, "direction").as_deref() {
            Some("initiator") => Some(true),
            Some("recipient") => Some(false),
            _ => None,
        };
        let state = element_text(content, "state")
            .ok_or_else(|| DialogInfoError(format!("dialog {id:?} has no <state>")))?;
        let phase = match state.trim() {
            "trying" => DialogPhase::Trying,
            "proceeding" => DialogPhase::Proceeding,
            "early" => DialogPhase::Early,
            "confirmed" => DialogPhase::Confirmed,
            "terminated" => DialogPhase::Terminated,
            other => {
                return Err(DialogInfoError(format!(
                    "dialog {id:?} has unknown state {:?}",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        let remote = find_tag(content, "remote", 0)
            .and_then(|r| element_text(&content[r..], "identity"))
            .map(|s| unescape(s.trim()));
        dialogs.push(DialogInfo {
            id: unescape(&id),
            initiator,
            phase,
            remote,
        });
        at = end.max(head_end) + 1;
        if at >= text.len() {
            break;
        }
    }
    Ok(DialogInfoDoc { full, dialogs })
}

/// The byte index of `<name` followed by white space, `>` or `/`, at or after `from`.
fn find_tag(text: &str, name: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while at <= text.len() {
        let rel = text.get(at..)?.find('<')?;
        let start = at + rel;
        let after = text.get(start + 1..)?;
        // Allow a namespace prefix (`<d:dialog`).
        let local = match after.find(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            Some(end) => &after[..end],
            None => after,
        };
        let local_name = local.rsplit(':').next().unwrap_or(local);
        if local_name == name {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

fn find_close(text: &str, name: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let rel = text.get(at..)?.find("</")?;
        let start = at + rel;
        let after = text.get(start + 2..)?;
        let end = after.find('>')?;
        let tag = after[..end].trim();
        if tag.rsplit(':').next() == Some(name) {
            return Some(start);
        }
        at = start + 2;
    }
}

fn element_text<'a>(content: &'a str, name: &str) -> Option<&'a str> {
    let start = find_tag(content, name, 0)?;
    let open_end = start + content.get(start..)?.find('>')? + 1;
    let close = find_close(content, name, open_end)?;
    content.get(open_end..close)
}

fn attribute(head: &str, name: &str) -> Option<String> {
    let mut rest = head;
    loop {
        let i = rest.find(name)?;
        let before_ok = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace());
        let after = &rest[i + name.len()..];
        let after_trim = after.trim_start();
        if before_ok && after_trim.starts_with('=') {
            let value = after_trim[1..].trim_start();
            let quote = value.chars().next()?;
            if quote == '"' || quote == '\'' {
                let body = &value[1..];
                let end = body.find(quote)?;
                return Some(body[..end].to_owned());
            }
            return None;
        }
        rest = &rest[i + name.len()..];
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailio_bodies() {
        let terminated = br#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:1002@127.0.0.1"/>"#;
        let doc = parse(terminated).unwrap_or_else(|e| panic!("{e}"));
        assert!(doc.full && doc.dialogs.is_empty());
        let confirmed = br#"<dialog-info state="partial"><dialog id="a&amp;b" direction="initiator"><state event="x">confirmed</state></dialog><dialog id="c"><state>terminated</state></dialog></dialog-info>"#;
        let doc = parse(confirmed).unwrap_or_else(|e| panic!("{e}"));
        assert!(!doc.full);
        assert_eq!(doc.dialogs.len(), 2);
        assert_eq!(doc.dialogs[0].id, "a&b");
        assert_eq!(doc.dialogs[0].initiator, Some(true));
        assert_eq!(doc.dialogs[1].phase, DialogPhase::Terminated);
    }

    #[test]
    fn refusals() {
        assert!(parse(b"<x/>").is_err());
        assert!(
            parse(b"<dialog-info><dialog><state>early</state></dialog></dialog-info>").is_err()
        );
        assert!(
            parse(b"<dialog-info><dialog id='1'><state>bogus</state></dialog></dialog-info>")
                .is_err()
        );
        assert!(parse(b"<dialog-info><dialog id='1'>").is_err());
        assert!(parse(&vec![b' '; MAX_DIALOG_INFO_BYTES + 1]).is_err());
    }
}
