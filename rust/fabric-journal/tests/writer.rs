//! JournalWriter on a real SQLite file: commits come back in tick order and only after the
//! transaction committed; a full queue refuses without blocking and the zone's merged batch is
//! written later with nothing lost; a failed write stops acknowledgements.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use fabric_journal::workload::{MUTATIONS_PER_TICK, apply_ticks, fill_tick, mutation};
use fabric_journal::{
    Commit, Compaction, Journal, JournalError, JournalState, JournalWriter, Loaded, SqliteConfig,
    SqliteJournal, SubmitError, TickBatch, WriterConfig,
};

/// A real SqliteJournal whose appends wait for the test to open a gate (a stand-in for a slow
/// disk, which cannot be produced on demand here). It reports each append it enters.
struct Gated {
    inner: SqliteJournal,
    gate: Receiver<()>,
    entered: Sender<u64>,
}

impl Journal for Gated {
    fn append(&mut self, batch: &TickBatch) -> Result<Commit, JournalError> {
        let _ = self.entered.send(batch.tick);
        let _ = self.gate.recv(); // Err once the gate sender is dropped: open for good.
        self.inner.append(batch)
    }
    fn load(&mut self) -> Result<Loaded, JournalError> {
        self.inner.load()
    }
    fn compact(&mut self) -> Result<Option<Compaction>, JournalError> {
        self.inner.compact()
    }
    fn mutations_since_snapshot(&self) -> u64 {
        self.inner.mutations_since_snapshot()
    }
}

/// Waits until `tick` is durable; returns the commit reports read meanwhile.
fn wait_durable(writer: &JournalWriter, tick: u64) -> Vec<Commit> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reports = Vec::new();
    while writer.durable_tick() < Some(tick) {
        assert!(
            Instant::now() < deadline,
            "tick {tick} never became durable"
        );
        reports.extend(writer.recv_commit_timeout(Duration::from_millis(50)));
    }
    reports
}

fn reload(path: &std::path::Path) -> Loaded {
    SqliteJournal::open(path, SqliteConfig::default())
        .unwrap()
        .load()
        .unwrap()
}

#[test]
fn commits_come_back_in_order_and_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let journal = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
    let config = WriterConfig {
        compact_every: 300,
        ..WriterConfig::default()
    };
    let mut writer = JournalWriter::start(journal, config);
    assert_eq!(writer.durable_tick(), None);
    let mut batch = TickBatch::with_capacity(MUTATIONS_PER_TICK);
    let mut commits = Vec::new();
    for tick in 1..=60 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        while let Err(e) = writer.submit(&mut batch) {
            assert_eq!(e, SubmitError::Full);
            commits.extend(writer.recv_commit_timeout(Duration::from_secs(5)));
        }
        assert!(
            batch.is_empty(),
            "an accepted submit hands back an empty batch"
        );
        assert_eq!(batch.tick, tick, "the tick is kept");
    }
    commits.extend(wait_durable(&writer, 60));
    commits.extend(std::iter::from_fn(|| writer.try_recv_commit()));
    let ticks: Vec<u64> = commits.iter().map(|c| c.tick).collect();
    assert_eq!(
        ticks,
        (1..=60).collect::<Vec<_>>(),
        "one report per tick, in order"
    );
    assert_eq!(writer.durable_seq(), 60 * MUTATIONS_PER_TICK as u64);
    // Acknowledged means durable: what the writer reported is in the file, read by another
    // connection before the writer is even closed.
    let loaded = reload(&path);
    assert_eq!(loaded.last_tick, 60);
    let mut expected = JournalState::new();
    apply_ticks(&mut expected, 1, 60, MUTATIONS_PER_TICK);
    assert!(loaded.state == expected);
    assert!(
        loaded.snapshot_seq.is_some(),
        "compacted every 300 mutations"
    );
    writer.close().unwrap();
}

#[test]
fn a_full_queue_refuses_without_blocking_and_the_merged_batch_is_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let (gate_tx, gate) = channel();
    let (entered, entered_rx) = channel();
    let inner = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
    let config = WriterConfig {
        queue_batches: 2,
        ..WriterConfig::default()
    };
    let mut writer = JournalWriter::start(
        Gated {
            inner,
            gate,
            entered,
        },
        config,
    );
    let mut batch = TickBatch::with_capacity(64);
    fill_tick(1, MUTATIONS_PER_TICK, &mut batch);
    writer.submit(&mut batch).unwrap();
    assert_eq!(
        entered_rx.recv().unwrap(),
        1,
        "the writer is inside tick 1's append"
    );
    for tick in 2..=3 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        writer
            .submit(&mut batch)
            .expect("two batches fit the queue");
    }
    // Tick 4: the queue is full. The submit returns at once and leaves the batch as it was.
    fill_tick(4, MUTATIONS_PER_TICK, &mut batch);
    let started = Instant::now();
    assert_eq!(writer.submit(&mut batch), Err(SubmitError::Full));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "submit does not wait"
    );
    assert_eq!((batch.tick, batch.len()), (4, MUTATIONS_PER_TICK));
    assert_eq!(batch.mutations()[0], mutation(4, 0));
    // Tick 5: the zone adds its mutations to the same batch and tries again.
    batch.tick = 5;
    for i in 0..MUTATIONS_PER_TICK {
        batch.push(mutation(5, i));
    }
    assert_eq!(writer.submit(&mut batch), Err(SubmitError::Full));
    assert_eq!(writer.full_count(), 2);
    assert_eq!(
        writer.durable_tick(),
        None,
        "nothing acknowledged while the disk waits"
    );
    drop(gate_tx);
    wait_durable(&writer, 3);
    writer.submit(&mut batch).expect("room again");
    wait_durable(&writer, 5);
    writer.close().unwrap();
    let loaded = reload(&path);
    let mut expected = JournalState::new();
    apply_ticks(&mut expected, 1, 5, MUTATIONS_PER_TICK);
    assert!(
        loaded.state == expected,
        "ticks 4 and 5 were written, merged"
    );
    assert_eq!(loaded.last_tick, 5);
    assert_eq!(loaded.last_seq, 5 * MUTATIONS_PER_TICK as u64);
}

#[test]
fn a_failed_write_stops_the_writer_and_acknowledges_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let journal = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
    let mut writer = JournalWriter::start(journal, WriterConfig::default());
    let mut batch = TickBatch::default();
    fill_tick(1, 3, &mut batch);
    writer.submit(&mut batch).unwrap();
    wait_durable(&writer, 1);
    fill_tick(u64::MAX, 3, &mut batch); // above i64::MAX: the journal refuses it
    writer.submit(&mut batch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    fill_tick(2, 3, &mut batch);
    loop {
        match writer.submit(&mut batch) {
            Err(SubmitError::Stopped) => break,
            Ok(()) => fill_tick(2, 3, &mut batch),
            Err(SubmitError::Full) => {}
        }
        assert!(
            Instant::now() < deadline,
            "the writer never reported stopping"
        );
        std::thread::yield_now();
    }
    assert_eq!(batch.len(), 3, "a refused batch is kept");
    assert_eq!(writer.durable_tick(), Some(1));
    let err = writer.close().unwrap_err();
    assert!(
        matches!(err, JournalError::TickRange { tick: u64::MAX, .. }),
        "{err}"
    );
    assert_eq!(reload(&path).last_tick, 1);
}
