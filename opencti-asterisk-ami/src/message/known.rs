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
pub(crate) const KNOWN_KEYS: [(Known, &str); KNOWN] = [
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

/// Bit 5 of every byte: for a letter, the bit that makes it lower case.
const FOLD: u64 = 0x2020_2020_2020_2020;

/// Longest key [`known_number`] can classify, in bytes: the longest well-known key is
/// 21 (`DestConnectedLineName`), and a decoder that reads three words from a line's
/// start finds the `:` after a key of up to 23 in them.
pub(crate) const LONGEST_KEY: usize = 23;

/// Spreads a key's folded words over the table's 64 slots: one multiply, chosen so
/// that the well-known keys all fall in slots of their own (`SLOTS` checks it when
/// compiling).
const HASH_MUL: u64 = 0xb0dd_caa6_a6ed_5237;

#[inline]
const fn slot(key: [u64; 3]) -> usize {
    ((key[0] ^ key[1] ^ key[2]).wrapping_mul(HASH_MUL) >> 58) as usize
}

/// For each key length up to [`LONGEST_KEY`], the masks that keep a key's bytes of its
/// three little-endian words and clear what follows it.
const KEY_MASKS: [[u64; 3]; LONGEST_KEY + 1] = {
    let mut masks = [[0u64; 3]; LONGEST_KEY + 1];
    let mut len = 0;
    while len <= LONGEST_KEY {
        let mut w = 0;
        while w < 3 {
            let bytes = len.saturating_sub(8 * w);
            masks[len][w] = if bytes >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * bytes)) - 1
            };
            w += 1;
        }
        len += 1;
    }
    masks
};

/// One slot of the table: a well-known key's folded words and number ([`NOT_KNOWN`]
/// and no key in an empty slot).
#[derive(Clone, Copy)]
struct Slot {
    key: [u64; 3],
    known: u8,
}

/// The well-known keys by [`slot`]. Two keys in one slot fail the build.
const SLOTS: [Slot; 64] = {
    let empty = Slot {
        key: [0; 3],
        known: NOT_KNOWN,
    };
    let mut table = [empty; 64];
    let mut i = 0;
    while i < KNOWN {
        let name = KNOWN_KEYS[i].1.as_bytes();
        assert!(name.len() <= LONGEST_KEY, "a well-known key is too long");
        let mut key = [0u64; 3];
        let mut j = 0;
        while j < name.len() {
            key[j / 8] |= ((name[j] | 0x20) as u64) << (8 * (j % 8));
            j += 1;
        }
        let s = slot(key);
        assert!(
            table[s].known == NOT_KNOWN,
            "two well-known keys share a slot"
        );
        table[s] = Slot {
            key,
            known: i as u8,
        };
        i += 1;
    }
    table
};

/// [`known_number`]'s answer for a key that is not well-known.
pub(crate) const NOT_KNOWN: u8 = u8::MAX;

/// The number of the [`Known`] key of `len` bytes whose first 24 bytes are `words`
/// (little-endian; what lies past the key in them is ignored), or [`NOT_KNOWN`]
/// (always for a `len` of 0 or over [`LONGEST_KEY`]). Keys are letters only, so
/// comparing the folded words is comparing ASCII case-insensitively, lengths included.
#[inline]
pub(crate) fn known_number(words: [u64; 3], len: usize) -> u8 {
    let Some(masks) = KEY_MASKS.get(len) else {
        return NOT_KNOWN;
    };
    let key = [
        (words[0] | FOLD) & masks[0],
        (words[1] | FOLD) & masks[1],
        (words[2] | FOLD) & masks[2],
    ];
    let slot = &SLOTS[slot(key)];
    let differ = (slot.key[0] ^ key[0]) | (slot.key[1] ^ key[1]) | (slot.key[2] ^ key[2]);
    if differ == 0 {
        slot.known
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
    let len = key.len();
    // Overlapping loads rather than a copy: a key's bytes past a whole word are read
    // from its last 8 bytes, shifted down.
    let words = match len {
        16..=LONGEST_KEY => [word(&key[..8]), word(&key[8..16]), tail(key, 16)],
        8..=15 => [word(&key[..8]), tail(key, 8), 0],
        4..=7 => {
            let first = u64::from(word32(&key[..4]));
            let last = u64::from(word32(&key[len - 4..])) << (8 * (len - 4));
            [first | last, 0, 0]
        }
        // No well-known key is shorter than 5 bytes.
        _ => return None,
    };
    known_of(known_number(words, len))
}

/// The bytes of `key` from `at` (at most 8 of them, `key` at least 8 long) as a
/// little-endian word.
#[inline]
fn tail(key: &[u8], at: usize) -> u64 {
    let len = key.len();
    word(key.get(len.saturating_sub(8)..).unwrap_or_default())
        .checked_shr(8 * (8 - (len - at).min(8)) as u32)
        .unwrap_or(0)
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

    /// Indexes every header of the message `text` (`spans` into it).
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
