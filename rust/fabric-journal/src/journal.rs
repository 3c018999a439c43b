//! The storage seam: what a zone needs from any journal backend.
//!
//! [`crate::SqliteJournal`] is the embedded default; a networked store (a PostgreSQL-wire
//! backend is planned) implements the same trait, and [`crate::JournalWriter`] drives either on
//! its own thread.

use crate::batch::TickBatch;
use crate::error::JournalError;
use crate::state::JournalState;

/// What one committed batch reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The batch's tick: every mutation of this tick and earlier ones is durable.
    pub tick: u64,
    /// Sequence number of the last mutation written so far (0 when none ever was).
    pub last_seq: u64,
    /// Mutations in this batch.
    pub mutations: usize,
}

/// What [`Journal::load`] rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The dynamic entities.
    pub state: JournalState,
    /// Sequence number of the last mutation folded in (0 for an empty journal).
    pub last_seq: u64,
    /// Tick of that mutation (0 for an empty journal).
    pub last_tick: u64,
    /// Sequence number the snapshot covers, if there is one.
    pub snapshot_seq: Option<u64>,
    /// Mutations replayed on top of the snapshot.
    pub replayed: u64,
}

/// What [`Journal::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Sequence number the new snapshot covers.
    pub snapshot_seq: u64,
    /// Entities in it.
    pub entities: usize,
    /// Mutation rows folded into it and removed.
    pub folded: u64,
}

/// A per-zone journal of spawn, despawn and payload-update mutations.
pub trait Journal {
    /// Writes one batch as one transaction. When it returns `Ok`, the batch is durable to the
    /// backend's durability setting.
    fn append(&mut self, batch: &TickBatch) -> Result<Commit, JournalError>;

    /// Writes `batches` (consecutive ticks, in order) as one transaction: a group commit, for
    /// a writer that fell behind, so one durability wait (an `fsync` with `synchronous =
    /// FULL`) covers several ticks. All of them are durable when it returns `Ok`, none when it
    /// fails. The report is the last batch's tick, the last sequence number and the total
    /// mutations; `None` for no batch. The default writes one transaction per batch (a backend
    /// without transactions spanning batches); [`crate::SqliteJournal`] writes one.
    fn append_group(&mut self, batches: &[TickBatch]) -> Result<Option<Commit>, JournalError> {
        let mut report = None;
        let mut mutations = 0;
        for b in batches {
            let c = self.append(b)?;
            mutations += c.mutations;
            report = Some(Commit { mutations, ..c });
        }
        Ok(report)
    }

    /// The latest snapshot plus every later mutation. Fails rather than return partial state.
    fn load(&mut self) -> Result<Loaded, JournalError>;

    /// Folds everything written so far into one snapshot and drops the folded mutations.
    /// Returns `None` when there was nothing new to fold.
    fn compact(&mut self) -> Result<Option<Compaction>, JournalError>;

    /// Mutations written since the latest snapshot (what compaction would fold).
    fn mutations_since_snapshot(&self) -> u64;
}
