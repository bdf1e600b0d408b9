//! The header keys the connector reads on every event, and where a message has them:
//! each key is classified once, while the decoder reads its line, so that looking one
//! up later is one index read instead of a scan of the headers.

use super::Span;

/// The header keys the connector looks up on every event, classified once when a
/// message is decoded. The channel snapshot keys (`Uniqueid` to `ConnectedLineName`)
/// come a second time with Asterisk's `Dest` prefix, [`DEST`] places further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Known {
    Event,
    Response,
    ActionId,
    Uniqueid,
    Linkedid,
    Channel,
    ChannelState,
    Exten,
    Context,
    CallerIdNum,
    CallerIdName,
    ConnectedLineNum,
    ConnectedLineName,
    DestUniqueid,
    DestLinkedid,
    DestChannel,
    DestChannelState,
    DestExten,
    DestContext,
    DestCallerIdNum,
    DestCallerIdName,
    DestConnectedLineNum,
    DestConnectedLineName,
    BridgeUniqueid,
    BridgeType,
    DialStatus,
    DialString,
    Cause,
    EventList,
    Message,
    Interface,
    Queue,
    Location,
}

/// Number of [`Known`] keys.
pub(crate) const KNOWN: usize = 33;

/// How far the `Dest` variant of a snapshot key is from the plain one.
pub(crate) const DEST: u8 = Known::DestUniqueid as u8 - Known::Uniqueid as u8;

/// Every [`Known`] key, by its number, with its name as Asterisk spells it.
const KNOWN_KEYS: [(Known, &str); KNOWN] = [
    (Known::Event, "Event"),
    (Known::Response, "Response"),
    (Known::ActionId, "ActionID"),
    (Known::Uniqueid, "Uniqueid"),
    (Known::Linkedid, "Linkedid"),
    (Known::Channel, "Channel"),
    (Known::ChannelState, "ChannelState"),
    (Known::Exten, "Exten"),
    (Known::Context, "Context"),
    (Known::CallerIdNum, "CallerIDNum"),
    (Known::CallerIdName, "CallerIDName"),
    (Known::ConnectedLineNum, "ConnectedLineNum"),
    (Known::ConnectedLineName, "ConnectedLineName"),
    (Known::DestUniqueid, "DestUniqueid"),
    (Known::DestLinkedid, "DestLinkedid"),
    (Known::DestChannel, "DestChannel"),
    (Known::DestChannelState, "DestChannelState"),
    (Known::DestExten, "DestExten"),
    (Known::DestContext, "DestContext"),
    (Known::DestCallerIdNum, "DestCallerIDNum"),
    (Known::DestCallerIdName, "DestCallerIDName"),
    (Known::DestConnectedLineNum, "DestConnectedLineNum"),
    (Known::DestConnectedLineName, "DestConnectedLineName"),
    (Known::BridgeUniqueid, "BridgeUniqueid"),
    (Known::BridgeType, "BridgeType"),
    (Known::DialStatus, "DialStatus"),
    (Known::DialString, "DialString"),
    (Known::Cause, "Cause"),
    (Known::EventList, "EventList"),
    (Known::Message, "Message"),
    (Known::Interface, "Interface"),
    (Known::Queue, "Queue"),
    (Known::Location, "Location"),
];

impl Known {
    /// The key as Asterisk spells it.
    pub(crate) fn name(self) -> &'static str {
        KNOWN_KEYS[self as usize].1
    }

    /// The `Dest` variant of a snapshot key (`Uniqueid` to `ConnectedLineName`) if
    /// `dest`, else the key itself.
    #[inline]
    pub(crate) fn dest_if(self, dest: bool) -> Known {
        let n = self as u8;
        if dest && (Known::Uniqueid as u8..=Known::ConnectedLineName as u8).contains(&n) {
            KNOWN_KEYS[usize::from(n + DEST)].0
        } else {
            self
        }
    }
}

/// The 8 bytes of `bytes` at `at` as a little-endian word with bit 5 of every byte set
/// (for a letter: its lower case).
#[inline]
fn folded64(bytes: &[u8], at: usize) -> u64 {
    let word = bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes);
    word | 0x2020_2020_2020_2020
}

/// The 4 bytes of `bytes` at `at`, as [`folded64`] does.
#[inline]
fn folded32(bytes: &[u8], at: usize) -> u32 {
    let word = bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes);
    word | 0x2020_2020
}

