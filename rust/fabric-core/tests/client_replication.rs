//! Replication to clients (`fabric_core::client_view`): a real `ClientView` and a real
//! `ClientMirror` over the in-memory lossy link of `sim::replication` (no sockets needed: the
//! core is sans-IO). Every assert checks what the client would hold.

use std::collections::HashMap;

use fabric_core::client_view::config::MAX_RADIUS_MM;
use fabric_core::client_view::{
    Candidate, ClientMirror, ClientView, ConfigError, ReplicationConfig,
};
use fabric_core::coords::{Micros, Vec3, ZERO3, floor_micros, metres, micros};
use fabric_core::sim::replication::ReplicationLink;
use fabric_core::sim::rng::SimRng;
use proptest::prelude::*;

fn cand(id: u32, p: Vec3, v: Vec3) -> Candidate {
    Candidate {
        global_id: id,
        position: p,
        velocity: v,
        zone: (id % 3) as u8,
        class_word: 5 << 24 | id,
    }
}

/// A population that moves, turns now and then, changes zone now and then, and wanders in and
/// out of a viewer's radius.
struct World {
    rng: SimRng,
    entities: Vec<Candidate>,
    half_um: i64,
}

impl World {
    fn new(seed: u64, n: u32, half_m: i64, speed_um: i64) -> Self {
        let mut rng = SimRng::new(seed);
        let half_um = half_m * 1_000_000;
        let entities = (1..=n)
            .map(|id| {
                let p = [0, 1, 2].map(|_| micros(rng.range_i64(-half_um, half_um)));
                let mut v = [0, 1, 2].map(|_| micros(rng.range_i64(-speed_um, speed_um)));
                if id % 5 == 0 {
                    v = ZERO3; // some idle ones
                }
                // Sub-micrometre fractions, as a real simulation has.
                v[0] += Micros::from_bits(rng.next_u64() as i128 & 0xFFFF_FFFF_FFFF_FFFF);
                cand(id, p, v)
            })
            .collect();
        Self {
            rng,
            entities,
            half_um,
        }
    }

    fn step(&mut self) {
        let h = micros(self.half_um);
        for e in &mut self.entities {
            for k in 0..3 {
                e.position[k] += e.velocity[k];
                if e.position[k] > h || e.position[k] < -h {
                    e.velocity[k] = -e.velocity[k];
                }
            }
            if self.rng.chance_ppm(20_000) {
                e.velocity[1] = micros(self.rng.range_i64(-300_000, 300_000));
            }
            if self.rng.chance_ppm(5_000) {
                e.zone = (e.zone + 1) % 3;
            }
        }
    }
}

fn within_mm(a: &Vec3, b: &Vec3) -> bool {
    (0..3).all(|k| (floor_micros(a[k]) - floor_micros(b[k])).abs() < 1000)
}

/// Runs `ticks` ticks and checks, after every tick, that every entity the mirror holds is where
/// the server had it at the tick the mirror's state comes from (within 1 mm per axis), with the
/// right class and zone. Returns the link for further checks.
fn run_checked(seed: u64, ticks: u64, loss_ppm: u32, ack_delay: u64) -> ReplicationLink {
    let cfg = ReplicationConfig::with_radius(20_000);
    let mut link = ReplicationLink::new(cfg, loss_ppm, ack_delay, seed).expect("config");
    let mut world = World::new(seed, 300, 40, 400_000);
    let viewer_id = 1;
    let mut history: HashMap<(u32, u32), Candidate> = HashMap::new();
    for tick in 1..=ticks {
        world.step();
        for e in &world.entities {
            history.insert((e.global_id, tick as u32), *e);
        }
        let viewer = world.entities[viewer_id].position;
        link.tick(tick, &viewer, &world.entities)
            .unwrap_or_else(|e| panic!("tick {tick}: the mirror refused a packet: {e}"));
        for m in link.mirror.iter() {
            let truth = history[&(m.global_id, m.tick)];
            assert!(
                within_mm(&m.position, &truth.position),
                "tick {tick}: entity {} at tick {}: mirror {:?} vs server {:?}",
                m.global_id,
                m.tick,
                m.position.map(floor_micros),
                truth.position.map(floor_micros)
            );
            assert_eq!(m.zone, truth.zone, "entity {} zone", m.global_id);
            assert_eq!(
                m.class_word, truth.class_word,
                "entity {} class",
                m.global_id
            );
            let dv = (0..3)
                .map(|k| (truth.velocity[k] - m.velocity[k]).abs().to_num::<f64>())
                .fold(0.0, f64::max);
            // Velocity quantum 1000/256 um per tick: half of it, plus the micrometre flooring.
            assert!(
                dv <= 3.0,
                "entity {} velocity off by {dv} um/tick",
                m.global_id
            );
        }
    }
    link
}

