//! Interest culling: rows go only to neighbours whose AOI band holds the entity or whose space
//! is within the interest radius of it, and a
//! subscriber gets only what is within its radius, the zone's own entities included.

mod common;

use common::*;
use fabric_core::aoi::INTEREST_RADIUS_MICROS;
use fabric_core::coords::{metres, micros};
use fabric_core::entity::Entity;
use fabric_core::entity_row::{EntityRow, ROW_LEN, RowBatchHeader};
use fabric_core::hilbert;
use fabric_core::zone::Zone;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn rows_go_only_to_neighbours_whose_band_or_space_is_near_the_entity() {
    let cfgs = configs(16, 64, 16, 80);
    let layout = cfgs[8].layout;
    let mut z = Zone::new(cfgs[8]).unwrap();
    let r = layout.range(8).unwrap();
    let w = r.width();
    // One entity at the very start of zone 8's range, one in its middle, one at its end.
    let codes = [r.start, r.start + w / 2, r.end - 1];
    for (i, c) in codes.iter().enumerate() {
        z.spawn(Entity::at(i as u32, position_of_code(*c))).unwrap();
    }
    z.tick(1);
    z.clear_outbox();
    let queued = z.emit_interest_rows();
    let mut got: BTreeMap<u8, BTreeSet<u32>> = BTreeMap::new();
    for (to, bytes) in z.outbox().iter() {
        let (h, rows) = RowBatchHeader::decode(bytes).expect("a valid row batch");
        assert_eq!(h.from_zone, 8, "batches name their zone");
        for row in rows.chunks(ROW_LEN) {
            let row = EntityRow::decode(row).expect("a valid row");
            got.entry(to).or_default().insert(row.global_id);
        }
    }
    // Bands of zones 6, 7, 9, 10 are 5 cells wide: 6 = [4w, 9w), 7 = [5w, 10w), 9 = [7w, 12w),
    // 10 = [8w, 13w). Every code in zone 8 ([8w, 9w)) is in all four, and in no other band.
    let mut expect: BTreeMap<u8, BTreeSet<u32>> = [6u8, 7, 9, 10]
        .into_iter()
        .map(|n| (n, BTreeSet::from([0, 1, 2])))
        .collect();
    // The zones that touch zone 8 in space but are far on the curve get the entities within the
    // interest radius (5 m, per axis) of their space, measured here in micrometres.
    let bounds = cfgs[8].bounds;
    let spatial_only = fabric_core::adjacency::spatial_neighbours(&layout, 8).0
        & !fabric_core::aoi::band_neighbours(&layout, 8).0;
    assert_ne!(
        spatial_only, 0,
        "zone 8 of 16 touches zones outside its band"
    );
    for n in fabric_core::zones::ZoneMask(spatial_only).iter() {
        let b = fabric_core::adjacency::zone_box(&layout, n).unwrap();
        let lo = bounds.cell_origin(b.lo);
        let hi = bounds.cell_origin(b.hi);
        for (i, c) in codes.iter().enumerate() {
            let p = position_of_code(*c);
            let gap = (0..3)
                .map(|k| {
                    let x = fabric_core::coords::floor_micros(p[k]);
                    let top = hi[k] + bounds.cell_size(k) as i64;
                    (lo[k] - x).max(x - top).max(0)
                })
                .max()
                .unwrap();
            let cell = bounds.cell_size(0) as i64;
            assert!(
                (gap - INTEREST_RADIUS_MICROS).abs() > cell,
                "entity {i} is clearly inside or outside the radius of zone {n} ({gap} um)"
            );
            if gap <= INTEREST_RADIUS_MICROS {
                expect.entry(n).or_default().insert(i as u32);
            }
        }
    }
    assert_eq!(
        expect.get(&0).map(|s| s.len()),
        Some(1),
        "zone 0 touches zone 8's first cell: the entity there is sent to it"
    );
    assert_eq!(got, expect, "rows per neighbour");
    let rows: usize = expect.values().map(|s| s.len()).sum();
    assert_eq!(
        queued, rows,
        "3 entities x 4 band neighbours + those near other faces"
    );
    // Sanity of the positions used: they are in zone 8.
    for (i, c) in codes.iter().enumerate() {
        let p = position_of_code(*c);
        assert_eq!(
            layout.zone_of(hilbert::encode_position(&cfgs[8].bounds, &p)),
            8,
            "entity {i} stands in zone 8"
        );
    }
}

#[test]
fn a_subscriber_sees_only_entities_within_five_metres() {
    let cfgs = configs(1, 64, 16, 80);
    let mut z = Zone::new(cfgs[0]).unwrap();
    let centre = [metres(0); 3];
    let at = |x_um: i64| [micros(x_um), micros(0), micros(0)];
    z.spawn(Entity::at(1, at(0))).unwrap(); // the subscriber's own entity
    z.spawn(Entity::at(2, at(4_999_999))).unwrap(); // just inside
    z.spawn(Entity::at(3, at(5_000_001))).unwrap(); // just outside
    z.spawn(Entity::at(4, at(-12_000_000))).unwrap(); // far away, same zone
    let mut seen = BTreeSet::new();
    let n = z.for_each_row_near(&centre, INTEREST_RADIUS_MICROS, |r| {
        seen.insert(r.global_id);
    });
    assert_eq!(
        seen,
        BTreeSet::from([1, 2]),
        "own zone's far entities are culled"
    );
    assert_eq!(n, 2, "count returned");
}

#[test]
fn a_staging_entity_stays_visible_until_the_ack() {
    let cfgs = configs(2, 16, 4, 1);
    let layout = cfgs[0].layout;
    let mut z = Zone::new(cfgs[0]).unwrap();
    z.spawn(Entity::at(5, positions_in_zone(&layout, 1, 1)[0]))
        .unwrap();
    z.tick(1);
    assert_eq!(z.staging_count(), 1, "handed to zone 1, no answer yet");
    z.clear_outbox();
    assert_eq!(z.emit_interest_rows(), 1, "its row still goes to zone 1");
    let mut seen = 0;
    z.for_each_row_near(
        &position_of_code(layout.range(1).unwrap().start),
        i64::MAX / 4,
        |r| {
            assert_eq!(r.global_id, 5, "the staging entity");
            seen += 1;
        },
    );
    assert_eq!(seen, 1, "and to subscribers");
}
