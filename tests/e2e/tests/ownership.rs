//! Ownership on a real zone process: two Rust players (`fabric_e2e::repl_client`) over
//! WebTransport on loopback contend for one of the zone's entities. A requests it and is
//! granted; B is denied (`held`), B's move of it and a forged grant from B are refused and
//! counted by the zone; A's move shows in the zone's `/state`; when A disconnects the entity
//! follows its persist mode (kept with no holder for `placed_room`, despawned for
//! `transient_held`), and B can then be granted it (or hears `not_here`). Everything asserted
//! comes from what the clients receive and from the zone's own `/state`, `/metrics` and stats
//! lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fabric_core::session_control::{ControlMessage, OwnershipState};
use fabric_e2e::repl_client::{Joined, ReplClient};
use fabric_e2e::zone_probe::{self, field};
use fabric_e2e::zone_state::start_ownership_zone;
use fabric_harness::engine;
use fabric_harness::process::Proc;

/// A zone process with three wanderers (ids 1..=3), its client port, hash and metrics address.
struct Zone {
    proc: Proc,
    port: u16,
    hash: String,
    metrics: SocketAddr,
}

fn start_zone(persist_mode: &str) -> Zone {
    let engine = engine::prepare(false).expect("engine and extension ready");
    let z = start_ownership_zone(&engine, persist_mode).expect("zone process starts");
    Zone {
        proc: z.proc,
        port: z.port,
        hash: z.cert_hash,
        metrics: z.metrics,
    }
}

fn join(zone: &Zone, at: [f64; 3]) -> ReplClient {
    match ReplClient::join(zone.port, &zone.hash, None, at).expect("joined") {
        Joined::Player(p) => *p,
        Joined::Elsewhere(z) => panic!("one zone owns the world, not {z}"),
    }
}

/// The zone's `/state`: id -> position in metres.
fn positions(zone: &Zone) -> BTreeMap<u32, [f64; 3]> {
    let state = zone_probe::http_get(zone.metrics, "/state").expect("/state answers");
    state
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let c = |i: usize| (w[i].parse::<i128>().unwrap() >> 64) as f64 / 1e6;
            (w[0].parse().unwrap(), [c(1), c(2), c(3)])
        })
        .collect()
}

