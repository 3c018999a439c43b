//! `FabricWorld` end to end: a real zone process (400 wanderers in a 30 m world, interest
//! radius 6 m) and a real headless Godot client process running
//! `res://scenes/tests/fabric_world_client.tscn` (a `FabricWorld` and a script that prints
//! what it sees). The client joins, plays 5 s at (-6, 0, 0), walks its avatar to (6, 0, 0)
//! with `move_avatar_to`, and leaves. Meanwhile the test reads the zone's `/state` as often as
//! it can (the zone refreshes it once a second); each client line of a tick it also has a
//! `/state` of is checked against it:
//!
//! - positions (`get_entity_position`, the newest state of that very tick) within 1 mm of the
//!   zone's on every axis (the wire's precision; printed to 0.1 mm);
//! - every entity within `radius - 1.5 m` of the avatar (the zone's own avatar position) is
//!   visible (the margin: an entity entering may wait a tick or two for the byte budget), and
//!   nothing visible lies beyond `radius * 1.1` (hysteresis) `+ 0.5 m` (one tick at 10 m/s);
//! - after every packet the visible entities, the child nodes named `Entity_<id>` and the
//!   entities entered but not exited by signal are the same number, and each visible id's
//!   node is a child of the `FabricWorld`;
//! - after the walk, every entity visible before it that ended up beyond the view's reach
//!   fired `entity_exited`; the avatar is at the target in the zone's state, no command was
//!   refused, and `get_stats()` says what the stream cost (under the 64 KB/s budget, at most
//!   20 updates a second); `leave()` ends with `disconnected("left")`;
//! - while it walks, the avatar's node also moves in frames without a new packet, and never
//!   back (interpolated between ticks, not moved from packet to packet).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fabric_e2e::zone_probe::field;
use fabric_e2e::zone_state::{ObservedZone, ZoneState, dist, start_observed_zone};
use fabric_e2e::{create_account, start_backend, start_registered_zone_with};
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::Proc;

const RADIUS_M: f64 = 6.0;
const SPAWN: [f64; 3] = [-6.0, 0.0, 0.0];
const TARGET: [f64; 3] = [6.0, 0.0, 0.0];

fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {line:?}"))
}

/// The client's `FW_VIEW` line of one tick.
struct View {
    own: u32,
    visible: usize,
    nodes: usize,
    signals: usize,
    nodes_ok: bool,
    ids: BTreeSet<u32>,
}

