//! The ghost table: the latest interest row of every entity neighbours broadcast into this
//! zone's AOI band, ready for clients near a border.
//!
//! Fixed size (allocated once): an open-addressing hash table keyed by global id with linear
//! probing and backward-shift deletion, so lookups, refreshes and expiries never allocate and
//! never leave tombstones. A row that is not refreshed for `ttl` ticks (its entity left the band,
//! migrated here, or its zone went quiet) is dropped by [`GhostTable::expire`]. When the table
//! is full a new entity's row is refused and counted, while known entities keep refreshing.

use crate::entity_row::{EntityRow, ROW_LEN, RowBatchHeader};
use crate::wire::WireError;
use crate::zones::ZoneId;

/// One kept row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ghost {
    /// The row as last received.
    pub row: EntityRow,
    /// Zone that sent it.
    pub from: ZoneId,
    /// Tick it was last refreshed.
    pub seen_tick: u64,
}

/// Counters of a ghost table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GhostStats {
    /// Rows stored or refreshed.
    pub rows: u64,
    /// New entities refused because the table was full.
    pub refused_full: u64,
    /// Rows dropped for not being refreshed in time.
    pub expired: u64,
}

/// Fixed-size table of neighbours' rows.
///
/// Structure of arrays: probing and expiry read only the packed keys and the refresh ticks
/// (12 bytes a slot, so a table for thousands of rows stays in cache), and a row is touched
/// only when it is stored or read. With rows inline (about 130 bytes a slot) every probe and
/// every expiry scan walked megabytes.
#[derive(Debug, Clone)]
pub struct GhostTable {
    /// `EMPTY`, or `OCCUPIED | global_id`.
    keys: Vec<u64>,
    seen: Vec<u64>,
    from: Vec<ZoneId>,
    rows: Vec<EntityRow>,
    mask: usize,
    len: usize,
    max_len: usize,
    ttl: u64,
    stats: GhostStats,
}

/// A free slot's key.
const EMPTY: u64 = 0;
/// Set in the key of a held slot (global id 0 is a valid key).
const OCCUPIED: u64 = 1 << 32;

