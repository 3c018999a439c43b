//! Replication to players through real zone processes: two linked zone processes with
//! wanderers, a Rust player ([`fabric_e2e::repl_client`]) joined near their border walking its
//! avatar and decoding every replication packet. What it holds is checked against the zones'
//! own `/state` (exact positions) at the very tick of a packet:
//!
//! - it sees entities of both zones;
//! - every entity within `radius - 1.5 m` of the avatar is held (the margin: the neighbour's
//!   rows reach this zone up to two ticks late, at most 10 m/s, i.e. 1 m; the avatar's own
//!   position as the client holds it may be 4 ticks old while it walks at 1 m/s, 0.2 m);
//! - nothing held lies beyond `radius + hysteresis + 0.5 m` (one tick of motion at 10 m/s)
//!   plus 0.25 m (the avatar's held position), plus 1 m for the neighbour's entities (the
//!   latency above);
//! - positions of this zone's entities updated in that packet are within 1 mm of `/state` on
//!   every axis (the wire's precision);
//! - the nearest other entity is updated at 15 Hz or more; the bytes received stay under
//!   64 KB/s, and the zone's `client_max_bytes_per_second` agrees.
//!
//! Then the avatar walks into zone 1: once it has migrated, zone 0 drops the view
//! (`client_views` 0), sends no more packets, and refuses the commands still sent to it.
//!
//! A second test joins with a join token issued by a real registry backend; an ignored one is
//! the benchmark through sockets (`docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fabric_core::coords::{Micros, Vec3, WorldBounds};
use fabric_core::hilbert::encode_position;
use fabric_core::zones::ZoneLayout;
use fabric_e2e::repl_client::{Joined, ReplClient, distance_m};
use fabric_e2e::zone_probe::{field, http_get, metrics};
use fabric_harness::engine;
use fabric_harness::process::Proc;

/// Test-only fabric key (base64url Ed25519 seed) the zones sign their link credentials with.
const KEY: &str = "dGVzdC1vbmx5IGZhYnJpYyBrZXkgZm9yIGUyZSEhISE";
/// Interest radius, metres (hysteresis 10 %).
const RADIUS_M: f64 = 6.0;
/// World half extent, metres.
const HALF_M: f64 = 15.0;

struct ZoneProc {
    proc: Proc,
    port: u16,
    hash: String,
    metrics: SocketAddr,
    member: String,
}

/// Starts zone `k` of a 2-zone fabric linked through the members file in `dir`.
fn start_zone(dir: &std::path::Path, k: usize) -> ZoneProc {
    let key = dir.join("fabric.key").display().to_string();
    let members = dir.join("members").display().to_string();
    let zone = k.to_string();
    let radius = RADIUS_M.to_string();
    let half = HALF_M.to_string();
    let args = [
        "--fabric",
        "crepl",
        "--zone-id",
        &zone,
        "--zone-count",
        "2",
        "--world-bounds",
        &half,
        "--link",
        "network",
        "--population",
        "wanderers",
        "--entities",
        "600",
        "--seed",
        "7",
        "--interest-radius",
        &radius,
        "--fabric-key-file",
        &key,
        "--members-file",
        &members,
    ];
    spawn_zone(&format!("zone{k}"), &args, true)
}

