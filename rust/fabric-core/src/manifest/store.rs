//! [`PropertyStore`]: the client side of the manifest. Keeps, per entity and word, the newest
//! value received and its sequence number; a value whose sequence number is not newer than the
//! one held (a reordered datagram, a resent snapshot, a duplicate) is dropped and counted, so an
//! older value never overwrites a newer one whatever order they arrive in.
//!
//! Values are kept by global id, not by replication handle: a `props` message on the reliable
//! stream may arrive before or after the datagram that makes the entity visible, and the
//! client applies the values to the entity's node whenever it exists. They are forgotten with
//! [`PropertyStore::forget`] (the client node does it when an entity leaves its view; a
//! snapshot comes with the next enter).

use std::collections::HashMap;

use super::{FIRST_PROPERTY_WORD, LAST_PROPERTY_WORD, PropertyValue};
use crate::entity_row::PAYLOAD_WORDS;

/// What [`PropertyStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The first value of this word, or a newer one that differs: the game should see it.
    Changed,
    /// A newer sequence number with the value already held (a snapshot from another zone).
    Same,
    /// Not newer than the value held: dropped.
    Stale,
    /// A word outside 1..=13: dropped.
    BadWord,
}

#[derive(Debug, Clone, Copy, Default)]
struct Stored {
    values: [u32; PAYLOAD_WORDS],
    seqs: [u64; PAYLOAD_WORDS],
    /// Bit `w`: word `w` holds a value.
    has: u16,
}

/// The client side of the manifest. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct PropertyStore {
    entities: HashMap<u32, Stored>,
    stale: u64,
}

impl PropertyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one value of `entity`.
    pub fn apply(&mut self, entity: u32, v: &PropertyValue) -> StoreOutcome {
        if !(FIRST_PROPERTY_WORD..=LAST_PROPERTY_WORD).contains(&v.word) {
            return StoreOutcome::BadWord;
        }
        let w = usize::from(v.word);
        let s = self.entities.entry(entity).or_default();
        let held = s.has & (1 << w) != 0;
        if held && v.seq <= s.seqs[w] {
            self.stale += 1;
            return StoreOutcome::Stale;
        }
        let same = held && s.values[w] == v.value;
        s.values[w] = v.value;
        s.seqs[w] = v.seq;
        s.has |= 1 << w;
        if same {
            StoreOutcome::Same
        } else {
            StoreOutcome::Changed
        }
    }

    /// The value of `word` of `entity`, if one arrived.
    pub fn get(&self, entity: u32, word: u8) -> Option<u32> {
        let s = self.entities.get(&entity)?;
        let w = usize::from(word);
        (w < PAYLOAD_WORDS && s.has & (1 << w) != 0).then(|| s.values[w])
    }

    /// Every `(word, value)` held for `entity`, lowest word first.
    pub fn values(&self, entity: u32) -> impl Iterator<Item = (u8, u32)> + '_ {
        let s = self.entities.get(&entity);
        (1..PAYLOAD_WORDS).filter_map(move |w| {
            let s = s?;
            (s.has & (1 << w) != 0).then(|| (w as u8, s.values[w]))
        })
    }

    /// Forgets `entity` (it left the view).
    pub fn forget(&mut self, entity: u32) {
        self.entities.remove(&entity);
    }

    /// Forgets everything (the session ended).
    pub fn clear(&mut self) {
        self.entities.clear();
    }

    /// Values dropped as stale so far.
    pub fn stale_dropped(&self) -> u64 {
        self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(word: u8, seq: u64, value: u32) -> PropertyValue {
        PropertyValue { word, seq, value }
    }

    #[test]
    fn an_older_value_never_overwrites_a_newer_one() {
        let mut s = PropertyStore::new();
        assert_eq!(
            s.apply(5, &v(1, 10, 7)),
            StoreOutcome::Changed,
            "first value"
        );
        assert_eq!(s.apply(5, &v(1, 12, 8)), StoreOutcome::Changed);
        assert_eq!(
            s.apply(5, &v(1, 11, 9)),
            StoreOutcome::Stale,
            "reordered: older"
        );
        assert_eq!(s.apply(5, &v(1, 12, 8)), StoreOutcome::Stale, "duplicate");
        assert_eq!(s.get(5, 1), Some(8));
        assert_eq!(
            s.apply(5, &v(1, 20, 8)),
            StoreOutcome::Same,
            "newer, same value"
        );
        assert_eq!(
            s.apply(5, &v(2, 1, 3)),
            StoreOutcome::Changed,
            "words are independent"
        );
        assert_eq!(
            s.apply(5, &v(0, 99, 3)),
            StoreOutcome::BadWord,
            "word 0 is the class"
        );
        assert_eq!(s.apply(5, &v(14, 99, 3)), StoreOutcome::BadWord);
        assert_eq!(s.values(5).collect::<Vec<_>>(), vec![(1, 8), (2, 3)]);
        assert_eq!(s.stale_dropped(), 2);
        s.forget(5);
        assert_eq!(s.get(5, 1), None);
        assert_eq!(
            s.apply(5, &v(1, 1, 1)),
            StoreOutcome::Changed,
            "forgotten: anew"
        );
    }

    proptest! {
        /// Whatever order (and however many copies) the values of a word arrive in, the store
        /// ends with the newest one, and what it holds never goes back to an older sequence.
        #[test]
        fn any_arrival_order_ends_with_the_newest(
            values in proptest::collection::vec(any::<u32>(), 1..20),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
        ) {
            // Value i has sequence number i + 1; every value arrives at least once.
            let sent: Vec<PropertyValue> = values
                .iter()
                .enumerate()
                .map(|(i, &x)| v(3, i as u64 + 1, x))
                .collect();
            let mut arrivals: Vec<PropertyValue> = order.iter().map(|i| sent[i.index(sent.len())]).collect();
            arrivals.extend(sent.iter().copied());
            let mut s = PropertyStore::new();
            let mut newest = 0u64;
            for a in &arrivals {
                let out = s.apply(9, a);
                if a.seq <= newest {
                    prop_assert_eq!(out, StoreOutcome::Stale);
                } else {
                    newest = a.seq;
                }
                prop_assert_eq!(s.get(9, 3), Some(sent[newest as usize - 1].value));
            }
            prop_assert_eq!(s.get(9, 3), Some(*values.last().unwrap()));
        }
    }
}
