//! Child process of the crash test (`tests/crash.rs`): opens (or creates) the journal given as
//! the first argument, prints `LOADED <last_tick> <last_seq>`, then appends the deterministic
//! workload ([`fabric_journal::workload`]) tick after tick through a [`JournalWriter`] and prints
//! `COMMITTED <tick> <last_seq>` for every commit, flushed at once, until it is killed.
//!
//! Optional second argument: compact every N mutations (default 500, so kills also land
//! during compactions).

use std::io::Write;
use std::time::Duration;

use fabric_journal::workload::{MUTATIONS_PER_TICK, fill_tick};
use fabric_journal::{
    Journal, JournalWriter, SqliteConfig, SqliteJournal, SubmitError, TickBatch, WriterConfig,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: journal_crash_writer FILE [COMPACT_EVERY]"))?;
    let compact_every = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let mut journal = SqliteJournal::open_or_create(&path, SqliteConfig::default())?;
    let loaded = journal.load()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "LOADED {} {}", loaded.last_tick, loaded.last_seq)?;
    out.flush()?;
    let config = WriterConfig {
        compact_every,
        ..WriterConfig::default()
    };
    let mut writer = JournalWriter::start(journal, config);
    let mut batch = TickBatch::with_capacity(MUTATIONS_PER_TICK);
    let mut tick = loaded.last_tick + 1;
    fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
    loop {
        match writer.submit(&mut batch) {
            Ok(()) => {
                tick += 1;
                fill_tick(tick, MUTATIONS_PER_TICK, &mut batch);
            }
            // The workload's batches are whole ticks, so this child waits for room instead of
            // merging ticks; the merge path is tested in tests/writer.rs.
            Err(SubmitError::Full) => {
                if let Some(c) = writer.recv_commit_timeout(Duration::from_millis(100)) {
                    writeln!(out, "COMMITTED {} {}", c.tick, c.last_seq)?;
                    out.flush()?;
                }
            }
            Err(SubmitError::Stopped) => {
                writer.close()?;
                anyhow::bail!("journal writer stopped");
            }
        }
        while let Some(c) = writer.try_recv_commit() {
            writeln!(out, "COMMITTED {} {}", c.tick, c.last_seq)?;
            out.flush()?;
        }
    }
}
