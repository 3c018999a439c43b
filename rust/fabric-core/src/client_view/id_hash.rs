//! A fast hasher for the `global id -> handle` maps of views and mirrors.
//!
//! Global ids are assigned by the zones, never chosen by a client, so the maps need no defence
//! against chosen collisions (std's SipHash); a multiply by the 64-bit golden ratio spreads
//! consecutive ids over the table's high bits, which `HashMap` uses first. In the replication
//! benchmark this halves the interest pass, which looks up every candidate every tick.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes one integer key by a multiplication.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by global entity id.
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// An empty [`IdMap`] with room for `n` entries.
pub fn id_map<V>(n: usize) -> IdMap<V> {
    HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default())
}
