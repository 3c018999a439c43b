//! Journal benchmark: prints a table (see docs/benchmarks.md, "Zone journal").
//!
//! `cargo run --release -p fabric-journal --example journal_bench`
//!
//! 1. Appends, one transaction per tick, for each `synchronous` setting and two tick sizes.
//! 2. The same through `JournalWriter` (thread hand-off included), and with `synchronous =
//!    FULL` the writer committing every waiting batch in one transaction (group commit) against
//!    one transaction per batch, interleaved in the same run.
//! 3. Replay of a full 1,800-slot zone from 100,000 mutations: open (header checks and
//!    `quick_check`) and load, without a snapshot and after compaction; and `open_and_load`,
//!    which runs the check on a second thread while the state is read.
//! 4. Size on disk.
//! 5. Tick-side cost: a tick loop filling 20 mutations, with and without `submit`, p50/p99.

use std::path::Path;
use std::time::{Duration, Instant};

use fabric_journal::workload::{WORKLOAD_IDS, fill_tick};
use fabric_journal::{
    Journal, JournalWriter, SqliteConfig, SqliteJournal, SubmitError, Synchronous, TickBatch,
    WriterConfig,
};

fn config(synchronous: Synchronous) -> SqliteConfig {
    SqliteConfig { synchronous }
}

