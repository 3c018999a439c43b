//! An avatar nobody claims does not walk on for ever, with real processes on loopback: two
//! linked zone processes (`--claim-window-sec 2`) and two Rust players
//! ([`fabric_e2e::repl_client`]) connected to zone 0, each walking its avatar into zone 1.
//! One follows it as a game client does (`avatar_moved`, then a `claim` in zone 1); the other
//! hears `avatar_moved` and quits without claiming, as a player who closes the game mid
//! hand-off. Zone 1's own `/state` shows both avatars arrive; within the claim window plus a
//! publication the unclaimed one is gone and zone 1 says why, while the claimed one stays.
//! Before the fix the unclaimed avatar stayed in zone 1 for good (in a 5-minute load run, 2,800
//! of them accumulated: `docs/benchmarks.md`, "The headline, 5 minutes").

use std::time::{Duration, Instant};

use fabric_e2e::linked_zones::{Fabric, border_crossing};
use fabric_e2e::repl_client::{ReplClient, joined_player};

/// World half extent, metres.
const HALF_M: f64 = 15.0;
/// The zones' claim window, seconds.
const WINDOW_S: f64 = 2.0;

/// Walks both players from `a` to `b` at 1 m/s (upserts at 20 Hz) until each heard
/// `avatar_moved` (the follower then claimed by itself: its `zone` is 1).
fn walk_into_zone_1(players: &mut [&mut ReplClient], a: [f64; 3], b: [f64; 3]) {
    let started = Instant::now();
    let mut next_step = Instant::now();
    let mut at = a;
    loop {
        let done = players
            .iter()
            .all(|p| p.last_ticket.is_some() && (!p.follow || p.zone == 1));
        if done {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "both avatars handed to zone 1 within 30 s: {:?}",
            players
                .iter()
                .map(|p| (p.zone, p.last_ticket.is_some(), p.other.clone()))
                .collect::<Vec<_>>()
        );
        if Instant::now() >= next_step {
            next_step += Duration::from_millis(50);
            let arrived = (at[0] - b[0]).abs() < 0.03;
            if !arrived {
                at[0] += 0.05;
            }
            let v = if arrived { [0.0; 3] } else { [1.0, 0.0, 0.0] };
            for p in players.iter() {
                p.walk(at, v).expect("upsert sent");
            }
        }
        for p in players.iter_mut() {
            p.poll().expect("session open");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_avatar_nobody_claims_is_despawned_after_the_claim_window_and_a_claimed_one_stays() {
    let window = WINDOW_S.to_string();
    let args = [
        "--world-bounds",
        "15",
        "--population",
        "wanderers",
        "--entities",
        "40",
        "--seed",
        "3",
        "--hysteresis-ticks",
        "4",
        "--claim-window-sec",
        &window,
    ];
    let mut fabric = Fabric::start("unclaimed", 2, &args).expect("zones start");
    fabric.link(1.0).expect("zones link");
    let (a, b) = border_crossing(HALF_M);
    let z0 = &fabric.zones[0];
    let mut follower = joined_player(z0.port, &z0.hash, a, 3);
    follower.follow = true;
    let mut quitter = joined_player(z0.port, &z0.hash, a, 3);
    let (kept, dropped) = (follower.avatar, quitter.avatar);
    walk_into_zone_1(&mut [&mut follower, &mut quitter], a, b);
    // The quitter closes the game: its session to zone 0 ends, its avatar is zone 1's.
    drop(quitter);
    let left_at = Instant::now();

    let z1 = &fabric.zones[1];
    let held = |id: u32| -> bool {
        let (_, state) = z1.state().expect("zone 1 state");
        state.contains_key(&id)
    };
    // Zone 1 publishes its state once a second: both avatars show up there first.
    let until = Instant::now() + Duration::from_secs(5);
    while !(held(kept) && held(dropped)) {
        assert!(
            Instant::now() < until,
            "both avatars held by zone 1 (kept {}, dropped {})",
            held(kept),
            held(dropped)
        );
        follower.poll().expect("follower's session open");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then the unclaimed one goes: within the window and a publication or two.
    let until = left_at + Duration::from_secs_f64(WINDOW_S + 4.0);
    while held(dropped) {
        assert!(
            Instant::now() < until,
            "the unclaimed avatar {dropped} is still held {:.1} s after its player left",
            left_at.elapsed().as_secs_f64()
        );
        follower.poll().expect("follower's session open");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        held(kept),
        "the claimed avatar {kept} stays in zone 1 past the window"
    );
    let out = fabric.processes[z1.process].output();
    assert!(
        out.contains(&format!(
            "avatar {dropped} was not claimed within {WINDOW_S} s: despawned"
        )),
        "zone 1 says why it despawned it:\n{out}"
    );
    assert!(
        !out.contains(&format!("avatar {kept} was not claimed")),
        "the claimed avatar was not despawned:\n{out}"
    );
    drop(follower);
    fabric.stop();
}
