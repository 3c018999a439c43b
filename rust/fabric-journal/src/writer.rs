//! [`JournalWriter`]: the journal's own thread, so the tick never waits on the disk.
//!
//! The tick side calls [`JournalWriter::submit`] once per tick with the tick's batch. `submit`
//! never blocks and never allocates: it swaps the caller's batch with an empty one from a fixed
//! pool (so the caller keeps a batch with the same capacity) and hands the full one to the
//! writer thread through a bounded queue. The thread writes each batch as one transaction, then
//! publishes the batch's tick as durable ([`JournalWriter::durable_tick`], and a report on
//! [`JournalWriter::try_recv_commit`]), and compacts every
//! [`WriterConfig::compact_every`] mutations, after the report so compaction never delays an
//! acknowledgement.
//!
//! **Group commit.** When the thread falls behind (batches waiting in the queue when it takes
//! the next one), it writes up to [`WriterConfig::group_commit`] waiting batches as one
//! transaction ([`Journal::append_group`]): with `synchronous = FULL` one `fsync` then covers
//! several ticks instead of one each. Nothing changes for acknowledgements: the ticks of a group
//! are published as durable (and reported, one report per batch, in order) only after the
//! group's transaction committed, and a failed group publishes none of them. A writer that
//! keeps up takes one batch at a time, exactly as without grouping.
//!
//! **Acknowledged means durable.** The zone acknowledges a client command that changed persistent
//! state only once `durable_tick()` reaches the tick the command was applied in.
//!
//! **When the queue is full** (the disk is slower than the ticks), `submit` returns
//! [`SubmitError::Full`] and leaves the caller's batch as it was, mutations included. The zone
//! keeps that batch, adds the next tick's mutations to it, sets its `tick` to the new tick and
//! submits again next tick; nothing is dropped and the tick never waits. The commands in it are
//! simply acknowledged later (when the merged batch commits). [`JournalWriter::full_count`]
//! counts the refusals, for the zone's metrics.
//!
//! When a write fails (disk full, I/O error) the thread stops: later submits return
//! [`SubmitError::Stopped`], nothing more is acknowledged, and [`JournalWriter::close`] returns
//! the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::batch::TickBatch;
use crate::error::JournalError;
use crate::journal::{Commit, Journal};

/// Settings of a [`JournalWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Batches that may wait for the disk (the bounded queue's length).
    pub queue_batches: usize,
    /// Compact once this many mutations were written since the last snapshot.
    pub compact_every: u64,
    /// Mutations each pooled batch has room for before it grows.
    pub batch_capacity: usize,
    /// Commit reports kept for [`JournalWriter::try_recv_commit`]; older ones are dropped when
    /// nobody reads them (`durable_tick` is always current).
    pub commit_reports: usize,
    /// Most batches written in one transaction when several are waiting (group commit); 1
    /// writes one transaction per batch.
    pub group_commit: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_batches: 8,
            compact_every: 100_000,
            batch_capacity: 256,
            commit_reports: 1024,
            group_commit: 8,
        }
    }
}

/// Why [`JournalWriter::submit`] did not take a batch. The caller's batch is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SubmitError {
    /// The queue is full: keep the batch, add the next tick to it, submit again.
    #[error("journal queue full: keep the batch and submit it with the next tick")]
    Full,
    /// The writer thread stopped after an error (see [`JournalWriter::close`]).
    #[error("journal writer stopped")]
    Stopped,
}

/// Durable tick published by the thread: tick + 1, 0 while nothing committed.
#[derive(Debug, Default)]
struct Shared {
    durable_tick_plus_one: AtomicU64,
    durable_seq: AtomicU64,
}

/// Drives a [`Journal`] on its own thread.
#[derive(Debug)]
pub struct JournalWriter {
    queue: Option<SyncSender<TickBatch>>,
    recycled: Receiver<TickBatch>,
    spare: Vec<TickBatch>,
    commits: Receiver<Commit>,
    shared: Arc<Shared>,
    full_count: u64,
    thread: Option<JoinHandle<Result<(), JournalError>>>,
}

