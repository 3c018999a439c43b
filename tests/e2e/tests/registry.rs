//! The registry end to end: real backend, zones (headless Godot) that register and heartbeat,
//! and the cycle-1 client discovering a zone, pinning its registered hash and joining with a
//! join token; clients without a token or with a forged one are refused by the zone; a zone
//! that rotates its certificate publishes the new hash to the registry, its hash file and so
//! to the gateway, while its players stay connected.

use std::sync::Mutex;
use std::time::Duration;

use fabric_e2e::{
    backend_request, create_account, run_cycle1, run_cycle1_discovery, start_backend,
    start_gateway_with, start_registered_zone, start_registered_zone_with,
};
use fabric_harness::engine;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A backend with an `operator` and a `player1` account, and zone `zone_id` registered by the
/// operator.
struct World {
    engine: fabric_harness::engine::Engine,
    backend: fabric_e2e::Backend,
    operator: String,
    player: String,
    zone: fabric_e2e::Running,
    shard: String,
}

fn world(zone_id: u32) -> World {
    let engine = engine::prepare(false).expect("engine ready");
    let backend = start_backend("127.0.0.1:0", ":memory:").expect("backend starts");
    let operator = create_account(&backend.url, "operator").unwrap();
    let player = create_account(&backend.url, "player1").unwrap();
    let (zone, shard) =
        start_registered_zone(&engine, zone_id, &backend.url, &operator).expect("zone registers");
    World {
        engine,
        backend,
        operator,
        player,
        zone,
        shard,
    }
}

#[test]
fn client_discovers_a_zone_and_joins_with_a_token() {
    let _s = serial();
    let World {
        engine,
        backend,
        operator: _,
        player,
        zone,
        shard,
    } = world(3);
    // The registry lists the zone with the hash and port it is really serving.
    let (status, list) = backend_request(&backend.url, "GET", "/shards", None, None).unwrap();
    assert_eq!(status, 200);
    let z = &list["shards"][0];
    assert_eq!(z["id"], shard.as_str());
    assert_eq!(z["cert_hash"], zone.cert_hash.as_str(), "registered hash");
    assert_eq!(z["port"], u64::from(zone.port), "registered port");

    let (outcome, out, _p) = run_cycle1_discovery(&engine, &backend.url, &player, &[]).unwrap();
    assert!(outcome.success(), "client failed: {outcome:?}\n{out}");
    assert!(
        out.contains(&format!("CYCLE1 DISCOVERED zone {shard}")),
        "{out}"
    );
    assert!(out.contains("CYCLE1 ZONE_DATAGRAM zone_id=3 "), "{out}");
    assert!(out.contains("CYCLE1 PONG"), "{out}");
    assert!(
        zone.proc.output().contains("admitted as player1"),
        "the zone admitted the token's subject:\n{}",
        zone.proc.output()
    );
    // Heartbeats report the player while connected; the zone is still listed afterwards.
    let (_, one) =
        backend_request(&backend.url, "GET", &format!("/shards/{shard}"), None, None).unwrap();
    assert!(one["last_put_at_ms"].as_u64().unwrap() >= one["created_at_ms"].as_u64().unwrap());
}

#[test]
fn clients_without_a_valid_token_are_refused() {
    let _s = serial();
    let World {
        engine,
        backend,
        operator: _,
        player,
        zone,
        shard: _shard,
    } = world(0);

    let (outcome, out, _p) =
        run_cycle1_discovery(&engine, &backend.url, &player, &["--no-token"]).unwrap();
    assert_eq!(outcome.code, Some(1), "{outcome:?}\n{out}");
    assert!(out.contains("join token required"), "clear refusal:\n{out}");
    assert!(
        !out.contains("ZONE_DATAGRAM"),
        "no welcome without a token:\n{out}"
    );

    let (outcome, out, _p) =
        run_cycle1_discovery(&engine, &backend.url, &player, &["--forge-token"]).unwrap();
    assert_eq!(outcome.code, Some(1), "{outcome:?}\n{out}");
    assert!(
        out.contains("join token refused: token_bad_signature"),
        "clear refusal:\n{out}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(12),
        "within the timeout"
    );
    // A refused client changes nothing for the next one.
    let (outcome, out, _p) = run_cycle1_discovery(&engine, &backend.url, &player, &[]).unwrap();
    assert!(outcome.success(), "{outcome:?}\n{out}");
    assert!(
        zone.proc.output().contains("refusing session"),
        "{}",
        zone.proc.output()
    );
}

