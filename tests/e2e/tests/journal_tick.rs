//! Benchmark (issue 12): the whole zone tick with the journal on and off, in real zone
//! processes under the same load, in one run. Three headless Godot `FabricZone` processes
//! linked on loopback (`--link network`), 900 wanderers crossing between them (every hand-off
//! is a journaled departure and arrival, and with the journal on it waits for both commits:
//! durable hand-offs), and two Rust clients over WebTransport placing assets
//! (CMD_INSTANCE_ASSET, a journaled spawn acknowledged after its commit) at 20 a second each.
//! The same fabric runs four times, journal on, off, on, off (`--data-dir` with
//! `synchronous = FULL`, or none), each for a minute of load, so the zones' "last minute"
//! windows hold only loaded ticks; then every zone's tick wall and CPU p50/p99/max, the
//! journal phase's p99, the mutations journaled and the placements acknowledged are printed as
//! one table, with the machine's load average beside each run.
//!
//! Run (debug extension, as the other end-to-end tests; prints the table, asserts only that
//! the load ran):
//! `cargo test -p fabric-e2e --test journal_tick -- --ignored --nocapture`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fabric_e2e::linked_zones::Fabric;
use fabric_e2e::repl_client::{Joined, ReplClient};
use fabric_e2e::zone_probe::{http_get, parse_metrics};

/// Seconds of load per run: the zones' summaries cover the last minute.
const LOAD_SECS: u64 = 62;

/// One zone's figures at the end of a run.
struct Row {
    journal: bool,
    run: usize,
    zone: usize,
    load: String,
    m: BTreeMap<String, f64>,
    journal_p99: f64,
    journal_cpu_p99: f64,
    placed: usize,
}

/// The 1-minute load average now (`/proc/loadavg`).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The `{phase="journal"}` value of gauge `name` in a metrics text.
fn journal_phase(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("phase=\"journal\""))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A client with an avatar near `at`, in whichever zone holds that point.
fn join(f: &Fabric, at: [f64; 3]) -> (usize, ReplClient) {
    let mut k = 0;
    for _ in 0..3 {
        let z = &f.zones[k];
        match ReplClient::join(z.port, &z.hash, None, at).expect("client joins") {
            Joined::Player(p) => return (k, *p),
            Joined::Elsewhere(other) => k = other as usize,
        }
    }
    panic!("no zone took an avatar at {at:?}");
}

/// Where command `n` places its instance: on a 16 x 16 grid of half metres around an avatar
/// at the origin.
fn spot(n: u64) -> [f64; 3] {
    let cell = |k: u64| (k % 16) as f64 * 0.5 - 4.0;
    [cell(n), cell(n / 16), 1.0]
}

/// One run: start the fabric (with the journal or not), link it, load it for [`LOAD_SECS`],
/// read every zone's metrics, stop it.
fn run(journal: bool, index: usize) -> Vec<Row> {
    let data =
        std::env::temp_dir().join(format!("e2e-journal-tick-{}-{index}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.display().to_string();
    let mut args: Vec<&str> = "--population wanderers --entities 900 --seed 7 \
        --hysteresis-ticks 4 --capacity 6400 --headroom 400"
        .split_whitespace()
        .collect();
    if journal {
        args.extend(["--data-dir", &data_arg, "--journal-sync", "full"]);
    }
    let mut f =
        Fabric::start(&format!("e2e-journal-tick-{index}"), 3, &args).expect("three zones start");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.link_neighbours().expect("zones link");
        let mut clients = [join(&f, [0.0; 3]), join(&f, [0.0, 0.0, 0.5])];
        let mut next: u64 = 0;
        let mut next_send = Instant::now();
        let end = Instant::now() + Duration::from_secs(LOAD_SECS);
        while Instant::now() < end {
            if Instant::now() >= next_send {
                for (_, c) in clients.iter_mut() {
                    next += 1;
                    c.place(next, spot(next), next as u32)
                        .expect("command sent");
                }
                next_send += Duration::from_millis(50);
            }
            for (_, c) in clients.iter_mut() {
                c.poll().expect("session open");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let load = load_average();
        let placed: Vec<(usize, usize)> =
            clients.iter().map(|(k, c)| (*k, c.placed.len())).collect();
        f.zones
            .iter()
            .enumerate()
            .map(|(k, z)| {
                let text = http_get(z.metrics, "/metrics").expect("metrics");
                Row {
                    journal,
                    run: index,
                    zone: k,
                    load: load.clone(),
                    m: parse_metrics(&text),
                    journal_p99: journal_phase(&text, "fabric_zone_phase_p99_seconds"),
                    journal_cpu_p99: journal_phase(&text, "fabric_zone_phase_cpu_p99_seconds"),
                    placed: placed
                        .iter()
                        .filter(|(zone, _)| *zone == k)
                        .map(|(_, n)| n)
                        .sum(),
                }
            })
            .collect::<Vec<_>>()
    }));
    f.stop();
    let _ = std::fs::remove_dir_all(&data);
    result.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
#[ignore = "a benchmark: prints figures, asserts nothing about speed"]
fn bench_zone_tick_with_journal_on_and_off() {
    let mut rows = Vec::new();
    for (index, journal) in [true, false, true, false].into_iter().enumerate() {
        println!(
            "run {index}: journal {}",
            if journal { "on" } else { "off" }
        );
        rows.extend(run(journal, index));
    }
    println!(
        "\n3 zone processes, 900 wanderers, 2 clients placing 20 assets/s each, {LOAD_SECS} s per run, \
         debug extension; tick figures over the last minute, ms:"
    );
    println!(
        "| run | journal | load | zone | owned | tick wall p50 / p99 / max | tick CPU p50 / p99 / max | journal phase p99 wall / CPU | mutations journaled | queue full | migrations in | placed (acked) |"
    );
    println!("|---:|---|---:|---:|---:|---|---|---|---:|---:|---:|---:|");
    for r in &rows {
        let n = |k: &str| r.m.get(k).copied().unwrap_or(f64::NAN);
        // p50 / p99 / max of the tick's wall (`tick`) or CPU (`tick_cpu`) time, ms.
        let summary = |what: &str| {
            ["p50", "p99", "max"]
                .map(|q| format!("{:.2}", n(&format!("fabric_zone_{what}_{q}_seconds")) * 1e3))
                .join(" / ")
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.3} / {:.3} | {:.0} | {:.0} | {:.0} | {} |",
            r.run,
            if r.journal { "on" } else { "off" },
            r.load,
            r.zone,
            n("fabric_zone_owned"),
            summary("tick"),
            summary("tick_cpu"),
            r.journal_p99 * 1e3,
            r.journal_cpu_p99 * 1e3,
            n("fabric_zone_journal_mutations_total"),
            n("fabric_zone_journal_full_total"),
            n("fabric_zone_migrations_in_total"),
            r.placed,
        );
    }
    // The load ran: entities crossed, and with the journal on it journaled them and the
    // placements, which were acknowledged.
    for r in &rows {
        let n = |k: &str| r.m.get(k).copied().unwrap_or(0.0);
        assert!(
            n("fabric_zone_migrations_in_total") > 0.0,
            "run {} zone {}: no migration",
            r.run,
            r.zone
        );
        if r.journal {
            assert!(
                n("fabric_zone_journal_mutations_total") > 0.0,
                "run {} zone {}: nothing journaled",
                r.run,
                r.zone
            );
        }
    }
    for run in 0..4 {
        let placed: usize = rows.iter().filter(|r| r.run == run).map(|r| r.placed).sum();
        assert!(placed > 100, "run {run}: {placed} placements acknowledged");
    }
}
