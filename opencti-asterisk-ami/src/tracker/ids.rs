//! Hashing for the maps keyed by Asterisk's ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The multiplier of the mixing steps (the 64-bit golden ratio, odd).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hashes ids eight bytes at a time: ids are short strings from Asterisk
/// (`1795238031.6`, a bridge's UUID, a device interface), and SipHash's protection
/// against collision flooding costs more than it buys for maps bounded by
/// `max_entries`. Each word is mixed in with one multiply; the result is folded through
/// a 128-bit product so that its high bits (the table's tags) and its low bits (the
/// bucket) both depend on every byte.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(23);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if (8..=16).contains(&n) {
            // Most ids (`1795238031.6`): two overlapping words cover every byte, and the
            // length, added first, keeps a word repeated apart from the word once.
            self.0 = self.0.wrapping_add(n as u64);
            self.mix(word_at(bytes, 0));
            self.mix(word_at(bytes, n - 8));
            return;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(word_at(word, 0));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // The tail's length goes in its free top byte, so that trailing zero bytes
            // do not hash like no bytes.
            self.mix(((rest.len() as u64) << 56) | tail_word(rest));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.mix(u64::from(b));
    }

    #[inline]
    fn finish(&self) -> u64 {
        let folded = u128::from(self.0) * u128::from(K);
        (folded as u64) ^ ((folded >> 64) as u64)
    }
}

/// The eight bytes of `bytes` from `at` as a little-endian word (0 where there are
/// fewer).
#[inline]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// The little-endian value of a tail of at most seven bytes, read in two or three
/// overlapping loads rather than byte by byte: an overlapping byte lands where it
/// belongs either way.
#[inline]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    if let (Some(first), Some(last)) = (rest.first_chunk::<4>(), rest.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*first))
            | u64::from(u32::from_le_bytes(*last)) << (8 * (n - 4))
    } else if let (Some(&a), Some(&b), Some(&c)) = (rest.first(), rest.get(n / 2), rest.last()) {
        u64::from(a) | u64::from(b) << (8 * (n / 2)) | u64::from(c) << (8 * (n - 1))
    } else {
        0
    }
}

/// Whether two ids (or other short texts from Asterisk) are the same: up to 32 bytes
/// by comparing overlapping words inline, since for such short texts the call into
/// the C library's `memcmp` costs more than the comparison.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=7 => tail_word(a) == tail_word(b),
        8..=16 => word_at(a, 0) == word_at(b, 0) && word_at(a, n - 8) == word_at(b, n - 8),
        17..=32 => {
            word_at(a, 0) == word_at(b, 0)
                && word_at(a, 8) == word_at(b, 8)
                && word_at(a, n - 16) == word_at(b, n - 16)
                && word_at(a, n - 8) == word_at(b, n - 8)
        }
        _ => a == b,
    }
}

/// A `HashMap` keyed by Asterisk ids, with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    fn hash(text: &str) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(text)
    }

    #[test]
    fn ids_that_differ_anywhere_hash_apart() {
        let ids = [
            "1795238031.6",
            "1795238031.7",
            "2795238031.6",
            "1795238031.60",
            "1795238031.6\0",
            "",
            "\0",
            "6a91b094-7ae0-48e6-afbd-de6547d6c4ec",
            "6a91b094-7ae0-48e6-afbd-de6547d6c4ed",
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a:?} {b:?}");
            }
        }
        // Sequential ids spread over both ends of the hash.
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for n in 0..1000 {
            let h = hash(&format!("1800000{n:03}.6"));
            low.insert(h & 0x3ff);
            high.insert(h >> 57);
        }
        assert!(low.len() > 550, "{}", low.len());
        assert_eq!(high.len(), 128);
    }

    #[test]
    fn short_texts_compare_like_strings() {
        let texts = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abd",
            "xbc",
            "abcd",
            "abce",
            "abcde",
            "abcdf",
            "1795238031.6",
            "1795238031.7",
            "2795238031.6",
            "1795238031.60",
            "Local/1001@agents-00000003;1",
            "Local/1001@agents-00000003;2",
            "Mocal/1001@agents-00000003;1",
            "Local/1001@agents-00000004;1",
            "6a91b094-7ae0-48e6-afbd-de6547d6c4ec",
            "6a91b094-7ae0-48e6-afbd-de6547d6c4ed",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(same_text(a, b), a == b, "{a:?} {b:?}");
            }
        }
        // Every length up to past the word-compared ones, differing at every position.
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'-';
                let b = String::from_utf8(b).unwrap_or_default();
                assert!(!same_text(&a, &b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn the_tail_is_read_as_its_bytes() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7];
        for n in 0..=7 {
            let expected = bytes[..n]
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, b)| w | u64::from(*b) << (8 * i));
            assert_eq!(tail_word(&bytes[..n]), expected, "{n}");
        }
    }
}
