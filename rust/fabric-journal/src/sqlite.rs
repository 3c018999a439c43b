//! [`SqliteJournal`]: the embedded journal, one SQLite file per zone (WAL mode).
//!
//! Schema (version [`SCHEMA_VERSION`], `PRAGMA user_version`; `PRAGMA application_id` is
//! [`APPLICATION_ID`] so another program's SQLite file is recognised and refused):
//!
//! ```sql
//! CREATE TABLE mutations (seq INTEGER PRIMARY KEY, tick INTEGER NOT NULL, op INTEGER NOT NULL,
//!                         global_id INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL);
//! CREATE TABLE snapshots (id INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,
//!                         last_tick INTEGER NOT NULL, entity_count INTEGER NOT NULL,
//!                         body BLOB NOT NULL, crc INTEGER NOT NULL);
//! ```
//!
//! `seq` numbers mutations from 1 without gaps; each row's `crc` is the CRC-32 of its
//! sequence, tick, op, global id and body, so a flipped bit in a blob is found at load instead
//! of becoming a wrong entity. A snapshot row holds `entity_count` entities of 208 bytes each
//! (global id `u32` then the spawn body of [`crate::mutation`]), then the hand-off marks of
//! those entities, 10 bytes each (global id `u32` then the mark body), and covers every mutation up to
//! `last_seq`; compaction writes it, deletes older snapshots and the folded mutations in one
//! transaction. Load = the latest snapshot + the mutations after it, which must follow it
//! without a gap. Details and durability: `docs/persistence.md`.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::batch::TickBatch;
use crate::error::{Corruption, JournalError};
use crate::file_check::check_file;
use crate::journal::{Commit, Compaction, Journal, Loaded};
use crate::mutation::{
    MARK_BODY_LEN, MAX_BODY_LEN, Mutation, SPAWN_BODY_LEN, decode_entity_body, decode_mark,
    encode_entity_body, encode_mark,
};
use crate::state::JournalState;

/// `PRAGMA application_id` of a journal ("FAJN").
pub const APPLICATION_ID: i32 = 0x4641_4A4E;
/// `PRAGMA user_version` this build reads and writes.
pub const SCHEMA_VERSION: i32 = 1;
/// Bytes per entity in a snapshot body.
pub const SNAPSHOT_ENTITY_LEN: usize = 4 + SPAWN_BODY_LEN;
/// Bytes per hand-off mark after the entities of a snapshot body.
pub const SNAPSHOT_MARK_LEN: usize = 4 + MARK_BODY_LEN;

const SCHEMA: &str = "
CREATE TABLE mutations (seq INTEGER PRIMARY KEY, tick INTEGER NOT NULL, op INTEGER NOT NULL,
                        global_id INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE snapshots (id INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,
                        last_tick INTEGER NOT NULL, entity_count INTEGER NOT NULL,
                        body BLOB NOT NULL, crc INTEGER NOT NULL);
";

/// SQLite's `synchronous` setting: how often a commit waits for the disk. In WAL mode:
///
/// | setting | an application crash (SIGKILL) | a power loss or OS crash |
/// |---|---|---|
/// | `Off` | loses nothing committed | may lose recent commits, may corrupt the file |
/// | `Normal` | loses nothing committed | may lose the commits since the last checkpoint sync; never corrupts |
/// | `Full` (default) | loses nothing committed | loses nothing committed: each commit syncs the log |
/// | `Extra` | as `Full` | as `Full` (its extra directory sync is for rollback journals, not WAL) |
///
/// "Acknowledged means durable" holds against power loss only with `Full` or `Extra` (and only on
/// a disk that honours flushes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// No syncs at all.
    Off,
    /// Syncs at checkpoints only.
    Normal,
    /// Syncs the write-ahead log at every commit.
    #[default]
    Full,
    /// `Full`, plus a directory sync that matters only outside WAL mode.
    Extra,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// Settings of a [`SqliteJournal`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Durability of each commit.
    pub synchronous: Synchronous,
}

/// The embedded journal: one SQLite file per zone.
pub struct SqliteJournal {
    path: PathBuf,
    conn: Connection,
    next_seq: u64,
    since_snapshot: u64,
    body: [u8; MAX_BODY_LEN],
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// Turns an SQLite error about `path` into a [`JournalError`].
fn sql_error(path: &Path, source: rusqlite::Error) -> JournalError {
    let path = path.to_owned();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => JournalError::NotSqlite {
            path,
            detail: source.to_string(),
        },
        Some(ErrorCode::DatabaseCorrupt) => JournalError::Corrupt {
            path,
            corruption: Corruption::IntegrityCheck(source.to_string()),
        },
        _ => JournalError::Sqlite { path, source },
    }
}

