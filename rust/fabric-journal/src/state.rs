//! The state a journal rebuilds: the zone's dynamic entities by global id.
//!
//! Replaying a journal is a fold of [`JournalState::apply`] over its mutations, in sequence
//! order, starting from the latest snapshot (or from nothing). `apply` is total and
//! deterministic, so a snapshot followed by the later mutations gives exactly the state that
//! replaying every mutation from the start gives (the compaction property test checks this).

use std::collections::BTreeMap;

use fabric_core::durable_handoff::HandoffMark;
use fabric_core::entity::Entity;

use crate::mutation::Mutation;

/// Dynamic entities by global id, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    entities: BTreeMap<u32, Entity>,
    /// Hand-off marks of entities in `entities`.
    marks: BTreeMap<u32, HandoffMark>,
}

impl JournalState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one mutation.
    ///
    /// - a spawn inserts the entity, replacing one with the same id (a respawn);
    /// - a despawn removes the entity, and does nothing when none has that id;
    /// - a payload update replaces the payload words, and does nothing when no entity has that
    ///   id (it was despawned earlier in the same batch: the despawn wins);
    /// - a mark is set on an entity present (ignored otherwise); an unmark or a despawn clears
    ///   it; a spawn keeps it (an arrival's spawn and its mark come in either order).
    pub fn apply(&mut self, mutation: &Mutation) {
        match mutation {
            Mutation::Spawn(e) => {
                self.entities.insert(e.global_id, *e);
            }
            Mutation::Despawn { global_id } => {
                self.entities.remove(global_id);
                self.marks.remove(global_id);
            }
            Mutation::Mark { global_id, mark } => {
                if self.entities.contains_key(global_id) {
                    self.marks.insert(*global_id, *mark);
                }
            }
            Mutation::Unmark { global_id } => {
                self.marks.remove(global_id);
            }
            Mutation::PayloadUpdate { global_id, payload } => {
                if let Some(e) = self.entities.get_mut(global_id) {
                    e.payload = *payload;
                }
            }
        }
    }

    /// Inserts an entity as loaded from a snapshot.
    pub fn insert(&mut self, entity: Entity) {
        self.entities.insert(entity.global_id, entity);
    }

    /// Sets a mark as loaded from a snapshot (ignored when no entity has that id).
    pub fn insert_mark(&mut self, global_id: u32, mark: HandoffMark) {
        if self.entities.contains_key(&global_id) {
            self.marks.insert(global_id, mark);
        }
    }

    /// The hand-off mark of `global_id`, if any.
    pub fn mark(&self, global_id: u32) -> Option<HandoffMark> {
        self.marks.get(&global_id).copied()
    }

    /// The marked entities' ids and marks, in id order.
    pub fn marks(&self) -> impl ExactSizeIterator<Item = (u32, HandoffMark)> + '_ {
        self.marks.iter().map(|(id, m)| (*id, *m))
    }

    /// The entity with `global_id`, if any.
    pub fn get(&self, global_id: u32) -> Option<&Entity> {
        self.entities.get(&global_id)
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether there is no entity.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The entities in global-id order.
    pub fn entities(&self) -> impl ExactSizeIterator<Item = &Entity> {
        self.entities.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::coords::vec3_micros;
    use fabric_core::entity_row::PAYLOAD_WORDS;

    #[test]
    fn apply_follows_the_documented_rules() {
        let mut s = JournalState::new();
        let e = Entity::at(7, vec3_micros([1, 2, 3]));
        s.apply(&Mutation::Spawn(e));
        let mut payload = [0; PAYLOAD_WORDS];
        payload[1] = 11;
        s.apply(&Mutation::PayloadUpdate {
            global_id: 7,
            payload,
        });
        assert_eq!(s.get(7).map(|e| e.payload[1]), Some(11));
        s.apply(&Mutation::Despawn { global_id: 7 });
        s.apply(&Mutation::PayloadUpdate {
            global_id: 7,
            payload,
        });
        s.apply(&Mutation::Despawn { global_id: 99 });
        assert!(
            s.is_empty(),
            "an update after the despawn must not bring it back"
        );
    }

    #[test]
    fn marks_follow_their_entity() {
        use fabric_core::durable_handoff::MarkKind;
        let mut s = JournalState::new();
        let mark = HandoffMark {
            kind: MarkKind::Sealed,
            peer: 2,
            migration_id: 9,
        };
        s.apply(&Mutation::Mark { global_id: 7, mark });
        assert_eq!(s.mark(7), None, "no entity, no mark");
        s.apply(&Mutation::Spawn(Entity::at(7, vec3_micros([1, 2, 3]))));
        s.apply(&Mutation::Mark { global_id: 7, mark });
        s.apply(&Mutation::Spawn(Entity::at(7, vec3_micros([4, 5, 6]))));
        assert_eq!(s.mark(7), Some(mark), "a spawn keeps the mark");
        s.apply(&Mutation::Unmark { global_id: 7 });
        assert_eq!(s.mark(7), None, "unmarked");
        s.apply(&Mutation::Mark { global_id: 7, mark });
        s.apply(&Mutation::Despawn { global_id: 7 });
        s.apply(&Mutation::Spawn(Entity::at(7, vec3_micros([4, 5, 6]))));
        assert_eq!(s.mark(7), None, "a despawn clears it");
    }
}
