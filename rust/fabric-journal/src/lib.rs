//! Per-zone crash-recovery journal of Multiplayer Fabric (`FabricZoneJournal`'s engine).
//!
//! A zone records every discrete change to its dynamic entities (spawn, despawn,
//! payload update: [`Mutation`]) and, on restart, replays the journal on top of its
//! deterministic static-world initialisation. Physics-step positions are not journaled (see
//! [`mutation`]).
//!
//! - [`Journal`]: the storage seam (append a tick's batch, load, compact); [`SqliteJournal`] is
//!   the embedded default, one SQLite file per zone in WAL mode.
//! - [`JournalWriter`]: runs a journal on its own thread behind a bounded queue; the tick
//!   submits without blocking and acknowledges client commands only once their tick is durable.
//! - Files that are truncated, corrupted, of another schema version, another program's SQLite
//!   database or not SQLite at all are refused with a typed [`JournalError`] naming the file.
//!
//! No Godot, no async runtime: the zone glue wraps it. Format and durability:
//! `docs/persistence.md`.

#![warn(missing_docs)]

pub mod batch;
pub mod error;
pub mod file_check;
pub mod journal;
pub mod mutation;
pub mod sqlite;
pub mod state;
pub mod workload;
pub mod writer;

pub use batch::TickBatch;
pub use error::{Corruption, JournalError};
pub use journal::{Commit, Compaction, Journal, Loaded};
pub use mutation::Mutation;
pub use sqlite::{SqliteConfig, SqliteJournal, Synchronous};
pub use state::JournalState;
pub use writer::{JournalWriter, SubmitError, WriterConfig};
