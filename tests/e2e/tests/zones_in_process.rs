//! Several zones in one process (`--zones-in-process`) against a process per zone: the same
//! four-zone fabric of wanderers, linked over loopback WebTransport with a test fabric key,
//! started once as one headless Godot process running zones 0..4 and once as four processes.
//! Everything asserted is read from the zones themselves over real HTTP (`/state`, `/metrics`).
//!
//! In both layouts: each zone answers on its own metrics endpoint with its own index; the
//! wanderers cross between zones (hand-offs over the links, counted by every zone's
//! `migrations_in`); in every consistent snapshot (the four dumps of one tick number) each
//! wanderer is held by exactly one zone, none lost and none duplicated; and both layouts hold
//! the same set of global ids (the population is the seed's, whatever the layout).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fabric_e2e::linked_zones::Fabric;
use fabric_e2e::zone_probe::{field, http_get, metrics};

static SERIAL: Mutex<()> = Mutex::new(());

const ZONES: usize = 4;
const ENTITIES: usize = 400;

/// What one layout showed.
struct Seen {
    /// Global ids held in the last snapshot.
    ids: BTreeSet<u32>,
    /// Migrations into each zone at the end.
    migrations_in: Vec<f64>,
    /// Snapshots checked.
    snapshots: usize,
    /// Zone processes.
    processes: usize,
}

/// One dump: its zone, tick, held ids (owned, staging or arriving) and the ids it reserved
/// for a hand-off whose commit has not landed yet (the sender freed them already).
struct Dump {
    zone: u32,
    tick: u64,
    held: Vec<u32>,
    incoming: Vec<u32>,
}

fn dump(text: &str) -> Dump {
    let head = text.lines().next().unwrap_or_default();
    let num = |k: &str| field(head, k).and_then(|v| v.parse::<u64>().ok());
    let list = |k: &str| -> Vec<u32> {
        field(head, k)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("a global id"))
            .collect()
    };
    Dump {
        zone: num("zone").expect("zone=") as u32,
        tick: num("tick").expect("tick="),
        held: list("held"),
        incoming: list("incoming"),
    }
}

/// The zones' dumps of one tick number (ticks are numbered from the Unix epoch in every
/// networked zone and dumped at the same numbers).
fn snapshot(fabric: &Fabric) -> Vec<Dump> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let dumps: Vec<Dump> = fabric
            .zones
            .iter()
            .map(|z| dump(&http_get(z.metrics, "/state").expect("/state")))
            .collect();
        let ticks: BTreeSet<u64> = dumps.iter().map(|d| d.tick).collect();
        if ticks.len() == 1 && !ticks.contains(&0) {
            return dumps;
        }
        assert!(
            Instant::now() < until,
            "no common tick in 10 s: {ticks:?} (zones not in step)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_layout(name: &str, per_process: usize) -> Seen {
    let args = [
        "--population",
        "wanderers",
        "--entities",
        "400",
        "--seed",
        "7",
        "--hysteresis-ticks",
        "10",
        "--capacity",
        "1800",
    ];
    let mut fabric = Fabric::start_hosted(name, ZONES, per_process, &args).expect("zones start");
    // A panic below drops the processes (which stops them); the folder stays for a look.
    let seen = observe(name, &fabric);
    fabric.stop();
    seen
}

fn observe(name: &str, fabric: &Fabric) -> Seen {
    fabric
        .link_neighbours()
        .expect("every zone links its neighbours");
    for (k, z) in fabric.zones.iter().enumerate() {
        let zone = dump(&http_get(z.metrics, "/state").expect("/state")).zone;
        assert_eq!(zone as usize, k, "zone {k}'s endpoint is zone {k}'s");
    }
    let mut ids = BTreeSet::new();
    let mut snapshots = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(12) {
        let dumps = snapshot(fabric);
        let tick = dumps[0].tick;
        let mut holder: BTreeMap<u32, u32> = BTreeMap::new();
        for d in &dumps {
            for id in &d.held {
                if let Some(other) = holder.insert(*id, d.zone) {
                    panic!(
                        "{name}: tick {tick}: id {id} held by zones {other} and {}",
                        d.zone
                    );
                }
            }
        }
        let mut reserved: BTreeMap<u32, u32> = BTreeMap::new();
        for d in &dumps {
            for id in &d.incoming {
                assert_ne!(
                    holder.get(id),
                    Some(&d.zone),
                    "{name}: tick {tick}: id {id} held and reserved by one zone"
                );
                if let Some(other) = reserved.insert(*id, d.zone) {
                    panic!(
                        "{name}: tick {tick}: id {id} reserved by {other} and {}",
                        d.zone
                    );
                }
            }
        }
        let all: BTreeSet<u32> = holder.into_keys().chain(reserved.into_keys()).collect();
        assert_eq!(
            all.len(),
            ENTITIES,
            "{name}: tick {tick}: every wanderer held (or reserved mid-hand-off) once \
                 (held per zone: {:?})",
            dumps
                .iter()
                .map(|d| (d.zone, d.held.len()))
                .collect::<Vec<_>>()
        );
        ids = all;
        snapshots += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    let migrations_in = fabric
        .zones
        .iter()
        .map(|z| {
            metrics(z.metrics)
                .expect("/metrics")
                .get("fabric_zone_migrations_in_total")
                .copied()
                .unwrap_or(0.0)
        })
        .collect();
    Seen {
        ids,
        migrations_in,
        snapshots,
        processes: fabric.processes.len(),
    }
}

#[test]
fn four_zones_in_one_process_hand_off_like_four_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let hosted = run_layout("zip-hosted", ZONES);
    let separate = run_layout("zip-separate", 1);
    assert_eq!(
        (hosted.processes, separate.processes),
        (1, ZONES),
        "one process, then one per zone"
    );
    for (layout, seen) in [("one process", &hosted), ("four processes", &separate)] {
        assert!(
            seen.snapshots >= 5,
            "{layout}: {} snapshots checked",
            seen.snapshots
        );
        let total: f64 = seen.migrations_in.iter().sum();
        assert!(
            total >= 20.0,
            "{layout}: wanderers cross between zones (migrations in per zone {:?})",
            seen.migrations_in
        );
        assert!(
            seen.migrations_in.iter().filter(|&&m| m > 0.0).count() >= 2,
            "{layout}: hand-offs reach more than one zone: {:?}",
            seen.migrations_in
        );
        println!(
            "{layout}: {} snapshots, migrations in per zone {:?}",
            seen.snapshots, seen.migrations_in
        );
    }
    assert_eq!(
        hosted.ids, separate.ids,
        "both layouts hold the seed's population, the same global ids"
    );
}
