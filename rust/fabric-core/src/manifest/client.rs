//! [`ClientProperties`]: the zone side of one client's properties. Each tick, after the
//! [`PropertyTracker`] observed the zone's entities and the client's view updated its interest,
//! it says what to send this client:
//!
//! - [`Delivery::Snapshot`] (reliable): every replicated word of an entity that entered the
//!   view (joining, or coming near; again after it left and came back). It goes out when the
//!   zone's view takes the entity in, before the view's enter is acked, so on the reliable
//!   stream every snapshot of the late-join baseline precedes its `baseline_done` marker;
//! - [`Delivery::Reliable`]: the `reliable_on_change` words that changed this tick, for
//!   entities whose snapshot was sent before this tick (a snapshot of this tick has them);
//! - [`Delivery::Unreliable`]: the `high_rate_unreliable` words due this tick.
//!
//! `snapshot_only` words are in snapshots only. Entities that left the view are forgotten, so
//! coming back brings a new snapshot.

use super::{Manifest, PropertyTracker};
use crate::client_view::id_hash::{IdMap, id_map};

/// How a [`PropertySend`] travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The entity's snapshot (reliable stream).
    Snapshot,
    /// A change of `reliable_on_change` words (reliable stream).
    Reliable,
    /// `high_rate_unreliable` words (a datagram).
    Unreliable,
}

/// Words of one entity to send to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertySend {
    /// The entity.
    pub entity: u32,
    /// Its words, bit `w` = word `w`.
    pub mask: u16,
    /// How.
    pub delivery: Delivery,
}

/// The zone side of one client's properties. See the module documentation.
#[derive(Debug, Clone)]
pub struct ClientProperties {
    /// Entities whose snapshot was sent, and the tick it was.
    sent: IdMap<u64>,
}

impl ClientProperties {
    /// Room for `capacity` entities in view.
    pub fn new(capacity: usize) -> Self {
        Self {
            sent: id_map(capacity),
        }
    }

    /// Entities whose snapshot this client was sent and that are still in its view.
    pub fn snapshotted(&self) -> usize {
        self.sent.len()
    }

    /// One tick for this client: `in_view(id)` says whether its view holds `id` (entering or
    /// active). Appends what to send to `out`: snapshots first, then reliable changes, then
    /// unreliable words.
    pub fn tick(
        &mut self,
        tracker: &PropertyTracker,
        manifest: &Manifest,
        in_view: impl Fn(u32) -> bool,
        out: &mut Vec<PropertySend>,
    ) {
        let now = tracker.tick();
        self.sent
            .retain(|id, _| in_view(*id) && tracker.contains(*id));
        for id in tracker.ids() {
            if self.sent.contains_key(&id) || !in_view(id) {
                continue;
            }
            let Some((class_word, _)) = tracker.get(id, 0) else {
                continue;
            };
            self.sent.insert(id, now);
            out.push(PropertySend {
                entity: id,
                mask: manifest.of_word(class_word).all(),
                delivery: Delivery::Snapshot,
            });
        }
        let before = |id: u32| self.sent.get(&id).is_some_and(|&t| t < now);
        for &(entity, mask) in tracker.changes() {
            if before(entity) {
                out.push(PropertySend {
                    entity,
                    mask,
                    delivery: Delivery::Reliable,
                });
            }
        }
        for &(entity, mask) in tracker.unreliable() {
            if before(entity) {
                out.push(PropertySend {
                    entity,
                    mask,
                    delivery: Delivery::Unreliable,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity_row::PAYLOAD_WORDS;
    use crate::manifest::PropertyMode;

    fn manifest() -> Manifest {
        let mut m = Manifest::new();
        m.declare(7, 1, PropertyMode::ReliableOnChange).unwrap();
        m.declare(7, 2, PropertyMode::SnapshotOnly).unwrap();
        m.declare(7, 3, PropertyMode::HighRateUnreliable).unwrap();
        m
    }

    fn payload(w: [u32; 3]) -> [u32; PAYLOAD_WORDS] {
        let mut p = [0; PAYLOAD_WORDS];
        p[0] = 7 << 24;
        p[1..4].copy_from_slice(&w);
        p
    }

    /// One tick: the zone holds entity 5 with `w`; the client's view holds it when `visible`.
    fn step(
        t: &mut PropertyTracker,
        c: &mut ClientProperties,
        m: &Manifest,
        n: u64,
        w: [u32; 3],
        visible: bool,
    ) -> Vec<PropertySend> {
        t.begin_tick(n);
        t.observe(m, 5, &payload(w));
        t.end_tick();
        let mut out = Vec::new();
        c.tick(t, m, |id| visible && id == 5, &mut out);
        out
    }

    fn send(mask: u16, delivery: Delivery) -> Vec<PropertySend> {
        vec![PropertySend {
            entity: 5,
            mask,
            delivery,
        }]
    }

    #[test]
    fn snapshot_on_enter_changes_after_snapshot_only_never_again() {
        let m = manifest();
        let mut t = PropertyTracker::new(8, 1000);
        let mut c = ClientProperties::new(8);
        let all = 1 << 1 | 1 << 2 | 1 << 3;
        assert_eq!(
            step(&mut t, &mut c, &m, 1, [1, 1, 1], false),
            vec![],
            "not in view"
        );
        assert_eq!(
            step(&mut t, &mut c, &m, 2, [2, 1, 1], true),
            send(all, Delivery::Snapshot),
            "entering: one snapshot, the change of this tick included"
        );
        assert_eq!(step(&mut t, &mut c, &m, 3, [2, 1, 1], true), vec![]);
        assert_eq!(
            step(&mut t, &mut c, &m, 4, [3, 1, 1], true),
            send(1 << 1, Delivery::Reliable),
            "a reliable change"
        );
        assert_eq!(
            step(&mut t, &mut c, &m, 5, [3, 9, 1], true),
            vec![],
            "a snapshot_only change is not sent"
        );
        assert_eq!(
            step(&mut t, &mut c, &m, 6, [3, 9, 4], true),
            send(1 << 3, Delivery::Unreliable),
            "an unreliable change"
        );
        assert_eq!(
            step(&mut t, &mut c, &m, 7, [4, 9, 4], false),
            vec![],
            "left the view"
        );
        assert_eq!(c.snapshotted(), 0);
        assert_eq!(
            step(&mut t, &mut c, &m, 8, [4, 9, 4], true),
            send(all, Delivery::Snapshot),
            "back in view: a new snapshot (with word 2's new value)"
        );
        let mut v = Vec::new();
        t.values(5, all, &mut v);
        assert_eq!(v.iter().map(|p| p.value).collect::<Vec<_>>(), vec![4, 9, 4]);
    }
}
