//! The tick side of the writer does not allocate: `submit` (accepted or refused),
//! `durable_tick` and `try_recv_commit` are counted by a counting global allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use fabric_journal::workload::{MUTATIONS_PER_TICK, fill_tick};
use fabric_journal::{JournalWriter, SqliteConfig, SqliteJournal, TickBatch, WriterConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn submitting_does_not_allocate_on_the_tick_thread() {
    let dir = tempfile::tempdir().unwrap();
    let journal =
        SqliteJournal::create(dir.path().join("zone-0.journal"), SqliteConfig::default()).unwrap();
    let config = WriterConfig {
        queue_batches: 4,
        batch_capacity: MUTATIONS_PER_TICK,
        ..WriterConfig::default()
    };
    let mut writer = JournalWriter::start(journal, config);
    let mut batch = TickBatch::with_capacity(MUTATIONS_PER_TICK);
    let before = ALLOCATIONS.with(Cell::get);
    let (mut accepted, mut refused, mut durable) = (0, 0, 0u64);
    for tick in 1..=2000 {
        fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
        match writer.submit(&mut batch) {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
        while writer.try_recv_commit().is_some() {}
        durable = writer.durable_tick().unwrap_or(0);
    }
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(allocations, 0, "the tick thread allocated");
    assert!(
        accepted > 0,
        "some submits were accepted ({refused} refused)"
    );
    assert!(durable <= 2000);
    writer.recv_commit_timeout(Duration::from_millis(1));
    writer.close().unwrap();
}