#[test]
fn zone_registers_again_when_the_registry_forgets_it() {
    let _s = serial();
    let engine = engine::prepare(false).expect("engine ready");
    let dir = fabric_harness::paths::scratch_dir("registry");
    let db = dir.join("backend.sqlite3");
    let db = db.to_str().unwrap();
    let mut backend = start_backend("127.0.0.1:0", db).expect("backend starts");
    let listen = backend.url.trim_start_matches("http://").to_owned();
    let operator = create_account(&backend.url, "operator").unwrap();
    let (mut zone, shard) =
        start_registered_zone(&engine, 1, &backend.url, &operator).expect("zone registers");

    // A backend restart on the same database keeps the shard: heartbeats simply go on.
    backend.proc.stop();
    let backend = start_backend(&listen, db).expect("backend restarts");
    let (status, _) =
        backend_request(&backend.url, "GET", &format!("/shards/{shard}"), None, None).unwrap();
    assert_eq!(status, 200, "the shard survived the restart");

    // The registry forgets the zone (deleted): the zone's next heartbeat gets 404 and it
    // registers again under a new id.
    let (status, _) = backend_request(
        &backend.url,
        "DELETE",
        &format!("/shards/{shard}"),
        Some(&operator),
        None,
    )
    .unwrap();
    assert_eq!(status, 204);
    let again = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_REGISTERED") && !l.contains(&shard),
            Duration::from_secs(20),
        )
        .expect("registered again");
    let new_id = fabric_e2e::zone_probe::field(&again, "shard_id").expect("shard_id");
    let (status, view) = backend_request(
        &backend.url,
        "GET",
        &format!("/shards/{new_id}"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["cert_hash"], zone.cert_hash.as_str());
}

/// A discovery client that stays connected after its checks (`--hold`) until the zone ends its
/// session, or fails after `timeout` seconds.
fn spawn_held_client(
    engine: &fabric_harness::engine::Engine,
    backend: &str,
    player: &str,
    timeout: u32,
) -> fabric_harness::process::Proc {
    let timeout = timeout.to_string();
    let args = [
        "--backend",
        backend,
        "--api-key",
        player,
        "--timeout",
        &timeout,
        "--hold",
    ];
    let cmd = engine.scene_command("res://scenes/cycle1.tscn", &args);
    fabric_harness::process::Proc::spawn("held client", cmd, true).unwrap()
}

