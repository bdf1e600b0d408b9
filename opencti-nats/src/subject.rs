//! Subject naming: the one place that turns sites, agents and devices into NATS
//! subjects, message ids and stream names, and back.

use std::fmt;

use opencti_core::{AgentId, CommandId, DeviceId, Error, ErrorKind, Result, Timestamp};

/// The first token of every opencti subject.
const ROOT: &str = "opencti";

/// A site: one contact centre, one JetStream stream, one subject tree
/// (`opencti.<site>.>`).
///
/// 1 to 64 ASCII letters, digits, `-` or `_`, so that it is a subject token and part of a
/// stream name as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Site(String);

impl Site {
    /// Longest site name accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        check_name("site", name)?;
        Ok(Site(name.to_owned()))
    }

    /// The site's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JetStream stream that keeps the site's messages: `OPENCTI_<site>`.
    pub fn stream_name(&self) -> String {
        format!("OPENCTI_{}", self.0)
    }

    /// The subjects the site's stream keeps: every line's events
    /// (`opencti.<site>.events.>`), every accepted command (`opencti.<site>.commands.>`)
    /// and the queues' figures and events (`opencti.<site>.queues.>`). Requests to a line
    /// (`opencti.<site>.requests.>`) are answered at once and not kept.
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![self.all_events(), self.all_commands(), self.all_queues()]
    }

    /// Every line's events: `opencti.<site>.events.>`.
    pub fn all_events(&self) -> String {
        format!("{ROOT}.{}.events.>", self.0)
    }

    /// Every event of one agent, on any device: `opencti.<site>.events.<agent>.*`.
    pub fn agent_events(&self, agent: &AgentId) -> String {
        format!(
            "{ROOT}.{}.events.{}.*",
            self.0,
            encode_token(agent.as_str())
        )
    }

    /// One line's events: `opencti.<site>.events.<agent>.<device>`, both ids encoded with
    /// [`encode_token`].
    pub fn line_events(&self, agent: &AgentId, device: &DeviceId) -> String {
        self.line_subject("events", agent, device)
    }

    /// Requests to the session of one line (its snapshot, a command):
    /// `opencti.<site>.requests.<agent>.<device>`, answered by the link service that runs
    /// it.
    pub fn line_requests(&self, agent: &AgentId, device: &DeviceId) -> String {
        self.line_subject("requests", agent, device)
    }

    /// The commands one line's session accepted:
    /// `opencti.<site>.commands.<agent>.<device>`.
    pub fn line_commands(&self, agent: &AgentId, device: &DeviceId) -> String {
        self.line_subject("commands", agent, device)
    }

    fn line_subject(&self, kind: &str, agent: &AgentId, device: &DeviceId) -> String {
        format!(
            "{ROOT}.{}.{kind}.{}.{}",
            self.0,
            encode_token(agent.as_str()),
            encode_token(device.as_str())
        )
    }

    /// Everything of the site's queues: `opencti.<site>.queues.>`.
    pub fn all_queues(&self) -> String {
        format!("{ROOT}.{}.queues.>", self.0)
    }

    /// The queues' figures, whole: `opencti.<site>.queues.figures`.
    pub fn queue_figures(&self) -> String {
        format!("{ROOT}.{}.queues.figures", self.0)
    }

    /// The queues' events: `opencti.<site>.queues.events`.
    pub fn queue_events(&self) -> String {
        format!("{ROOT}.{}.queues.events", self.0)
    }

    /// The agent and device of a line's events subject, if `subject` is one of this
    /// site's.
    pub fn parse_line_subject(&self, subject: &str) -> Result<(AgentId, DeviceId)> {
        self.parse_subject_of("events", subject)
    }

    /// The agent and device of a line's accepted-commands subject
    /// (`opencti.<site>.commands.<agent>.<device>`), if `subject` is one of this site's.
    pub fn parse_commands_subject(&self, subject: &str) -> Result<(AgentId, DeviceId)> {
        self.parse_subject_of("commands", subject)
    }

    fn parse_subject_of(&self, kind: &str, subject: &str) -> Result<(AgentId, DeviceId)> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "subject {subject:?} is not a line of site {}: {why}",
                    self.0
                ),
            )
        };
        let mut tokens = subject.split('.');
        let head: Vec<&str> = tokens.by_ref().take(3).collect();
        if head != [ROOT, self.0.as_str(), kind] {
            return Err(bad(&format!(
                "it does not start with opencti.<site>.{kind}"
            )));
        }
        let (Some(agent), Some(device), None) = (tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(bad("it does not end with <agent>.<device>"));
        };
        let agent = AgentId::new(decode_token(agent)?).map_err(|e| bad(e.message()))?;
        let device = DeviceId::new(decode_token(device)?).map_err(|e| bad(e.message()))?;
        Ok((agent, device))
    }

    /// Every line's accepted commands: `opencti.<site>.commands.>`.
    pub fn all_commands(&self) -> String {
        format!("{ROOT}.{}.commands.>", self.0)
    }

    /// The `Nats-Msg-Id` of a line's event: `<site>.<agent>.<device>.<epoch>.<seq>`, the
    /// ids encoded as in subjects (so `.` separates unambiguously), the epoch in
    /// microseconds. The same event of the same session always gets the same id, so the
    /// server drops a republished copy.
    pub fn event_msg_id(
        &self,
        agent: &AgentId,
        device: &DeviceId,
        epoch: Timestamp,
        seq: u64,
    ) -> String {
        format!("{}.{seq}", self.msg_id_prefix(agent, device, epoch))
    }

    /// The `Nats-Msg-Id` of a line's snapshot taken at `seq`:
    /// `<site>.<agent>.<device>.<epoch>.snapshot.<seq>`.
    pub fn snapshot_msg_id(
        &self,
        agent: &AgentId,
        device: &DeviceId,
        epoch: Timestamp,
        seq: u64,
    ) -> String {
        format!(
            "{}.snapshot.{seq}",
            self.msg_id_prefix(agent, device, epoch)
        )
    }

    /// The `Nats-Msg-Id` of a command the line's session accepted as `command`:
    /// `<site>.<agent>.<device>.<epoch>.command.<id>`.
    pub fn command_msg_id(
        &self,
        agent: &AgentId,
        device: &DeviceId,
        epoch: Timestamp,
        command: CommandId,
    ) -> String {
        format!(
            "{}.command.{command}",
            self.msg_id_prefix(agent, device, epoch)
        )
    }

    fn msg_id_prefix(&self, agent: &AgentId, device: &DeviceId, epoch: Timestamp) -> String {
        format!(
            "{}.{}.{}.{}",
            self.0,
            encode_token(agent.as_str()),
            encode_token(device.as_str()),
            epoch.as_micros()
        )
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a site or durable consumer name: 1 to 64 ASCII letters, digits, `-`, `_`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= Site::MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadInput,
            format!(
                "{what} name {name:?} refused: use 1 to {} ASCII letters, digits, '-' or '_'",
                Site::MAX_LEN
            ),
        ))
    }
}

