//! The zone's crash-recovery journal, with real headless Godot `FabricZone` processes and real
//! SQLite files (`--data-dir`).
//!
//! The crash test runs a zone with 200 wanderers and a stand-in for clients
//! (`scenes/tests/zone_journal.tscn`: each tick it spawns a stationary entity through the API,
//! sets its payload, and despawns at once those whose id is 3 mod 4), SIGKILLs it at random
//! moments six times and restarts it each time, alternately with and without the start
//! population (the journal's entity set must win either way). Before each kill the test reads
//! the zone's state dump (`/state`, tick `S`) and waits until `/metrics` reports
//! `fabric_zone_journal_durable_tick >= S`: everything the dump shows is then durable. After
//! each restart the zone must hold every one of those entities exactly once (stationary ones
//! at the same position, bit for bit), none of the despawned ones, and tick on after the
//! journal's last tick.
//!
//! A truncated journal makes the zone exit with code 1 and an error naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fabric_e2e::zone_probe::{self, field};
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::Proc;
use rand::{Rng, SeedableRng};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const SCENE: &str = "res://scenes/tests/zone_journal.tscn";
const WANDERERS: u32 = 200;

/// A zone process, its metrics address and its `FABRIC_ZONE_JOURNAL` line.
struct Zone {
    proc: Proc,
    metrics: SocketAddr,
    journal: String,
}

fn zone_command(engine: &Engine, dir: &Path, population: bool) -> std::process::Command {
    let dir = dir.display().to_string();
    let mut args = vec![
        "--zone-id",
        "0",
        "--zone-count",
        "1",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--data-dir",
        &dir,
    ];
    if population {
        args.extend([
            "--population",
            "wanderers",
            "--entities",
            "200",
            "--seed",
            "5",
        ]);
    }
    engine.scene_command(SCENE, &args)
}

fn start(engine: &Engine, dir: &Path, population: bool) -> Zone {
    let mut proc = Proc::spawn("zone", zone_command(engine, dir, population), true)
        .expect("zone process starts");
    let line = |proc: &mut Proc, tag: &str| {
        proc.wait_for_line(|l| l.starts_with(tag), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{tag}: {e}\n{}", proc.output()))
    };
    let metrics = line(&mut proc, "FABRIC_ZONE_METRICS");
    let metrics = field(&metrics, "addr")
        .and_then(|a| a.parse().ok())
        .expect("metrics address");
    let journal = line(&mut proc, "FABRIC_ZONE_JOURNAL");
    line(&mut proc, "FABRIC_ZONE_READY");
    Zone {
        proc,
        metrics,
        journal,
    }
}

/// A state dump: its tick and each held entity's position bits.
struct Dump {
    tick: u64,
    held: Vec<u32>,
    positions: BTreeMap<u32, [i128; 3]>,
}

fn dump(addr: SocketAddr) -> Dump {
    let text = zone_probe::http_get(addr, "/state").expect("/state answers");
    let head = text.lines().next().unwrap_or_default();
    let num = |k: &str| -> u64 { field(head, k).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let held = field(head, "held")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("numeric id"))
        .collect();
    let positions = text
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let v: Vec<i128> = l.split(' ').map(|x| x.parse().expect("number")).collect();
            (v[0] as u32, [v[1], v[2], v[3]])
        })
        .collect();
    Dump {
        tick: num("tick"),
        held,
        positions,
    }
}

fn durable_tick(addr: SocketAddr) -> f64 {
    zone_probe::metrics(addr)
        .ok()
        .and_then(|m| m.get("fabric_zone_journal_durable_tick").copied())
        .unwrap_or(-1.0)
}