#[test]
fn revoking_join_permission_disconnects_the_player() {
    let _s = serial();
    let World {
        engine,
        backend,
        operator,
        player,
        zone,
        shard,
    } = world(5);
    let mut client = spawn_held_client(&engine, &backend.url, &player, 20);
    client
        .wait_for_line(
            |l| l.contains("holding the session"),
            Duration::from_secs(20),
        )
        .expect("the player joined");
    // The public zone admits `user:*`; the operator withdraws that: the registry pushes
    // relationship_changed, the zone re-checks its players off the tick loop and ends the session.
    let (status, body) = backend_request(
        &backend.url,
        "DELETE",
        "/relationships",
        Some(&operator),
        Some(serde_json::json!({"object": format!("zone:{shard}"), "relation": "joiner", "subject": "user:*"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let out = client.wait(Duration::from_secs(20));
    let log = client.output();
    assert!(out.success(), "{out:?}\n{log}");
    assert!(
        log.contains("SESSION_ENDED") && log.contains("join permission revoked for player1"),
        "the player was told why:\n{log}"
    );
    assert!(
        zone.proc.output().contains("re-checking 1 player(s)"),
        "{}",
        zone.proc.output()
    );
}

/// The `cert_hash=` value of a zone or gateway line.
fn hash_of(line: &str) -> String {
    field_of(line, "cert_hash")
}

/// The `KEY=` value of a zone or gateway line.
fn field_of(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in `{line}`"))
        .to_owned()
}

#[test]
fn zone_rotates_its_certificate_and_publishes_the_new_hash() {
    // Rotation every 8 s: the first one comes after the held client joined (a few seconds),
    // and the next one long after the clients of the second half connected.
    const ROTATION: &str = "8";
    let _s = serial();
    let engine = engine::prepare(false).expect("engine ready");
    let backend = start_backend("127.0.0.1:0", ":memory:").expect("backend starts");
    let operator = create_account(&backend.url, "operator").unwrap();
    let player = create_account(&backend.url, "player1").unwrap();
    let dir = fabric_harness::paths::scratch_dir("rotation");
    let hash_file = dir.join("zone.hash");
    let hash_file_arg = hash_file.to_str().unwrap();
    let (mut zone, shard) = start_registered_zone_with(
        &engine,
        6,
        0,
        &backend.url,
        &operator,
        &[
            "--cert-rotation-sec",
            ROTATION,
            "--cert-hash-file",
            hash_file_arg,
        ],
    )
    .expect("zone registers");
    let first = zone.cert_hash.clone();
    let read_file = || -> Vec<String> {
        std::fs::read_to_string(&hash_file)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let shard_view = || {
        let (status, view) =
            backend_request(&backend.url, "GET", &format!("/shards/{shard}"), None, None).unwrap();
        assert_eq!(status, 200, "{view}");
        view
    };
    let announced = shard_view()["next_cert_hash"]
        .as_str()
        .expect("the registry lists the announced next hash")
        .to_owned();
    assert_ne!(announced, first);
    assert_eq!(
        read_file(),
        [first.clone(), announced.clone()],
        "the hash file holds the current and the next hash"
    );
    let gateway = start_gateway_with(zone.port, &["--zone-cert-hash-file", hash_file_arg])
        .expect("gateway starts");

    // A player joins before the rotation and stays.
    let mut held = spawn_held_client(&engine, &backend.url, &player, 60);
    held.wait_for_line(
        |l| l.contains("holding the session"),
        Duration::from_secs(30),
    )
    .expect("the first player joined");
    assert!(
        !zone.proc.output().contains("FABRIC_ZONE_CERT_ROTATED"),
        "the machine was too slow: the zone rotated before the first player joined\n{}",
        zone.proc.output()
    );

    let rotated = zone
        .proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_CERT_ROTATED"),
            Duration::from_secs(20),
        )
        .expect("the zone rotates its certificate");
    let second = hash_of(&rotated);
    let following = field_of(&rotated, "next_cert_hash");
    assert_eq!(second, announced, "the announced certificate went into use");
    assert!(following.len() == 44 && following != second && following != first);
    zone.proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_CERT_PUBLISHED") && hash_of(l) == second,
            Duration::from_secs(10),
        )
        .expect("the zone publishes the new hash");
    let view = shard_view();
    assert_eq!(
        (view["cert_hash"].as_str(), view["next_cert_hash"].as_str()),
        (Some(second.as_str()), Some(following.as_str())),
        "the registry lists the new pair"
    );
    assert_eq!(
        read_file(),
        [second.clone(), following.clone()],
        "the hash file was rewritten"
    );

    // New clients: discovery pins the new hash; the gateway re-reads the file.
    let (outcome, out, _p) = run_cycle1_discovery(&engine, &backend.url, &player, &[]).unwrap();
    assert!(outcome.success(), "discovery client: {outcome:?}\n{out}");
    assert!(
        out.contains(&format!("cert_hash={second}")),
        "pinned the new hash:\n{out}"
    );
    let url = format!("https://127.0.0.1:{}/wt", gateway.port);
    let (outcome, out, _p) = run_cycle1_discovery(
        &engine,
        &backend.url,
        &player,
        &["--url", &url, "--cert-hash", &gateway.cert_hash],
    )
    .unwrap();
    assert!(
        outcome.success(),
        "client through the gateway: {outcome:?}\n{out}"
    );
    assert!(out.contains("CYCLE1 ZONE_DATAGRAM zone_id=6 "), "{out}");
    // A client holding the pair listed before the rotation still connects...
    let direct = format!("https://127.0.0.1:{}/wt", zone.port);
    let before = format!("{first},{announced}");
    let (outcome, out, _p) = run_cycle1_discovery(
        &engine,
        &backend.url,
        &player,
        &["--url", &direct, "--cert-hash", &before],
    )
    .unwrap();
    assert!(outcome.success(), "pair from before: {outcome:?}\n{out}");
    assert!(
        !out.contains("CERT_CHANGED"),
        "no re-discovery needed:\n{out}"
    );
    // ...and one that pins only the old hash is refused with a clear error.
    let (outcome, out, _p) = run_cycle1(&engine, "stale client", &direct, &first).unwrap();
    assert_eq!(outcome.code, Some(1), "{outcome:?}\n{out}");
    assert!(out.contains("does not match the pinned hash"), "{out}");

    // The player who joined before the rotation is still connected, until the zone stops.
    assert!(held.group_alive(), "held client ended:\n{}", held.output());
    assert!(
        !held.output().contains("SESSION_ENDED"),
        "{}",
        held.output()
    );
    zone.proc.stop();
    let outcome = held.wait(Duration::from_secs(20));
    let log = held.output();
    assert!(outcome.success(), "{outcome:?}\n{log}");
    assert!(log.contains("SESSION_ENDED"), "{log}");
}
