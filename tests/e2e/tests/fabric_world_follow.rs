//! `FabricWorld` follows its avatar by itself on a direct connection (issue 11, part 4), with
//! real processes on loopback: two zone processes and a headless Godot bot
//! (`res://examples/fabric_world/bot.tscn`) connected straight to zone 0, walking with
//! `move_avatar_to` across the border into zone 1.
//!
//! Zone 0 hands the avatar over and says `avatar_moved` with a follow ticket; the node opens a
//! session to zone 1, claims the avatar with the ticket (which admits the session there) and
//! closes the old session. Checked: the bot prints `zone_changed zone=1` (the typed signal),
//! its status line says its session and its avatar are zone 1's, it never disconnects, the
//! zones' own `/state` shows the avatar owned by zone 1 and no longer by zone 0, and the zones
//! logged the hand-over and the claim.
//!
//! Twice: with static membership (a fabric key signs version 1 tickets), and with registry
//! membership (no shared key: zone 0 signs a version 2 ticket with its link key and carries
//! the credential the registry granted it; the bot joined zone 0 with a join token for zone
//! 0's shard only, so zone 1 admits it by the ticket); and the same registry fabric through the
//! gateway, which follows the avatar by claiming it with the ticket on a session of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fabric_core::coords::Vec3;
use fabric_e2e::demo_fabric::wait_bot_spawned;
use fabric_e2e::fabric::{FabricOptions, start_fabric};
use fabric_e2e::linked_zones::{Fabric, border_crossing, read_state};
use fabric_e2e::zone_probe::field;
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::Proc;

const HALF_M: f64 = 15.0;

fn vec3(p: [f64; 3]) -> String {
    format!("{},{},{}", p[0], p[1], p[2])
}

/// Where the bot joins.
struct Entry<'a> {
    port: u16,
    hash: &'a str,
    token: Option<&'a str>,
}

/// Runs the bot from zone 0 across the border; checks what the module says against the
/// zones' `/state` (`metrics`: their metrics addresses). Returns the avatar's id and the bot's
/// output.
fn walk_across(engine: &Engine, entry: Entry<'_>, metrics: [SocketAddr; 2]) -> (u32, String) {
    let (a, b) = border_crossing(HALF_M);
    let url = format!("https://127.0.0.1:{}/wt", entry.port);
    let (spawn, target) = (vec3(a), vec3(b));
    let mut args = vec![
        "--name",
        "walker",
        "--url",
        &url,
        "--cert-hash",
        entry.hash,
        "--spawn",
        &spawn,
        "--waypoints",
        &target,
    ];
    if let Some(t) = entry.token {
        args.extend(["--token", t]);
    }
    let cmd = engine.scene_command("res://examples/fabric_world/bot.tscn", &args);
    let mut bot = Proc::spawn("bot", cmd, true).expect("bot starts");
    let (avatar, spawn_zone) =
        wait_bot_spawned(&mut bot, Duration::from_secs(30)).expect("avatar spawned");
    assert_eq!(spawn_zone, 0, "avatar {avatar} spawned in zone 0");

    let changed = bot
        .wait_for_line(|l| l.contains("zone_changed"), Duration::from_secs(30))
        .expect("the node follows its avatar into zone 1");
    assert!(changed.contains("zone=1"), "{changed}");

    // The zones publish /state once a second: the avatar is zone 1's, and not zone 0's.
    let held = |k: usize| -> BTreeMap<u32, Vec3> { read_state(metrics[k]).expect("/state").1 };
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (owned, left) = (held(1), held(0));
        if owned.contains_key(&avatar) && !left.contains_key(&avatar) {
            break;
        }
        assert!(
            Instant::now() < until,
            "avatar {avatar}: zone 1 owns it {}, zone 0 still does {}\n{}",
            owned.contains_key(&avatar),
            left.contains_key(&avatar),
            bot.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A status line once zone 1's stream shows the avatar and something besides it (the
    // first lines after the switch may come before zone 1's first packets, and the stream
    // fills in over a few packets): the session is with zone 1, after one change.
    let status = bot
        .wait_for_line(
            |l| {
                l.contains("FABRIC_BOT name=walker visible=")
                    && field(l, "session_zone") == Some("1")
                    && field(l, "avatar_zone") == Some("1")
                    && field(l, "visible").and_then(|v| v.parse::<usize>().ok()) >= Some(2)
            },
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| {
            panic!(
                "it sees its avatar and other entities in zone 1's stream: {e}\n{}",
                bot.output()
            )
        });
    assert_eq!(field(&status, "zone_changes"), Some("1"), "{status}");
    let text = bot.output();
    assert!(!text.contains("disconnected"), "{text}");
    bot.stop();
    (avatar, text)
}

/// Checks the zones' logs: zone 0 handed `avatar` over, zone 1 bound it to a claim.
fn check_logs(avatar: u32, out0: &str, out1: &str) {
    let moved = format!("avatar {avatar} moved to zone 1");
    let took = format!("took avatar {avatar} back (from zone 0)");
    assert!(out0.contains(&moved), "zone 0 says {moved:?}:\n{out0}");
    assert!(out1.contains(&took), "zone 1 says {took:?}:\n{out1}");
}

/// [`check_logs`] for a registry fabric, and zone 1 admitted `who` as the ticket's account.
fn check_registry_logs(fabric: &fabric_e2e::fabric::Fabric, avatar: u32, who: &str) {
    let out = |k: usize| fabric.processes[fabric.zones[k].process].0.output();
    let (out0, out1) = (out(0), out(1));
    check_logs(avatar, &out0, &out1);
    assert!(
        out1.contains("admitted as walker"),
        "zone 1 admitted {who} as the ticket's account:\n{out1}"
    );
}

const ZONE_ARGS: [&str; 8] = [
    "--world-bounds",
    "15",
    "--interest-radius",
    "6",
    "--seed",
    "5",
    "--hysteresis-ticks",
    "4",
];

#[test]
fn a_godot_fabric_world_on_a_direct_connection_follows_its_avatar_into_the_next_zone() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let mut args = vec!["--population", "wanderers", "--entities", "100"];
    args.extend(ZONE_ARGS);
    let mut fabric = Fabric::start("wfollow", 2, &args).expect("zones start");
    fabric.link(1.0).expect("zones link");
    let z0 = &fabric.zones[0];
    let entry = Entry {
        port: z0.port,
        hash: &z0.hash,
        token: None,
    };
    let metrics = [fabric.zones[0].metrics, fabric.zones[1].metrics];
    let (avatar, _) = walk_across(&engine, entry, metrics);
    let out = |k: usize| fabric.processes[fabric.zones[k].process].output();
    check_logs(avatar, &out(0), &out(1));
    fabric.stop();
}

