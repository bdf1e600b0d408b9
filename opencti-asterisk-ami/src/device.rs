//! Which channels are whose: a device's channels by name, and the map from device
//! interfaces to the lines (agents' desks) of a link.
//!
//! Asterisk names a channel after its device and a per-channel suffix:
//! `PJSIP/1001-0000000a` is a channel of device `PJSIP/1001`. For a `Local/...` device only
//! the `;1` half counts: the `;2` half is the inside of the "phone" (in the captures,
//! `Local/1001@agents-00000003;1` is the one bridged with the caller).

use crate::tracker::IdMap;

/// The device (interface) a channel belongs to: its name without the `-<suffix>`
/// Asterisk adds per channel (and without a `Local` channel's `;1`/`;2`).
///
/// ```
/// use opencti_asterisk_ami::interface_of;
/// assert_eq!(interface_of("PJSIP/1001-0000000a"), Some("PJSIP/1001"));
/// assert_eq!(interface_of("Local/1001@agents-00000003;1"), Some("Local/1001@agents"));
/// assert_eq!(interface_of("PJSIP/front-desk-00000001"), Some("PJSIP/front-desk"));
/// assert_eq!(interface_of("Message/ast_msg_queue"), None);
/// ```
pub fn interface_of(channel: &str) -> Option<&str> {
    // Byte by byte rather than with `str`'s searches: a channel name is short, and this
    // runs for every channel that appears.
    let bytes = channel.as_bytes();
    let name = match bytes {
        [name @ .., b';', b'1' | b'2'] => name,
        _ => bytes,
    };
    let dash = name.iter().rposition(|&b| b == b'-')?;
    let slash = name[..dash].iter().position(|&b| b == b'/')?;
    // `dash` is an ASCII byte's index, so a char boundary.
    (slash > 0 && slash + 1 < dash && dash + 1 < name.len())
        .then(|| channel.get(..dash))
        .flatten()
}

/// Whether `interface` is a `Local/...` one (compared ASCII case-insensitively).
fn is_local(interface: &str) -> bool {
    interface
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("local/"))
}

/// Decides which channels are one device's.
///
/// A channel belongs to interface `PJSIP/1001` when its name is `PJSIP/1001-<suffix>`;
/// for a `Local/...` interface only the `;1` half counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceMatcher {
    interface: String,
    local: bool,
}

impl DeviceMatcher {
    /// Matches channels of `interface` (compared ASCII case-insensitively).
    pub(crate) fn new(interface: impl Into<String>) -> Self {
        let interface = interface.into();
        let local = is_local(&interface);
        DeviceMatcher { interface, local }
    }

    /// The interface.
    pub(crate) fn interface(&self) -> &str {
        &self.interface
    }

    /// Whether `interface` (a queue member's `Interface` or `Location`) is this device.
    pub(crate) fn is_interface(&self, interface: &str) -> bool {
        interface.eq_ignore_ascii_case(&self.interface)
    }
}

/// A line of a link, by its index there.
pub(crate) type LineId = u32;

/// Which line each device interface belongs to: the channel tracker asks it once per
/// channel (when the channel appears or is renamed) and keeps the answer with the
/// channel, so routing an event to its lines costs no string work.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owners {
    /// Lower-cased interface -> (line, whether only `;1` channels count).
    lines: IdMap<Box<str>, (LineId, bool)>,
    /// Reused for lower-casing.
    scratch: String,
}

