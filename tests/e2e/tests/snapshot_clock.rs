//! The zone's hybrid logical clock across a graceful shutdown and a restart from the snapshot
//! (issue 12), with a real headless Godot `FabricZone` process and real files: a one-zone
//! fabric with 200 wanderers and a data directory runs a few seconds and gets SIGTERM; it
//! writes `fabric-snapshot.res` with its clock (`FABRIC_ZONE_SHUTDOWN ... hlc=H`) and exits 0.
//! Restarted on the same directory, the snapshot supersedes the journal (moved aside, a fresh
//! one is opened), so the clock can only come from the snapshot: the zone must report
//! (`FABRIC_ZONE_RESTORED ... hlc=R`) a clock `R >= H`, its stats lines must never show a clock
//! below `H` while it ticks on, and its ticks must go on after the saved tick.
//!
//! Before the snapshot carried the clock, this zone (unlinked: its ticks do not follow the
//! fabric's shared wall-clock numbering) restarted at tick 0 with its clock at 0.

use std::path::Path;
use std::time::Duration;

use fabric_e2e::zone_probe::field;
use fabric_e2e::zone_state::{ObservedZone, start_observed_zone};
use fabric_harness::engine::{self, Engine};

fn start(engine: &Engine, dir: &Path, population: bool) -> ObservedZone {
    let dir = dir.display().to_string();
    let mut args: Vec<&str> = "--zone-id 0 --zone-count 1 --stats-every 0.5"
        .split_whitespace()
        .collect();
    args.extend(["--data-dir", dir.as_str()]);
    args.extend(if population {
        ["--population", "wanderers", "--entities", "200"].as_slice()
    } else {
        ["--population", "none"].as_slice()
    });
    start_observed_zone(engine, &args).expect("zone process starts")
}

/// `key=` of a line, as a number.
fn number(line: &str, key: &str) -> u64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("`{key}=` in {line}"))
}

/// The (tick, hlc) of every `FABRIC_ZONE_STATS` line printed so far.
fn stats(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.starts_with("FABRIC_ZONE_STATS "))
        .map(|l| (number(l, "tick"), number(l, "hlc")))
        .collect()
}

#[test]
fn a_zone_restarted_from_its_snapshot_never_takes_its_clock_back() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("e2e-snapshot-clock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut zone = start(&engine, &dir, true);
    zone.proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_STATS ") && number(l, "tick") >= 60,
            Duration::from_secs(60),
        )
        .expect("the zone ticks");
    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", &zone.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM");
    let out = zone.proc.wait(Duration::from_secs(60));
    let text = zone.proc.output();
    assert!(out.success(), "exits 0 after SIGTERM: {out:?}\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("FABRIC_ZONE_SHUTDOWN zone_id=0 saved 200 entities to "))
        .unwrap_or_else(|| panic!("the zone saved its 200 wanderers:\n{text}"));
    let saved = number(line, "hlc");
    let before = stats(&text);
    let (last_tick, last_hlc) = *before.last().expect("stats before the stop");
    assert!(
        saved >= last_hlc && saved >> 16 >= last_tick,
        "the snapshot holds the latest clock: {saved:#x}, last stats tick {last_tick} hlc {last_hlc:#x}"
    );

    let mut zone = start(&engine, &dir, false);
    let text = zone.proc.output();
    let line = text
        .lines()
        .find(|l| l.starts_with("FABRIC_ZONE_RESTORED zone_id=0 "))
        .unwrap_or_else(|| panic!("the zone reloaded the snapshot:\n{text}"));
    assert_eq!(number(line, "entities"), 200, "{line}");
    let restored = number(line, "hlc");
    assert!(
        restored >= saved,
        "restored clock {restored:#x} (tick part {}) below the saved {saved:#x} (tick part {})",
        restored >> 16,
        saved >> 16
    );
    assert!(
        text.contains("the journal was moved to"),
        "the snapshot superseded the journal: the clock came from the snapshot:\n{text}"
    );
    // It ticks on: every stats line after the restart shows a clock at or past the saved one
    // and a tick past the saved tick.
    zone.proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_STATS ") && number(l, "tick") >= last_tick + 40,
            Duration::from_secs(60),
        )
        .expect("the restarted zone ticks on after the saved tick");
    let after = stats(&zone.proc.output());
    assert!(after.len() >= 2, "stats lines after the restart: {after:?}");
    for (tick, hlc) in &after {
        assert!(
            *hlc >= saved && *tick > last_tick,
            "after the restart, tick {tick} hlc {hlc:#x}: below the saved clock {saved:#x} or tick {last_tick}"
        );
    }
    println!(
        "saved clock {saved:#x} (tick {}), restored {restored:#x}, after {} stats lines {:#x}",
        saved >> 16,
        after.len(),
        after.last().unwrap().1
    );
    zone.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