fn mutation_crc(seq: i64, tick: i64, op: i64, global_id: i64, body: &[u8]) -> i64 {
    // One contiguous update rather than five small ones (crc32fast's SIMD path wants long input).
    let mut buf = [0u8; 32 + MAX_BODY_LEN];
    for (i, v) in [seq, tick, op, global_id].into_iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    let mut h = crc32fast::Hasher::new();
    if body.len() <= MAX_BODY_LEN {
        buf[32..32 + body.len()].copy_from_slice(body);
        h.update(&buf[..32 + body.len()]);
    } else {
        h.update(&buf[..32]);
        h.update(body);
    }
    i64::from(h.finalize())
}

fn snapshot_crc(last_seq: i64, last_tick: i64, count: i64, body: &[u8]) -> i64 {
    mutation_crc(last_seq, last_tick, count, 0, body)
}

fn non_negative(what: &'static str, value: i64) -> Result<u64, Corruption> {
    u64::try_from(value).map_err(|_| Corruption::Range { what, value })
}

impl SqliteJournal {
    /// Creates a new, empty journal at `path`. Refuses to touch an existing file.
    ///
    /// The journal is built under `<path>.creating` and linked into place only when complete,
    /// so a crash during creation never leaves a half-made journal at `path`.
    pub fn create(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if fs::symlink_metadata(path).is_ok() {
            return Err(JournalError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".creating");
        let tmp = PathBuf::from(tmp_name);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        {
            let conn = Connection::open(&tmp).map_err(|e| sql_error(&tmp, e))?;
            conn.execute_batch(&format!(
                "PRAGMA page_size = 16384; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};
                 BEGIN; {SCHEMA} COMMIT;"
            ))
            .map_err(|e| sql_error(&tmp, e))?;
        }
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
                return Err(JournalError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            other => other.map_err(io)?,
        }
        fs::remove_file(&tmp).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        tracing::info!(path = %path.display(), "journal created");
        Self::open(path, config)
    }

    /// Opens an existing journal, after checking it is one: the file's header, its
    /// `application_id`, its schema version and SQLite's `quick_check`. Writes nothing to a file
    /// that fails a check.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let conn = open_identified(path)?;
        integrity_check(&conn, path)?;
        Self::finish_open(path, conn, config)
    }

