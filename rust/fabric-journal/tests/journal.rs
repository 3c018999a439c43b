//! SqliteJournal on real files: exact round trip of far positions, reopen, compaction, schema.

use fabric_core::coords::Micros;
use fabric_core::entity::Entity;
use fabric_core::entity_row::PAYLOAD_WORDS;
use fabric_journal::workload::{MUTATIONS_PER_TICK, apply_ticks, fill_tick};
use fabric_journal::{
    Journal, JournalState, Mutation, SqliteConfig, SqliteJournal, Synchronous, TickBatch,
};

fn far(metres: i128, fraction: u64) -> Micros {
    Micros::from_bits((metres * 1_000_000) << 64 | i128::from(fraction))
}

fn reload(path: &std::path::Path) -> fabric_journal::Loaded {
    let mut j = SqliteJournal::open(path, SqliteConfig::default()).unwrap();
    j.load().unwrap()
}

#[test]
fn positions_ten_million_metres_out_come_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-3.journal");
    let mut payload = [0u32; PAYLOAD_WORDS];
    payload[0] = 5 << 24 | 0x12_3456;
    let e = Entity {
        global_id: 4_000_000_000,
        position: [
            far(10_000_000, 1),
            far(-10_000_000, u64::MAX),
            far(3, 1 << 63),
        ],
        velocity: [Micros::from_bits(-1), Micros::ZERO, far(1, 12345)],
        acceleration: [Micros::from_bits(7), Micros::from_bits(-7), Micros::ZERO],
        hlc: 99,
        payload,
    };
    {
        let mut j = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
        let mut batch = TickBatch::default();
        batch.tick = 12;
        batch.push(Mutation::Spawn(e));
        let commit = j.append(&batch).unwrap();
        assert_eq!((commit.tick, commit.last_seq, commit.mutations), (12, 1, 1));
    }
    let loaded = reload(&path);
    assert_eq!(
        loaded.state.get(e.global_id),
        Some(&e),
        "exact after reopen"
    );
    assert_eq!((loaded.last_tick, loaded.last_seq), (12, 1));
    // The same entity through a snapshot.
    let mut j = SqliteJournal::open(&path, SqliteConfig::default()).unwrap();
    j.compact().unwrap().expect("one mutation to fold");
    drop(j);
    let loaded = reload(&path);
    assert_eq!(
        loaded.state.get(e.global_id),
        Some(&e),
        "exact after compaction"
    );
    assert_eq!((loaded.snapshot_seq, loaded.replayed), (Some(1), 0));
}

#[test]
fn reopen_continues_the_sequence_and_compaction_keeps_later_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let config = SqliteConfig {
        synchronous: Synchronous::Normal,
    };
    let mut batch = TickBatch::default();
    let mut j = SqliteJournal::create(&path, config).unwrap();
    for tick in 1..=30 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        j.append(&batch).unwrap();
    }
    assert_eq!(j.mutations_since_snapshot(), 30 * MUTATIONS_PER_TICK as u64);
    let c = j.compact().unwrap().expect("something to fold");
    assert_eq!(c.snapshot_seq, 30 * MUTATIONS_PER_TICK as u64);
    assert_eq!(
        c.folded,
        30 * MUTATIONS_PER_TICK as u64,
        "folded rows are removed"
    );
    assert_eq!(j.compact().unwrap(), None, "nothing new to fold");
    drop(j);
    let mut j = SqliteJournal::open(&path, config).unwrap();
    assert_eq!(j.mutations_since_snapshot(), 0);
    for tick in 31..=45 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        let commit = j.append(&batch).unwrap();
        assert_eq!(
            commit.last_seq,
            tick * MUTATIONS_PER_TICK as u64,
            "no gap, no reuse"
        );
    }
    let loaded = j.load().unwrap();
    let mut expected = JournalState::new();
    apply_ticks(&mut expected, 1, 45, MUTATIONS_PER_TICK);
    assert!(
        loaded.state == expected,
        "snapshot + later mutations = everything replayed"
    );
    assert_eq!(loaded.snapshot_seq, Some(30 * MUTATIONS_PER_TICK as u64));
    assert_eq!(loaded.replayed, 15 * MUTATIONS_PER_TICK as u64);
    assert_eq!(loaded.last_tick, 45);
    assert!(!expected.is_empty(), "the workload leaves entities");
}

#[test]
fn the_file_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    // What a crash during an earlier create left behind is discarded, never used.
    std::fs::write(
        dir.path().join("zone-0.journal.creating"),
        b"half a journal",
    )
    .unwrap();
    let j = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let get = |pragma: &str| -> String {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(
        get("application_id"),
        "Integer(1178683982)",
        "0x46414A4E: \"FAJN\""
    );
    assert_eq!(get("user_version"), "Integer(1)");
    assert_eq!(get("journal_mode"), "Text(\"wal\")");
    drop(j);
    assert!(!dir.path().join("zone-0.journal.creating").exists());
}