fn append_rate(dir: &Path, synchronous: Synchronous, per_tick: usize, ticks: u64) -> f64 {
    let path = dir.join(format!("append-{synchronous:?}-{per_tick}.journal"));
    let mut j = SqliteJournal::create(&path, config(synchronous)).unwrap();
    let mut batches: Vec<TickBatch> = (1..=ticks)
        .map(|t| {
            let mut b = TickBatch::default();
            fill_tick(t, per_tick, &mut b);
            b
        })
        .collect();
    let start = Instant::now();
    for b in &mut batches {
        j.append(b).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (ticks as f64 * per_tick as f64) / secs
}

/// Mutations per second through a `JournalWriter` whose queue holds `queue` batches and
/// which commits up to `group` waiting batches in one transaction; the ticks are submitted
/// back to back (faster than the disk), so the writer is behind all the time.
fn writer_rate(
    dir: &Path,
    synchronous: Synchronous,
    per_tick: usize,
    ticks: u64,
    (queue, group): (usize, usize),
) -> f64 {
    let path = dir.join(format!(
        "writer-{synchronous:?}-{per_tick}-{queue}-{group}.journal"
    ));
    let _ = std::fs::remove_file(&path);
    let j = SqliteJournal::create(&path, config(synchronous)).unwrap();
    let wc = WriterConfig {
        batch_capacity: per_tick,
        compact_every: u64::MAX,
        queue_batches: queue,
        group_commit: group,
        ..WriterConfig::default()
    };
    let mut w = JournalWriter::start(j, wc);
    let mut batch = TickBatch::with_capacity(per_tick);
    let start = Instant::now();
    for t in 1..=ticks {
        fill_tick(t, per_tick, &mut batch);
        while let Err(SubmitError::Full) = w.submit(&mut batch) {
            w.recv_commit_timeout(Duration::from_millis(5));
        }
    }
    while w.durable_tick() != Some(ticks) {
        w.recv_commit_timeout(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    w.close().unwrap();
    let _ = std::fs::remove_file(&path);
    (ticks as f64 * per_tick as f64) / secs
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time of this thread, ms: unlike wall time it does not count the time the shared
/// machine's other processes held the core.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// What [`replay`] measured: medians in ms.
struct Replay {
    open: (f64, f64),
    load: (f64, f64),
    /// `open_and_load` (the check in parallel with the read), wall.
    together: f64,
    entities: usize,
    replayed: u64,
}

/// Medians of 7: open and load (wall, CPU), `open_and_load` (wall); entities, mutations replayed.
fn replay(path: &Path) -> Replay {
    let (mut open_wall, mut open_cpu, mut load_wall, mut load_cpu, mut together) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut result = (0, 0);
    for _ in 0..7 {
        let (start, cpu) = (Instant::now(), thread_cpu_ms());
        let mut j = SqliteJournal::open(path, config(Synchronous::Normal)).unwrap();
        open_wall.push(start.elapsed().as_secs_f64() * 1e3);
        open_cpu.push(thread_cpu_ms() - cpu);
        let (start, cpu) = (Instant::now(), thread_cpu_ms());
        let loaded = j.load().unwrap();
        load_wall.push(start.elapsed().as_secs_f64() * 1e3);
        load_cpu.push(thread_cpu_ms() - cpu);
        result = (loaded.state.len(), loaded.replayed);
        drop(j);
        let start = Instant::now();
        let (_j, both) = SqliteJournal::open_and_load(path, config(Synchronous::Normal)).unwrap();
        together.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            (both.state.len(), both.replayed, both.last_seq),
            (result.0, result.1, loaded.last_seq),
            "open_and_load reads what open + load read"
        );
    }
    Replay {
        open: (median(open_wall), median(open_cpu)),
        load: (median(load_wall), median(load_cpu)),
        together: median(together),
        entities: result.0,
        replayed: result.1,
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    println!(
        "fabric-journal benchmark (files under {})",
        dir.path().display()
    );
    println!("\n## appends, one transaction per tick (SqliteJournal::append)");
    println!("| synchronous | mutations/tick | ticks | mutations/s |");
    println!("|---|---|---|---|");
    for sync in [Synchronous::Off, Synchronous::Normal, Synchronous::Full] {
        for (per_tick, ticks) in [(1000usize, 200u64), (100, 500)] {
            let rate = append_rate(dir.path(), sync, per_tick, ticks);
            println!("| {sync:?} | {per_tick} | {ticks} | {rate:.0} |");
        }
    }
    println!("\n## appends through JournalWriter (submit on this thread, commit on the writer's)");
    println!("| synchronous | mutations/tick | ticks | mutations/s |");
    println!("|---|---|---|---|");
    for sync in [Synchronous::Normal, Synchronous::Full] {
        let rate = writer_rate(dir.path(), sync, 1000, 200, (8, 1));
        println!("| {sync:?} | 1000 | 200 | {rate:.0} |");
    }

    println!(
        "\n## group commit, synchronous = Full: one transaction per batch vs the waiting batches in one (JournalWriter, ticks back to back, 3 rounds interleaved, load average {})",
        load_average()
    );
    let configs = [(8usize, 1usize), (8, 8), (32, 32)];
    let sizes = [(100usize, 600u64), (1000, 200)];
    let mut rates = vec![Vec::new(); configs.len() * sizes.len()];
    for _ in 0..3 {
        for (i, &(per_tick, ticks)) in sizes.iter().enumerate() {
            for (k, &qg) in configs.iter().enumerate() {
                let r = writer_rate(dir.path(), Synchronous::Full, per_tick, ticks, qg);
                rates[i * configs.len() + k].push(r);
            }
        }
    }
    println!(
        "| mutations/tick | queue | batches per transaction (most) | mutations/s, median | the 3 rounds | vs one per batch |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, &(per_tick, _)) in sizes.iter().enumerate() {
        let base = median(rates[i * configs.len()].clone());
        for (k, &(queue, group)) in configs.iter().enumerate() {
            let v = &rates[i * configs.len() + k];
            let m = median(v.clone());
            let runs: Vec<String> = v.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {per_tick} | {queue} | {group} | {m:.0} | {} | {:.2}x |",
                runs.join(" / "),
                m / base
            );
        }
    }
    println!("(load average after: {})", load_average());

    println!(
        "\n## replay of a full zone ({WORKLOAD_IDS} ids) from 100,000 mutations (median of 7)"
    );
    let path = dir.path().join("replay.journal");
    {
        let mut j = SqliteJournal::create(&path, config(Synchronous::Off)).unwrap();
        let mut b = TickBatch::default();
        for t in 1..=100 {
            fill_tick(t, 1000, &mut b);
            j.append(&b).unwrap();
        }
    }
    let raw_size = file_size(&path);
    println!(
        "| journal | open ms wall | open ms CPU | load ms wall | load ms CPU | open_and_load ms wall | entities | mutations replayed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let m = replay(&path);
    println!(
        "| 100,000 mutations, no snapshot | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
        m.open.0, m.open.1, m.load.0, m.load.1, m.together, m.entities, m.replayed
    );
    {
        let mut j = SqliteJournal::open(&path, config(Synchronous::Off)).unwrap();
        j.compact().unwrap();
        let mut b = TickBatch::default();
        for t in 101..=110 {
            fill_tick(t, 1000, &mut b);
            j.append(&b).unwrap();
        }
    }
    let m = replay(&path);
    println!(
        "| snapshot + 10,000 later mutations | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
        m.open.0, m.open.1, m.load.0, m.load.1, m.together, m.entities, m.replayed
    );
    let tail_size = file_size(&path);
    {
        let mut j = SqliteJournal::open(&path, config(Synchronous::Off)).unwrap();
        j.compact().unwrap();
        j.load().unwrap();
    }
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("VACUUM").unwrap();
    }
    let compact_size = file_size(&path);
    println!("\n## size on disk");
    println!("| journal | bytes |");
    println!("|---|---|");
    println!("| 100,000 mutations, no snapshot | {raw_size} |");
    println!(
        "| after compaction + 10,000 mutations (free pages reused, not returned) | {tail_size} |"
    );
    println!(
        "| one snapshot of {} entities, vacuumed | {compact_size} |",
        m.entities
    );

    println!(
        "\n## tick side: 2,000 ticks every 5 ms, each filling 20 mutations, with and without submit (ns)"
    );
    println!("| journal | p50 | p99 | max | refused (Full) |");
    println!("|---|---|---|---|---|");
    for on in [false, true] {
        let path = dir.path().join(format!("tick-{on}.journal"));
        let j = SqliteJournal::create(&path, config(Synchronous::Normal)).unwrap();
        let wc = WriterConfig {
            batch_capacity: 1024,
            ..WriterConfig::default()
        };
        let mut w = JournalWriter::start(j, wc);
        let mut batch = TickBatch::with_capacity(1024);
        let mut times = Vec::with_capacity(2_000);
        let period = Duration::from_millis(5);
        let mut next = Instant::now();
        for t in 1..=2_000u64 {
            next += period;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let start = Instant::now();
            // On Full the batch is kept and this tick is added to it (the documented policy).
            batch.tick = t;
            for i in 0..20 {
                batch.push(fabric_journal::workload::mutation(t, i));
            }
            if on {
                let _ = w.submit(&mut batch);
            } else {
                batch.clear();
            }
            times.push(start.elapsed().as_nanos());
        }
        times.sort_unstable();
        println!(
            "| {} | {} | {} | {} | {} |",
            if on { "on" } else { "off" },
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
            w.full_count()
        );
        w.close().unwrap();
    }
}