impl JournalWriter {
    /// Starts the writer thread on `journal`.
    pub fn start<J: Journal + Send + 'static>(journal: J, config: WriterConfig) -> Self {
        let queue_len = config.queue_batches.max(1);
        let pool = queue_len + 2;
        let (queue_tx, queue_rx) = sync_channel::<TickBatch>(queue_len);
        let (recycled_tx, recycled_rx) = sync_channel::<TickBatch>(pool);
        let (commit_tx, commit_rx) = sync_channel::<Commit>(config.commit_reports.max(1));
        let mut spare = Vec::with_capacity(pool);
        for _ in 0..pool {
            spare.push(TickBatch::with_capacity(config.batch_capacity));
        }
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fabric-journal".into())
            .spawn(move || {
                run(
                    journal,
                    config,
                    queue_rx,
                    recycled_tx,
                    commit_tx,
                    thread_shared,
                )
            })
            .expect("spawning the journal thread");
        Self {
            queue: Some(queue_tx),
            recycled: recycled_rx,
            spare,
            commits: commit_rx,
            shared,
            full_count: 0,
            thread: Some(thread),
        }
    }

    /// Hands `batch` to the writer thread without blocking. On `Ok`, `batch` is replaced by an
    /// empty batch (its `tick` kept); on `Err`, `batch` is left exactly as it was.
    pub fn submit(&mut self, batch: &mut TickBatch) -> Result<(), SubmitError> {
        while self.spare.len() < self.spare.capacity() {
            match self.recycled.try_recv() {
                Ok(b) => self.spare.push(b),
                Err(_) => break,
            }
        }
        let Some(queue) = &self.queue else {
            return Err(SubmitError::Stopped);
        };
        let Some(mut empty) = self.spare.pop() else {
            // No empty batch to swap in: the writer holds them all, or it stopped with them
            // (a failed group's batches are never given back), which must read as stopped.
            if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
                return Err(SubmitError::Stopped);
            }
            self.full_count += 1;
            return Err(SubmitError::Full);
        };
        empty.tick = batch.tick;
        std::mem::swap(batch, &mut empty);
        match queue.try_send(empty) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(full)) => {
                self.spare.push(std::mem::replace(batch, full));
                self.full_count += 1;
                Err(SubmitError::Full)
            }
            Err(TrySendError::Disconnected(full)) => {
                self.spare.push(std::mem::replace(batch, full));
                Err(SubmitError::Stopped)
            }
        }
    }

    /// The latest tick whose batch committed (every earlier tick is committed too), or `None`
    /// while nothing has. Lock-free: one atomic load.
    pub fn durable_tick(&self) -> Option<u64> {
        self.shared
            .durable_tick_plus_one
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Sequence number of the last committed mutation (0 while none).
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The next commit report, if one is waiting.
    pub fn try_recv_commit(&self) -> Option<Commit> {
        self.commits.try_recv().ok()
    }

    /// Waits up to `timeout` for the next commit report (for tools and tests, not the tick).
    pub fn recv_commit_timeout(&self, timeout: Duration) -> Option<Commit> {
        self.commits.recv_timeout(timeout).ok()
    }

    /// How many submits were refused with [`SubmitError::Full`].
    pub fn full_count(&self) -> u64 {
        self.full_count
    }

    /// Writes every queued batch, stops the thread and returns its result.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.queue = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(Ok(Err(e))) = self.thread.take().map(JoinHandle::join) {
            tracing::error!(error = %e, "journal writer stopped with an error");
        }
    }
}

fn run<J: Journal>(
    mut journal: J,
    config: WriterConfig,
    queue: Receiver<TickBatch>,
    recycled: SyncSender<TickBatch>,
    commits: SyncSender<Commit>,
    shared: Arc<Shared>,
) -> Result<(), JournalError> {
    let most = config.group_commit.max(1);
    let mut group: Vec<TickBatch> = Vec::with_capacity(most);
    while let Ok(first) = queue.recv() {
        group.push(first);
        // Batches already waiting go with it (the writer is behind); none are waited for.
        while group.len() < most {
            match queue.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let commit = journal
            .append_group(&group)
            .inspect_err(|e| {
                let tick = group.last().map(|b| b.tick);
                tracing::error!(error = %e, ?tick, batches = group.len(), "journal write failed; nothing more is acknowledged");
            })?
            .ok_or(JournalError::EmptyGroup {
                batches: group.len(),
            })?;
        // One report per batch, in order: sequence numbers counted back from the group's last.
        // The reports go out before the tick is published, so whoever sees `durable_tick`
        // reach a tick finds every report up to it waiting.
        let mut last_seq = commit.last_seq - commit.mutations as u64;
        for mut batch in group.drain(..) {
            last_seq += batch.len() as u64;
            let _ = commits.try_send(Commit {
                tick: batch.tick,
                last_seq,
                mutations: batch.len(),
            });
            batch.clear();
            let _ = recycled.try_send(batch);
        }
        shared.durable_seq.store(commit.last_seq, Ordering::Release);
        shared
            .durable_tick_plus_one
            .store(commit.tick.saturating_add(1), Ordering::Release);
        if journal.mutations_since_snapshot() >= config.compact_every.max(1) {
            journal.compact()?;
        }
    }
    Ok(())
}