/// Whether byte `b` stands for itself in a subject token.
fn plain(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'.' | b'*' | b'>' | b'%')
}

/// Encodes `text` as one subject token: `.`, `*`, `>`, `%`, white space, control bytes
/// and every byte outside printable ASCII become `%XX` (upper-case hex); every other
/// byte stands for itself. [`decode_token`] reverses it.
///
/// ```
/// use opencti_nats::{decode_token, encode_token};
/// assert_eq!(encode_token("PJSIP/1001"), "PJSIP/1001");
/// assert_eq!(encode_token("a.b*c>d%"), "a%2Eb%2Ac%3Ed%25");
/// assert_eq!(decode_token("a%2Eb%2Ac%3Ed%25").unwrap(), "a.b*c>d%");
/// ```
pub fn encode_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a token made by [`encode_token`]. Only the canonical form is accepted (an
/// escape for every byte that needs one, none for a byte that does not, upper-case hex),
/// so that one text has exactly one token.
pub fn decode_token(token: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::BadInput,
            format!("subject token {token:?} is not an encoded id: {why}"),
        )
    };
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("a % without two hex digits"))?;
            let value =
                hex_value(hex).ok_or_else(|| bad("a % without two upper-case hex digits"))?;
            if plain(value) {
                return Err(bad("an escape for a byte that stands for itself"));
            }
            out.push(value);
            i += 3;
        } else if plain(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(bad("a byte that must be escaped"));
        }
    }
    String::from_utf8(out).map_err(|_| bad("the bytes are not UTF-8"))
}

