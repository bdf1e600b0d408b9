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
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // The tail's length goes in its free top byte, so that trailing zero bytes
            // do not hash like no bytes.
            let mut w = (rest.len() as u64) << 56;
            for (i, b) in rest.iter().enumerate() {
                w |= u64::from(*b) << (8 * i);
            }
            self.mix(w);
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
}