#[test]
fn mirror_tracks_the_server_within_a_millimetre_with_loss_and_late_acks() {
    let link = run_checked(7, 400, 20_000, 3);
    let s = link.view.stats();
    assert!(link.lost_packets > 0, "the link lost packets");
    assert!(
        s.entered > 20 && s.left > 5,
        "entities came and went: {s:?}"
    );
    assert!(s.updates > 2_000, "updates flowed: {s:?}");
    assert!(!link.mirror.is_empty(), "the mirror holds the view");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn round_trip_holds_for_any_seed_loss_and_delay(seed in any::<u64>(), loss in 0u32..300_000, delay in 0u64..12) {
        run_checked(seed, 150, loss, delay);
    }
}

/// The mirror holds exactly the entities within the radius once the link settles: enters and
/// leaves are never lost, even at 30 % loss.
#[test]
fn enters_and_leaves_survive_heavy_loss() {
    let cfg = ReplicationConfig::with_radius(20_000);
    let mut link = ReplicationLink::new(cfg, 300_000, 3, 5).expect("config");
    let mut world = World::new(5, 200, 40, 300_000);
    for tick in 1..=300 {
        world.step();
        link.tick(tick, &ZERO3, &world.entities)
            .expect("valid packets");
    }
    // Freeze the world and let the reliable records settle.
    for e in &mut world.entities {
        e.velocity = ZERO3;
    }
    for tick in 301..=400 {
        link.tick(tick, &ZERO3, &world.entities)
            .expect("valid packets");
    }
    let r2 = 20_000i128 * 20_000;
    let outer2 = 22_000i128 * 22_000;
    for e in &world.entities {
        let d2: i128 = e
            .position
            .iter()
            .map(|c| {
                let mm = i128::from(floor_micros(*c)) / 1000;
                mm * mm
            })
            .sum();
        let held = link.mirror.get(e.global_id).is_some();
        if d2 <= r2 - 100_000 {
            assert!(held, "entity {} inside the radius is held", e.global_id);
        }
        if d2 > outer2 + 100_000 {
            assert!(
                !held,
                "entity {} beyond radius + hysteresis is gone",
                e.global_id
            );
        }
        assert_eq!(
            held,
            link.view.is_visible(e.global_id),
            "entity {}: the mirror agrees with the server's view",
            e.global_id
        );
    }
    assert!(
        link.lost_packets > 50,
        "heavy loss happened: {}",
        link.lost_packets
    );
}

#[test]
fn hysteresis_stops_a_border_entity_from_flapping() {
    let cfg = ReplicationConfig::with_radius(10_000); // 10 m, hysteresis 1 m
    let mut link = ReplicationLink::new(cfg, 0, 1, 1).expect("config");
    for tick in 1..=200u64 {
        // Swings between 9.7 m and 10.7 m from the viewer.
        let x = 9_700_000 + (tick as i64 % 20 - 10).abs() * 100_000;
        let e = cand(1, [micros(x), ZERO3[1], ZERO3[2]], ZERO3);
        link.tick(tick, &ZERO3, &[e]).expect("valid");
    }
    let s = link.view.stats();
    assert_eq!(
        (s.entered, s.left),
        (1, 0),
        "entered once, never left: {s:?}"
    );
    let e = cand(1, [metres(12), ZERO3[1], ZERO3[2]], ZERO3);
    link.tick(201, &ZERO3, &[e]).expect("valid");
    link.tick(202, &ZERO3, &[e]).expect("valid");
    assert_eq!(link.view.stats().left, 1, "beyond 11 m it leaves");
    assert!(link.mirror.get(1).is_none(), "and the client drops it");
}