/// Polls `/state` until its tick is at least `tick`.
fn dump_at(addr: SocketAddr, tick: u64) -> Dump {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let d = dump(addr);
        if d.tick >= tick {
            return d;
        }
        assert!(Instant::now() < until, "no state dump of tick {tick}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The engine ready, and a fresh data directory named after `name`; the test's lock held.
fn setup(
    name: &str,
) -> (
    std::sync::MutexGuard<'static, ()>,
    Engine,
    std::path::PathBuf,
) {
    let s = serial();
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (s, engine, dir)
}

/// Polls `/metrics` until the journal's durable tick reaches `tick`.
fn wait_durable(addr: SocketAddr, tick: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while durable_tick(addr) < tick as f64 {
        assert!(Instant::now() < until, "tick {tick} never durable");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_api(id: u32) -> bool {
    id & 0x8000_0000 != 0
}

#[test]
fn a_zone_killed_at_random_moments_restarts_with_every_durable_entity() {
    let (_s, engine, dir) = setup("zone-journal-e2e");
    let seed = rand::random::<u64>();
    println!("kill moments: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut zone = start(&engine, &dir, true);
    assert!(
        zone.journal.contains("last_seq=0"),
        "a new journal: {}",
        zone.journal
    );
    let mut api_seen = BTreeSet::new();
    for round in 0..6 {
        // Run a while, then take a durable picture of the zone.
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
        let d = dump_at(zone.metrics, 1);
        wait_durable(zone.metrics, d.tick);
        api_seen.extend(d.held.iter().copied().filter(|&id| is_api(id)));
        let before = d;
        // Kill at a random moment after it: spawns, payload updates and despawns under way.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        // SAFETY: kill(2) on the process group the harness created for the zone.
        unsafe {
            libc::kill(-(zone.proc.pid() as i32), libc::SIGKILL);
        }
        let out = zone.proc.wait(Duration::from_secs(10));
        assert_eq!(out.signal, Some(libc::SIGKILL), "round {round}: {out:?}");

        let population = round % 2 == 1;
        zone = start(&engine, &dir, population);
        let j = &zone.journal;
        let last_tick: u64 = field(j, "last_tick").and_then(|v| v.parse().ok()).unwrap();
        assert!(
            last_tick >= before.tick.saturating_sub(1),
            "round {round}: {j}"
        );
        let after = dump_at(zone.metrics, last_tick + 1);
        let held: BTreeSet<u32> = after.held.iter().copied().collect();
        assert_eq!(
            held.len(),
            after.held.len(),
            "round {round}: an id held twice"
        );
        for id in &before.held {
            assert!(
                held.contains(id),
                "round {round}: durable entity {id} lost ({j})"
            );
        }
        let wanderers = held.iter().filter(|&&id| !is_api(id)).count();
        assert_eq!(
            wanderers, WANDERERS as usize,
            "round {round}: the journal's wanderers, not a second population ({population})"
        );
        for id in held.iter().filter(|&&id| is_api(id)) {
            assert_ne!(id % 4, 3, "round {round}: {id} was despawned at once");
            if let Some(p) = before.positions.get(id) {
                assert_eq!(
                    after.positions.get(id),
                    Some(p),
                    "round {round}: stationary entity {id} where the journal put it"
                );
            }
        }
        println!(
            "round {round}: durable tick >= {}, restarted after tick {last_tick} with {} entities ({j})",
            before.tick,
            held.len()
        );
    }
    assert!(
        api_seen.len() >= 20,
        "API spawns were journaled: {}",
        api_seen.len()
    );
    zone.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_journal_stops_the_zone_with_an_error_naming_the_file() {
    let (_s, engine, dir) = setup("zone-journal-bad");
    let mut zone = start(&engine, &dir, true);
    wait_durable(zone.metrics, 1);
    // A crash, not a stop: SIGTERM would drain the zone into a graceful shutdown's snapshot,
    // which supersedes the journal at the next start.
    // SAFETY: kill(2) on the zone's own process group.
    unsafe {
        libc::kill(-(zone.proc.pid() as i32), libc::SIGKILL);
    }
    zone.proc.wait(Duration::from_secs(10));
    let file = dir.join("zone-0.journal");
    let len = std::fs::metadata(&file).expect("the journal exists").len();
    assert!(len > 1000, "the journal holds pages: {len} bytes");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2 + 1).unwrap();
    drop(f);
    // Without its log beside it (with a log there, the header check is left to SQLite).
    for ext in ["journal-wal", "journal-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("zone-0.{ext}")));
    }
    let mut proc = Proc::spawn("zone", zone_command(&engine, &dir, true), true).unwrap();
    let out = proc.wait(Duration::from_secs(30));
    let text = proc.output();
    assert_eq!(out.code, Some(1), "exit code 1: {out:?}\n{text}");
    let name = file.display().to_string();
    assert!(
        text.lines()
            .any(|l| l.contains(&name) && l.contains("truncated")),
        "an error naming {name}:\n{text}"
    );
    assert!(!text.contains("FABRIC_ZONE_READY"), "never ready:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
