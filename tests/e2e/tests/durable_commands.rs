//! Acknowledged means durable, with real processes: a headless Godot zone with a data directory
//! (`--data-dir`, SQLite journal, `synchronous = FULL`), two Rust clients over real
//! WebTransport on loopback sending CMD_INSTANCE_ASSET continuously (each with its own request
//! number, a fresh asset id and its own position) and recording every `placed` answer. The
//! zone is SIGKILLed at a random moment while they send, six times, and restarted on the same
//! data directory. After each restart the zone's `/state` must hold every instance ever
//! acknowledged: same entity id, same asset id, same position bit for bit. Instances never
//! acknowledged (in flight at the kill) may or may not be there; no asset is there twice.
//!
//! The clients reconnect after each restart (a new process: a new port and certificate).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use fabric_core::coords::Micros;
use fabric_e2e::repl_client::{Joined, ReplClient};
use fabric_e2e::zone_probe;
use fabric_e2e::zone_state::{ObservedZone, start_observed_zone};
use fabric_harness::engine::{self, Engine};
use rand::{Rng, SeedableRng};

/// What a client asked for: the asset id is the key (one fresh id per command).
#[derive(Debug, Clone, Copy)]
struct Sent {
    position: [i128; 3],
}

/// The zone's `/state`: asset instances (`I id asset`) and exact positions (`E id x y z ...`).
struct Dump {
    instances: Vec<(u32, u64)>,
    positions: BTreeMap<u32, [i128; 3]>,
}

fn dump(addr: SocketAddr) -> Dump {
    let text = zone_probe::http_get(addr, "/state").expect("/state answers");
    let instances = text
        .lines()
        .filter_map(|l| l.strip_prefix("I "))
        .map(|l| {
            let mut it = l.split(' ');
            let id = it.next().and_then(|v| v.parse().ok()).expect("instance id");
            let asset = it.next().and_then(|v| v.parse().ok()).expect("asset id");
            (id, asset)
        })
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
        instances,
        positions,
    }
}

fn start(engine: &Engine, dir: &Path, sync: &str) -> ObservedZone {
    let dir = dir.display().to_string();
    start_observed_zone(
        engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
            "--data-dir",
            &dir,
            "--journal-sync",
            sync,
        ],
    )
    .expect("zone process starts")
}

fn join(zone: &ObservedZone, at: [f64; 3]) -> ReplClient {
    match ReplClient::join(zone.port, &zone.cert_hash, None, at).expect("client joins") {
        Joined::Player(p) => *p,
        Joined::Elsewhere(z) => panic!("one zone, yet sent to zone {z}"),
    }
}

/// Where command `n` places its instance: within 5 m of an avatar at the origin, a whole
/// number of micrometres.
fn spot(n: u64) -> [f64; 3] {
    [
        (n % 32) as f64 * 0.25 - 4.0,
        ((n / 32) % 32) as f64 * 0.25 - 4.0,
        1.0 + (n % 1000) as f64 * 1e-3 + 1e-6,
    ]
}

fn bits(at: [f64; 3]) -> [i128; 3] {
    at.map(|m| Micros::from_num((m * 1e6).round()).to_bits())
}