#[test]
fn precision_is_one_millimetre_at_the_edge_of_a_32_km_radius() {
    let mut cfg = ReplicationConfig::with_radius(29_000_000);
    cfg.hysteresis_mm = 3_000_000;
    let mut link = ReplicationLink::new(cfg, 0, 1, 1).expect("32 km is allowed");
    // Far corner of the world, 28.9 km from the viewer on a diagonal, with odd micrometres.
    let viewer = [
        micros(4_000_000_000_123),
        micros(-7_777),
        micros(1_000_000_000_999),
    ];
    let p = [
        viewer[0] + micros(16_700_000_499),
        viewer[1] - micros(16_700_000_501),
        viewer[2] + micros(16_600_000_777),
    ];
    let v = [micros(123_457), micros(-98_765), micros(55_555)];
    let mut sent = HashMap::new();
    for tick in 1..=40u64 {
        let e = cand(
            9,
            [0, 1, 2].map(|k| p[k] + v[k] * Micros::from_num(tick)),
            v,
        );
        sent.insert(tick as u32, e.position);
        link.tick(tick, &viewer, &[e]).expect("valid");
        let got = link.mirror.get(9).expect("held");
        let truth = sent[&got.tick];
        assert!(
            within_mm(&got.position, &truth),
            "tick {tick}: {:?} vs {:?}",
            got.position.map(floor_micros),
            truth.map(floor_micros)
        );
    }
    assert!(
        link.view.stats().updates > 5,
        "updates, not only the enter, were checked"
    );
    let too_far = ReplicationConfig::with_radius(MAX_RADIUS_MM);
    assert!(
        matches!(ClientView::new(too_far), Err(ConfigError::Radius { .. })),
        "radius + hysteresis above 32 km is refused"
    );
}

#[test]
fn budget_is_respected_and_near_entities_update_more_often_than_far_ones() {
    let mut cfg = ReplicationConfig::with_radius(50_000);
    cfg.bytes_per_second = 4_000; // 200 B per tick: far less than 400 entities need
    let mut link = ReplicationLink::new(cfg, 0, 2, 3).expect("config");
    // 400 entities on a ring of 5 m .. 45 m, all moving.
    let ents: Vec<Candidate> = (1..=400u32)
        .map(|id| {
            let r = 5_000_000 + i64::from(id) * 100_000;
            let a = f64::from(id) * 2.399;
            let p = [
                micros((r as f64 * a.cos()) as i64),
                ZERO3[1],
                micros((r as f64 * a.sin()) as i64),
            ];
            cand(id, p, [micros(1_000), ZERO3[1], ZERO3[2]])
        })
        .collect();
    let mut world = ents.clone();
    let mut updates: HashMap<u32, u32> = HashMap::new();
    let ticks = 400u64;
    for tick in 1..=ticks {
        for e in &mut world {
            e.position[0] += e.velocity[0];
        }
        link.tick(tick, &ZERO3, &world).expect("valid");
        for m in link.mirror.iter() {
            if u64::from(m.tick) == tick {
                *updates.entry(m.global_id).or_default() += 1;
            }
        }
    }
    let bytes = link.view.stats().bytes;
    let allowed = 4_000 * ticks / 20 + 1_200;
    assert!(
        bytes <= allowed,
        "{bytes} bytes in {ticks} ticks, budget {allowed}"
    );
    assert!(
        bytes > allowed * 8 / 10,
        "the budget is used: {bytes} of {allowed}"
    );
    let rate = |ids: std::ops::RangeInclusive<u32>| {
        let n = ids.clone().count() as f64;
        ids.map(|i| f64::from(*updates.get(&i).unwrap_or(&0)))
            .sum::<f64>()
            / n
            / (ticks as f64 / 20.0)
    };
    let (near, far) = (rate(1..=30), rate(350..=400));
    assert!(near > 2.0 * far, "near {near:.2} Hz vs far {far:.2} Hz");
    assert!(far > 0.0, "far ones still update ({far:.2} Hz)");
}

