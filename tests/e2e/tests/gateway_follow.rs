//! One session across zones (issue 11, part 4), with real processes on loopback: two linked
//! zone processes with wanderers, the gateway in front of zone 0, and a Rust player
//! ([`fabric_e2e::repl_client`]) walking its avatar across the border and back.
//!
//! Through the gateway: the player keeps its one gateway session (a closed session fails
//! `poll`), hears `zone_changed` after each crossing, and right then the zones' own `/state`
//! shows its avatar owned by the zone it crossed into and no longer by the other one. The
//! updates of its own avatar (the ticks at which a replication packet carried it; the player
//! sends its velocity, so its moving avatar is due every tick) show no gap longer than
//! [`MAX_GAP_TICKS`]; the worst gap is printed.
//!
//! Directly: a player connected to zone 0 with `follow` on hears `avatar_moved`, opens a
//! session to zone 1 by itself and claims its avatar there; the same checks hold, with a gap of
//! at most [`MAX_GAP_TICKS_DIRECT`] (it opens its session to zone 1 only then). Its ticket
//! is then refused when shown again (`ticket_replayed`), as is a forged one
//! (`ticket_malformed`) and one for another avatar (`ticket_wrong_avatar`).

use std::time::{Duration, Instant};

use fabric_core::session_control::ControlMessage;
use fabric_e2e::linked_zones::{Fabric, border_crossing};
use fabric_e2e::repl_client::{ReplClient, claim, joined_player};

/// World half extent, metres.
const HALF_M: f64 = 15.0;
/// Longest run of ticks without an update of the player's own avatar through the gateway.
/// The hand-off itself takes 2: the old zone sends the avatar up to its staging tick T+1 (it
/// still simulates it until the receiver's ack) and the new zone owns it at T+3 (the arrival
/// time is the sender's clock plus the 2-tick latency floor at 20 Hz), when the gateway's
/// claim, sent on its standby session to the new zone and held there, is bound before that
/// tick's replication. A commit or claim that reaches the new zone after it began T+3 (a
/// process starved of CPU) adds a tick or two: this test has no load-dependent bound, so it
/// allows 4 (`fabric_clients` holds the 3 on a machine that is not oversubscribed).
const MAX_GAP_TICKS: u32 = 4;
/// The same for a client connected to a zone directly: it has no standby session, so a fresh
/// QUIC and HTTP/3 handshake, `hello` and `claim` come on top (about one tick on loopback).
const MAX_GAP_TICKS_DIRECT: u32 = 6;

