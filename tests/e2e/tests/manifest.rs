//! The replication manifest with real processes (issue 15, part 3): a real zone process
//! (`res://scenes/tests/manifest_zone.tscn`: the crate manifest of `examples/manifest/` and
//! three crates) and two real headless Godot players (`res://scenes/tests/manifest_client.tscn`,
//! a `FabricWorld` with the same manifest and the crate scene), one on a clean loopback path,
//! one through a UDP relay that drops 10 % of the datagrams each way (`fabric_load::relay`:
//! every QUIC packet of the session, replication datagrams and reliable stream alike).
//!
//! Once both players have their baseline, the zone changes the `changing` crate 20 times, 0.2 s
//! apart: `material_index` (reliable_on_change) to k, `label_id` (snapshot_only) to 100 + k.
//! Checked at each player:
//!
//! - `material_index` arrives exactly once per change, in order: `property_changed` gives the
//!   values 0 (in the baseline) then 1..=20, each once; the crate node's `material_index` is 20;
//! - `label_id` arrives once, in the join baseline (before `baseline_done`), with its value then
//!   (100), and never afterwards: the node keeps 100 while the zone holds 120;
//! - transforms never exceed 20 Hz, measured on the wire: the moving crate's updates (one per
//!   replication packet that carries it) over the zone ticks they span are at most 20 per 20
//!   ticks, and at least 15 (it is sent at full rate);
//! - the idle crates downshift: 2 to 5 updates a second;
//! - the lossy player's relay really dropped datagrams.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fabric_e2e::zone_probe::field;
use fabric_e2e::zone_state::start_observed_zone_scene;
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::Proc;
use fabric_linksim::LinkConfig;
use fabric_load::relay::{self, RelayCounters};

const CHANGES: u32 = 20;
const LOSS: f64 = 0.10;

fn num(line: &str, key: &str) -> i64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn player(engine: &Engine, name: &str, port: u16, cert_hash: &str) -> Proc {
    let url = format!("https://127.0.0.1:{port}/wt");
    let args = [
        "--url",
        &url,
        "--cert-hash",
        cert_hash,
        "--run-sec",
        "9",
        "--timeout-sec",
        "90",
    ];
    let cmd = engine.scene_command("res://scenes/tests/manifest_client.tscn", &args);
    Proc::spawn(name, cmd, true).expect("player starts")
}

/// The `MC_`/`MZ_` lines of a process's output, from the marker on.
fn lines(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find(prefix).map(|i| l[i..].to_owned()))
        .collect()
}

/// Checks one player's output; returns its figures for the report.
fn check_player(name: &str, text: &str, crates: &[i64; 3]) -> String {
    let [changing, mover, idle] = *crates;
    let mc = lines(text, "MC_");
    let baseline_at = mc
        .iter()
        .position(|l| l.starts_with("MC_BASELINE "))
        .unwrap_or_else(|| panic!("{name}: no baseline_done:\n{text}"));
    assert_eq!(
        mc.iter().filter(|l| l.starts_with("MC_BASELINE ")).count(),
        1,
        "{name}: one baseline_done"
    );
    let props: Vec<(usize, i64, i64)> = mc
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("MC_PROP ") && num(l, "id") == changing)
        .map(|(i, l)| (i, num(l, "word"), num(l, "value")))
        .collect();
    let material: Vec<i64> = props.iter().filter(|p| p.1 == 1).map(|p| p.2).collect();
    let want: Vec<i64> = (0..=i64::from(CHANGES)).collect();
    assert_eq!(
        material, want,
        "{name}: material_index (reliable_on_change) once per change, in order"
    );
    let label: Vec<&(usize, i64, i64)> = props.iter().filter(|p| p.1 == 2).collect();
    assert_eq!(
        label.len(),
        1,
        "{name}: label_id (snapshot_only) once: {label:?}"
    );
    assert_eq!(label[0].2, 100, "{name}: the label of the join");
    assert!(
        label[0].0 < baseline_at,
        "{name}: label_id arrived in the join baseline (before baseline_done)"
    );
    let node = mc
        .iter()
        .find(|l| l.starts_with("MC_NODE ") && num(l, "id") == changing)
        .unwrap_or_else(|| panic!("{name}: no crate node:\n{text}"));
    assert_eq!(num(node, "material"), i64::from(CHANGES), "{name}: {node}");
    assert_eq!(
        num(node, "label"),
        100,
        "{name}: the node keeps the join's label: {node}"
    );

    let rates: BTreeMap<i64, (i64, i64)> = mc
        .iter()
        .filter(|l| l.starts_with("MC_RATE "))
        .map(|l| (num(l, "id"), (num(l, "updates"), num(l, "ticks"))))
        .collect();
    let hz = |id: i64| {
        let (n, ticks) = rates[&id];
        assert!(
            ticks >= 100,
            "{name}: entity {id} measured over {ticks} ticks only"
        );
        // n updates span n - 1 intervals of the zone's 20 Hz ticks.
        (n - 1) as f64 * 20.0 / ticks as f64
    };
    let (moving, still, changed) = (hz(mover), hz(idle), hz(changing));
    assert!(
        (15.0..=20.0).contains(&moving),
        "{name}: the moving crate at {moving:.2} Hz: full rate, never above 20"
    );
    for (what, f) in [("idle crate", still), ("changing crate (at rest)", changed)] {
        assert!(
            (2.0..=5.0).contains(&f),
            "{name}: the {what} at {f:.2} Hz: idle entities downshift to 2-5 Hz"
        );
    }
    let stats = mc
        .iter()
        .find(|l| l.starts_with("MC_STATS "))
        .expect("stats");
    format!(
        "{name}: moving {moving:.2} Hz, idle {still:.2} Hz, changing-at-rest {changed:.2} Hz, \
         {} replication bytes, {} stale property values",
        num(stats, "bytes"),
        num(stats, "stale")
    )
}

