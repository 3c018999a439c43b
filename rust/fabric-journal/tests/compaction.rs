//! Property: for any sequence of batches and any compaction points, load (latest snapshot +
//! later mutations) equals replaying every mutation from the start, on a real SQLite file.
//! Hand-off marks included: they survive compaction with their entity.

use fabric_core::coords::Micros;
use fabric_core::durable_handoff::{HandoffMark, MarkKind};
use fabric_core::entity::Entity;
use fabric_core::entity_row::PAYLOAD_WORDS;
use fabric_journal::{
    Journal, JournalState, Mutation, SqliteConfig, SqliteJournal, Synchronous, TickBatch,
};
use proptest::prelude::*;

fn mutation() -> impl Strategy<Value = Mutation> {
    let id = 0u32..40;
    prop_oneof![
        (
            id.clone(),
            any::<[i128; 3]>(),
            any::<u32>(),
            any::<[u32; PAYLOAD_WORDS]>()
        )
            .prop_map(|(global_id, p, hlc, payload)| {
                let v = p.map(Micros::from_bits);
                Mutation::Spawn(Entity {
                    global_id,
                    position: v,
                    velocity: [v[1], v[2], v[0]],
                    acceleration: [v[2], v[0], v[1]],
                    hlc,
                    payload,
                })
            }),
        id.clone()
            .prop_map(|global_id| Mutation::Despawn { global_id }),
        (id.clone(), any::<[u32; PAYLOAD_WORDS]>())
            .prop_map(|(global_id, payload)| Mutation::PayloadUpdate { global_id, payload }),
        (id.clone(), any::<bool>(), 0u8..32, any::<u32>()).prop_map(
            |(global_id, sealed, peer, migration_id)| Mutation::Mark {
                global_id,
                mark: HandoffMark {
                    kind: if sealed {
                        MarkKind::Sealed
                    } else {
                        MarkKind::Pinned
                    },
                    peer,
                    migration_id,
                },
            }
        ),
        id.prop_map(|global_id| Mutation::Unmark { global_id }),
    ]
}

/// A batch of mutations and whether to compact after it.
fn batches() -> impl Strategy<Value = Vec<(Vec<Mutation>, bool)>> {
    prop::collection::vec(
        (
            prop::collection::vec(mutation(), 0..12),
            prop::bool::weighted(0.2),
        ),
        1..25,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn snapshot_plus_tail_equals_full_replay(batches in batches()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prop.journal");
        let config = SqliteConfig { synchronous: Synchronous::Off };
        let mut j = SqliteJournal::create(&path, config).unwrap();
        let mut replay = JournalState::new();
        let mut batch = TickBatch::default();
        let mut total = 0u64;
        for (tick, (mutations, compact)) in batches.iter().enumerate() {
            batch.clear();
            batch.tick = tick as u64;
            for m in mutations {
                batch.push(*m);
                replay.apply(m);
            }
            total += mutations.len() as u64;
            j.append(&batch).unwrap();
            if *compact {
                j.compact().unwrap();
                prop_assert_eq!(j.mutations_since_snapshot(), 0);
            }
        }
        let in_place = j.load().unwrap();
        prop_assert_eq!(&in_place.state, &replay);
        drop(j);
        let reopened = SqliteJournal::open(&path, config).unwrap().load().unwrap();
        prop_assert_eq!(&reopened.state, &replay, "after reopening");
        prop_assert_eq!(reopened.last_seq, total);
    }
}
