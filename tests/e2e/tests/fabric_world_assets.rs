//! `FabricWorld.place_asset` end to end: a real zone process with a data directory (so
//! `asset_placed` means durable) and two real headless Godot clients running
//! `res://scenes/tests/asset_place_client.tscn`. The watcher joins first and waits; the placer
//! places asset `ASSET` 2 m from its avatar and must receive `asset_placed` with its request
//! number; the watcher must then see an entity whose `get_entity_asset` is the asset id's low
//! 24 bits, at the placed position (within the wire's 1 mm), and that entity must be the one
//! `asset_placed` named and the zone's `/state` lists with the whole asset id.

use std::time::{Duration, Instant};

use fabric_e2e::zone_probe::{self, field};
use fabric_e2e::zone_state::start_observed_zone;
use fabric_harness::engine;
use fabric_harness::process::Proc;

const ASSET: u64 = 0x0001_0000_00AB_CDEF;
const AT: [f64; 3] = [2.0, 0.0, 1.0];

fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {line:?}"))
}

fn line<'a>(text: &'a str, tag: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.find(tag).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no {tag} line:\n{text}"))
}

#[test]
fn a_godot_client_places_an_asset_and_another_sees_the_instance() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("fabric-world-assets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.display().to_string();
    let zone = start_observed_zone(
        &engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
            "--data-dir",
            &data,
        ],
    )
    .expect("zone starts");
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let client = |name: &str, extra: &[&str]| {
        let mut args = vec!["--url", &url, "--cert-hash", &zone.cert_hash];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--timeout-sec", "60"]);
        let cmd = engine.scene_command("res://scenes/tests/asset_place_client.tscn", &args);
        Proc::spawn(name, cmd, true).expect("client starts")
    };
    let asset = ASSET.to_string();
    let mut watcher = client("watcher", &["--spawn", "0,0,1", "--watch-asset", &asset]);
    watcher
        .wait_for_line(|l| l.contains("FA_AVATAR"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("watcher joined: {e}\n{}", watcher.output()));
    let at = format!("{},{},{}", AT[0], AT[1], AT[2]);
    let mut placer = client(
        "placer",
        &["--spawn", "0,0,1", "--place-asset", &asset, "--at", &at],
    );
    let until = Instant::now() + Duration::from_secs(90);
    for p in [&placer, &watcher] {
        while !p.output().contains("FA_DONE") && !p.output().contains("FA_FAIL") {
            assert!(
                Instant::now() < until,
                "client did not finish:\n{}",
                p.output()
            );
            assert!(p.group_alive(), "client ended early:\n{}", p.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (placed_out, watched_out) = (
        placer.wait(Duration::from_secs(10)),
        watcher.wait(Duration::from_secs(10)),
    );
    let (ptext, wtext) = (placer.output(), watcher.output());
    assert!(placed_out.success(), "placer failed:\n{ptext}");
    assert!(watched_out.success(), "watcher failed:\n{wtext}");

    let sent = num(line(&ptext, "FA_SENT "), "request");
    let placed = line(&ptext, "FA_PLACED ");
    assert_eq!(
        num(placed, "request"),
        sent,
        "the answer carries the request"
    );
    assert!(sent >= 1.0, "a request number: {sent}");
    let entity = num(placed, "entity") as u32;

    let seen = line(&wtext, "FA_SEEN ");
    assert_eq!(num(seen, "entity") as u32, entity, "the watcher sees it");
    assert_eq!(
        num(seen, "asset") as u64,
        ASSET & 0xFF_FFFF,
        "class word: the id's low 24 bits"
    );
    for (k, axis) in ["x", "y", "z"].iter().enumerate() {
        let err = (num(seen, axis) - AT[k]).abs();
        assert!(err < 0.0011, "{seen}: {axis} {err} m off");
    }

    // The zone lists it with the whole id (its dump is refreshed once a second).
    let want = format!("I {entity} {ASSET}");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let state = zone_probe::http_get(zone.metrics, "/state").expect("/state");
        if state.lines().any(|l| l == want) {
            break;
        }
        assert!(Instant::now() < until, "no {want:?} in /state:\n{state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut zone = zone;
    zone.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
