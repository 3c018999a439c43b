//! Crash test with a real process: `journal_crash_writer` appends the deterministic workload and
//! prints every committed tick; this test SIGKILLs it at random moments, six times, reopens the
//! journal after each kill and checks that
//!
//! - every tick the child printed as committed (acknowledged) is in the journal: zero
//!   acknowledged mutations lost;
//! - the journal holds whole ticks only (no partial batch) and its state is exactly the
//!   workload replayed up to its last tick;
//! - the next run of the child loads the same point and continues from it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use fabric_journal::workload::{MUTATIONS_PER_TICK, apply_ticks};
use fabric_journal::{Journal, JournalState, SqliteConfig, SqliteJournal};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: usize = 6;
const WAIT: Duration = Duration::from_secs(30);

/// Lines of the child's stdout, parsed as (word, tick, seq).
fn next(lines: &Receiver<String>) -> (String, u64, u64) {
    let line = lines
        .recv_timeout(WAIT)
        .expect("the child printed nothing for 30 s");
    let mut parts = line.split_whitespace();
    let word = parts.next().unwrap_or_default().to_owned();
    let mut num = || -> u64 {
        parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad line from the child: {line:?}"))
    };
    (word, num(), num())
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone-0.journal");
    let seed: u64 = rand::random();
    println!("crash test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut expected_start = (0u64, 0u64);
    let mut rounds_with_commits = 0;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journal_crash_writer"))
            .arg(&path)
            .arg("500")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the crash writer");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (word, tick, seq) = next(&lines);
        assert_eq!(word, "LOADED", "round {round}: first line");
        assert_eq!(
            (tick, seq),
            expected_start,
            "round {round}: the child loads what the journal held after the last kill"
        );
        // Odd rounds: kill anywhere from the start; even rounds: once writing is under way.
        if round % 2 == 0 {
            let (word, ..) = next(&lines);
            assert_eq!(word, "COMMITTED");
        }
        let delay = Duration::from_micros(rng.gen_range(0..60_000));
        std::thread::sleep(delay); // the random moment of the kill, not a wait for a result
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was killed");
        reader.join().unwrap();
        let mut acknowledged = None;
        while let Ok(line) = lines.try_recv() {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("COMMITTED") {
                let tick: u64 = parts.next().unwrap().parse().unwrap();
                let seq: u64 = parts.next().unwrap().parse().unwrap();
                acknowledged = Some((tick, seq));
            }
        }
        let loaded = SqliteJournal::open(&path, SqliteConfig::default())
            .and_then(|mut j| j.load())
            .unwrap_or_else(|e| panic!("round {round}: the journal must reopen: {e}"));
        println!(
            "round {round}: killed after {delay:?}, last acknowledged {acknowledged:?}, journal at tick {} seq {} (snapshot {:?})",
            loaded.last_tick, loaded.last_seq, loaded.snapshot_seq
        );
        if let Some((tick, seq)) = acknowledged {
            rounds_with_commits += 1;
            assert!(
                loaded.last_tick >= tick && loaded.last_seq >= seq,
                "round {round}: acknowledged tick {tick} (seq {seq}) lost, journal ends at {} ({})",
                loaded.last_tick,
                loaded.last_seq
            );
        }
        assert!(
            loaded.last_tick >= expected_start.0,
            "round {round}: went backwards"
        );
        assert_eq!(
            loaded.last_seq,
            loaded.last_tick * MUTATIONS_PER_TICK as u64,
            "round {round}: whole ticks only"
        );
        let mut state = JournalState::new();
        apply_ticks(&mut state, 1, loaded.last_tick, MUTATIONS_PER_TICK);
        assert!(
            loaded.state == state,
            "round {round}: the state is the workload replayed to tick {}",
            loaded.last_tick
        );
        expected_start = (loaded.last_tick, loaded.last_seq);
    }
    assert!(
        rounds_with_commits >= KILLS / 2,
        "kills must land while writing ({rounds_with_commits} of {KILLS} rounds had commits)"
    );
    assert!(expected_start.0 > 0, "the journal grew");
}