fn parse_view(line: &str) -> (u64, View) {
    let ids = field(line, "ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let tick = num(line, "tick") as u64;
    let view = View {
        own: num(line, "own") as u32,
        visible: num(line, "visible") as usize,
        nodes: num(line, "nodes") as usize,
        signals: num(line, "signals") as usize,
        nodes_ok: field(line, "nodes_ok") == Some("1"),
        ids,
    };
    (tick, view)
}

/// One zone alone: 400 wanderers in a 30 m cube, interest radius `radius_m`.
fn wanderers_zone(engine: &Engine, radius_m: f64) -> ObservedZone {
    let radius = radius_m.to_string();
    let args = [
        "--zone-id",
        "0",
        "--zone-count",
        "1",
        "--world-bounds",
        "15",
    ];
    let more = [
        "--population",
        "wanderers",
        "--entities",
        "400",
        "--seed",
        "11",
    ];
    let all: Vec<&str> = args
        .iter()
        .chain(&more)
        .copied()
        .chain(["--interest-radius", radius.as_str()])
        .collect();
    start_observed_zone(engine, &all).expect("zone starts")
}

#[test]
fn a_godot_fabric_world_client_sees_what_the_zone_holds_near_its_avatar() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let zone = wanderers_zone(&engine, RADIUS_M);
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let v = |p: [f64; 3]| format!("{},{},{}", p[0], p[1], p[2]);
    let (spawn, target) = (v(SPAWN), v(TARGET));
    let args = [
        "--url",
        &url,
        "--cert-hash",
        &zone.cert_hash,
        "--spawn",
        &spawn,
        "--walk-to",
        &target,
        "--play-sec",
        "5",
        "--timeout-sec",
        "60",
    ];
    let cmd = engine.scene_command("res://scenes/tests/fabric_world_client.tscn", &args);
    let mut client = Proc::spawn("world", cmd, true).expect("client starts");

    // The zone's state at as many ticks as can be read while the client runs.
    let mut states: BTreeMap<u64, ZoneState> = BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(90);
    while !client.output().contains("FW_DONE") && !client.output().contains("FW_FAIL") {
        assert!(
            Instant::now() < until,
            "client did not finish:\n{}",
            client.output()
        );
        assert!(
            client.group_alive(),
            "client ended early:\n{}",
            client.output()
        );
        let s = zone.state().expect("/state answers");
        states.insert(s.tick, s);
        // The zone refreshes /state once a second; a few reads a second catch each refresh.
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = client.wait(Duration::from_secs(20));
    let text = client.output();
    assert!(out.success(), "client failed ({out:?}):\n{text}");
    let lines: Vec<&str> = text.lines().map(|l| l.trim()).collect();
    let line = |p: &str| {
        lines
            .iter()
            .find(|l| l.contains(p))
            .map(|l| &l[l.find(p).unwrap()..])
            .unwrap_or_else(|| panic!("no {p} line:\n{text}"))
    };
    let tail = |l: &&str, p: &str| l.find(p).map(|i| l[i..].to_owned());
    let all = |p: &str| -> Vec<String> { lines.iter().filter_map(|l| tail(l, p)).collect() };

    let avatar = num(line("FW_AVATAR "), "id") as u32;
    assert_eq!(num(line("FW_CONNECTED "), "zone"), 0.0);

    // Positions at the same tick.
    let mut compared = 0;
    for l in all("FW_POS ") {
        let Some(s) = states.get(&(num(&l, "tick") as u64)) else {
            continue;
        };
        let id = num(&l, "id") as u32;
        let exact = s
            .held
            .get(&id)
            .unwrap_or_else(|| panic!("{l}: not in the zone"));
        for (k, axis) in ["x", "y", "z"].iter().enumerate() {
            let err = (num(&l, axis) - exact[k]).abs();
            assert!(err < 0.0011, "{l}: {axis} is {err:.5} m off the zone's");
        }
        compared += 1;
    }
    assert!(
        compared >= 10,
        "only {compared} positions at ticks /state was read at"
    );

    // Visibility, nodes and signals after each packet.
    let views: Vec<(u64, View)> = all("FW_VIEW ").iter().map(|l| parse_view(l)).collect();
    assert!(views.len() >= 60, "{} packets reported", views.len());
    let (mut matched, mut seen_near) = (0, 0);
    for (tick, view) in &views {
        assert_eq!(view.own, avatar);
        assert!(
            view.ids.contains(&avatar),
            "tick {tick}: own avatar not visible"
        );
        assert_eq!(view.visible, view.ids.len());
        assert_eq!(
            view.nodes, view.visible,
            "tick {tick}: entity nodes vs visible"
        );
        assert_eq!(
            view.signals, view.visible,
            "tick {tick}: entered - exited vs visible"
        );
        assert!(
            view.nodes_ok,
            "tick {tick}: a visible entity has no child node"
        );
        let Some(s) = states.get(tick) else { continue };
        let me = s.held[&avatar];
        for (id, at) in &s.held {
            let d = dist(at, &me);
            if d <= RADIUS_M - 1.5 {
                assert!(
                    view.ids.contains(id),
                    "tick {tick}: {id} at {d:.2} m not seen"
                );
                seen_near += 1;
            }
        }
        for id in &view.ids {
            if let Some(at) = s.held.get(id) {
                let d = dist(at, &me);
                let limit = RADIUS_M * 1.1 + 0.5;
                assert!(
                    d <= limit,
                    "tick {tick}: {id} seen at {d:.2} m > {limit:.2}"
                );
            }
        }
        matched += 1;
    }
    assert!(
        matched >= 6,
        "only {matched} views at ticks /state was read at"
    );
    assert!(
        seen_near >= matched,
        "a handful of entities near the avatar ({seen_near})"
    );

    // The walk: entities left behind exited.
    let walk_tick = {
        let l = line("FW_WALK ");
        let i = lines.iter().position(|x| x.contains(l)).unwrap();
        lines[..i]
            .iter()
            .rev()
            .find_map(|x| tail(x, "FW_VIEW "))
            .map(|x| parse_view(&x))
            .expect("a view before the walk")
    };
    let exited: BTreeSet<u32> = all("FW_EXITED ")
        .iter()
        .map(|l| num(l, "id") as u32)
        .collect();
    let last = states.values().next_back().expect("a /state");
    let me = last.held[&avatar];
    assert!(
        dist(&me, &TARGET) < 0.01,
        "the zone has the avatar at {me:?}, not at the target"
    );
    let left_behind: Vec<u32> = walk_tick
        .1
        .ids
        .iter()
        .filter(|id| {
            last.held
                .get(id)
                .is_none_or(|at| dist(at, &me) > RADIUS_M * 1.1 + 1.0)
        })
        .copied()
        .collect();
    assert!(!left_behind.is_empty(), "the walk left nothing behind");
    for id in &left_behind {
        assert!(exited.contains(id), "{id} was left behind but never exited");
    }

    let stats = line("FW_STATS ");
    let bps = num(stats, "bytes_per_second");
    assert!(bps > 0.0 && bps < 65_536.0, "{stats}");
    let ups = num(stats, "updates_per_second");
    // At most the zone's 20 Hz ceiling (a second's window may hold one packet more); not
    // asserted from below: a stall of either process on a loaded machine lowers that second.
    assert!(ups > 0.0 && ups <= 21.0, "{stats}");
    assert_eq!(num(stats, "avatar_zone"), 0.0, "{stats}");
    assert!(num(stats, "visible") >= 1.0, "{stats}");
    assert!(
        all("FW_REFUSED ").is_empty(),
        "the walk was refused: {:?}",
        all("FW_REFUSED ")
    );
    assert_eq!(field(line("FW_DISCONNECTED "), "reason"), Some("left"));

    // The avatar's node glided: it moved in frames without a new packet, at least one such
    // frame per two ticks of the walk (drawn from the received states alone it would move only
    // when a packet arrives), and never back.
    // (Its fastest speed over 20 ms is printed: zone or client stalls on a loaded machine show
    // there, so it is not asserted.)
    let smooth = line("FW_SMOOTH ");
    let ticks = num(smooth, "ticks");
    assert!(ticks >= 50.0, "12 m at 0.2 m a tick: {smooth}");
    assert!(num(smooth, "moves") >= ticks / 2.0, "{smooth}");
    assert_eq!(num(smooth, "backwards"), 0.0, "{smooth}");
    eprintln!(
        "fabric_world: {compared} positions and {matched} views checked against /state; \
         {} exited, {} left behind; {stats}; {smooth}",
        exited.len(),
        left_behind.len()
    );
}

/// The example scene a developer copies (`examples/fabric_world/`), run as its README says:
/// against a registry (a real `fabric-backend`) and a zone registered with it, so the zone
/// admits only players with a join token. The example makes an account, lists the zones,
/// fetches a token, joins, shows entities, and quits cleanly after 5 s.
#[test]
fn the_example_scene_joins_through_the_registry_with_a_token_and_shows_entities() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let backend = start_backend("127.0.0.1:0", ":memory:").expect("backend starts");
    let operator = create_account(&backend.url, "operator").expect("operator account");
    let zone_args = [
        "--zone-count",
        "1",
        "--world-bounds",
        "15",
        "--population",
        "wanderers",
        "--entities",
        "400",
        "--interest-radius",
        "8",
    ];
    let (_zone, _shard) =
        start_registered_zone_with(&engine, 0, 0, &backend.url, &operator, &zone_args)
            .expect("zone registers");
    let args = ["--backend", &backend.url, "--quit-after", "5"];
    let cmd = engine.scene_command("res://examples/fabric_world/fabric_world.tscn", &args);
    let mut example = Proc::spawn("example", cmd, true).expect("example starts");
    let out = example.wait(Duration::from_secs(60));
    let text = example.output();
    assert!(out.success(), "example failed ({out:?}):\n{text}");
    let last = text
        .lines()
        .filter_map(|l| l.find("FABRIC_WORLD_EXAMPLE ").map(|i| &l[i..]))
        .next_back()
        .unwrap_or_else(|| panic!("no status line:\n{text}"));
    assert!(num(last, "visible") >= 2.0, "the avatar and others: {last}");
    assert!(num(last, "avatar") >= 0.0, "{last}");
    assert_eq!(num(last, "avatar_zone"), 0.0, "{last}");
    assert!(num(last, "bytes_per_second") > 0.0, "{last}");
}