#[test]
fn nearest_reach_20_hz_when_the_budget_allows_and_idle_far_ones_downshift() {
    let cfg = ReplicationConfig::with_radius(50_000);
    let mut link = ReplicationLink::new(cfg, 0, 3, 3).expect("config");
    let mut world = vec![
        cand(
            1,
            [metres(2), ZERO3[1], ZERO3[2]],
            [micros(100_000), ZERO3[1], ZERO3[2]],
        ),
        cand(2, [metres(48), ZERO3[1], ZERO3[2]], ZERO3),
    ];
    let mut count = [0u32; 2];
    for tick in 1..=200u64 {
        let v = world[0].velocity[0];
        world[0].position[0] += v;
        link.tick(tick, &ZERO3, &world).expect("valid");
        for (i, c) in count.iter_mut().enumerate() {
            if link.mirror.get(i as u32 + 1).map(|m| u64::from(m.tick)) == Some(tick) {
                *c += 1;
            }
        }
    }
    let seconds = 10.0;
    let (near, far) = (f64::from(count[0]) / seconds, f64::from(count[1]) / seconds);
    assert!(near >= 19.5, "nearest moving entity at {near} Hz");
    assert!(
        (1.0..=4.0).contains(&far),
        "idle entity at the edge at {far} Hz"
    );
}

#[test]
fn an_entity_moved_by_position_upserts_at_rest_is_as_fast_as_a_moving_one() {
    // A player's avatar walked by position upserts carries zero velocity between them; it is
    // still moving, so it is sent every tick like entity 1 above, not at the idle rate (also
    // on a tick without an upsert).
    let cfg = ReplicationConfig::with_radius(50_000);
    let mut link = ReplicationLink::new(cfg, 0, 3, 3).expect("config");
    let mut world = vec![
        cand(1, [metres(1), ZERO3[1], ZERO3[2]], ZERO3),
        cand(2, [metres(2), ZERO3[1], ZERO3[2]], ZERO3),
    ];
    let mut count = [0u32; 2];
    for tick in 1..=200u64 {
        // Upserts come at the client's frame rate: now and then a tick passes without one.
        if tick % 7 != 0 {
            world[0].position[0] += micros(50_000);
        }
        link.tick(tick, &ZERO3, &world).expect("valid");
        for (i, c) in count.iter_mut().enumerate() {
            if link.mirror.get(i as u32 + 1).map(|m| u64::from(m.tick)) == Some(tick) {
                *c += 1;
            }
        }
    }
    let (walked, still) = (f64::from(count[0]) / 10.0, f64::from(count[1]) / 10.0);
    assert!(walked >= 19.5, "walked entity at {walked} Hz");
    assert!(still <= 6.0, "the one at rest beside it at {still} Hz");
}

#[test]
fn never_more_than_20_packets_a_second_on_a_60_hz_zone() {
    let mut cfg = ReplicationConfig::with_radius(50_000);
    cfg.tick_hz = 60;
    let mut link = ReplicationLink::new(cfg, 0, 3, 3).expect("config");
    let mut world = World::new(3, 50, 40, 100_000);
    let mut packets = 0;
    let mut last = None;
    for tick in 1..=600u64 {
        world.step();
        if link
            .tick(tick, &ZERO3, &world.entities)
            .expect("valid")
            .sent
            .is_some()
        {
            packets += 1;
            if let Some(l) = last {
                assert!(tick - l >= 3, "packets at ticks {l} and {tick}");
            }
            last = Some(tick);
        }
    }
    assert!((180..=200).contains(&packets), "{packets} packets in 10 s");
}

