//! Group commit on a real SQLite file: when batches wait for the writer, it writes them in one
//! transaction, and acknowledges (publishes as durable, reports) none of them before that
//! transaction committed; a group that fails acknowledges none of its batches and leaves none
//! of them in the file, even the valid ones.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use fabric_journal::workload::{MUTATIONS_PER_TICK, apply_ticks, fill_tick};
use fabric_journal::{
    Commit, Compaction, Journal, JournalError, JournalState, JournalWriter, Loaded, SqliteConfig,
    SqliteJournal, TickBatch, WriterConfig,
};

/// A real SqliteJournal whose group appends each wait for one message on `gate` (a stand-in
/// for a slow disk). It reports the ticks of each group it enters.
struct Gated {
    inner: SqliteJournal,
    gate: Receiver<()>,
    entered: Sender<Vec<u64>>,
}

impl Journal for Gated {
    fn append(&mut self, batch: &TickBatch) -> Result<Commit, JournalError> {
        let _ = self.entered.send(vec![batch.tick]);
        let _ = self.gate.recv();
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

fn wait_durable(writer: &JournalWriter, tick: u64, reports: &mut Vec<Commit>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while writer.durable_tick() < Some(tick) {
        assert!(
            Instant::now() < deadline,
            "tick {tick} never became durable"
        );
        reports.extend(writer.recv_commit_timeout(Duration::from_millis(50)));
    }
    reports.extend(std::iter::from_fn(|| writer.try_recv_commit()));
}

fn reload(path: &std::path::Path) -> Loaded {
    SqliteJournal::open(path, SqliteConfig::default())
        .unwrap()
        .load()
        .unwrap()
}

#[test]
fn waiting_batches_commit_together_and_are_acknowledged_only_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let (gate_tx, gate) = channel();
    let (entered, entered_rx) = channel();
    let inner = SqliteJournal::create(&path, SqliteConfig::default()).unwrap();
    let config = WriterConfig {
        queue_batches: 8,
        group_commit: 8,
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
    let mut reports = Vec::new();
    wait_durable(&writer, 1, &mut reports);
    assert_eq!(
        writer.durable_tick(),
        Some(1),
        "ticks 2 to 6 are not acknowledged while their group waits for the disk"
    );
    gate_tx.send(()).unwrap();
    wait_durable(&writer, 6, &mut reports);
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
    assert_eq!(recv(), vec![8, u64::MAX], "tick 8 and the bad batch together");
    wait_durable(&writer, 7, &mut reports);
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