fn hex_value(hex: &[u8]) -> Option<u8> {
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    match hex {
        [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_stay_as_they_are() {
        for id in [
            "alice",
            "PJSIP/1001",
            "SIP/agent-7_b",
            "a+b@example",
            "x:y,z",
        ] {
            assert_eq!(encode_token(id), id);
            assert_eq!(decode_token(id).unwrap(), id);
        }
    }

    #[test]
    fn hostile_ids_round_trip_into_single_tokens() {
        let hostile = [
            "a.b",
            "*",
            ">",
            "opencti.>",
            "100%",
            "%2E",
            "tab\there",
            "new\nline",
            "sp ace",
            "nul\0",
            "del\x7f",
            "émile",
            "日本",
            "$JS.API",
            "..",
        ];
        for id in hostile {
            let token = encode_token(id);
            assert!(
                token
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'.' | b'*' | b'>')),
                "{id:?} encoded as {token:?}"
            );
            assert_eq!(decode_token(&token).unwrap(), id, "{token}");
        }
        assert_eq!(encode_token("a.b"), "a%2Eb");
        assert_eq!(encode_token("100%"), "100%25");
        assert_eq!(encode_token("é"), "%C3%A9");
    }

    #[test]
    fn non_canonical_tokens_are_refused() {
        for token in [
            "a.b", "a*", ">", "sp ace", "%", "%2", "%2e", "%zz", "%41", "%FF", "tab\t",
        ] {
            let error = decode_token(token).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BadInput, "{token}");
            assert!(error.message().contains("subject token"), "{error}");
        }
    }

    #[test]
    fn sites_are_checked() {
        for good in ["paris", "site-2", "EU_west", "a"] {
            Site::new(good).unwrap();
        }
        let long = "x".repeat(65);
        for bad in ["", "a.b", "a b", "*", ">", "été", "a/b", long.as_str()] {
            assert_eq!(
                Site::new(bad).unwrap_err().kind(),
                ErrorKind::BadInput,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn subjects_and_msg_ids() {
        let site = Site::new("paris").unwrap();
        let agent = AgentId::new("j.doe").unwrap();
        let device = DeviceId::new("PJSIP/1001").unwrap();
        assert_eq!(site.stream_name(), "OPENCTI_paris");
        assert_eq!(
            site.stream_subjects(),
            [
                "opencti.paris.events.>",
                "opencti.paris.commands.>",
                "opencti.paris.queues.>"
            ]
        );
        assert_eq!(site.all_events(), "opencti.paris.events.>");
        assert_eq!(site.agent_events(&agent), "opencti.paris.events.j%2Edoe.*");
        assert_eq!(site.queue_figures(), "opencti.paris.queues.figures");
        assert_eq!(site.queue_events(), "opencti.paris.queues.events");
        let subject = site.line_events(&agent, &device);
        assert_eq!(subject, "opencti.paris.events.j%2Edoe.PJSIP/1001");
        assert_eq!(
            site.parse_line_subject(&subject).unwrap(),
            (agent.clone(), device.clone())
        );
        let epoch = Timestamp::from_micros(17);
        assert_eq!(
            site.event_msg_id(&agent, &device, epoch, 5),
            "paris.j%2Edoe.PJSIP/1001.17.5"
        );
        assert_eq!(
            site.snapshot_msg_id(&agent, &device, epoch, 5),
            "paris.j%2Edoe.PJSIP/1001.17.snapshot.5"
        );
    }

    #[test]
    fn foreign_subjects_are_refused() {
        let site = Site::new("paris").unwrap();
        for subject in [
            "opencti.lyon.events.a.b",
            "opencti.paris.queues",
            "opencti.paris.events.a",
            "opencti.paris.events.a.b.c",
            "opencti.paris.events.a%2.b",
            "opencti.paris.events.sp%20ace.b",
        ] {
            let error = site.parse_line_subject(subject).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BadInput, "{subject}");
        }
    }
}