/// Whether `key` is `name` ASCII case-insensitively, for a `name` made of letters only
/// and at least 4 long: then `b | 0x20` equals a letter's lower case exactly for that
/// letter in either case, so words are compared at once (the last one overlapping the
/// one before, rather than padded).
#[inline]
fn is_name(key: &[u8], name: &str) -> bool {
    let name = name.as_bytes();
    let len = key.len();
    if len != name.len() {
        return false;
    }
    if len >= 8 {
        let mut at = 0;
        while at + 8 < len {
            if folded64(key, at) != folded64(name, at) {
                return false;
            }
            at += 8;
        }
        folded64(key, len - 8) == folded64(name, len - 8)
    } else if len >= 4 {
        folded32(key, 0) == folded32(name, 0) && folded32(key, len - 4) == folded32(name, len - 4)
    } else {
        key.iter().zip(name).all(|(k, n)| k | 0x20 == n | 0x20)
    }
}

/// Bit 5 of every byte: for a letter, the bit that makes it lower case.
const FOLD: u64 = 0x2020_2020_2020_2020;
/// Spreads a key's words (the second rotated into the first) over the table's 64 slots:
/// one multiply, chosen so that the well-known keys of up to 16 bytes all fall in slots
/// of their own (`SLOTS` checks it when compiling).
const HASH_MUL: u64 = 0x6604_f7f3_87a2_8657;

#[inline]
const fn slot(lo: u64, hi: u64) -> usize {
    ((lo ^ hi.rotate_left(29)).wrapping_mul(HASH_MUL) >> 58) as usize
}

/// The well-known keys of up to 16 bytes by [`slot`]: their folded words and number
/// (`u8::MAX` for an empty slot). Two keys in one slot fail the build.
const SLOTS: [(u64, u64, u8); 64] = {
    let mut table = [(0u64, 0u64, u8::MAX); 64];
    let mut i = 0;
    while i < KNOWN {
        let name = KNOWN_KEYS[i].1.as_bytes();
        if name.len() <= 16 {
            let (mut lo, mut hi) = (0u64, 0u64);
            let mut j = 0;
            while j < name.len() {
                let byte = (name[j] | 0x20) as u64;
                if j < 8 {
                    lo |= byte << (8 * j);
                } else {
                    hi |= byte << (8 * (j - 8));
                }
                j += 1;
            }
            let s = slot(lo, hi);
            assert!(table[s].2 == u8::MAX, "two well-known keys share a slot");
            table[s] = (lo, hi, i as u8);
        }
        i += 1;
    }
    table
};

/// The well-known keys longer than 16 bytes.
const LONG_KEYS: [Known; 3] = [
    Known::ConnectedLineName,
    Known::DestConnectedLineNum,
    Known::DestConnectedLineName,
];

/// [`known_number`]'s answer for a key that is not well-known.
pub(crate) const NOT_KNOWN: u8 = u8::MAX;

/// The number of the [`Known`] key of `len` bytes whose first 16 bytes are `lo` and
/// `hi` (little-endian; what lies past the key in them is ignored), or [`NOT_KNOWN`]
/// (always for a `len` of 0 or over 16). Keys are letters only, so comparing the folded
/// words is comparing ASCII case-insensitively, lengths included.
#[inline]
pub(crate) fn known_number(lo: u64, hi: u64, len: usize) -> u8 {
    let lo_mask = u64::MAX
        .checked_shr(8 * (8 - len.min(8)) as u32)
        .unwrap_or(0);
    let hi_mask = if len > 16 {
        0
    } else {
        u64::MAX
            .checked_shr(8 * (16 - len.max(8)) as u32)
            .unwrap_or(0)
    };
    let (lo, hi) = ((lo | FOLD) & lo_mask, (hi | FOLD) & hi_mask);
    let (name_lo, name_hi, known) = SLOTS[slot(lo, hi)];
    if name_lo == lo && name_hi == hi && len <= 16 {
        known
    } else {
        NOT_KNOWN
    }
}

/// The [`Known`] key with number `n`, if any.
#[inline]
fn known_of(n: u8) -> Option<Known> {
    KNOWN_KEYS.get(usize::from(n)).map(|&(k, _)| k)
}