#[test]
fn same_inputs_same_bytes() {
    let run = || {
        let mut link = ReplicationLink::new(ReplicationConfig::with_radius(20_000), 20_000, 3, 9)
            .expect("config");
        let mut world = World::new(9, 200, 30, 300_000);
        let mut out = Vec::new();
        for tick in 1..=100 {
            world.step();
            if let Some(len) = link
                .tick(tick, &ZERO3, &world.entities)
                .expect("valid")
                .sent
            {
                out.extend_from_slice(link.last_packet(len));
            }
        }
        out
    };
    let (a, b) = (run(), run());
    assert!(a.len() > 5_000, "{} bytes", a.len());
    assert_eq!(a, b, "deterministic");
}

#[test]
fn a_mirror_refuses_bad_packets_and_stays_unchanged() {
    let cfg = ReplicationConfig::with_radius(20_000);
    let mut link = ReplicationLink::new(cfg, 0, 1, 1).expect("config");
    let mut world = World::new(4, 100, 20, 100_000);
    let mut last = Vec::new();
    for tick in 1..=20 {
        world.step();
        if let Some(len) = link
            .tick(tick, &ZERO3, &world.entities)
            .expect("valid")
            .sent
        {
            last = link.last_packet(len).to_vec();
        }
    }
    let before: Vec<_> = link.mirror.iter().collect();
    let ack = link.mirror.ack();
    let mut mirror: ClientMirror = link.mirror.clone();
    // Every truncation and every single-byte corruption of a real packet: refused or applied,
    // never a panic; a refused one leaves the mirror as it was.
    for cut in 0..last.len() {
        if mirror.apply(&last[..cut]).is_err() {
            assert_eq!(
                mirror.iter().collect::<Vec<_>>(),
                before,
                "unchanged after cut {cut}"
            );
        }
    }
    for i in 0..last.len() {
        let mut bad = last.clone();
        bad[i] ^= 0x5A;
        bad[2] = bad[2].wrapping_add(1); // a newer tick, so it is not stale
        bad[6] = bad[6].wrapping_add(1); // and a newer sequence number
        let mut m = link.mirror.clone();
        if m.apply(&bad).is_err() {
            assert_eq!(
                m.iter().collect::<Vec<_>>(),
                before,
                "unchanged after corrupting {i}"
            );
            assert_eq!(m.ack(), ack, "no ack for a refused packet");
        }
    }
    assert!(
        mirror.apply(&[0x43, 1, 0, 0]).is_err(),
        "short header refused"
    );
}