#[test]
fn reliable_properties_arrive_once_per_change_snapshot_ones_with_the_baseline() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let go = std::env::temp_dir().join(format!("fabric-manifest-go-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let go_text = go.to_string_lossy().into_owned();
    let changes = CHANGES.to_string();
    let mut zone = start_observed_zone_scene(
        &engine,
        "res://scenes/tests/manifest_zone.tscn",
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "10",
            "--interest-radius",
            "40",
            "--go-file",
            &go_text,
            "--changes",
            &changes,
        ],
    )
    .expect("zone starts");
    // Printed by the test script once the zone runs (maybe before its ready line).
    let deadline = Instant::now() + Duration::from_secs(30);
    let crates_line = loop {
        if let Some(l) = lines(&zone.proc.output(), "MZ_CRATES ").pop() {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no crates:\n{}",
            zone.proc.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let crates = ["changing", "mover", "idle"].map(|k| num(&crates_line, k));

    // The lossy path: a relay on loopback dropping 10 % each way.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let counters = Arc::new(RelayCounters::default());
    let zone_addr: SocketAddr = ([127, 0, 0, 1], zone.port).into();
    let cfg = LinkConfig {
        loss: LOSS,
        ..LinkConfig::default()
    };
    let via = rt
        .block_on(relay::start(zone_addr, cfg, 7, counters.clone()))
        .expect("relay starts");

    let mut players = [
        (
            "clean",
            player(&engine, "clean player", zone.port, &zone.cert_hash),
        ),
        (
            "lossy",
            player(&engine, "lossy player", via.port(), &zone.cert_hash),
        ),
    ];
    let until = Instant::now() + Duration::from_secs(90);
    while !players
        .iter()
        .all(|(_, p)| p.output().contains("MC_BASELINE "))
    {
        for (name, p) in &players {
            assert!(
                Instant::now() < until && !p.output().contains("MC_FAIL") && p.group_alive(),
                "{name} has no baseline:\n{}",
                p.output()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&go, b"go").expect("go file");
    let mut reports = Vec::new();
    for (name, p) in players.iter_mut() {
        let out = p.wait(Duration::from_secs(60));
        let text = p.output();
        assert!(out.success(), "{name} failed ({out:?}):\n{text}");
        assert!(text.contains("MC_DONE"), "{name}:\n{text}");
        reports.push(check_player(name, &text, &crates));
    }
    let _ = std::fs::remove_file(&go);
    let ztext = zone.proc.output();
    assert!(
        ztext.contains("MZ_DONE"),
        "the zone made every change:\n{ztext}"
    );
    let relayed = counters.figures();
    assert!(
        relayed.dropped > 20 && relayed.received > 500,
        "the lossy path dropped datagrams: {relayed:?}"
    );
    zone.proc.stop();
    for r in &reports {
        println!("{r}");
    }
    println!(
        "relay: {} datagrams, {} dropped ({:.1} %)",
        relayed.received,
        relayed.dropped,
        100.0 * relayed.dropped as f64 / relayed.received.max(1) as f64
    );
}