/// Walks `client` back and forth between `a` and `b` (1 m/s, upserts at 20 Hz) until it has
/// changed zones `crossings` times; after each change, checks that `/state` of the zone it
/// entered owns the avatar and the other zone's does not (within 2.5 s: a zone publishes its
/// state once a second). Returns the worst gap between updates of the own avatar over the
/// walk: (ticks, the tick ending it).
fn walk(
    fabric: &Fabric,
    client: &mut ReplClient,
    a: [f64; 3],
    b: [f64; 3],
    crossings: u32,
) -> (u32, u32) {
    let started = Instant::now();
    let mut at = a;
    let mut target = b;
    let mut next_step = Instant::now();
    let mut seen_changes = client.zone_changes;
    let first = client.zone_changes;
    let first_tick = *client
        .own_ticks
        .back()
        .expect("own avatar updates before the walk");
    let mut done_at: Option<Instant> = None;
    // The check of /state after the last crossing: (zone entered, deadline), until it passed.
    let mut pending: Option<(usize, Instant)> = None;
    let mut next_state = Instant::now();
    // After the last crossing, walk 1 s more to see the updates that follow it.
    while pending.is_some() || done_at.is_none_or(|t| t.elapsed() < Duration::from_secs(1)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {crossings} zone changes within 60 s (zone {}, other messages {:?})",
            client.zone_changes - first,
            client.zone,
            client.other
        );
        if Instant::now() >= next_step {
            let d: f64 = (0..3)
                .map(|k| (target[k] - at[k]).powi(2))
                .sum::<f64>()
                .sqrt();
            if d <= 0.05 {
                at = target;
                target = if target == b { a } else { b };
            } else {
                at = [0, 1, 2].map(|k| at[k] + (target[k] - at[k]) * 0.05 / d);
            }
            let d: f64 = (0..3)
                .map(|k| (target[k] - at[k]).powi(2))
                .sum::<f64>()
                .sqrt();
            let v = [0, 1, 2].map(|k| (target[k] - at[k]) / d.max(0.05));
            client.walk(at, v).expect("command sent");
            next_step += Duration::from_millis(50);
        }
        client.poll().expect("the session stays open");
        if let Some((now, deadline)) = pending
            && Instant::now() >= next_state
        {
            next_state = Instant::now() + Duration::from_millis(100);
            let owned = fabric.zones[now].state().expect("/state").1;
            let elsewhere = fabric.zones[1 - now].state().expect("/state").1;
            if owned.contains_key(&client.avatar) && !elsewhere.contains_key(&client.avatar) {
                pending = None;
            } else {
                assert!(
                    Instant::now() < deadline,
                    "after crossing {}: zone {now} owns avatar {}: {}, zone {} still does: {}",
                    seen_changes - first,
                    client.avatar,
                    owned.contains_key(&client.avatar),
                    1 - now,
                    elsewhere.contains_key(&client.avatar)
                );
            }
        }
        if client.zone_changes != seen_changes {
            assert!(
                pending.is_none(),
                "zone changed again before /state showed the last change"
            );
            seen_changes = client.zone_changes;
            let now = usize::try_from(client.zone).unwrap();
            pending = Some((now, Instant::now() + Duration::from_millis(2500)));
            println!(
                "FOLLOW_E2E crossing {} into zone {now} at {:.1} s, last own update at tick {:?}",
                seen_changes - first,
                started.elapsed().as_secs_f64(),
                client.own_ticks.back()
            );
            if seen_changes - first == crossings {
                done_at = Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let gaps: Vec<(u32, u32)> = client
        .own_ticks
        .iter()
        .zip(client.own_ticks.iter().skip(1))
        .filter(|&(&a, &b)| a >= first_tick && b - a > 1)
        .map(|(&a, &b)| (b - a, b))
        .collect();
    println!("FOLLOW_E2E gaps over 1 tick (ticks, ending at): {gaps:?}");
    client
        .worst_own_gap(first_tick)
        .expect("own avatar updates during the walk")
}

/// Prints how the walk of `client` went and checks it: it ends in zone `zone`, its mirror
/// refused no packet (it starts again with each zone's fresh view), and the worst gap between
/// updates of its own avatar, `(ticks, ending tick)`, is at most `limit`.
fn check(label: &str, client: &ReplClient, (gap, at_tick): (u32, u32), zone: u32, limit: u32) {
    println!(
        "FOLLOW_E2E {label}: zone changes {} worst own-avatar gap {gap} ticks (ending at tick \
         {at_tick}), packets {} refused {:?}",
        client.zone_changes, client.packets, client.refused
    );
    assert_eq!(client.zone, zone, "{label}: the walk ends in zone {zone}");
    assert!(
        client.refused.is_empty(),
        "{label}: packets refused by the mirror: {:?}",
        client.refused
    );
    assert!(
        gap <= limit,
        "{label}: own avatar updates {gap} ticks apart (limit {limit})"
    );
}

/// Joins `port` at `at` and waits for the first updates of the own avatar.
fn join(port: u16, hash: &str, at: [f64; 3]) -> ReplClient {
    joined_player(port, hash, at, 5)
}

#[test]
fn the_gateway_follows_the_avatar_across_zones_and_a_direct_client_follows_by_itself() {
    let args = [
        "--world-bounds",
        "15",
        "--population",
        "wanderers",
        "--entities",
        "200",
        "--seed",
        "7",
        "--interest-radius",
        "6",
        "--hysteresis-ticks",
        "4",
    ];
    let mut fabric = Fabric::start("gfollow", 2, &args).expect("zones start");
    fabric.link(1.0).expect("zones link");
    let zones_file = fabric.directory_file().display().to_string();
    let z0 = &fabric.zones[0];
    let mut gateway = fabric_e2e::start_gateway_with(
        z0.port,
        &[
            "--zone-cert-hash",
            &z0.hash,
            "--zone-directory-file",
            &zones_file,
        ],
    )
    .expect("gateway in front of zone 0");
    let (a, b) = border_crossing(HALF_M);

    // Through the gateway: across the border and back.
    let mut player = join(gateway.port, &gateway.cert_hash, a);
    let gap = walk(&fabric, &mut player, a, b, 2);
    check("gateway", &player, gap, 0, MAX_GAP_TICKS);
    drop(player);

    // Directly: the client follows by itself.
    let z0 = &fabric.zones[0];
    let mut direct = join(z0.port, &z0.hash, a);
    direct.follow = true;
    let gap = walk(&fabric, &mut direct, a, b, 1);
    check("direct", &direct, gap, 1, MAX_GAP_TICKS_DIRECT);

    // Its ticket is good once; forged or misdirected ones are refused with their code.
    let (zone, ticket) = direct
        .last_ticket
        .clone()
        .expect("avatar_moved had a ticket");
    let z1 = &fabric.zones[usize::try_from(zone).unwrap()];
    let refused = |id: u32, ticket: &str| match claim(z1.port, &z1.hash, id, ticket) {
        Ok(ControlMessage::Reply { result: Err(e), .. }) => e,
        other => panic!("claim of {id} answered with {other:?}"),
    };
    let e = refused(direct.avatar, &ticket);
    assert!(e.starts_with("ticket_replayed"), "{e}");
    let e = refused(direct.avatar, "RlQBAAEAAAA");
    assert!(e.starts_with("ticket_malformed"), "{e}");
    let e = refused(direct.avatar ^ 1, &ticket);
    assert!(e.starts_with("ticket_wrong_avatar"), "{e}");
    drop(direct);

    gateway.proc.stop();
    fabric.stop();
}
