//! JournalWriter on a real SQLite file: commits come back in tick order and only after the
//! transaction committed; a full queue refuses without blocking and the zone's merged batch is
//! written later with nothing lost; a failed write stops acknowledgements. Group commit: when
//! batches wait for the writer it writes them in one transaction, and acknowledges (publishes
//! as durable, reports) none of them before that transaction committed; a group that fails
//! acknowledges none of its batches and leaves none of them in the file, even the valid ones.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use fabric_journal::workload::{MUTATIONS_PER_TICK, apply_ticks, fill_tick, mutation};
use fabric_journal::{
    Commit, Compaction, Journal, JournalError, JournalState, JournalWriter, Loaded, SqliteConfig,
    SqliteJournal, SubmitError, TickBatch, WriterConfig,
};

/// A real SqliteJournal whose writes (one transaction each, of one batch or a group) wait for
/// the test to open a gate (a stand-in for a slow disk, which cannot be produced on demand
/// here). It reports the ticks of each write it enters.
struct Gated {
    inner: SqliteJournal,
    gate: Receiver<()>,
    entered: Sender<Vec<u64>>,
}

impl Journal for Gated {
    fn append(&mut self, batch: &TickBatch) -> Result<Commit, JournalError> {
        let _ = self.entered.send(vec![batch.tick]);
        let _ = self.gate.recv(); // Err once the gate sender is dropped: open for good.
        self.inner.append(batch)
    }
    fn append_group(&mut self, batches: &[TickBatch]) -> Result<Option<Commit>, JournalError> {
        let _ = self.entered.send(batches.iter().map(|b| b.tick).collect());
        let _ = self.gate.recv();
        self.inner.append_group(batches)
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

/// A writer on a new [`Gated`] journal at `path` with a queue of `queue` batches (group
/// commit at its default): the writer, the gate (one message lets one write through; dropped,
/// all) and the ticks of each write entered.
fn gated_writer(
    path: &std::path::Path,
    queue: usize,
) -> (JournalWriter, Sender<()>, Receiver<Vec<u64>>) {
    let (gate_tx, gate) = channel();
    let (entered, entered_rx) = channel();
    let inner = SqliteJournal::create(path, SqliteConfig::default()).unwrap();
    let config = WriterConfig {
        queue_batches: queue,
        ..WriterConfig::default()
    };
    let writer = JournalWriter::start(
        Gated {
            inner,
            gate,
            entered,
        },
        config,
    );
    (writer, gate_tx, entered_rx)
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
    let (mut writer, gate_tx, entered_rx) = gated_writer(&path, 2);
    let mut batch = TickBatch::with_capacity(64);
    fill_tick(1, MUTATIONS_PER_TICK, &mut batch);
    writer.submit(&mut batch).unwrap();
    assert_eq!(
        entered_rx.recv().unwrap(),
        vec![1],
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

#[test]
fn waiting_batches_commit_together_and_are_acknowledged_only_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let (mut writer, gate_tx, entered_rx) = gated_writer(&path, 8);
    let mut batch = TickBatch::with_capacity(64);
    let submit = |writer: &mut JournalWriter, batch: &mut TickBatch, tick: u64| {
        fill_tick(tick, MUTATIONS_PER_TICK, batch);
        writer.submit(batch).expect("room in the queue");
    };
    let recv = || entered_rx.recv_timeout(Duration::from_secs(20)).unwrap();

    submit(&mut writer, &mut batch, 1);
    assert_eq!(recv(), vec![1], "alone: the writer was not behind");
    for tick in 2..=6 {
        submit(&mut writer, &mut batch, tick);
    }
    assert_eq!(writer.durable_tick(), None, "nothing committed yet");
    gate_tx.send(()).unwrap();
    assert_eq!(
        recv(),
        vec![2, 3, 4, 5, 6],
        "the five batches that waited go in one transaction"
    );
    let mut reports = wait_durable(&writer, 1);
    assert_eq!(
        writer.durable_tick(),
        Some(1),
        "ticks 2 to 6 are not acknowledged while their group waits for the disk"
    );
    gate_tx.send(()).unwrap();
    reports.extend(wait_durable(&writer, 6));
    // Each report goes out just after its tick is published as durable.
    let deadline = Instant::now() + Duration::from_secs(20);
    while reports.len() < 6 && Instant::now() < deadline {
        reports.extend(writer.recv_commit_timeout(Duration::from_millis(50)));
    }
    let per_tick = MUTATIONS_PER_TICK as u64;
    let expected: Vec<(u64, u64, usize)> = (1..=6)
        .map(|t| (t, t * per_tick, MUTATIONS_PER_TICK))
        .collect();
    let got: Vec<(u64, u64, usize)> = reports
        .iter()
        .map(|c| (c.tick, c.last_seq, c.mutations))
        .collect();
    assert_eq!(
        got, expected,
        "one report per batch, in order, with its own last sequence number"
    );
    assert_eq!(writer.durable_seq(), 6 * per_tick);
    // What was acknowledged is in the file, read by another connection.
    let loaded = reload(&path);
    let mut state = JournalState::new();
    apply_ticks(&mut state, 1, 6, MUTATIONS_PER_TICK);
    assert!(loaded.state == state, "ticks 1 to 6 in the file");
    assert_eq!((loaded.last_tick, loaded.last_seq), (6, 6 * per_tick));

    // A group that fails: tick 7 alone commits; then tick 8 (valid) and a tick the journal
    // refuses wait together, and their group fails as a whole.
    submit(&mut writer, &mut batch, 7);
    assert_eq!(recv(), vec![7]);
    submit(&mut writer, &mut batch, 8);
    fill_tick(u64::MAX, 3, &mut batch); // above i64::MAX: the journal refuses it
    writer.submit(&mut batch).unwrap();
    gate_tx.send(()).unwrap();
    assert_eq!(
        recv(),
        vec![8, u64::MAX],
        "tick 8 and the bad batch together"
    );
    wait_durable(&writer, 7);
    gate_tx.send(()).unwrap();
    let err = writer.close().unwrap_err();
    assert!(
        matches!(err, JournalError::TickRange { tick: u64::MAX, .. }),
        "{err}"
    );
    let loaded = reload(&path);
    assert_eq!(
        loaded.last_tick, 7,
        "nothing of the failed group is in the file, not even the valid tick 8"
    );
    assert_eq!(loaded.last_seq, 7 * per_tick);
}