/// Starts a zone process with `args` (client and metrics ports on loopback, any free one);
/// `linked`: it announces its link member entry.
fn spawn_zone(name: &str, args: &[&str], linked: bool) -> ZoneProc {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let mut all = vec![
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let cmd = engine.scene_command("res://scenes/zone.tscn", &all);
    let mut proc = Proc::spawn(name, cmd, true).expect("zone process starts");
    let mut wait = |prefix: &str| {
        proc.wait_for_line(|l| l.starts_with(prefix), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{name}: {prefix}: {e:#}"))
    };
    let member = if linked {
        let line = wait("FABRIC_ZONE_LINK_READY");
        field(&line, "member").expect("member").to_owned()
    } else {
        String::new()
    };
    let metrics = field(&wait("FABRIC_ZONE_METRICS"), "addr")
        .and_then(|a| a.parse().ok())
        .expect("metrics address");
    let ready = wait("FABRIC_ZONE_READY");
    let addr = field(&ready, "addr").expect("addr");
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    let hash = field(&ready, "cert_hash").expect("cert_hash").to_owned();
    ZoneProc {
        proc,
        port,
        hash,
        metrics,
        member,
    }
}

/// One zone's `/state`: its tick and the exact positions of what it holds.
fn state(z: &ZoneProc) -> (u64, BTreeMap<u32, Vec3>) {
    let text = http_get(z.metrics, "/state").expect("/state answers");
    let head = text.lines().next().unwrap_or_default();
    let tick = field(head, "tick").and_then(|t| t.parse().ok()).unwrap();
    let held = text
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let n: Vec<i128> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            (n[0] as u32, [1, 2, 3].map(|i| Micros::from_bits(n[i])))
        })
        .collect();
    (tick, held)
}

fn m3(p: [f64; 3]) -> Vec3 {
    p.map(|m| Micros::from_num(m * 1e6))
}

/// A point of zone 0 with zone 1 within 2 m along x, and the axis (y or z) along which the
/// avatar can walk 1 m either way without leaving zone 0.
fn border_point() -> ([f64; 3], usize) {
    let h = (HALF_M * 1e6) as i64;
    let bounds = WorldBounds::new([-h; 3], [h; 3]).unwrap();
    let layout = ZoneLayout::new(2).unwrap();
    let zone = |p: [f64; 3]| layout.zone_of(encode_position(&bounds, &m3(p)));
    for x in -8..=8 {
        for y in -5..=5 {
            for z in -5..=5 {
                let p = [f64::from(x), f64::from(y), f64::from(z)];
                if zone(p) != 0 || zone([p[0] + 2.0, p[1], p[2]]) != 1 {
                    continue;
                }
                for axis in [1, 2] {
                    let ok = [-1.0, -0.5, 0.5, 1.0].iter().all(|d| {
                        let mut q = p;
                        q[axis] += d;
                        zone(q) == 0
                    });
                    if ok {
                        return (p, axis);
                    }
                }
            }
        }
    }
    panic!("no border point in zone 0")
}

/// Checks the client's mirror at the tick of `state` (zone `k`'s); returns false when no
/// packet of that tick is in the history. Counts what was compared into `counts`.
fn check_at(
    client: &ReplClient,
    k: u8,
    (tick, held): &(u64, BTreeMap<u32, Vec3>),
    counts: &mut [u64; 4],
) -> bool {
    let Some(h) = client.held_at(*tick) else {
        return false;
    };
    let mine: BTreeMap<u32, _> = h.entities.iter().map(|e| (e.global_id, *e)).collect();
    let Some(me) = mine.get(&client.avatar) else {
        panic!("tick {tick}: the player does not see its own avatar");
    };
    let lag = if k == 0 { 0.0 } else { 1.0 };
    for (id, at) in held {
        let d = distance_m(at, &me.position);
        if d <= RADIUS_M - 1.5 {
            assert!(
                mine.contains_key(id),
                "tick {tick}: zone {k}'s entity {id} at {d:.2} m is not seen"
            );
            counts[0] += 1;
        }
    }
    for e in mine.values().filter(|e| e.zone == k) {
        let Some(at) = held.get(&e.global_id) else {
            continue; // handed over since; the other zone's state has it
        };
        let d = distance_m(at, &me.position);
        let limit = RADIUS_M * 1.1 + 0.5 + 0.25 + lag;
        assert!(
            d <= limit,
            "tick {tick}: entity {} of zone {k} held at {d:.2} m (limit {limit:.2} m)",
            e.global_id
        );
        counts[1] += 1;
        if k == 0 && e.tick == *tick as u32 {
            for (a, (mine, exact)) in e.position.iter().zip(at).enumerate() {
                let err = (*mine - *exact).abs().to_num::<f64>();
                assert!(
                    err < 1000.0,
                    "tick {tick}: entity {} axis {a}: {err} um off",
                    e.global_id
                );
            }
            counts[2] += 1;
        }
    }
    counts[3] += 1;
    true
}

#[test]
fn a_player_near_a_border_sees_both_zones_within_its_radius_at_the_zones_positions() {
    let dir: PathBuf = std::env::temp_dir().join(format!("crepl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fabric.key"), format!("{KEY}\n")).unwrap();
    let mut zones = vec![start_zone(&dir, 0), start_zone(&dir, 1)];
    let text: Vec<&str> = zones.iter().map(|z| z.member.as_str()).collect();
    std::fs::write(dir.join("members.tmp"), text.join("\n")).unwrap();
    std::fs::rename(dir.join("members.tmp"), dir.join("members")).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !zones
        .iter()
        .all(|z| metrics(z.metrics).unwrap().get("fabric_zone_links") == Some(&1.0))
    {
        assert!(Instant::now() < until, "zones not linked in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (at, axis) = border_point();
    let mut client = match ReplClient::join(zones[0].port, &zones[0].hash, None, at).unwrap() {
        Joined::Player(c) => c,
        Joined::Elsewhere(z) => panic!("{at:?} is zone {z}'s, not zone 0's"),
    };

    // Walk to and fro along `axis` (1 m/s, upserts at 20 Hz) for 8 s; check every /state.
    let started = Instant::now();
    let mut next_step = started;
    let mut step = 0u32;
    let mut counts = [0u64; 4];
    let mut nearest_fresh = 0u64;
    let mut zones_seen = [0u64; 2];
    let mut last_checked = [0u64; 2];
    let mut next_state = started;
    let mut last = at;
    let (packets0, bytes0) = (client.packets, client.bytes);
    let measure_from = started + Duration::from_secs(2);
    let mut measured: Option<(Instant, u64, u64)> = None;
    while started.elapsed() < Duration::from_secs(10) {
        if Instant::now() >= next_step {
            let phase = f64::from(step % 80) / 20.0; // 4 s period
            let mut p = at;
            p[axis] += if phase < 2.0 {
                phase - 1.0
            } else {
                3.0 - phase
            };
            client.walk_to(p).unwrap();
            last = p;
            step += 1;
            next_step += Duration::from_millis(50);
        }
        let n = client.poll().unwrap();
        if n > 0 && Instant::now() >= measure_from {
            measured.get_or_insert((Instant::now(), client.packets, client.bytes));
            let h = client.history.back().unwrap();
            let me = h.entities.iter().find(|e| e.global_id == client.avatar);
            if let Some(me) = me {
                for e in &h.entities {
                    zones_seen[usize::from(e.zone.min(1))] += 1;
                }
                let nearest = h
                    .entities
                    .iter()
                    .filter(|e| e.global_id != client.avatar)
                    .min_by(|a, b| {
                        distance_m(&a.position, &me.position)
                            .total_cmp(&distance_m(&b.position, &me.position))
                    });
                if nearest.is_some_and(|e| e.tick == h.tick) {
                    nearest_fresh += 1;
                }
            }
        }
        if Instant::now() >= measure_from && Instant::now() >= next_state {
            next_state = Instant::now() + Duration::from_millis(150);
            for (k, z) in zones.iter().enumerate() {
                let s = state(z);
                if s.0 != last_checked[k] && check_at(&client, k as u8, &s, &mut counts) {
                    last_checked[k] = s.0;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (t0, p0, b0) = measured.expect("packets after the first 2 s");
    let secs = t0.elapsed().as_secs_f64();
    let bytes_per_s = (client.bytes - b0) as f64 / secs;
    let packets_per_s = (client.packets - p0) as f64 / secs;
    let nearest_hz = nearest_fresh as f64 / secs;
    let zone_max = metrics(zones[0].metrics).unwrap()["fabric_zone_client_max_bytes_per_second"];
    println!(
        "REPL_E2E packets={} bytes={} packets_per_s={packets_per_s:.1} bytes_per_s={bytes_per_s:.0} \
         nearest_hz={nearest_hz:.1} zone_max_bytes_per_s={zone_max:.0} seen_by_zone={zones_seen:?} \
         checked: within_radius={} held={} exact={} states={} refused={:?}",
        client.packets - packets0,
        client.bytes - bytes0,
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        client.refused
    );
    assert!(
        client.refused.is_empty(),
        "mirror refused: {:?}",
        client.refused
    );
    assert!(
        zones_seen[0] > 0 && zones_seen[1] > 0,
        "entities of both zones seen: {zones_seen:?}"
    );
    assert!(
        counts[3] >= 4,
        "at least 4 states checked at a packet's tick: {counts:?}"
    );
    assert!(
        counts[0] > 0 && counts[2] > 0,
        "entities compared: {counts:?}"
    );
    assert!(
        nearest_hz >= 15.0,
        "nearest entity updated at {nearest_hz:.1} Hz"
    );
    assert!(bytes_per_s < 65_536.0, "{bytes_per_s:.0} B/s to one client");
    assert!(
        zone_max > 0.0 && zone_max < 65_536.0,
        "zone's busiest client {zone_max:.0} B/s"
    );

    // The avatar walks into zone 1 (1 m/s): once it migrated, zone 0 drops its view and sends
    // no more packets, and the commands still sent there are refused (`commands_refused`).
    let target = [at[0] + 2.0, at[1], at[2]];
    let until = Instant::now() + Duration::from_secs(20);
    let mut next_step = Instant::now();
    loop {
        assert!(
            Instant::now() < until,
            "the view was not dropped within 20 s of walking into zone 1"
        );
        if Instant::now() >= next_step {
            let d = (0..3)
                .map(|k| (target[k] - last[k]).powi(2))
                .sum::<f64>()
                .sqrt();
            let f = if d <= 0.05 { 1.0 } else { 0.05 / d };
            last = [0, 1, 2].map(|k| last[k] + (target[k] - last[k]) * f);
            client.walk_to(last).unwrap();
            next_step += Duration::from_millis(50);
        }
        client.poll().unwrap();
        let views = metrics(zones[0].metrics).unwrap()["fabric_zone_client_views"];
        if views == 0.0 && client.reports > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Packets already in flight land within this; after it, none may come.
    let poll_for = |client: &mut ReplClient, d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d {
            client.poll().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    println!(
        "REPL_E2E_LEAVE view dropped {:.1} s after turning to zone 1; {} commands_refused reports",
        (until - Duration::from_secs(20)).elapsed().as_secs_f64(),
        client.reports
    );
    poll_for(&mut client, Duration::from_millis(300));
    let quiet_from = client.packets;
    poll_for(&mut client, Duration::from_secs(1));
    assert_eq!(
        client.packets, quiet_from,
        "no packet from zone 0 once the avatar is zone 1's"
    );
    assert!(
        state(&zones[1]).1.contains_key(&client.avatar),
        "the avatar is held by zone 1"
    );
    for z in &mut zones {
        z.proc.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The player joins with a join token from the registry: a zone registered with a real
/// backend admits only sessions with a valid token; the Rust client gets one for its account,
/// joins, and is sent the wanderers near it.
#[test]
fn a_player_joining_with_a_registry_token_is_sent_the_entities_near_it() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let backend = fabric_e2e::start_backend("127.0.0.1:0", ":memory:").expect("backend starts");
    let operator = fabric_e2e::create_account(&backend.url, "operator").unwrap();
    let player = fabric_e2e::create_account(&backend.url, "player1").unwrap();
    let (mut zone, shard) = fabric_e2e::start_registered_zone_with(
        &engine,
        0,
        0,
        &backend.url,
        &operator,
        &["--population", "wanderers", "--entities", "200"],
    )
    .expect("zone registers");
    let (status, body) = fabric_e2e::backend_request(
        &backend.url,
        "POST",
        "/tokens/join",
        Some(&player),
        Some(serde_json::json!({ "zone_id": shard })),
    )
    .unwrap();
    assert_eq!(status, 200, "join token issued: {body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let port = zone.port;
    let hash = zone.cert_hash.clone();
    let mut client = match ReplClient::join(port, &hash, Some(token.clone()), [0.0; 3]).unwrap() {
        Joined::Player(c) => c,
        Joined::Elsewhere(z) => panic!("one zone, yet {z}"),
    };
    let until = Instant::now() + Duration::from_secs(10);
    while client.packets < 20 || client.mirror.len() < 2 {
        assert!(
            Instant::now() < until,
            "20 packets with entities within 10 s: {} packets, {} held",
            client.packets,
            client.mirror.len()
        );
        client.poll().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        client.refused.is_empty(),
        "mirror refused: {:?}",
        client.refused
    );
    assert!(
        client.mirror.position(client.avatar).is_some(),
        "the player sees its avatar"
    );
    // One live session per token: the same token on a second session replaces the first.
    let second = match ReplClient::join(port, &hash, Some(token), [1.0, 0.0, 1.0]).unwrap() {
        Joined::Player(c) => c,
        Joined::Elsewhere(z) => panic!("one zone, yet {z}"),
    };
    let until = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        assert!(
            Instant::now() < until,
            "the first session is closed within 10 s"
        );
        match client.poll() {
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        ended.contains("replaced by a newer session") && ended.contains("same join token"),
        "the first session hears why: {ended}"
    );
    assert_ne!(second.session, client.session);
    zone.proc.stop();
    drop(backend);
}

/// Benchmark through real sockets: one zone process (debug build) with 1,800 wanderers on a
/// 300 m x 300 m x 2 m ground, `CLIENTS` Rust players standing on a grid, interest radius 50 m,
/// the default budget of 64 KiB/s; measured over 20 s after a 5 s warm-up. Prints bytes/s per
/// client (mean and max, as received), bytes per entity record on the wire (headers included)
/// and packets per second per client.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_replication_1800_wanderers_through_sockets() {
    const CLIENTS: usize = 16;
    let mut zone = spawn_zone(
        "zone",
        &[
            "--world-bounds",
            "-150,-1,-150,150,1,150",
            "--population",
            "wanderers",
            "--entities",
            "1800",
            "--capacity",
            "2400",
            "--headroom",
            "400",
            "--interest-radius",
            "50",
        ],
        false,
    );
    let mut clients: Vec<ReplClient> = (0..CLIENTS)
        .map(|c| {
            let at = [
                -120.0 + 80.0 * (c % 4) as f64,
                0.0,
                -120.0 + 80.0 * (c / 4) as f64,
            ];
            match ReplClient::join(zone.port, &zone.hash, None, at).unwrap() {
                Joined::Player(p) => *p,
                Joined::Elsewhere(z) => panic!("one zone, yet {z}"),
            }
        })
        .collect();
    let poll_for = |clients: &mut Vec<ReplClient>, d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            for c in clients.iter_mut() {
                c.poll().unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    poll_for(&mut clients, Duration::from_secs(5));
    let before: Vec<(u64, u64, u64)> = clients
        .iter()
        .map(|c| (c.bytes, c.packets, c.records))
        .collect();
    let t0 = Instant::now();
    poll_for(&mut clients, Duration::from_secs(20));
    let secs = t0.elapsed().as_secs_f64();
    let per: Vec<(f64, f64, u64, u64)> = clients
        .iter()
        .zip(&before)
        .map(|(c, b)| {
            (
                (c.bytes - b.0) as f64 / secs,
                (c.packets - b.1) as f64 / secs,
                c.bytes - b.0,
                c.records - b.2,
            )
        })
        .collect();
    let mean = per.iter().map(|p| p.0).sum::<f64>() / CLIENTS as f64;
    let max = per.iter().map(|p| p.0).fold(0.0, f64::max);
    let pps = per.iter().map(|p| p.1).sum::<f64>() / CLIENTS as f64;
    let bytes: u64 = per.iter().map(|p| p.2).sum();
    let records: u64 = per.iter().map(|p| p.3).sum();
    let held = clients.iter().map(|c| c.mirror.len()).sum::<usize>() as f64 / CLIENTS as f64;
    let m = metrics(zone.metrics).unwrap();
    println!(
        "REPL_BENCH clients={CLIENTS} entities=1800 radius_m=50 seconds={secs:.1}: \
         bytes/s per client mean {mean:.0} max {max:.0}; packets/s per client {pps:.1}; \
         {:.2} bytes per entity record on the wire ({records} records); {held:.0} entities held \
         per client; zone tick p99 {:.2} ms (debug build)",
        bytes as f64 / records.max(1) as f64,
        m.get("fabric_zone_tick_p99_seconds")
            .copied()
            .unwrap_or(f64::NAN)
            * 1e3,
    );
    assert!(
        clients.iter().all(|c| c.refused.is_empty()),
        "mirrors refused nothing"
    );
    assert!(
        max < 65_536.0,
        "every client within its budget: {max:.0} B/s"
    );
    zone.proc.stop();
}