/// A registry fabric of two linked zone processes (each registered, requiring join tokens) and
/// a zone directory file listing both (for the gateway); returns it, its directory and a join
/// token for zone 0's shard only.
fn registry_fabric(
    engine: &Engine,
    name: &str,
) -> (fabric_e2e::fabric::Fabric, std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let directory = dir.join("zones");
    let mut extra: Vec<String> = ZONE_ARGS.iter().map(|s| s.to_string()).collect();
    extra.extend([
        "--zone-directory-file".into(),
        directory.display().to_string(),
    ]);
    let opts = FabricOptions {
        zones: 2,
        zones_per_process: 1,
        entities: 100,
        backend_port: 0,
        hysteresis_ticks: 4,
        extra,
        backend_bin: None,
        link_via: None,
    };
    let (fabric, started) =
        start_fabric(engine, &opts, &AtomicBool::new(false), |l| println!("{l}")).unwrap();
    started.expect("registry fabric starts");
    fabric.write_zone_directory(&directory).unwrap();
    // Linked through the registry: each zone's links are up.
    let until = Instant::now() + Duration::from_secs(30);
    for z in &fabric.zones {
        while fabric_e2e::zone_probe::metrics(z.metrics)
            .unwrap()
            .get("fabric_zone_links")
            != Some(&1.0)
        {
            assert!(Instant::now() < until, "zones not linked in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A player with a join token for zone 0's shard only.
    let player = fabric_e2e::create_account(&fabric.backend.url, "walker").unwrap();
    let (status, body) = fabric_e2e::backend_request(
        &fabric.backend.url,
        "POST",
        "/tokens/join",
        Some(&player),
        Some(serde_json::json!({ "zone_id": fabric.zones[0].shard })),
    )
    .unwrap();
    assert_eq!(status, 200, "join token: {body}");
    let token = body["token"].as_str().expect("token").to_owned();
    (fabric, directory, token)
}

#[test]
fn in_a_registry_fabric_the_follow_ticket_carries_the_zone_credential_and_admits_the_claim() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let (mut fabric, directory, token) = registry_fabric(&engine, "wfollow-registry");
    let z0 = &fabric.zones[0];
    let hash = z0.cert_hash.clone();
    let entry = Entry {
        port: z0.client.port(),
        hash: &hash,
        token: Some(&token),
    };
    let metrics = [fabric.zones[0].metrics, fabric.zones[1].metrics];
    let (avatar, _) = walk_across(&engine, entry, metrics);
    check_registry_logs(&fabric, avatar, "the claiming session");
    fabric.stop();
    let _ = std::fs::remove_dir_all(directory.parent().unwrap());
}

/// Through the gateway in a registry fabric: the gateway follows the avatar by claiming it
/// with the ticket on a session of its own (no `hello`: the client's token names zone 0, and
/// zone 1 requires tokens), so the client keeps its one gateway session.
#[test]
fn through_the_gateway_in_a_registry_fabric_the_gateway_claims_with_the_ticket() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let (mut fabric, directory, token) = registry_fabric(&engine, "wfollow-gateway");
    let z0 = &fabric.zones[0];
    let zones_file = directory.display().to_string();
    let mut gateway = fabric_e2e::start_gateway_with(
        z0.client.port(),
        &[
            "--zone-cert-hash",
            &z0.cert_hash,
            "--zone-directory-file",
            &zones_file,
        ],
    )
    .expect("gateway in front of zone 0");
    let hash = gateway.cert_hash.clone();
    let entry = Entry {
        port: gateway.port,
        hash: &hash,
        token: Some(&token),
    };
    let metrics = [fabric.zones[0].metrics, fabric.zones[1].metrics];
    let (avatar, _) = walk_across(&engine, entry, metrics);
    check_registry_logs(&fabric, avatar, "the gateway's claiming session");
    let log = gateway.proc.output();
    assert!(
        !log.contains("follow_failed"),
        "the gateway followed:\n{log}"
    );
    gateway.proc.stop();
    fabric.stop();
    let _ = std::fs::remove_dir_all(directory.parent().unwrap());
}