impl Owners {
    fn key<'s>(scratch: &'s mut String, interface: &str) -> &'s str {
        scratch.clear();
        scratch.push_str(interface);
        scratch.make_ascii_lowercase();
        scratch
    }

    /// `interface` is `line`'s device from now on. Returns `false` if it is another
    /// line's already.
    pub(crate) fn insert(&mut self, interface: &str, line: LineId) -> bool {
        let key = Self::key(&mut self.scratch, interface);
        if self.lines.contains_key(key) {
            return false;
        }
        self.lines.insert(key.into(), (line, is_local(interface)));
        true
    }

    /// `interface` is no line's device any more.
    pub(crate) fn remove(&mut self, interface: &str) {
        let key = Self::key(&mut self.scratch, interface);
        self.lines.remove(key);
    }

    /// The line whose device is `interface` (a queue member's `Interface`).
    pub(crate) fn of_interface(&mut self, interface: &str) -> Option<LineId> {
        let key = Self::key(&mut self.scratch, interface);
        self.lines.get(key).map(|(line, _)| *line)
    }

    /// The line whose device the channel named `name` is.
    pub(crate) fn of_channel(&mut self, name: &str) -> Option<LineId> {
        let interface = interface_of(name)?;
        let key = Self::key(&mut self.scratch, interface);
        let (line, local) = *self.lines.get(key)?;
        (!local || name.ends_with(";1")).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_matching() {
        let mut owners = Owners::default();
        owners.insert("PJSIP/1001", 1);
        owners.insert("Local/1001@agents", 2);
        assert_eq!(owners.of_channel("PJSIP/1001-0000000a"), Some(1));
        assert_eq!(owners.of_channel("pjsip/1001-0000000a"), Some(1));
        assert_eq!(owners.of_channel("PJSIP/10011-0000000a"), None);
        assert_eq!(owners.of_channel("PJSIP/1001"), None);
        assert_eq!(owners.of_channel("PJSIP/100"), None);
        assert!(DeviceMatcher::new("PJSIP/1001").is_interface("pjsip/1001"));
        assert_eq!(owners.of_channel("Local/1001@agents-00000003;1"), Some(2));
        assert_eq!(
            owners.of_channel("Local/1001@agents-00000003;2"),
            None,
            "the phone's inside"
        );
        assert_eq!(owners.of_channel("Local/1001@from-agents-00000003;1"), None);
        assert_eq!(owners.of_channel("é"), None);
    }

    /// `interface_of` as it was first written, with `str`'s searches.
    fn interface_of_by_str(channel: &str) -> Option<&str> {
        let name = channel
            .strip_suffix(";1")
            .or_else(|| channel.strip_suffix(";2"))
            .unwrap_or(channel);
        let (interface, suffix) = name.rsplit_once('-')?;
        let slash = interface.find('/')?;
        (slash > 0 && slash + 1 < interface.len() && !suffix.is_empty()).then_some(interface)
    }

    #[test]
    fn interface_of_reads_names_as_the_str_searches_do() {
        let names = [
            "",
            "-",
            ";1",
            "-;1",
            "a-;1",
            "/-1",
            "a/-1",
            "a/b-",
            "a/b-;2",
            "a/b-c",
            "a/b-c;1",
            "a/b-c;2",
            "a/b-c;3",
            "/a-1",
            "a//-1",
            "a/b/c-d-e",
            "PJSIP/1001-0000000a",
            "Local/1001@agents-00000003;1",
            "Local/1001@agents-00000003;2",
            "PJSIP/front-desk-00000001",
            "Message/ast_msg_queue",
            "é/é-é",
            "é-é;1",
            "x/é-1;1",
            "SIP/x-",
            "-0001",
            "/a-0001",
            "a/-0001",
            "a-b/c",
            "a/b;1",
            "a/b-;1;1",
        ];
        for name in names {
            assert_eq!(interface_of(name), interface_of_by_str(name), "{name:?}");
        }
    }

    #[test]
    fn owners_follow_the_same_rules() {
        let mut owners = Owners::default();
        assert!(owners.insert("PJSIP/1001", 0));
        assert!(owners.insert("Local/1002@agents", 1));
        assert!(!owners.insert("pjsip/1001", 2), "one line per device");
        assert_eq!(owners.of_channel("PJSIP/1001-0000000a"), Some(0));
        assert_eq!(owners.of_channel("pjsip/1001-0000000b"), Some(0));
        assert_eq!(owners.of_channel("PJSIP/10010-0000000a"), None);
        assert_eq!(owners.of_channel("Local/1002@agents-00000003;1"), Some(1));
        assert_eq!(owners.of_channel("Local/1002@agents-00000003;2"), None);
        assert_eq!(owners.of_interface("Local/1002@Agents"), Some(1));
        owners.remove("PJSIP/1001");
        assert_eq!(owners.of_channel("PJSIP/1001-0000000a"), None);
    }
}
