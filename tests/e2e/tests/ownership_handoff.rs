//! Ownership through a hand-off (issue 15, part 1), with real processes on loopback: two
//! linked zone processes, a Rust player A joined to zone 0 holding one of zone 0's wanderers,
//! and a Rust player B joined to zone 1 (`fabric_e2e::repl_client`).
//!
//! A carries the entity across the border (position upserts at 20 Hz, 5 cm a step). Asserted
//! from the zones' own answers: zone 1's `/state` owns the entity and zone 0's does not; zone 1
//! installed the record (`/metrics`: `ownership_handed_in_total` 1, `ownership_held` 1; zone 0:
//! `ownership_handed_out_total` 1) and announced it `granted` to A's avatar with reason
//! `arrived`; B's request there is denied `held` naming A's avatar as holder, and B's move of it
//! is refused (`commands_refused_total{reason="authority"}`) and does not move it. A plays no
//! avatar in zone 1, so after the grace (`--holder-grace-s 3`) zone 1 releases it (`released`,
//! `holder_absent`; `ownership_absent_expired_total` 1) and B is then granted it.

use std::time::{Duration, Instant};

use fabric_core::session_control::{ControlMessage, OwnershipState};
use fabric_e2e::linked_zones::{Fabric, LinkedZone, border_crossing};
use fabric_e2e::repl_client::{Joined, ReplClient};
use fabric_e2e::zone_probe::http_get;

const HALF_M: f64 = 15.0;

fn join(zone: &LinkedZone, at: [f64; 3]) -> ReplClient {
    match ReplClient::join(zone.port, &zone.hash, None, at).expect("joined") {
        Joined::Player(p) => *p,
        Joined::Elsewhere(z) => panic!("{at:?} is zone {z}'s"),
    }
}

/// Every sample of the zone's `/metrics`, labels kept: (`name{labels}`, value).
fn series(zone: &LinkedZone) -> Vec<(String, f64)> {
    http_get(zone.metrics, "/metrics")
        .expect("/metrics answers")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of `name`'s samples whose labels contain `label` (`""`: all of them).
fn labelled(zone: &LinkedZone, name: &str, label: &str) -> f64 {
    series(zone)
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && k.contains(label))
        .map(|(_, v)| *v)
        .sum()
}

/// The sum of all of `name`'s samples.
fn metric(zone: &LinkedZone, name: &str) -> f64 {
    labelled(zone, name, "")
}

