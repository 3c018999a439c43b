//! Transform rates per entity, measured at the client: near and moving 20 Hz (never more: one
//! packet per tick at most), idle or far entities downshift to 2-5 Hz (issue 15, part 3).
//!
//! One view, one mirror that applies and acks every packet (no loss, no budget shortage: the
//! rates are the priority accumulator's), 20 s of a 20 Hz zone. An update counts when the
//! entity's state in the mirror moves to a newer tick.

use std::collections::BTreeMap;

use fabric_core::client_view::{Candidate, ClientMirror, ClientView, ReplicationConfig};
use fabric_core::coords::{Micros, ZERO3};

const TICK_HZ: u64 = 20;
const SECONDS: u64 = 20;

fn mm(v: i64) -> Micros {
    Micros::from_num(v * 1000)
}

#[test]
fn idle_and_far_entities_downshift_to_two_to_five_hz() {
    // Radius 50 m: full rate within 25 m.
    let cfg = ReplicationConfig::with_radius(50_000);
    let mut view = ClientView::new(cfg).unwrap();
    let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
    let mut buf = vec![0u8; cfg.mtu];
    // (id, x in mm, moving): near moving, near idle, mid idle, far moving, far idle.
    let cases: [(u32, i64, bool, &str); 5] = [
        (1, 5_000, true, "near moving"),
        (2, 5_000, false, "near idle"),
        (3, 35_000, false, "mid idle"),
        (4, 49_000, true, "far moving"),
        (5, 49_000, false, "far idle"),
    ];
    let speed = mm(10); // 10 mm per tick: 0.2 m/s
    let mut updates: BTreeMap<u32, u64> = BTreeMap::new();
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    let warm_up = TICK_HZ; // the enters and their acks
    for tick in 1..=(warm_up + SECONDS * TICK_HZ) {
        let cands: Vec<Candidate> = cases
            .iter()
            .map(|&(id, x, moving, _)| {
                // Moving ones go round a 1 m square path around their spot (same distance).
                let phase = if moving { (tick % 100) as i64 } else { 0 };
                Candidate {
                    global_id: id,
                    position: [mm(x), mm(0), mm(phase * 10)],
                    velocity: if moving {
                        [Micros::ZERO, Micros::ZERO, speed]
                    } else {
                        ZERO3
                    },
                    zone: 0,
                    class_word: 7 << 24,
                }
            })
            .collect();
        let Some(len) = view.write_tick(tick, &ZERO3, &cands, &mut buf) else {
            continue;
        };
        mirror.apply(&buf[..len]).expect("the packet applies");
        view.on_ack(&mirror.ack().expect("acked"));
        if tick <= warm_up {
            continue;
        }
        for &(id, ..) in &cases {
            let t = mirror.get(id).expect("in view").tick;
            if last.insert(id, t) != Some(t) {
                *updates.entry(id).or_default() += 1;
            }
        }
    }
    let mut table = String::new();
    for &(id, _, _, name) in &cases {
        let hz = *updates.get(&id).unwrap_or(&0) as f64 / SECONDS as f64;
        table.push_str(&format!("{name}: {hz:.2} Hz\n"));
        match name {
            "near moving" => assert_eq!(hz, 20.0, "{table}"),
            _ => assert!(
                (2.0..=5.0).contains(&hz),
                "{name} must downshift to 2-5 Hz:\n{table}"
            ),
        }
    }
    println!("{table}");
}