#[test]
fn every_acknowledged_instance_survives_six_sigkills() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let dir = std::env::temp_dir().join(format!("durable-commands-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let seed = rand::random::<u64>();
    println!("kill moments: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut sent: BTreeMap<u64, Sent> = BTreeMap::new();
    // asset -> entity, for every `placed` received.
    let mut acked: BTreeMap<u64, u32> = BTreeMap::new();
    let mut next: u64 = 0;
    let mut zone = start(&engine, &dir, "full");
    for round in 0..6 {
        let mut clients = [join(&zone, [0.0; 3]), join(&zone, [0.0, 0.0, 0.5])];
        // asset of each request, per client (the request number is the client's own).
        let mut requests: [BTreeMap<u32, u64>; 2] = Default::default();
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(500..2500));
        let mut acked_this_round = 0;
        while Instant::now() < kill_at {
            for (k, c) in clients.iter_mut().enumerate() {
                next += 1;
                let at = spot(next);
                let request = next as u32;
                c.place(next, at, request).expect("command sent");
                sent.insert(next, Sent { position: bits(at) });
                requests[k].insert(request, next);
                c.poll().expect("session open while the zone runs");
            }
            // 40 commands a second per client: under the gate's 60.
            std::thread::sleep(Duration::from_millis(25));
        }
        // SIGKILL at this moment, commands in flight.
        // SAFETY: kill(2) on the process group the harness created for the zone.
        unsafe {
            libc::kill(-(zone.proc.pid() as i32), libc::SIGKILL);
        }
        let out = zone.proc.wait(Duration::from_secs(10));
        assert_eq!(out.signal, Some(libc::SIGKILL), "round {round}: {out:?}");
        // What reached the clients before the kill counts as acknowledged.
        for (k, c) in clients.iter_mut().enumerate() {
            let _ = c.poll();
            assert!(
                c.place_refused.is_empty(),
                "round {round}: client {k} refused {:?}",
                c.place_refused
            );
            for &(request, entity, asset) in &c.placed {
                assert_eq!(
                    requests[k].get(&request),
                    Some(&asset),
                    "round {round}: the answer names the asset of its request"
                );
                assert_eq!(acked.insert(asset, entity), None, "one answer per asset");
                acked_this_round += 1;
            }
        }
        drop(clients);

        zone = start(&engine, &dir, "full");
        let d = dump(zone.metrics);
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        for &(id, asset) in &d.instances {
            assert!(
                sent.contains_key(&asset),
                "round {round}: instance {id} of asset {asset} nobody asked for"
            );
            assert_eq!(
                seen.insert(asset, id),
                None,
                "round {round}: asset {asset} placed twice"
            );
        }
        for (asset, entity) in &acked {
            assert_eq!(
                seen.get(asset),
                Some(entity),
                "round {round}: acknowledged instance of asset {asset} (entity {entity}) lost"
            );
            assert_eq!(
                d.positions.get(entity),
                Some(&sent[asset].position),
                "round {round}: acknowledged instance {entity} where it was placed"
            );
        }
        assert!(
            acked_this_round > 0,
            "round {round}: no acknowledgement at all (the test proves nothing)"
        );
        println!(
            "round {round}: {acked_this_round} acknowledged this round, {} in all; {} instances \
             after the restart, {} sent",
            acked.len(),
            seen.len(),
            sent.len()
        );
    }
    assert!(acked.len() >= 50, "enough acknowledged: {}", acked.len());
    zone.proc.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Percentile `q` (0..=1) of sorted `v`.
fn percentile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The benchmark of `docs/benchmarks.md`, "Acknowledged placements": one client places 400
/// assets at 20 a second on a zone with `--journal-sync normal`, then on a fresh zone with
/// `full`, and prints the latency from sending CMD_INSTANCE_ASSET to receiving `placed`
/// (p50, p99, max). Run:
/// `cargo test -p fabric-e2e --test durable_commands -- --ignored --nocapture ack_latency`.
#[test]
#[ignore = "a benchmark: prints figures, asserts nothing about speed"]
fn ack_latency_with_synchronous_normal_and_full() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let mut rows = Vec::new();
    for sync in ["normal", "full"] {
        let dir = std::env::temp_dir().join(format!("durable-bench-{sync}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut zone = start(&engine, &dir, sync);
        let mut c = join(&zone, [0.0; 3]);
        let mut sent_at: BTreeMap<u32, Instant> = BTreeMap::new();
        let mut latencies = Vec::new();
        let mut seen = 0;
        let n = 400u32;
        let mut next_send = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        while latencies.len() < n as usize {
            assert!(Instant::now() < deadline, "{sync}: answers missing");
            if sent_at.len() < n as usize && Instant::now() >= next_send {
                let request = sent_at.len() as u32 + 1;
                c.place(u64::from(request), spot(u64::from(request)), request)
                    .expect("sent");
                sent_at.insert(request, Instant::now());
                next_send += Duration::from_millis(50);
            }
            c.poll().expect("session open");
            let now = Instant::now();
            for &(request, _, _) in &c.placed[seen..] {
                latencies.push((now - sent_at[&request]).as_secs_f64() * 1e3);
            }
            seen = c.placed.len();
            assert!(c.place_refused.is_empty(), "{sync}: {:?}", c.place_refused);
            std::thread::sleep(Duration::from_micros(500));
        }
        latencies.sort_by(f64::total_cmp);
        rows.push((
            sync,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
        ));
        zone.proc.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("ack latency, CMD_INSTANCE_ASSET sent -> placed received, 400 placements at 20/s:");
    println!("| synchronous | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (sync, p50, p99, max) in rows {
        println!("| {sync} | {p50:.1} | {p99:.1} | {max:.1} |");
    }
}
