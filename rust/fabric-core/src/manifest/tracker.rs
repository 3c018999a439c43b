//! [`PropertyTracker`]: the zone side of the manifest. Each tick the zone shows it the payload of
//! every entity it holds (its own and the neighbours' ghost rows); the tracker keeps the last
//! value of every replicated word with its sequence number (the tick at which the zone first
//! held that value) and lists the words that changed:
//!
//! - `reliable_on_change` words that changed this tick ([`PropertyTracker::changes`]): each is
//!   sent once, reliably, to every client that has the entity in view;
//! - `high_rate_unreliable` words that changed this tick, or that were not sent for
//!   `refresh_ticks` ([`PropertyTracker::unreliable`]): sent as datagrams, at most once per tick
//!   (the 20 Hz ceiling at 20 Hz), the refresh healing a lost one;
//! - `snapshot_only` words are stamped too, but only ever sent in an entity's snapshot.
//!
//! Only entities whose class replicates a word are tracked; an entity not observed in a tick is
//! gone from the zone and forgotten at [`PropertyTracker::end_tick`]. Nothing is allocated per
//! tick once the map holds the zone's entities.

use super::{Manifest, PropertyMode, PropertyValue};
use crate::client_view::id_hash::{IdMap, id_map};
use crate::entity_row::PAYLOAD_WORDS;

/// What the tracker keeps of one entity.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    words: [u32; PAYLOAD_WORDS],
    seqs: [u64; PAYLOAD_WORDS],
    /// The last tick it was observed.
    seen: u64,
    /// `high_rate_unreliable` words changed since they were last sent.
    pending: u16,
    /// The tick its unreliable words were last sent.
    last_unreliable: u64,
}

/// The zone side of the manifest. See the module documentation.
#[derive(Debug, Clone)]
pub struct PropertyTracker {
    entries: IdMap<Tracked>,
    changes: Vec<(u32, u16)>,
    unreliable: Vec<(u32, u16)>,
    tick: u64,
    refresh_ticks: u64,
}

impl PropertyTracker {
    /// A tracker with room for `capacity` entities, refreshing unreliable words every
    /// `refresh_ticks` ticks (at least 1).
    pub fn new(capacity: usize, refresh_ticks: u64) -> Self {
        Self {
            entries: id_map(capacity),
            changes: Vec::with_capacity(capacity),
            unreliable: Vec::with_capacity(capacity),
            tick: 0,
            refresh_ticks: refresh_ticks.max(1),
        }
    }

    /// Starts tick `tick`: the previous tick's lists are cleared.
    pub fn begin_tick(&mut self, tick: u64) {
        self.tick = tick;
        self.changes.clear();
        self.unreliable.clear();
    }

    /// The tick being observed.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Entity `global_id` holds `payload` this tick. An entity seen for the first time gets
    /// every word stamped with this tick and no change (its snapshot carries it); a second
    /// observation in the same tick is ignored.
    pub fn observe(&mut self, manifest: &Manifest, global_id: u32, payload: &[u32; PAYLOAD_WORDS]) {
        let class = manifest.of_word(payload[0]);
        let all = class.all();
        if all == 0 {
            return;
        }
        let tick = self.tick;
        let unreliable_words = class.mask(PropertyMode::HighRateUnreliable);
        let t = self.entries.entry(global_id).or_insert(Tracked {
            words: *payload,
            seqs: [tick; PAYLOAD_WORDS],
            seen: tick.wrapping_sub(1),
            pending: 0,
            last_unreliable: tick,
        });
        if t.seen == tick {
            return;
        }
        t.seen = tick;
        let mut changed = 0u16;
        for (w, &value) in payload.iter().enumerate().skip(1) {
            if t.words[w] != value {
                t.words[w] = value;
                t.seqs[w] = tick;
                changed |= 1 << w;
            }
        }
        t.words[0] = payload[0];
        let reliable = changed & class.mask(PropertyMode::ReliableOnChange);
        if reliable != 0 {
            self.changes.push((global_id, reliable));
        }
        t.pending |= changed & unreliable_words;
        if unreliable_words != 0
            && (t.pending != 0 || tick >= t.last_unreliable + self.refresh_ticks)
        {
            let mask = if t.pending != 0 {
                t.pending
            } else {
                unreliable_words
            };
            self.unreliable.push((global_id, mask));
            t.pending = 0;
            t.last_unreliable = tick;
        }
    }

    /// Ends the tick: entities not observed in it are forgotten.
    pub fn end_tick(&mut self) {
        let tick = self.tick;
        self.entries.retain(|_, t| t.seen == tick);
    }

    /// `(entity, words)` whose `reliable_on_change` words changed this tick.
    pub fn changes(&self) -> &[(u32, u16)] {
        &self.changes
    }

    /// `(entity, words)` whose `high_rate_unreliable` words are due this tick.
    pub fn unreliable(&self) -> &[(u32, u16)] {
        &self.unreliable
    }

    /// Whether `global_id` is tracked (held this tick, of a class that replicates a word).
    pub fn contains(&self, global_id: u32) -> bool {
        self.entries.contains_key(&global_id)
    }

