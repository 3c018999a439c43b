//! Typed errors of the journal. Every error about a file names the file.

use std::path::PathBuf;

use thiserror::Error;

use crate::mutation::MutationDecodeError;

/// What is wrong inside a journal whose SQLite structure opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Corruption {
    /// SQLite's `PRAGMA quick_check` found damage (its first message).
    #[error("SQLite integrity check failed: {0}")]
    IntegrityCheck(String),
    /// The SQLite header is not valid (page size).
    #[error("bad SQLite header: {0}")]
    Header(String),
    /// A mutation row's checksum does not match its contents.
    #[error("mutation {seq}: checksum mismatch")]
    MutationChecksum {
        /// Sequence number of the row.
        seq: i64,
    },
    /// A mutation row does not decode.
    #[error("mutation {seq}: {source}")]
    MutationDecode {
        /// Sequence number of the row.
        seq: i64,
        /// Why.
        source: MutationDecodeError,
    },
    /// The mutations after the snapshot do not follow each other (a row is missing).
    #[error("mutation sequence jumps from {previous} to {found}")]
    SequenceGap {
        /// Sequence number before the gap.
        previous: i64,
        /// Sequence number found after it.
        found: i64,
    },
    /// The snapshot row's checksum does not match its contents.
    #[error("snapshot {id}: checksum mismatch")]
    SnapshotChecksum {
        /// Row id of the snapshot.
        id: i64,
    },
    /// The snapshot body is not `entity_count` entities long.
    #[error("snapshot {id}: {found} bytes for {count} entities")]
    SnapshotLength {
        /// Row id of the snapshot.
        id: i64,
        /// Entity count column.
        count: i64,
        /// Body bytes found.
        found: usize,
    },
    /// A hand-off mark in the snapshot is invalid or names no entity of it.
    #[error("snapshot {id}: invalid hand-off mark of entity {global_id}")]
    SnapshotMark {
        /// Row id of the snapshot.
        id: i64,
        /// The entity the mark names.
        global_id: u32,
    },
    /// A number column is out of its range (negative sequence, tick or count).
    #[error("{what} out of range: {value}")]
    Range {
        /// Which column.
        what: &'static str,
        /// Its value.
        value: i64,
    },
}

/// Why a journal could not be opened, read or written.
#[derive(Debug, Error)]
pub enum JournalError {
    /// The file does not exist (use `create` or `open_or_create`).
    #[error("journal {path}: no such file")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// `create` found a file already there; it was left untouched.
    #[error("journal {path}: already exists, not overwritten")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an SQLite database at all.
    #[error("journal {path}: not an SQLite database ({detail})")]
    NotSqlite {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The file is shorter than its own header says (or empty).
    #[error("journal {path}: truncated: {detail}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// File length against what the header says.
        detail: String,
    },
    /// An SQLite database that is not a Multiplayer Fabric journal.
    #[error(
        "journal {path}: a foreign SQLite database (application_id {found:#010x}, a journal has {expected:#010x})"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its `application_id`.
        found: i32,
        /// The journal's `application_id`.
        expected: i32,
    },
    /// A journal written with another schema version (`user_version`).
    #[error("journal {path}: schema version {found}, this build reads version {expected}")]
    WrongVersion {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i32,
        /// The version this build reads and writes.
        expected: i32,
    },
    /// The journal is damaged; nothing was loaded from it.
    #[error("journal {path}: corrupted: {corruption}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is damaged.
        corruption: Corruption,
    },
    /// A tick number above `i64::MAX` (SQLite integers are signed).
    #[error("journal {path}: tick {tick} is above the largest storable tick")]
    TickRange {
        /// The file.
        path: PathBuf,
        /// The tick.
        tick: u64,
    },
    /// A file-system error.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A backend's [`crate::Journal::append_group`] reported no commit for batches it was
    /// given (a backend bug): nothing of them is acknowledged.
    #[error("journal backend reported no commit for a group of {batches} batches")]
    EmptyGroup {
        /// Batches in the group.
        batches: usize,
    },
    /// Any other SQLite error.
    #[error("journal {path}: SQLite: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
}