#[test]
fn updates_for_unknown_handles_and_missing_baselines_are_refused() {
    use fabric_core::client_view::MirrorError;
    use fabric_core::client_view::wire::{Ack, Packet, PacketHeader, PositionCode, UpdateRecord};
    let mut mirror = ClientMirror::new(16, 1200);
    let update = |handle, age| UpdateRecord {
        handle,
        age,
        position: PositionCode::Predicted,
        velocity_delta: None,
        zone: None,
    };
    let packet = |seq, tick, updates| {
        let p = Packet {
            header: PacketHeader {
                tick,
                seq,
                anchor_mm: [0; 3],
            },
            leaves: vec![],
            enters: vec![],
            updates,
        };
        let mut buf = [0u8; 256];
        let n = p.encode(&mut buf).expect("fits");
        buf[..n].to_vec()
    };
    assert_eq!(
        mirror.apply(&packet(1, 1, vec![update(3, 1)])),
        Err(MirrorError::UnknownHandle(3)),
        "an update for a handle that holds nothing"
    );
    assert_eq!(
        mirror.apply(&packet(1, 1, vec![update(40, 1)])),
        Err(MirrorError::Handle(40)),
        "a handle beyond the mirror's capacity"
    );
    assert_eq!(mirror.ack(), None, "nothing applied, nothing acked");

    // A hostile client acks packets it never applied: the view believes it holds baselines it
    // lacks, so the next updates are refused by its own mirror; nothing panics.
    let cfg = ReplicationConfig::with_radius(20_000);
    let mut view = ClientView::new(cfg).expect("config");
    let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
    let mut buf = vec![0u8; cfg.mtu];
    let e = cand(
        1,
        [metres(1), ZERO3[1], ZERO3[2]],
        [micros(1_000), ZERO3[1], ZERO3[2]],
    );
    let first = view.write_tick(1, &ZERO3, &[e], &mut buf).expect("enter");
    mirror.apply(&buf[..first]).expect("enter applies");
    view.on_ack(&mirror.ack().expect("ack"));
    let mut refused = 0;
    for tick in 2..=10u64 {
        // Forged: claims every packet so far, none of which (after the first) it applies.
        view.on_ack(&Ack {
            newest: (tick - 2) as u16,
            bits: u32::MAX,
        });
        let mut e = e;
        e.position[0] += micros(tick as i64 * 1_000);
        if let Some(len) = view.write_tick(tick, &ZERO3, &[e], &mut buf)
            && tick > 3
            && matches!(
                mirror.apply(&buf[..len]),
                Err(MirrorError::BaselineMissing { .. })
            )
        {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "the forger's own mirror refuses what it cannot decode"
    );
}

#[test]
fn a_cleared_mirror_follows_a_new_session_that_numbers_packets_and_handles_afresh() {
    use fabric_core::client_view::Applied;
    // A player whose avatar moved to another zone opens a new session there: that zone's view
    // starts again at sequence 0 and handle 0. The old session's mirror cannot apply it (its
    // packets look stale, then its enters land on handles the old zone's entities hold); the
    // same mirror cleared applies it as a new one would.
    let cfg = ReplicationConfig::with_radius(20_000);
    let mut buf = vec![0u8; cfg.mtu];
    let run = |view: &mut ClientView,
               mirror: &mut ClientMirror,
               buf: &mut [u8],
               ids: std::ops::Range<u32>,
               ticks: std::ops::Range<u64>| {
        let mut refused = 0;
        let mut stale = 0;
        for tick in ticks {
            let cands: Vec<Candidate> = ids
                .clone()
                .map(|id| {
                    let p = [metres(i64::from(id % 7)), metres(tick as i64 % 3), ZERO3[2]];
                    cand(id, p, [micros(1_000), ZERO3[1], ZERO3[2]])
                })
                .collect();
            if let Some(len) = view.write_tick(tick, &ZERO3, &cands, buf) {
                match mirror.apply(&buf[..len]) {
                    Ok(Applied::Applied { .. }) => view.on_ack(&mirror.ack().expect("ack")),
                    Ok(Applied::Stale) => stale += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        (refused, stale)
    };
    let mut old_zone = ClientView::new(cfg).expect("config");
    let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
    assert_eq!(
        run(&mut old_zone, &mut mirror, &mut buf, 1..9, 1..41),
        (0, 0)
    );
    assert_eq!(mirror.len(), 8, "the old zone's eight entities held");

    // Without clearing: the new zone's packets are stale or refused, never all applied.
    let mut kept = mirror.clone();
    let mut new_zone = ClientView::new(cfg).expect("config");
    let (refused, stale) = run(&mut new_zone, &mut kept, &mut buf, 100..108, 41..81);
    assert!(
        refused + stale > 0,
        "a kept mirror cannot follow a new session"
    );

    mirror.clear();
    assert!(mirror.is_empty() && mirror.ack().is_none(), "cleared");
    let mut new_zone = ClientView::new(cfg).expect("config");
    assert_eq!(
        run(&mut new_zone, &mut mirror, &mut buf, 100..108, 41..81),
        (0, 0),
        "a cleared mirror applies every packet of the new session"
    );
    let held: Vec<u32> = {
        let mut v: Vec<u32> = mirror.iter().map(|e| e.global_id).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        held,
        (100..108).collect::<Vec<_>>(),
        "only the new zone's entities"
    );
}