/// The [`Known`] key `key` is (ASCII case-insensitive), if any.
#[inline]
pub(crate) fn classify(key: &[u8]) -> Option<Known> {
    match key.len() {
        len @ 8..=16 => {
            // The last 8 bytes, shifted so that the key's bytes past its first 8 come
            // first (overlapping loads, no copy).
            let last = word(&key[len - 8..])
                .checked_shr(8 * (16 - len) as u32)
                .unwrap_or(0);
            known_of(known_number(word(&key[..8]), last, len))
        }
        len @ 4..=7 => {
            let first = u64::from(word32(&key[..4]));
            let last = u64::from(word32(&key[len - 4..])) << (8 * (len - 4));
            known_of(known_number(first | last, 0, len))
        }
        17 | 20 | 21 => LONG_KEYS.iter().copied().find(|k| is_name(key, k.name())),
        _ => None,
    }
}

/// Four bytes as a little-endian word.
#[inline]
fn word32(bytes: &[u8]) -> u32 {
    <[u8; 4]>::try_from(bytes).map_or(0, u32::from_le_bytes)
}

/// Eight bytes as a little-endian word.
#[inline]
pub(crate) fn word(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_le_bytes)
}

/// In a message's index: the key is absent.
pub(super) const ABSENT: u8 = 0;
/// In a message's index: the key's first header is past the index's reach (the 255th
/// header or later); look it up by scanning.
pub(super) const FAR: u8 = u8::MAX;

/// Where a message's [`Known`] keys are: for each, 0 (absent), its first header's
/// position plus one, or [`FAR`]; and whether one of them appears more than once (or
/// far), for the lookups that want the last of repeated headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownIndex {
    pub(super) first: [u8; KNOWN],
    pub(super) repeats: bool,
}

impl Default for KnownIndex {
    fn default() -> Self {
        KnownIndex {
            first: [ABSENT; KNOWN],
            repeats: false,
        }
    }
}

impl KnownIndex {
    /// Notes the header at `position` whose key is the [`Known`] key numbered `known`
    /// (nothing for [`NOT_KNOWN`]).
    #[inline]
    pub(crate) fn note(&mut self, known: u8, position: usize) {
        let Some(slot) = self.first.get_mut(usize::from(known)) else {
            return;
        };
        if *slot != ABSENT {
            self.repeats = true;
        } else if position < usize::from(FAR - 1) {
            *slot = position as u8 + 1;
        } else {
            *slot = FAR;
            self.repeats = true;
        }
    }

    /// Indexes every header of `text` (`spans` into it).
    pub(crate) fn of_spans(text: &str, spans: &[Span]) -> KnownIndex {
        let mut index = KnownIndex::default();
        for (i, span) in spans.iter().enumerate() {
            let key = text
                .as_bytes()
                .get(span.key_start as usize..span.key_end as usize)
                .unwrap_or_default();
            index.note(classify(key).map_or(NOT_KNOWN, |k| k as u8), i);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_keys_are_classified_exactly() {
        for (i, &(known, name)) in KNOWN_KEYS.iter().enumerate() {
            assert_eq!(known as usize, i, "{name} in its place");
            assert_eq!(classify(name.as_bytes()), Some(known), "{name}");
            assert_eq!(classify(name.to_uppercase().as_bytes()), Some(known));
            assert_eq!(classify(name.to_lowercase().as_bytes()), Some(known));
            assert_eq!(known.name(), name);
            // One byte more, one less, or one changed: not the key.
            assert_eq!(classify(format!("{name}x").as_bytes()), None, "{name}x");
            assert_eq!(classify(&name.as_bytes()[1..]), None, "{name} shortened");
            let mut changed = name.as_bytes().to_vec();
            let last = changed.len() - 1;
            changed[last] ^= 0x01;
            assert_eq!(classify(&changed), None, "{name} changed");
            // A byte that is no letter in place of the last letter.
            changed[last] = name.as_bytes()[last] ^ 0x60;
            assert_eq!(classify(&changed), None, "{name} with a non-letter");
        }
        for other in [
            "",
            "E",
            "Even",
            "Cause-txt",
            "Privilege",
            "Dest",
            "DestBridgeUniqueid",
            "ChannelStateDesc",
            "DestChannelStateDesc",
            "Event\u{e9}",
            "Ev\0nt",
            "Evenu",
        ] {
            assert_eq!(classify(other.as_bytes()), None, "{other}");
        }
        assert_eq!(Known::Uniqueid.dest_if(true), Known::DestUniqueid);
        assert_eq!(
            Known::ConnectedLineName.dest_if(true),
            Known::DestConnectedLineName
        );
        assert_eq!(Known::Event.dest_if(true), Known::Event);
        assert_eq!(Known::Channel.dest_if(false), Known::Channel);
    }
}
