//! Hashing for the maps keyed by Asterisk's ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: ids are short strings from Asterisk, and SipHash's protection against
/// collision flooding costs more than it buys for a map bounded by `max_entries`.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by Asterisk ids, with [`Fnv`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
