//! Bad journal files, each a real file on disk: every case is refused with a typed error that
//! names the file, the file's bytes are left exactly as they were, and no state is returned.

use std::fs;
use std::path::{Path, PathBuf};

use fabric_journal::workload::{MUTATIONS_PER_TICK, fill_tick, mutation};
use fabric_journal::{
    Corruption, Journal, JournalError, Mutation, SqliteConfig, SqliteJournal, TickBatch,
};
use rusqlite::Connection;

/// A valid journal holding ticks 1..=40 of the workload, closed (WAL checkpointed).
fn valid_journal(dir: &Path) -> PathBuf {
    let path = dir.join("zone-0.journal");
    let mut j = SqliteJournal::create(&path, SqliteConfig::default()).expect("create");
    let mut batch = TickBatch::default();
    for tick in 1..=40 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        j.append(&batch).expect("append");
    }
    drop(j);
    assert!(
        !fabric_journal::file_check::wal_path(&path).exists(),
        "closing the journal checkpoints and removes the log"
    );
    path
}

/// Opens `path` (and loads, if it opened), expecting an error; checks the file is untouched
/// and the message names it. `open_and_load` (the check on a second thread while the state is
/// read) must refuse it the same way.
fn refused(path: &Path) -> JournalError {
    let before = fs::read(path).expect("read before");
    let together = SqliteJournal::open_and_load(path, SqliteConfig::default());
    assert!(
        fs::read(path).expect("read after") == before,
        "open_and_load must not modify a refused file"
    );
    let result = SqliteJournal::open(path, SqliteConfig::default()).and_then(|mut j| j.load());
    let after = fs::read(path).expect("read after");
    assert!(before == after, "a refused file must not be modified");
    match (&together, &result) {
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "open_and_load refuses like open + load: {a} / {b}"
        ),
        (Ok((_, loaded)), Err(b)) => panic!(
            "open_and_load took a file open + load refuses ({b}): {} entities",
            loaded.state.len()
        ),
        _ => {}
    }
    let err = match result {
        Ok(loaded) => panic!(
            "a bad file must not open; it loaded {} entities to tick {}",
            loaded.state.len(),
            loaded.last_tick
        ),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the error names the file: {message}"
    );
    err
}

#[test]
fn a_valid_journal_opens_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    let loaded = SqliteJournal::open(&path, SqliteConfig::default())
        .and_then(|mut j| j.load())
        .expect("the untouched journal loads");
    assert_eq!(loaded.last_tick, 40);
    assert_eq!(loaded.last_seq, 40 * MUTATIONS_PER_TICK as u64);
    let (_, together) = SqliteJournal::open_and_load(&path, SqliteConfig::default())
        .expect("open_and_load takes it too");
    assert_eq!(
        (together.last_tick, together.last_seq, together.replayed),
        (loaded.last_tick, loaded.last_seq, loaded.replayed)
    );
    assert!(together.state == loaded.state, "the same state");
}

#[test]
fn an_empty_file_is_truncated_not_a_new_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    fs::write(&path, b"").unwrap();
    assert!(matches!(refused(&path), JournalError::Truncated { .. }));
    // open_or_create must not treat the empty file as absent either.
    let err = SqliteJournal::open_or_create(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, JournalError::Truncated { .. }), "{err}");
}

#[test]
fn a_file_cut_inside_the_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..60]).unwrap();
    let err = refused(&path);
    assert!(matches!(err, JournalError::Truncated { .. }), "{err}");
}

#[test]
fn a_file_cut_between_pages_or_inside_a_page_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    let bytes = fs::read(&path).unwrap();
    let page = 16384;
    assert!(bytes.len() > 4 * page, "the journal spans several pages");
    for cut in [bytes.len() - page, bytes.len() / 2 + 17] {
        fs::write(&path, &bytes[..cut]).unwrap();
        let err = refused(&path);
        assert!(
            matches!(err, JournalError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_flipped_byte_in_a_mutation_is_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    // The body of a spawn the workload wrote, found in the file and damaged in its middle.
    let (spawn, seq) = (0..MUTATIONS_PER_TICK)
        .map(|i| (mutation(7, i), 6 * MUTATIONS_PER_TICK + i + 1))
        .find(|(m, _)| matches!(m, Mutation::Spawn(_)))
        .expect("tick 7 spawns something");
    let mut body = [0u8; fabric_journal::mutation::MAX_BODY_LEN];
    let len = spawn.encode_body(&mut body);
    // SQLite may leave stale copies of a row in free space after a b-tree split: damage every
    // copy, so the live row is among them.
    let copies: Vec<usize> = (0..bytes.len() - len)
        .filter(|&at| bytes[at..at + len] == body[..len])
        .collect();
    assert!(!copies.is_empty(), "the spawn body is in the file");
    for at in copies {
        bytes[at + 100] ^= 0x10;
    }
    fs::write(&path, &bytes).unwrap();
    match refused(&path) {
        JournalError::Corrupt {
            corruption: Corruption::MutationChecksum { seq: found },
            ..
        } => assert_eq!(found, seq as i64, "the damaged row is named"),
        other => panic!("expected a checksum error, got {other}"),
    }
}

#[test]
fn a_garbage_page_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let page = 16384;
    // Page 2 onwards hold the tables' b-tree pages; overwrite one in the middle with noise.
    let target = (bytes.len() / page / 2) * page;
    for (i, b) in bytes[target..target + page].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    fs::write(&path, &bytes).unwrap();
    let err = refused(&path);
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_journal(dir.path());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 2)
        .unwrap();
    match refused(&path) {
        JournalError::WrongVersion {
            found, expected, ..
        } => assert_eq!((found, expected), (2, 1)),
        other => panic!("expected WrongVersion, got {other}"),
    }
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE shards (id TEXT PRIMARY KEY); INSERT INTO shards VALUES ('a');",
    )
    .unwrap();
    drop(conn);
    match refused(&path) {
        JournalError::Foreign {
            found, expected, ..
        } => assert_eq!((found, expected), (0, 0x4641_4A4E)),
        other => panic!("expected Foreign, got {other}"),
    }
    // create() refuses to replace it.
    let err = SqliteJournal::create(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, JournalError::AlreadyExists { .. }), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    for content in [
        b"zone journal, honest\n".repeat(300),
        (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ] {
        fs::write(&path, &content).unwrap();
        let err = refused(&path);
        assert!(matches!(err, JournalError::NotSqlite { .. }), "{err}");
    }
}

#[test]
fn a_missing_file_is_missing_and_create_does_not_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.journal");
    let err = SqliteJournal::open(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, JournalError::Missing { .. }), "{err}");
    let path = valid_journal(dir.path());
    let before = fs::read(&path).unwrap();
    let err = SqliteJournal::create(&path, SqliteConfig::default()).unwrap_err();
    assert!(matches!(err, JournalError::AlreadyExists { .. }), "{err}");
    assert!(
        before == fs::read(&path).unwrap(),
        "create left the journal untouched"
    );
}

#[test]
fn open_or_create_and_load_makes_a_missing_journal_and_reads_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-3.journal");
    let (_, fresh) = SqliteJournal::open_or_create_and_load(&path, SqliteConfig::default())
        .expect("a missing journal is created");
    assert_eq!((fresh.last_seq, fresh.state.len()), (0, 0));
    let path = valid_journal(dir.path());
    let (_, existing) = SqliteJournal::open_or_create_and_load(&path, SqliteConfig::default())
        .expect("an existing journal is read");
    assert_eq!(existing.last_tick, 40);
}
