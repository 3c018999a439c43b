//! Late join (issue 15, part 4) over the in-memory lossy link of `sim::replication`: a client
//! that joins a zone already holding 600 entities in its interest gets their baseline as enter
//! records in packets of at most the MTU (1,200 bytes), spread over the ticks the byte budget
//! allows (the zone's tick never waits for it), lost packets resent until acked; the view then
//! reports the baseline done, at which point the client's mirror holds exactly the zone's
//! entities, each within the wire's 1 mm of the zone's position, and keeps matching as live
//! updates follow.

use std::collections::BTreeMap;

use fabric_core::client_view::{Candidate, ReplicationConfig};
use fabric_core::coords::{ZERO3, floor_micros, micros};
use fabric_core::sim::replication::ReplicationLink;
use fabric_core::sim::rng::SimRng;

fn world(n: u32, seed: u64) -> Vec<Candidate> {
    let mut rng = SimRng::new(seed);
    (1..=n)
        .map(|id| Candidate {
            global_id: id,
            position: [0, 1, 2].map(|_| micros(rng.range_i64(-30_000_000, 30_000_000))),
            velocity: if id % 3 == 0 {
                ZERO3
            } else {
                [0, 1, 2].map(|_| micros(rng.range_i64(-20_000, 20_000)))
            },
            zone: 0,
            class_word: 5 << 24 | id,
        })
        .collect()
}

fn step(w: &mut [Candidate]) {
    for c in w {
        for k in 0..3 {
            c.position[k] += c.velocity[k];
        }
    }
}

/// Every entity of the zone is in the mirror, and nothing else is; each at the zone's state of
/// the tick the mirror says it holds (`history`: the zone's entities after each tick), within
/// the wire's 1 mm.
fn equal(link: &ReplicationLink, history: &BTreeMap<u64, Vec<Candidate>>) -> Result<(), String> {
    let (_, now) = history.last_key_value().expect("a tick ran");
    if link.mirror.len() != now.len() {
        return Err(format!(
            "mirror holds {} of {}",
            link.mirror.len(),
            now.len()
        ));
    }
    for e in link.mirror.iter() {
        let at = history
            .iter()
            .find(|(t, _)| **t as u32 == e.tick)
            .ok_or(format!("{}: tick {} not kept", e.global_id, e.tick))?
            .1;
        let c = at
            .iter()
            .find(|c| c.global_id == e.global_id)
            .ok_or(format!("{} is not the zone's", e.global_id))?;
        for (k, (m, z)) in e.position.iter().zip(&c.position).enumerate() {
            let d = (floor_micros(*m) - floor_micros(*z)).abs();
            if d >= 1000 {
                return Err(format!("{} axis {k} off by {d} um", c.global_id));
            }
        }
    }
    Ok(())
}

#[test]
fn a_late_joiner_gets_a_chunked_baseline_then_a_done_marker_and_matches_the_zone() {
    let cfg = ReplicationConfig::with_radius(100_000);
    let mut link = ReplicationLink::new(cfg, 100_000, 2, 9).expect("config");
    let mut w = world(600, 4);
    // The zone ran before the client came.
    for _ in 0..50 {
        step(&mut w);
    }
    let viewer = ZERO3;
    let mut done = None;
    let mut packets = 0;
    let mut checked = 0;
    let mut history = BTreeMap::new();
    for tick in 1..=400u64 {
        step(&mut w);
        let t = link.tick(tick, &viewer, &w).expect("mirror applies");
        if let Some(len) = t.sent {
            assert!(len <= 1200, "a baseline chunk is within the MTU: {len}");
            packets += 1;
        }
        if done.is_none()
            && let Some(at) = link.view.baseline_done()
        {
            done = Some(at);
            assert_eq!(at, tick, "reported at the tick it completed");
            // The mirror holds the last state acked for each, and every later packet lost or
            // not keeps it within the prediction: compare after this tick's packet.
            assert_eq!(link.mirror.len(), 600, "every entity's enter was applied");
        }
        history.insert(tick, w.clone());
        if done.is_some() && t.delivered {
            // Past the baseline, after each packet that reaches the client, what it holds is
            // the zone's state (of the tick each entity was last sent at).
            equal(&link, &history).expect("after the baseline the client equals the zone");
            checked += 1;
        }
    }
    let at = done.expect("the baseline completed");
    assert!(
        at > 5,
        "600 enters do not fit one packet: spread over ticks, done at tick {at}"
    );
    assert!(
        link.lost_packets > 0,
        "the link lost packets: {}",
        link.lost_packets
    );
    assert!(packets > 10, "{packets} packets");
    assert!(checked > 100, "compared after {checked} packets");
}
