//! A mid-session joiner reconstructs the room (issue 15, parts 4 and the acceptance's "a
//! mid-session joiner reconstructs the room exactly"): a real zone process with 40 moving
//! wanderers in a 20 m world (the interest radius covers all of it), a Rust player
//! ([`fabric_e2e::repl_client`]) that joined first and holds one wanderer, then a real headless
//! Godot client process (`res://scenes/tests/late_joiner.tscn`: a `FabricWorld` and a script
//! that prints what it holds) joining mid-session. The joiner waits for `baseline_done`, then
//! dumps its state after every packet for 3 s while the test reads the zone's `/state` as often
//! as it can (refreshed once a second). Checked:
//!
//! - `baseline_done` fires once, and at that moment the joiner already holds every entity the
//!   zone holds (the wanderers and both avatars), the same set of ids;
//! - every dumped position whose tick the test also has a `/state` of is within 1 mm of the
//!   zone's on each axis (the wire's precision; printed to 0.1 mm);
//! - holders: the wanderer the first player was granted before the joiner came shows that
//!   player's avatar as holder in every dump (the zone sends the holders with the baseline),
//!   every other entity none.
//!
//! Persist modes are the zone's business (what survives a holder's departure, what a room
//! save holds) and are not sent to clients; `ownership.rs` and `room_save.rs` check them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fabric_core::session_control::{ControlMessage, OwnershipState};
use fabric_e2e::repl_client::{Joined, ReplClient};
use fabric_e2e::zone_probe::field;
use fabric_e2e::zone_state::{ZoneState, start_observed_zone};
use fabric_harness::engine;
use fabric_harness::process::Proc;

/// The wanderer the first player holds.
const HELD: u32 = 2;

fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn a_mid_session_joiner_holds_what_the_zone_holds_after_its_baseline() {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let zone = start_observed_zone(
        &engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "10",
            "--population",
            "wanderers",
            "--entities",
            "40",
            "--seed",
            "5",
            "--interest-radius",
            "40",
        ],
    )
    .expect("zone starts");

    // The first player joins and is granted a wanderer.
    let mut first = match ReplClient::join(zone.port, &zone.cert_hash, None, [0.0, 0.0, 0.0])
        .expect("first player joins")
    {
        Joined::Player(p) => *p,
        Joined::Elsewhere(z) => panic!("one zone owns the world, not {z}"),
    };
    first
        .send_control(&ControlMessage::RequestOwnership { entity: HELD })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.ownership.iter().any(|m| {
        matches!(m, ControlMessage::Ownership { entity: HELD, state: OwnershipState::Granted, holder, .. }
            if *holder == Some(first.avatar))
    }) {
        first.poll().expect("session alive");
        assert!(Instant::now() < deadline, "no grant: {:?}", first.ownership);
        std::thread::sleep(Duration::from_millis(20));
    }

    // The joiner, mid-session.
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let args = [
        "--url",
        &url,
        "--cert-hash",
        &zone.cert_hash,
        "--spawn",
        "3,0,-3",
        "--dump-sec",
        "3",
        "--timeout-sec",
        "60",
    ];
    let cmd = engine.scene_command("res://scenes/tests/late_joiner.tscn", &args);
    let mut joiner = Proc::spawn("joiner", cmd, true).expect("joiner starts");
    let mut states: BTreeMap<u64, ZoneState> = BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(90);
    while !joiner.output().contains("LJ_DONE") && !joiner.output().contains("LJ_FAIL") {
        assert!(
            Instant::now() < until && joiner.group_alive(),
            "joiner did not finish:\n{}",
            joiner.output()
        );
        first.poll().expect("first player's session alive");
        let s = zone.state().expect("/state answers");
        states.insert(s.tick, s);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = joiner.wait(Duration::from_secs(20));
    let text = joiner.output();
    assert!(out.success(), "joiner failed ({out:?}):\n{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("LJ_").map(|i| &l[i..]))
        .collect();

    let baselines: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("LJ_BASELINE "))
        .collect();
    assert_eq!(baselines.len(), 1, "one baseline_done:\n{text}");
    let baseline_tick = num(baselines[0], "tick") as i64;
    let own = num(baselines[0], "own") as u32;
    let zone_ids: BTreeSet<u32> = states
        .values()
        .next_back()
        .expect("a /state")
        .held
        .keys()
        .copied()
        .collect();
    assert_eq!(zone_ids.len(), 42, "40 wanderers and two avatars");
    assert!(zone_ids.contains(&own) && zone_ids.contains(&first.avatar));
    let first_view = lines
        .iter()
        .find(|l| l.starts_with("LJ_VIEW "))
        .expect("a view dump");
    assert!(
        num(first_view, "tick") as i64 >= baseline_tick,
        "{first_view} before the baseline's tick {baseline_tick}"
    );
    let seen: BTreeSet<u32> = field(first_view, "ids")
        .unwrap()
        .split(',')
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(
        seen, zone_ids,
        "at baseline_done the joiner holds exactly the zone's entities"
    );

    let (mut compared, mut holders_checked) = (0, 0);
    for l in lines.iter().filter(|l| l.starts_with("LJ_E ")) {
        let id = num(l, "id") as u32;
        let holder = num(l, "holder") as i64;
        let want = if id == HELD {
            i64::from(first.avatar)
        } else {
            -1
        };
        assert_eq!(holder, want, "{l}: holder");
        holders_checked += 1;
        let Some(s) = states.get(&(num(l, "tick") as u64)) else {
            continue;
        };
        let exact = s
            .held
            .get(&id)
            .unwrap_or_else(|| panic!("{l}: not in the zone"));
        for (k, axis) in ["x", "y", "z"].iter().enumerate() {
            let err = (num(l, axis) - exact[k]).abs();
            assert!(err < 0.0011, "{l}: {axis} is {err:.5} m off the zone's");
        }
        compared += 1;
    }
    assert!(
        holders_checked >= 42,
        "a full dump at least ({holders_checked})"
    );
    assert!(
        compared >= 20,
        "only {compared} positions at ticks /state was read at"
    );
    println!(
        "late joiner: baseline at tick {baseline_tick}, {} ids, {compared} positions and {holders_checked} holders checked",
        seen.len()
    );
}