fn hash(gid: u32) -> usize {
    // Fibonacci hashing spreads consecutive ids: the middle bits of the 64-bit product (the
    // table masks the low bits of this). Rotating a 32-bit product left by 7 in a `usize`, as
    // before, left the low 7 bits zero: one home slot in 128, long probe runs.
    (u64::from(gid).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as usize
}

impl GhostTable {
    /// A table for up to `max_rows` entities whose rows expire `ttl_ticks` after their last
    /// refresh.
    pub fn new(max_rows: usize, ttl_ticks: u64) -> Self {
        // Load factor at most 1/2 keeps probe runs short.
        let size = (max_rows.max(1) * 2).next_power_of_two();
        let blank = EntityRow {
            global_id: 0,
            position: [crate::coords::micros(0); 3],
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            payload: [0; crate::entity_row::PAYLOAD_WORDS],
        };
        Self {
            keys: vec![EMPTY; size],
            seen: vec![0; size],
            from: vec![0; size],
            rows: vec![blank; size],
            mask: size - 1,
            len: 0,
            max_len: max_rows.max(1),
            ttl: ttl_ticks.max(1),
            stats: GhostStats::default(),
        }
    }

    /// Entities held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entity is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most entities held.
    pub fn max_rows(&self) -> usize {
        self.max_len
    }

    /// Counters.
    pub fn stats(&self) -> GhostStats {
        self.stats
    }

    fn find(&self, gid: u32) -> Result<usize, usize> {
        let key = OCCUPIED | u64::from(gid);
        let mut i = hash(gid) & self.mask;
        loop {
            match self.keys[i] {
                EMPTY => return Err(i),
                k if k == key => return Ok(i),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    fn ghost_at(&self, i: usize) -> Ghost {
        Ghost {
            row: self.rows[i],
            from: self.from[i],
            seen_tick: self.seen[i],
        }
    }

    /// Stores or refreshes `row` from `from` at `tick`. Returns false when the table is full and
    /// the entity is new (counted in [`GhostStats::refused_full`]).
    pub fn upsert(&mut self, from: ZoneId, row: EntityRow, tick: u64) -> bool {
        let i = match self.find(row.global_id) {
            Ok(i) => i,
            Err(_) if self.len >= self.max_len => {
                self.stats.refused_full += 1;
                return false;
            }
            Err(i) => {
                self.keys[i] = OCCUPIED | u64::from(row.global_id);
                self.len += 1;
                i
            }
        };
        self.rows[i] = row;
        self.from[i] = from;
        self.seen[i] = tick;
        self.stats.rows += 1;
        true
    }

    /// Stores every row of a row batch received at `tick` (what a neighbour's
    /// [`crate::zone::Zone::emit_interest_rows`] sends). Returns the rows stored; a malformed
    /// batch is refused whole, before any row is stored.
    pub fn absorb(&mut self, bytes: &[u8], tick: u64) -> Result<usize, WireError> {
        let (head, rows) = RowBatchHeader::decode(bytes)?;
        // Decode everything first, so a bad row in the middle changes nothing.
        let mut decoded = [None; crate::entity_row::MAX_ROWS_PER_BATCH];
        for (d, chunk) in decoded.iter_mut().zip(rows.chunks_exact(ROW_LEN)) {
            *d = Some(EntityRow::decode(chunk)?);
        }
        let mut stored = 0;
        for row in decoded.into_iter().flatten() {
            stored += usize::from(self.upsert(head.from_zone, row, tick));
        }
        Ok(stored)
    }

    /// The row of `global_id`, if held.
    pub fn get(&self, global_id: u32) -> Option<Ghost> {
        self.find(global_id).ok().map(|i| self.ghost_at(i))
    }

    /// Forgets `global_id` (for example when it migrated here). Returns whether it was held.
    pub fn remove(&mut self, global_id: u32) -> bool {
        match self.find(global_id) {
            Ok(i) => {
                self.delete_at(i);
                true
            }
            Err(_) => false,
        }
    }

    fn move_slot(&mut self, to: usize, from: usize) {
        self.keys[to] = self.keys[from];
        self.seen[to] = self.seen[from];
        self.from[to] = self.from[from];
        self.rows[to] = self.rows[from];
        self.keys[from] = EMPTY;
    }

    /// Backward-shift deletion: moves later members of the probe run into the hole.
    fn delete_at(&mut self, mut hole: usize) {
        self.keys[hole] = EMPTY;
        self.len -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let k = self.keys[j];
            if k == EMPTY {
                return;
            }
            let home = hash(k as u32) & self.mask;
            // Move the row at `j` back when its home is not in the cyclic interval (hole, j].
            let in_between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_between {
                self.move_slot(hole, j);
                hole = j;
            }
        }
    }

    /// Drops every row not refreshed in the last `ttl` ticks before `now`. Returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut dropped = 0;
        let mut i = 0;
        while i < self.keys.len() {
            if self.keys[i] != EMPTY && now.saturating_sub(self.seen[i]) >= self.ttl {
                // The shift may move an unvisited row into `i`: look at `i` again.
                self.delete_at(i);
                dropped += 1;
            } else {
                i += 1;
            }
        }
        self.stats.expired += dropped as u64;
        dropped
    }

    /// Every held row, in table order.
    pub fn iter(&self) -> impl Iterator<Item = Ghost> + '_ {
        (0..self.keys.len())
            .filter(|&i| self.keys[i] != EMPTY)
            .map(|i| self.ghost_at(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_the_home_slots() {
        let t = GhostTable::new(2048, 20);
        let mut homes: Vec<usize> = (1..=2048u32).map(|g| hash(g) & t.mask).collect();
        homes.sort_unstable();
        homes.dedup();
        // 2,048 ids into 4,096 slots: a uniform hash leaves about 1,600 distinct homes.
        assert!(homes.len() > 1400, "{} distinct home slots", homes.len());
        let odd = homes.iter().filter(|h| *h % 2 == 1).count();
        assert!(odd > 500, "low bits vary: {odd} odd home slots");
    }
    use crate::coords::metres;
    use crate::entity_row::{MAX_ROWS_PER_BATCH, ROW_BATCH_HEADER_LEN};

    fn row(gid: u32, x: i64) -> EntityRow {
        EntityRow {
            global_id: gid,
            position: [metres(x), metres(0), metres(0)],
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            payload: [0; 14],
        }
    }

    fn batch(from: ZoneId, rows: &[EntityRow]) -> Vec<u8> {
        let mut out = RowBatchHeader {
            from_zone: from,
            count: rows.len() as u8,
        }
        .encode()
        .to_vec();
        for r in rows {
            out.extend_from_slice(&r.to_bytes());
        }
        out
    }

    #[test]
    fn keeps_the_latest_row_and_expires_stale_ones() {
        let mut t = GhostTable::new(8, 10);
        assert_eq!(t.absorb(&batch(1, &[row(5, 1), row(6, 2)]), 100), Ok(2));
        assert_eq!(t.absorb(&batch(2, &[row(5, 3)]), 105), Ok(1));
        let g = t.get(5).expect("entity 5 kept");
        assert_eq!(g.row.position[0], metres(3), "latest row wins");
        assert_eq!((g.from, g.seen_tick), (2, 105), "sender and tick recorded");
        assert_eq!(t.len(), 2);
        assert_eq!(t.expire(110), 1, "6 (seen at 100) is 10 ticks old at 110");
        assert!(t.get(6).is_none(), "6 expired");
        assert!(t.get(5).is_some(), "5 was refreshed at 105");
        assert_eq!(t.expire(115), 1, "then 5 expires too");
        assert!(t.is_empty());
        assert_eq!(t.stats().expired, 2);
    }

    #[test]
    fn full_table_refuses_new_entities_but_refreshes_known_ones() {
        let mut t = GhostTable::new(3, 100);
        for gid in 1..=3 {
            assert!(t.upsert(0, row(gid, 0), 1), "room for {gid}");
        }
        assert!(!t.upsert(0, row(4, 0), 1), "a fourth entity is refused");
        assert!(t.upsert(0, row(2, 9), 2), "a known one refreshes");
        assert_eq!(t.get(2).map(|g| g.row.position[0]), Some(metres(9)));
        assert_eq!(t.stats().refused_full, 1);
        assert!(t.remove(2));
        assert!(t.upsert(0, row(4, 0), 3), "room again after a removal");
    }

    #[test]
    fn bad_batches_change_nothing() {
        let mut t = GhostTable::new(8, 10);
        let mut b = batch(1, &[row(1, 0), row(2, 0)]);
        assert!(t.absorb(&b[..b.len() - 1], 1).is_err(), "truncated batch");
        b[0] = 0;
        assert!(t.absorb(&b, 1).is_err(), "wrong kind");
        assert!(t.absorb(&[], 1).is_err(), "empty input");
        assert!(t.is_empty(), "nothing stored from bad input");
        let full = batch(1, &vec![row(1, 0); MAX_ROWS_PER_BATCH]);
        assert_eq!(
            full.len(),
            ROW_BATCH_HEADER_LEN + MAX_ROWS_PER_BATCH * ROW_LEN
        );
        assert_eq!(
            t.absorb(&full, 1),
            Ok(MAX_ROWS_PER_BATCH),
            "a full batch is fine"
        );
        assert_eq!(t.len(), 1, "same id eleven times is one entity");
    }

    #[test]
    fn matches_a_map_under_random_churn() {
        use crate::sim::rng::SimRng;
        use std::collections::BTreeMap;
        let mut rng = SimRng::new(9);
        let mut t = GhostTable::new(64, 20);
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        for tick in 0..2_000u64 {
            for _ in 0..8 {
                let gid = rng.below(200) as u32;
                let known = model.contains_key(&gid);
                let stored = t.upsert(0, row(gid, 0), tick);
                assert_eq!(stored, known || model.len() < 64, "tick {tick} gid {gid}");
                if stored {
                    model.insert(gid, tick);
                }
            }
            if rng.chance_ppm(100_000) {
                let gid = rng.below(200) as u32;
                assert_eq!(t.remove(gid), model.remove(&gid).is_some(), "remove {gid}");
            }
            let before = model.len();
            model.retain(|_, seen| tick.saturating_sub(*seen) < 20);
            assert_eq!(t.expire(tick), before - model.len(), "expired at {tick}");
            assert_eq!(t.len(), model.len(), "same size at {tick}");
            for (gid, seen) in &model {
                assert_eq!(t.get(*gid).map(|g| g.seen_tick), Some(*seen), "gid {gid}");
            }
        }
    }
}
