//! Zones that touch in space but lie far apart on the Hilbert curve (zones 0 and 3 of 4: the
//! curve's first and last quarters are adjacent) are neighbours: an entity crossing their shared
//! face is handed straight from 0 to 3, and rows of entities near that face reach 3.
//!
//! The zones run in lockstep in memory; packets go through a router that, like the zones' links,
//! delivers only between linked zones (one tick later) and counts the rest as refused.

mod common;

use common::*;
use fabric_core::adjacency::zone_box;
use fabric_core::aoi::{band_neighbours, neighbours};
use fabric_core::coords::micros;
use fabric_core::entity::Entity;
use fabric_core::entity_row::RowBatchHeader;
use fabric_core::hilbert;
use fabric_core::slots::SlotState;
use fabric_core::zone::Zone;
use fabric_core::zones::{ZoneId, ZoneLayout, ZoneMask};

/// What one run saw.
struct Run {
    zones: Vec<Zone>,
    /// Sends refused because the two zones are not linked.
    refused: u64,
    /// Row batches zone 0 delivered to zone 3.
    rows_0_to_3: u64,
}

/// One entity in zone 0, two cells from the face zone 0 shares with zone 3, moving straight
/// across it at 2 m/s; `linked` says which zone pairs have a link.
fn cross_from_0_to_3(linked: impl Fn(&ZoneLayout, ZoneId) -> ZoneMask) -> Run {
    let cfgs = configs(4, 64, 16, 4);
    let layout = cfgs[0].layout;
    let bounds = cfgs[0].bounds;
    let b0 = zone_box(&layout, 0).unwrap();
    let b3 = zone_box(&layout, 3).unwrap();
    let axis = (0..3)
        .find(|&k| b0.hi[k] + 1 == b3.lo[k] || b3.hi[k] + 1 == b0.lo[k])
        .expect("zones 0 and 3 share a face");
    let up = b0.hi[axis] < b3.lo[axis];
    // The middle of the shared face, two cells inside zone 0.
    let mut cell = [0, 1, 2].map(|k| (b0.lo[k].max(b3.lo[k]) + b0.hi[k].min(b3.hi[k])) / 2);
    cell[axis] = if up { b0.hi[axis] - 2 } else { b0.lo[axis] + 2 };
    assert_eq!(layout.zone_of(hilbert::encode(cell)), 0, "start in zone 0");
    let origin = bounds.cell_origin(cell);
    let half = [0, 1, 2].map(|k| bounds.cell_size(k) as i64 / 2);
    let p = [0, 1, 2].map(|k| micros(origin[k] + half[k]));
    let mut v = [micros(0); 3];
    v[axis] = micros(if up { 100_000 } else { -100_000 });

    let mut zones: Vec<Zone> = cfgs.iter().map(|c| Zone::new(*c).unwrap()).collect();
    zones[0].spawn(Entity::at(42, p).with_velocity(v)).unwrap();
    let mut in_flight: Vec<(ZoneId, ZoneId, Vec<u8>)> = Vec::new();
    let mut run = Run {
        zones: Vec::new(),
        refused: 0,
        rows_0_to_3: 0,
    };
    for tick in 1..=60u64 {
        for (from, to, bytes) in in_flight.drain(..) {
            if RowBatchHeader::decode(&bytes).is_ok() && (from, to) == (0, 3) {
                run.rows_0_to_3 += 1;
            }
            // Packets are well formed; a refusal would be counted in bad_packets.
            let _ = zones[to as usize].handle(tick, &bytes);
        }
        for z in zones.iter_mut() {
            z.tick(tick);
            z.emit_interest_rows();
        }
        for z in zones.iter_mut() {
            let from = z.id();
            for (to, bytes) in z.outbox().iter() {
                if linked(&layout, from).contains(to) {
                    in_flight.push((from, to, bytes.to_vec()));
                } else {
                    run.refused += 1;
                }
            }
            z.clear_outbox();
        }
    }
    run.zones = zones;
    run
}

/// The link rule of `fabric-link` (neighbours taken both ways).
fn linked_both_ways(
    rule: fn(&ZoneLayout, ZoneId) -> ZoneMask,
) -> impl Fn(&ZoneLayout, ZoneId) -> ZoneMask {
    move |l, z| {
        let mut m = rule(l, z).0;
        for o in 0..l.count() as ZoneId {
            if rule(l, o).contains(z) {
                m |= 1 << o;
            }
        }
        ZoneMask(m & !(1 << z))
    }
}

#[test]
fn an_entity_crossing_from_zone_0_into_zone_3_is_handed_over_directly() {
    let layout = ZoneLayout::new(4).unwrap();
    assert!(
        !band_neighbours(&layout, 0).contains(3) && !band_neighbours(&layout, 3).contains(0),
        "0 and 3 are not in each other's code band: only space links them"
    );
    let run = cross_from_0_to_3(linked_both_ways(neighbours));
    assert_eq!(run.refused, 0, "nothing refused for lack of a link");
    let z3 = &run.zones[3];
    let slot = z3
        .find_owned(42)
        .expect("zone 3 owns the entity after it crossed the face");
    assert_eq!(z3.slots().state(slot), SlotState::Owned);
    assert_eq!(
        run.zones.iter().flat_map(|z| z.holdings()).count(),
        1,
        "held once, by zone 3, nowhere else"
    );
    assert_eq!(
        run.zones[0].stats().commits,
        1,
        "zone 0 handed it over once"
    );
    assert_eq!(z3.stats().arrivals, 1, "zone 3 took it once");
    assert_eq!(
        run.zones[1].stats().intents_accepted + run.zones[2].stats().intents_accepted,
        0,
        "zones 1 and 2 took no part"
    );
    assert!(
        run.rows_0_to_3 > 0,
        "zone 3 received rows of the entity while it stood near the shared face"
    );
}

#[test]
fn with_code_band_links_only_the_same_crossing_is_refused() {
    // The rule before spatial neighbours: the hand-off to zone 3 cannot be sent, so the
    // entity stays with zone 0 (staging, rolled back, retried), far from where it stands.
    let run = cross_from_0_to_3(linked_both_ways(band_neighbours));
    assert!(run.refused > 0, "sends to zone 3 are refused");
    assert_eq!(run.rows_0_to_3, 0, "no rows reach zone 3");
    assert!(
        run.zones[3].find_owned(42).is_none(),
        "zone 3 never gets the entity"
    );
    assert!(
        run.zones[0].holdings().any(|h| h.global_id == 42),
        "zone 0 still holds it"
    );
}