    /// Every tracked entity id (in no particular order).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.keys().copied()
    }

    /// The value and sequence number of `word` of `global_id`.
    pub fn get(&self, global_id: u32, word: u8) -> Option<(u32, u64)> {
        let t = self.entries.get(&global_id)?;
        let w = usize::from(word);
        (w < PAYLOAD_WORDS).then(|| (t.words[w], t.seqs[w]))
    }

    /// Appends the values of the words in `mask` of `global_id` to `out`, lowest word first.
    pub fn values(&self, global_id: u32, mask: u16, out: &mut Vec<PropertyValue>) {
        let Some(t) = self.entries.get(&global_id) else {
            return;
        };
        for w in 1..PAYLOAD_WORDS {
            if mask & (1 << w) != 0 {
                out.push(PropertyValue {
                    word: w as u8,
                    seq: t.seqs[w],
                    value: t.words[w],
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRATE: u32 = 7 << 24;

    fn manifest() -> Manifest {
        let mut m = Manifest::new();
        m.declare(7, 1, PropertyMode::ReliableOnChange).unwrap();
        m.declare(7, 2, PropertyMode::SnapshotOnly).unwrap();
        m.declare(7, 3, PropertyMode::HighRateUnreliable).unwrap();
        m
    }

    fn payload(w1: u32, w2: u32, w3: u32) -> [u32; PAYLOAD_WORDS] {
        let mut p = [0; PAYLOAD_WORDS];
        p[0] = CRATE;
        p[1] = w1;
        p[2] = w2;
        p[3] = w3;
        p
    }

    fn tick(t: &mut PropertyTracker, m: &Manifest, n: u64, p: &[u32; PAYLOAD_WORDS]) {
        t.begin_tick(n);
        t.observe(m, 5, p);
        t.end_tick();
    }

    #[test]
    fn a_reliable_word_is_a_change_once_per_change_with_the_tick_as_seq() {
        let m = manifest();
        let mut t = PropertyTracker::new(8, 10);
        tick(&mut t, &m, 100, &payload(1, 2, 3));
        assert!(
            t.changes().is_empty(),
            "first sight: the snapshot carries it"
        );
        assert_eq!(t.get(5, 1), Some((1, 100)));
        tick(&mut t, &m, 101, &payload(1, 2, 3));
        assert!(t.changes().is_empty(), "unchanged: nothing");
        tick(&mut t, &m, 102, &payload(9, 2, 3));
        assert_eq!(t.changes(), &[(5, 1 << 1)], "word 1 changed");
        assert_eq!(t.get(5, 1), Some((9, 102)));
        tick(&mut t, &m, 103, &payload(9, 2, 3));
        assert!(t.changes().is_empty(), "sent once per change");
        tick(&mut t, &m, 104, &payload(9, 8, 3));
        assert!(
            t.changes().is_empty(),
            "a snapshot_only word is no change to send"
        );
        assert_eq!(t.get(5, 2), Some((8, 104)), "but it is stamped");
        let mut out = Vec::new();
        t.values(5, 1 << 1 | 1 << 2, &mut out);
        assert_eq!(
            out,
            vec![
                PropertyValue {
                    word: 1,
                    seq: 102,
                    value: 9
                },
                PropertyValue {
                    word: 2,
                    seq: 104,
                    value: 8
                },
            ]
        );
    }

    #[test]
    fn unreliable_words_go_on_change_at_most_once_a_tick_and_refresh() {
        let m = manifest();
        let mut t = PropertyTracker::new(8, 10);
        tick(&mut t, &m, 1, &payload(0, 0, 0));
        assert!(t.unreliable().is_empty());
        let mut due = Vec::new();
        for n in 2..=40u64 {
            // Word 3 changes every tick for ticks 2..=10, then rests.
            let w3 = if n <= 10 { n as u32 } else { 10 };
            t.begin_tick(n);
            t.observe(&m, 5, &payload(0, 0, w3));
            t.observe(&m, 5, &payload(0, 0, 99)); // a second sight in one tick: ignored
            t.end_tick();
            if !t.unreliable().is_empty() {
                assert_eq!(t.unreliable(), &[(5, 1 << 3)]);
                due.push(n);
            }
        }
        let mut want: Vec<u64> = (2..=10).collect();
        want.extend([20, 30, 40]);
        assert_eq!(
            due, want,
            "every changing tick, then a refresh every 10 ticks"
        );
        assert_eq!(t.get(5, 3), Some((10, 10)));
    }

    #[test]
    fn unmanifested_classes_are_not_tracked_and_gone_entities_are_forgotten() {
        let m = manifest();
        let mut t = PropertyTracker::new(8, 10);
        t.begin_tick(1);
        let mut other = payload(1, 1, 1);
        other[0] = 8 << 24;
        t.observe(&m, 6, &other);
        t.observe(&m, 5, &payload(1, 1, 1));
        t.end_tick();
        assert!(!t.contains(6), "class 8 replicates nothing");
        assert!(t.contains(5));
        t.begin_tick(2);
        t.end_tick();
        assert!(!t.contains(5), "not held in tick 2: forgotten");
        assert_eq!(t.ids().count(), 0);
    }
}