/// Polls `clients` until `done` holds, at most `secs` seconds.
fn until(
    clients: &mut [&mut ReplClient],
    secs: u64,
    what: &str,
    mut done: impl FnMut(&mut [&mut ReplClient]) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        for c in clients.iter_mut() {
            c.poll().expect("session open");
        }
        if done(clients) {
            return;
        }
        assert!(Instant::now() < end, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn last_event(
    c: &ReplClient,
    entity: u32,
) -> Option<(OwnershipState, Option<u32>, Option<String>)> {
    c.ownership.iter().rev().find_map(|m| match m {
        ControlMessage::Ownership {
            entity: e,
            state,
            holder,
            reason,
        } if *e == entity => Some((*state, *holder, reason.clone())),
        _ => None,
    })
}

#[test]
fn a_held_entity_keeps_its_holder_across_the_border() {
    let args = [
        "--world-bounds",
        "15",
        "--population",
        "wanderers",
        "--entities",
        "6",
        "--seed",
        "11",
        "--interest-radius",
        "6",
        "--hysteresis-ticks",
        "4",
        "--holder-grace-s",
        "3",
    ];
    let mut fabric = Fabric::start("own-handoff", 2, &args).expect("zones start");
    fabric.link(1.0).expect("zones link");
    let (a, b) = border_crossing(HALF_M);
    let (z0, z1) = (&fabric.zones[0], &fabric.zones[1]);
    let mut pa = join(z0, a);
    let mut pb = join(z1, [b[0] + 1.0, b[1], b[2]]);

    // A takes one of zone 0's wanderers and brings it to its hand.
    let (_, held) = z0.state().expect("/state");
    let id = *held
        .keys()
        .find(|&&k| k != pa.avatar && k < 0x8000_0000)
        .expect("zone 0 owns a wanderer");
    pa.send_control(&ControlMessage::RequestOwnership { entity: id })
        .expect("sent");
    until(
        &mut [&mut pa],
        10,
        "A granted",
        |c| matches!(last_event(c[0], id), Some((OwnershipState::Granted, Some(h), _)) if h == c[0].avatar),
    );

    // Carry it across: at A's hand, then 5 cm a step toward b, then hold it at b.
    let mut at = a;
    let holder = pa.avatar;
    let mut heard: Option<Instant> = None;
    let started = Instant::now();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            pa.move_entity(id, at).expect("sent");
            at[0] = (at[0] + 0.05).min(b[0]);
            next += Duration::from_millis(50);
        }
        pa.poll().expect("A open");
        pb.poll().expect("B open");
        if heard.is_none()
            && last_event(&pb, id)
                == Some((
                    OwnershipState::Granted,
                    Some(holder),
                    Some("arrived".into()),
                ))
        {
            heard = Some(Instant::now());
        }
        let owned1 = z1.state().expect("/state").1.contains_key(&id);
        if owned1 && metric(z1, "fabric_zone_ownership_handed_in_total") >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "entity {id} handed to zone 1 within 30 s (A's events {:?})",
            pa.ownership
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let arrived = heard.expect("B heard zone 1 announce the arrival, same holder");
    assert!(
        !z0.state().expect("/state").1.contains_key(&id),
        "zone 0 no longer owns it"
    );
    assert_eq!(
        metric(z1, "fabric_zone_ownership_held"),
        1.0,
        "held on zone 1"
    );
    assert_eq!(
        metric(z0, "fabric_zone_ownership_handed_out_total"),
        1.0,
        "zone 0 handed it out with its holder"
    );
    assert_eq!(metric(z0, "fabric_zone_ownership_held"), 0.0);
    assert_eq!(metric(z0, "fabric_zone_ownership_grants_total"), 1.0);

    // B, on zone 1: told who holds it, denied it, and its move is refused.
    let holder = pa.avatar;
    until(&mut [&mut pb], 5, "B hears the arrival", |c| {
        last_event(c[0], id)
            == Some((
                OwnershipState::Granted,
                Some(holder),
                Some("arrived".into()),
            ))
    });
    pb.send_control(&ControlMessage::RequestOwnership { entity: id })
        .expect("sent");
    until(&mut [&mut pb], 5, "B denied", |c| {
        matches!(last_event(c[0], id), Some((OwnershipState::Denied, ..)))
    });
    assert_eq!(
        last_event(&pb, id),
        Some((OwnershipState::Denied, Some(holder), Some("held".into()))),
        "zone 1 names A's avatar as the holder"
    );
    let refused_before = labelled(
        z1,
        "fabric_zone_commands_refused_total",
        "reason=\"authority\"",
    );
    let there = z1.state().expect("/state").1[&id];
    let far = [
        there[0].to_num::<f64>() / 1e6 + 1.0,
        there[1].to_num::<f64>() / 1e6,
        there[2].to_num::<f64>() / 1e6,
    ];
    for _ in 0..5 {
        pb.move_entity(id, far).expect("sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = Instant::now() + Duration::from_secs(5);
    while labelled(
        z1,
        "fabric_zone_commands_refused_total",
        "reason=\"authority\"",
    ) < refused_before + 5.0
    {
        assert!(Instant::now() < end, "B's 5 moves refused as authority");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        labelled(z1, "fabric_zone_ownership_denials_total", "reason=\"held\""),
        1.0,
        "B's denial counted as `held`"
    );
    assert_eq!(
        metric(z1, "fabric_zone_ownership_denials_total"),
        1.0,
        "and nothing else refused on zone 1"
    );
    assert!(
        arrived.elapsed() < Duration::from_secs(3),
        "checked within the grace ({:?})",
        arrived.elapsed()
    );

    // A plays no avatar in zone 1: after the grace, the hold ends there (placed_room: kept).
    until(&mut [&mut pb], 10, "released after the grace", |c| {
        matches!(last_event(c[0], id), Some((OwnershipState::Released, ..)))
    });
    assert_eq!(
        last_event(&pb, id),
        Some((OwnershipState::Released, None, Some("holder_absent".into())))
    );
    assert!(
        arrived.elapsed() >= Duration::from_millis(2900),
        "not before the grace: {:?}",
        arrived.elapsed()
    );
    pb.send_control(&ControlMessage::RequestOwnership { entity: id })
        .expect("sent");
    until(
        &mut [&mut pb],
        5,
        "B granted",
        |c| matches!(last_event(c[0], id), Some((OwnershipState::Granted, Some(h), _)) if h == c[0].avatar),
    );
    let end = Instant::now() + Duration::from_secs(3);
    while metric(z1, "fabric_zone_ownership_absent_expired_total") < 1.0 {
        assert!(Instant::now() < end, "absent expiry counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(z1, "fabric_zone_ownership_held"), 1.0, "held by B");
    drop((pa, pb));
    fabric.stop();
}