    /// [`SqliteJournal::open`] and then [`Journal::load`], what a zone does at start, in about the
    /// time of the longer of the two: SQLite's `quick_check` runs on a second connection in its
    /// own thread while this one reads the state. The state is returned only when the check
    /// passed (a damaged file gives the check's error, never a partial state), and nothing is
    /// written to the file before that.
    pub fn open_and_load(
        path: impl AsRef<Path>,
        config: SqliteConfig,
    ) -> Result<(Self, Loaded), JournalError> {
        let path = path.as_ref();
        let conn = open_identified(path)?;
        let check_path = path.to_owned();
        let check = std::thread::Builder::new()
            .name("journal-check".into())
            .spawn(move || {
                let conn = Connection::open_with_flags(
                    &check_path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| sql_error(&check_path, e))?;
                integrity_check(&conn, &check_path)
            });
        let read = {
            let tx = conn
                .unchecked_transaction()
                .map_err(|e| sql_error(path, e))?;
            read_state(&tx, path)
        };
        match check {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    corruption: Corruption::IntegrityCheck("the check's thread panicked".into()),
                })
            })?,
            // No thread to be had: check here, after the read.
            Err(_) => integrity_check(&conn, path)?,
        }
        let loaded = read?;
        Ok((Self::finish_open(path, conn, config)?, loaded))
    }

    /// [`SqliteJournal::open_and_load`], or a new, empty journal when no file is at `path`.
    pub fn open_or_create_and_load(
        path: impl AsRef<Path>,
        config: SqliteConfig,
    ) -> Result<(Self, Loaded), JournalError> {
        match Self::open_and_load(path.as_ref(), config) {
            Err(JournalError::Missing { .. }) => {
                let mut journal = Self::create(path, config)?;
                let loaded = journal.load()?;
                Ok((journal, loaded))
            }
            other => other,
        }
    }

    /// The rest of opening a file that passed every check: WAL, `synchronous`, the sequence.
    fn finish_open(
        path: &Path,
        conn: Connection,
        config: SqliteConfig,
    ) -> Result<Self, JournalError> {
        let err = |e| sql_error(path, e);
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
        conn.pragma_update(None, "synchronous", config.synchronous.pragma())
            .map_err(err)?;
        let snapshot_seq: i64 = conn
            .query_row(
                "SELECT coalesce(max(last_seq), 0) FROM snapshots",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let (max_seq, since): (i64, i64) = conn
            .query_row(
                "SELECT coalesce(max(seq), 0), count(*) FROM mutations WHERE seq > ?1",
                [snapshot_seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        let corrupt = |corruption| JournalError::Corrupt {
            path: path.to_owned(),
            corruption,
        };
        let last = non_negative("sequence", snapshot_seq.max(max_seq)).map_err(corrupt)?;
        tracing::info!(path = %path.display(), last_seq = last, "journal opened");
        Ok(Self {
            path: path.to_owned(),
            conn,
            next_seq: last + 1,
            since_snapshot: since as u64,
            body: [0; MAX_BODY_LEN],
        })
    }

    /// Opens the journal at `path`, creating it when no file is there.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        config: SqliteConfig,
    ) -> Result<Self, JournalError> {
        match Self::open(path.as_ref(), config) {
            Err(JournalError::Missing { .. }) => Self::create(path, config),
            other => other,
        }
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the latest snapshot and the mutations after it (the caller holds a transaction).
/// Opens `path` after checking the file's header, then its `application_id` and schema
/// version: a connection to a file that is a journal of this version. Writes nothing.
fn open_identified(path: &Path) -> Result<Connection, JournalError> {
    check_file(path)?;
    let err = |e| sql_error(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(err)?;
    if app != APPLICATION_ID {
        return Err(JournalError::Foreign {
            path: path.to_owned(),
            found: app,
            expected: APPLICATION_ID,
        });
    }
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version != SCHEMA_VERSION {
        return Err(JournalError::WrongVersion {
            path: path.to_owned(),
            found: version,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// SQLite's `PRAGMA quick_check` over the whole file, through `conn`.
fn integrity_check(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| sql_error(path, e))?;
    if check != "ok" {
        return Err(JournalError::Corrupt {
            path: path.to_owned(),
            corruption: Corruption::IntegrityCheck(check),
        });
    }
    Ok(())
}

fn read_state(conn: &Connection, path: &Path) -> Result<Loaded, JournalError> {
    let err = |e| sql_error(path, e);
    let corrupt = |corruption| JournalError::Corrupt {
        path: path.to_owned(),
        corruption,
    };
    let mut state = JournalState::new();
    let snapshot = conn
        .query_row(
            "SELECT id, last_seq, last_tick, entity_count, body, crc FROM snapshots
             ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
        .map_err(err)?;
    let (mut last_seq, mut last_tick, snapshot_seq) = match snapshot {
        None => (0i64, 0i64, None),
        Some((id, seq, tick, count, body, crc)) => {
            for (what, v) in [("snapshot sequence", seq), ("snapshot tick", tick)] {
                non_negative(what, v).map_err(corrupt)?;
            }
            let n = non_negative("snapshot entity count", count).map_err(corrupt)?;
            if snapshot_crc(seq, tick, count, &body) != crc {
                return Err(corrupt(Corruption::SnapshotChecksum { id }));
            }
            let entities_len = n.saturating_mul(SNAPSHOT_ENTITY_LEN as u64);
            let tail = (body.len() as u64).checked_sub(entities_len);
            if tail.is_none_or(|t| t % SNAPSHOT_MARK_LEN as u64 != 0) {
                return Err(corrupt(Corruption::SnapshotLength {
                    id,
                    count,
                    found: body.len(),
                }));
            }
            let (entities, marks) = body.split_at(entities_len as usize);
            for chunk in entities.chunks_exact(SNAPSHOT_ENTITY_LEN) {
                let id = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                state.insert(decode_entity_body(id, &chunk[4..]));
            }
            for chunk in marks.chunks_exact(SNAPSHOT_MARK_LEN) {
                let global_id = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let bad = Corruption::SnapshotMark { id, global_id };
                let mark = decode_mark(&chunk[4..]).map_err(|_| corrupt(bad.clone()))?;
                if state.get(global_id).is_none() {
                    return Err(corrupt(bad));
                }
                state.insert_mark(global_id, mark);
            }
            (seq, tick, Some(seq as u64))
        }
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, tick, op, global_id, body, crc FROM mutations WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(err)?;
    let mut rows = stmt.query([last_seq]).map_err(err)?;
    let mut replayed = 0u64;
    while let Some(row) = rows.next().map_err(err)? {
        let seq: i64 = row.get(0).map_err(err)?;
        let tick: i64 = row.get(1).map_err(err)?;
        let op: i64 = row.get(2).map_err(err)?;
        let global_id: i64 = row.get(3).map_err(err)?;
        let crc: i64 = row.get(5).map_err(err)?;
        let body = match row.get_ref(4).map_err(err)? {
            ValueRef::Blob(b) => b,
            _ => &[][..],
        };
        if seq != last_seq + 1 {
            return Err(corrupt(Corruption::SequenceGap {
                previous: last_seq,
                found: seq,
            }));
        }
        if mutation_crc(seq, tick, op, global_id, body) != crc {
            return Err(corrupt(Corruption::MutationChecksum { seq }));
        }
        non_negative("tick", tick).map_err(corrupt)?;
        let m = Mutation::decode(op, global_id, body)
            .map_err(|source| corrupt(Corruption::MutationDecode { seq, source }))?;
        state.apply(&m);
        last_seq = seq;
        last_tick = tick;
        replayed += 1;
    }
    Ok(Loaded {
        state,
        last_seq: last_seq as u64,
        last_tick: last_tick as u64,
        snapshot_seq,
        replayed,
    })
}

impl Journal for SqliteJournal {
    fn append(&mut self, batch: &TickBatch) -> Result<Commit, JournalError> {
        let commit = self.append_group(std::slice::from_ref(batch))?;
        Ok(commit.unwrap_or(Commit {
            tick: batch.tick,
            last_seq: self.next_seq - 1,
            mutations: 0,
        }))
    }

    fn append_group(&mut self, batches: &[TickBatch]) -> Result<Option<Commit>, JournalError> {
        let path = &self.path;
        let err = |e| sql_error(path, e);
        let Some(last) = batches.last() else {
            return Ok(None);
        };
        for b in batches {
            i64::try_from(b.tick).map_err(|_| JournalError::TickRange {
                path: path.clone(),
                tick: b.tick,
            })?;
        }
        let total: usize = batches.iter().map(TickBatch::len).sum();
        if total == 0 {
            return Ok(Some(Commit {
                tick: last.tick,
                last_seq: self.next_seq - 1,
                mutations: 0,
            }));
        }
        let mut seq = self.next_seq;
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO mutations (seq, tick, op, global_id, body, crc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for batch in batches {
                // Checked above.
                let tick = batch.tick as i64;
                for m in batch.mutations() {
                    let len = m.encode_body(&mut self.body);
                    let body = &self.body[..len];
                    let (s, op, id) = (seq as i64, i64::from(m.op()), i64::from(m.global_id()));
                    let crc = mutation_crc(s, tick, op, id, body);
                    insert
                        .execute(params![s, tick, op, id, body, crc])
                        .map_err(err)?;
                    seq += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        self.next_seq = seq;
        self.since_snapshot += total as u64;
        Ok(Some(Commit {
            tick: last.tick,
            last_seq: seq - 1,
            mutations: total,
        }))
    }

    fn load(&mut self) -> Result<Loaded, JournalError> {
        let path = &self.path;
        let tx = self.conn.transaction().map_err(|e| sql_error(path, e))?;
        read_state(&tx, path)
    }

    fn compact(&mut self) -> Result<Option<Compaction>, JournalError> {
        let path = &self.path;
        let err = |e| sql_error(path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let loaded = read_state(&tx, path)?;
        if loaded.replayed == 0 {
            return Ok(None);
        }
        let entities_len = loaded.state.len() * SNAPSHOT_ENTITY_LEN;
        let mut body = vec![0u8; entities_len + loaded.state.marks().len() * SNAPSHOT_MARK_LEN];
        let (entities, marks) = body.split_at_mut(entities_len);
        for (chunk, e) in entities
            .chunks_exact_mut(SNAPSHOT_ENTITY_LEN)
            .zip(loaded.state.entities())
        {
            chunk[..4].copy_from_slice(&e.global_id.to_le_bytes());
            encode_entity_body(e, &mut chunk[4..]);
        }
        for (chunk, (global_id, mark)) in marks
            .chunks_exact_mut(SNAPSHOT_MARK_LEN)
            .zip(loaded.state.marks())
        {
            chunk[..4].copy_from_slice(&global_id.to_le_bytes());
            encode_mark(&mark, &mut chunk[4..]);
        }
        let (seq, tick, count) = (
            loaded.last_seq as i64,
            loaded.last_tick as i64,
            loaded.state.len() as i64,
        );
        let crc = snapshot_crc(seq, tick, count, &body);
        tx.execute(
            "INSERT INTO snapshots (last_seq, last_tick, entity_count, body, crc)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq, tick, count, body, crc],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute("DELETE FROM snapshots WHERE id < ?1", [id])
            .map_err(err)?;
        let folded = tx
            .execute("DELETE FROM mutations WHERE seq <= ?1", [seq])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        self.since_snapshot = 0;
        tracing::debug!(path = %path.display(), snapshot_seq = seq, entities = count, folded, "journal compacted");
        Ok(Some(Compaction {
            snapshot_seq: loaded.last_seq,
            entities: loaded.state.len(),
            folded: folded as u64,
        }))
    }

    fn mutations_since_snapshot(&self) -> u64 {
        self.since_snapshot
    }
}