/// `fabric_zone_commands_refused_total{reason="authority"}`.
fn refused_authority(zone: &Zone) -> f64 {
    let text = zone_probe::http_get(zone.metrics, "/metrics").expect("/metrics answers");
    text.lines()
        .find(|l| {
            l.starts_with("fabric_zone_commands_refused_total{") && l.contains("\"authority\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("the authority refusal counter")
}

/// Polls the players and calls `done` until it holds (10 s at most).
fn until(
    what: &str,
    players: &mut [&mut ReplClient],
    mut done: impl FnMut(&[&mut ReplClient]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for p in players.iter_mut() {
            p.poll().expect("session alive");
        }
        if done(players) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `ownership` event of `entity` with `state` that `p` heard last, as (holder, reason).
fn heard(
    p: &ReplClient,
    entity: u32,
    state: OwnershipState,
) -> Option<(Option<u32>, Option<String>)> {
    p.ownership.iter().rev().find_map(|m| match m {
        ControlMessage::Ownership {
            entity: e,
            state: s,
            holder,
            reason,
        } if *e == entity && *s == state => Some((*holder, reason.clone())),
        _ => None,
    })
}

fn request(p: &ReplClient, entity: u32) {
    p.send_control(&ControlMessage::RequestOwnership { entity })
        .expect("request sent");
}

/// The last stats line that satisfies `ok` (waits for it).
fn stats_line(zone: &mut Zone, ok: impl Fn(&str) -> bool) -> String {
    zone.proc
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_STATS") && ok(l),
            Duration::from_secs(10),
        )
        .expect("a stats line with the expected counts")
}

/// A grants to A, denies B, refuses B's move and forged grant; returns the entity.
fn a_holds_and_b_is_refused(zone: &Zone, a: &mut ReplClient, b: &mut ReplClient) -> u32 {
    let entity = 1;
    assert!(
        positions(zone).contains_key(&entity),
        "wanderer 1 is in the zone"
    );
    request(a, entity);
    until("A's grant", &mut [&mut *a, &mut *b], |p| {
        heard(p[0], entity, OwnershipState::Granted).is_some()
            && heard(p[1], entity, OwnershipState::Granted).is_some()
    });
    assert_eq!(
        heard(a, entity, OwnershipState::Granted),
        Some((Some(a.avatar), None)),
        "granted to A's avatar"
    );
    assert_eq!(
        heard(b, entity, OwnershipState::Granted),
        Some((Some(a.avatar), None)),
        "B hears who holds it"
    );
    request(b, entity);
    until("B's denial", &mut [&mut *b], |p| {
        heard(p[0], entity, OwnershipState::Denied).is_some()
    });
    assert_eq!(
        heard(b, entity, OwnershipState::Denied),
        Some((Some(a.avatar), Some("held".into()))),
        "B is denied: A holds it"
    );
    assert_eq!(
        heard(a, entity, OwnershipState::Denied),
        None,
        "A hears no denial"
    );

    // B moves the entity: refused by the zone as `authority`, counted in /metrics.
    let before = refused_authority(zone);
    b.move_entity(entity, [5.0, 1.0, 0.0]).expect("sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused_authority(zone) < before + 1.0 {
        assert!(
            Instant::now() < deadline,
            "B's move was not counted as refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A forged grant from B: refused, and B still does not hold it.
    b.send_control(&ControlMessage::Ownership {
        entity,
        state: OwnershipState::Granted,
        holder: Some(b.avatar),
        reason: None,
    })
    .expect("sent");
    until("the forged grant's refusal", &mut [&mut *b], |p| {
        p[0].other
            .iter()
            .any(|m| m.contains("ownership events come from the zone only"))
    });

    // A moves it next to its own avatar: the zone's state shows it there, at rest.
    let target = [-4.0, 1.0, 0.0];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        a.move_entity(entity, target).expect("sent");
        let at = positions(zone).get(&entity).copied();
        if at.is_some_and(|p| (0..3).all(|k| (p[k] - target[k]).abs() < 1e-3)) {
            break;
        }
        assert!(Instant::now() < deadline, "A's move never showed: {at:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    entity
}

#[test]
fn placed_room_entity_is_kept_when_its_holder_leaves_and_can_be_granted_again() {
    let mut zone = start_zone("placed_room");
    let mut a = join(&zone, [-5.0, 0.0, 0.0]);
    let mut b = join(&zone, [5.0, 0.0, 0.0]);
    let entity = a_holds_and_b_is_refused(&zone, &mut a, &mut b);
    let a_avatar = a.avatar;
    drop(a);
    until("the release after A left", &mut [&mut b], |p| {
        heard(p[0], entity, OwnershipState::Released).is_some()
    });
    assert_eq!(
        heard(&b, entity, OwnershipState::Released),
        Some((None, Some("holder_left".into()))),
        "kept, holder cleared"
    );
    let wait = Instant::now() + Duration::from_secs(10);
    while positions(&zone).contains_key(&a_avatar) {
        assert!(Instant::now() < wait, "A's avatar was not despawned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let at = positions(&zone).get(&entity).copied();
    assert!(
        at.is_some_and(|p| (p[0] + 4.0).abs() < 1e-3),
        "the entity stays where A put it: {at:?}"
    );
    request(&b, entity);
    until("B's grant", &mut [&mut b], |p| {
        heard(p[0], entity, OwnershipState::Granted) == Some((Some(p[0].avatar), None))
    });
    let stats = stats_line(&mut zone, |l| l.contains(" ownership_granted=2 "));
    let num = |k: &str| -> u64 { field(&stats, k).and_then(|v| v.parse().ok()).unwrap() };
    assert_eq!(num("holders"), 1, "one holder: B ({stats})");
    assert_eq!(num("ownership_refused_held"), 1, "{stats}");
    assert_eq!(num("ownership_refused_forged"), 1, "{stats}");
    assert!(num("refused_authority") >= 1, "{stats}");
    assert_eq!(num("overruns"), 0, "every tick on time: {stats}");
}

#[test]
fn transient_held_entity_is_despawned_when_its_holder_leaves() {
    let mut zone = start_zone("transient_held");
    let mut a = join(&zone, [-5.0, 0.0, 0.0]);
    let mut b = join(&zone, [5.0, 0.0, 0.0]);
    let entity = a_holds_and_b_is_refused(&zone, &mut a, &mut b);
    drop(a);
    until("the despawn after A left", &mut [&mut b], |p| {
        heard(p[0], entity, OwnershipState::Released).is_some()
    });
    assert_eq!(
        heard(&b, entity, OwnershipState::Released),
        Some((None, Some("despawned".into())))
    );
    let wait = Instant::now() + Duration::from_secs(10);
    while positions(&zone).contains_key(&entity) {
        assert!(
            Instant::now() < wait,
            "the transient entity is still in /state"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        positions(&zone).contains_key(&2),
        "the other wanderers stay"
    );
    request(&b, entity);
    until("B's denial", &mut [&mut b], |p| {
        heard(p[0], entity, OwnershipState::Denied) == Some((None, Some("not_here".into())))
    });
    let stats = stats_line(&mut zone, |l| l.contains(" ownership_refused_not_here=1 "));
    assert_eq!(field(&stats, "holders"), Some("0"), "{stats}");
}

/// Answers `p` heard for `entity`: its denials and the grants to its own avatar.
fn answers(p: &ReplClient, entity: u32) -> (usize, usize) {
    let mine = |m: &&ControlMessage| match m {
        ControlMessage::Ownership {
            entity: e,
            state: OwnershipState::Granted,
            holder,
            ..
        } => *e == entity && *holder == Some(p.avatar),
        _ => false,
    };
    let denied = |m: &&ControlMessage| matches!(m, ControlMessage::Ownership { entity: e, state: OwnershipState::Denied, .. } if *e == entity);
    (
        p.ownership.iter().filter(mine).count(),
        p.ownership.iter().filter(denied).count(),
    )
}

#[test]
fn twenty_players_at_once_get_one_grant_and_a_release_regrab_loop_stays_fair() {
    const N: usize = 20;
    // At least 8 rounds; `FABRIC_CONTENTION_SECS=60` keeps the loop going for 60 s (the
    // issue's acceptance run; the suite's default stays short).
    let min_secs: f64 = std::env::var("FABRIC_CONTENTION_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let started = Instant::now();
    let mut zone = start_zone("placed_room");
    let mut players: Vec<ReplClient> = (0..N)
        .map(|i| join(&zone, [-9.5 + i as f64, -3.0, 0.0]))
        .collect();
    let entity = 1;
    let mut winners: Vec<usize> = Vec::new();
    let mut round = 0;
    while round < 8 || started.elapsed().as_secs_f64() < min_secs {
        let before: Vec<(usize, usize)> = players.iter().map(|p| answers(p, entity)).collect();
        if let Some(&w) = winners.last() {
            // The release and the others' requests travel on different sessions: wait until the
            // zone confirmed the release, or requests that overtook it are all denied `held`.
            let released = |p: &ReplClient| {
                p.ownership
                    .iter()
                    .filter(|m| matches!(m, ControlMessage::Ownership { entity: e, state: OwnershipState::Released, .. } if *e == entity))
                    .count()
            };
            let before_release = released(&players[w]);
            players[w]
                .send_control(&ControlMessage::ReleaseOwnership { entity })
                .expect("release sent");
            until("the release confirmed", &mut [&mut players[w]], |ps| {
                released(ps[0]) > before_release
            });
        }
        for p in &players {
            request(p, entity);
        }
        let mut refs: Vec<&mut ReplClient> = players.iter_mut().collect();
        until("every request answered", &mut refs, |ps| {
            ps.iter().zip(&before).all(|(p, b)| {
                let (g, d) = answers(p, entity);
                g + d == b.0 + b.1 + 1
            })
        });
        let won: Vec<usize> = (0..N)
            .filter(|&i| answers(&players[i], entity).0 > before[i].0)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one grant: {won:?}");
        let denied = (0..N)
            .filter(|&i| answers(&players[i], entity).1 > before[i].1)
            .count();
        assert_eq!(denied, N - 1, "round {round}: {} denials", N - 1);
        if let Some(&prev) = winners.last() {
            assert_ne!(
                won[0], prev,
                "round {round}: the releaser of a contested entity lets the others go first"
            );
        }
        winners.push(won[0]);
        round += 1;
    }
    let rounds = winners.len();
    // Every player heard the same history, one holder at a time: granted, released, granted...
    let mut refs: Vec<&mut ReplClient> = players.iter_mut().collect();
    until("the last grant everywhere", &mut refs, |ps| {
        ps.iter().all(|p| {
            p.ownership
                .iter()
                .filter(|m| {
                    matches!(
                        m,
                        ControlMessage::Ownership {
                            state: OwnershipState::Granted | OwnershipState::Released,
                            ..
                        }
                    )
                })
                .count()
                >= 2 * rounds - 1
        })
    });
    let avatars: Vec<u32> = players.iter().map(|p| p.avatar).collect();
    let expected: Vec<(OwnershipState, Option<u32>)> = winners
        .iter()
        .enumerate()
        .flat_map(|(k, &w)| {
            let grant = (OwnershipState::Granted, Some(avatars[w]));
            if k == 0 {
                vec![grant]
            } else {
                vec![(OwnershipState::Released, None), grant]
            }
        })
        .collect();
    for p in &players {
        let history: Vec<(OwnershipState, Option<u32>)> = p
            .ownership
            .iter()
            .filter_map(|m| match m {
                ControlMessage::Ownership {
                    state: s @ (OwnershipState::Granted | OwnershipState::Released),
                    holder,
                    ..
                } => Some((*s, *holder)),
                _ => None,
            })
            .collect();
        assert_eq!(
            history, expected,
            "player {} heard one holder at a time",
            p.avatar
        );
    }
    let stats = stats_line(&mut zone, |l| {
        l.contains(&format!(" ownership_granted={rounds} "))
    });
    let num = |k: &str| -> u64 { field(&stats, k).and_then(|v| v.parse().ok()).unwrap() };
    assert_eq!(num("holders"), 1, "{stats}");
    assert_eq!(num("ownership_released"), rounds as u64 - 1, "{stats}");
    assert_eq!(
        num("ownership_refused_held") + num("ownership_refused_cooldown"),
        (rounds * (N - 1)) as u64,
        "{stats}"
    );
    assert_eq!(num("overruns"), 0, "every tick on time: {stats}");
    println!(
        "contention: {N} players, {rounds} rounds in {:.1} s, one grant and {} denials each",
        started.elapsed().as_secs_f64(),
        N - 1
    );
}
