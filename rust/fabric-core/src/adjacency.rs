//! Spatial adjacency of zones: each zone's space as a box of grid cells, and which zones touch.
//!
//! A zone owns one Hilbert *prefix cell* ([`crate::zones`]). On the 3D Hilbert curve a prefix of
//! `3L` bits is a cube of the level-`L` grid (side `2^(10-L)` cells), and a prefix of `3L + 1` or
//! `3L + 2` bits is the first or second half, or a quarter, of such a cube: the Gray-code order
//! visits the 8 sub-cubes so that each half and each consecutive pair is a box. So every zone's
//! space is exactly one axis-aligned box of cells, the union of at most 4 sub-cubes at level
//! `ceil(depth / 3)` ([`zone_box`] decodes their first codes; a unit test checks the volume).
//!
//! The AOI band ([`crate::aoi`]) pads a zone's range in *code* order, so two zones that touch in
//! space but lie far apart on the curve are not in each other's band: with 4 zones the first and
//! last quarters are adjacent octants. [`spatial_neighbours`] adds every zone whose box touches
//! this zone's box (a shared face, edge or corner), so an entity that steps out of a zone always
//! steps into a linked one.

use crate::coords::{CELLS_PER_AXIS, WorldBounds};
use crate::hilbert::{self, CODE_BITS};
use crate::zones::{MAX_ZONES, ZoneId, ZoneLayout, ZoneMask};

/// An axis-aligned box of grid cells, both corners inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellBox {
    /// Lowest cell on each axis.
    pub lo: [u32; 3],
    /// Highest cell on each axis (inclusive).
    pub hi: [u32; 3],
}

impl CellBox {
    /// Number of cells in the box.
    pub fn volume(&self) -> u64 {
        (0..3)
            .map(|k| (self.hi[k] - self.lo[k] + 1) as u64)
            .product()
    }

    /// Whether `cell` lies in the box.
    #[inline(always)]
    pub fn contains(&self, cell: [u32; 3]) -> bool {
        (0..3).all(|k| cell[k].wrapping_sub(self.lo[k]) <= self.hi[k] - self.lo[k])
    }

    /// Whether the two boxes share at least a corner point in space (they overlap, or their
    /// cells are adjacent across a face, an edge or a corner).
    pub fn touches(&self, other: &CellBox) -> bool {
        (0..3).all(|k| self.lo[k] <= other.hi[k] + 1 && other.lo[k] <= self.hi[k] + 1)
    }

    /// The box grown by `pad[k]` cells each side on axis `k`, clamped to the grid.
    pub fn padded(&self, pad: [u32; 3]) -> CellBox {
        CellBox {
            lo: [0, 1, 2].map(|k| self.lo[k].saturating_sub(pad[k])),
            hi: [0, 1, 2].map(|k| self.hi[k].saturating_add(pad[k]).min(CELLS_PER_AXIS - 1)),
        }
    }
}

/// The box of cells `zone` owns, or `None` if `zone` is not in the layout.
pub fn zone_box(layout: &ZoneLayout, zone: ZoneId) -> Option<CellBox> {
    let range = layout.range(zone)?;
    let depth = layout.zone_depth(zone);
    // Level of the sub-cubes the prefix cell is made of, their side and their code count.
    let level = depth.div_ceil(3);
    let side = 1u32 << (10 - level);
    let sub_codes = 1u64 << (CODE_BITS - 3 * level);
    let mut b = CellBox {
        lo: [u32::MAX; 3],
        hi: [0; 3],
    };
    let mut code = range.start as u64;
    while code < range.end as u64 {
        let cell = hilbert::decode(code as u32);
        for (k, c) in cell.into_iter().enumerate() {
            let lo = c & !(side - 1);
            b.lo[k] = b.lo[k].min(lo);
            b.hi[k] = b.hi[k].max(lo + side - 1);
        }
        code += sub_codes;
    }
    Some(b)
}

/// The boxes of every zone of a layout, computed once (fixed size, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneBoxes {
    count: usize,
    boxes: [CellBox; MAX_ZONES],
}

impl ZoneBoxes {
    /// The boxes of `layout`'s zones.
    pub fn new(layout: &ZoneLayout) -> Self {
        let mut boxes = [CellBox {
            lo: [0; 3],
            hi: [0; 3],
        }; MAX_ZONES];
        for (z, b) in boxes.iter_mut().enumerate().take(layout.count()) {
            *b = zone_box(layout, z as ZoneId).expect("zone is in the layout");
        }
        Self {
            count: layout.count(),
            boxes,
        }
    }

    /// `zone`'s box, or `None` outside the layout.
    pub fn get(&self, zone: ZoneId) -> Option<&CellBox> {
        self.boxes[..self.count].get(zone as usize)
    }

    /// The zones other than `zone` whose boxes touch `zone`'s box.
    pub fn touching(&self, zone: ZoneId) -> ZoneMask {
        let Some(me) = self.get(zone) else {
            return ZoneMask(0);
        };
        let mut mask = 0u32;
        for (other, b) in self.boxes[..self.count].iter().enumerate() {
            if other != zone as usize && me.touches(b) {
                mask |= 1 << other;
            }
        }
        ZoneMask(mask)
    }
}

/// The zones other than `zone` whose space touches `zone`'s space (face, edge or corner).
/// Symmetric: `b` is in `a`'s set exactly when `a` is in `b`'s.
pub fn spatial_neighbours(layout: &ZoneLayout, zone: ZoneId) -> ZoneMask {
    ZoneBoxes::new(layout).touching(zone)
}

/// A distance of `radius_um` micrometres in cells on each axis of `bounds`' grid, rounded up
/// (what a box must be padded by to hold every cell within that distance of it).
pub fn radius_in_cells(bounds: &WorldBounds, radius_um: i64) -> [u32; 3] {
    let r = radius_um.max(0) as u64;
    [0, 1, 2].map(|k| r.div_ceil(bounds.cell_size(k)).min(CELLS_PER_AXIS as u64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hilbert::encode;
    use proptest::prelude::*;

    const COUNTS: [usize; 6] = [1, 2, 3, 4, 8, 32];

    #[test]
    fn every_zone_box_is_exactly_its_cells() {
        for count in 1..=MAX_ZONES {
            let l = ZoneLayout::new(count).unwrap();
            let mut total = 0u64;
            for z in 0..count as ZoneId {
                let b = zone_box(&l, z).unwrap();
                let r = l.range(z).unwrap();
                // Disjoint sub-cubes inside the box with as many cells as the box: they fill it.
                assert_eq!(
                    b.volume(),
                    r.width() as u64,
                    "count {count} zone {z}: box {b:?} has as many cells as the range has codes"
                );
                for code in [r.start, r.start + r.width() / 3, r.end - 1] {
                    assert!(
                        b.contains(hilbert::decode(code)),
                        "count {count} zone {z}: code {code} decodes inside {b:?}"
                    );
                }
                total += b.volume();
            }
            assert_eq!(total, 1 << 30, "count {count}: boxes tile the grid");
            assert_eq!(zone_box(&l, count as ZoneId), None);
        }
    }

    #[test]
    fn four_zones_first_and_last_quarters_touch() {
        let l = ZoneLayout::new(4).unwrap();
        let b0 = zone_box(&l, 0).unwrap();
        let b3 = zone_box(&l, 3).unwrap();
        assert!(b0.touches(&b3), "{b0:?} and {b3:?} share a face");
        assert_eq!(
            spatial_neighbours(&l, 0),
            ZoneMask(0b1110),
            "zone 0 touches 1, 2 and 3 in space"
        );
        assert_eq!(spatial_neighbours(&l, 3), ZoneMask(0b0111));
        let one = ZoneLayout::new(1).unwrap();
        assert_eq!(
            zone_box(&one, 0).unwrap(),
            CellBox {
                lo: [0; 3],
                hi: [1023; 3]
            },
            "a single zone is the whole grid"
        );
        assert!(spatial_neighbours(&one, 0).is_empty());
        assert!(spatial_neighbours(&l, 9).is_empty(), "no zone 9 in 4");
    }

    #[test]
    fn eight_zones_all_meet_at_the_centre() {
        let l = ZoneLayout::new(8).unwrap();
        for z in 0..8u8 {
            assert_eq!(
                spatial_neighbours(&l, z).len(),
                7,
                "octant {z} touches every other octant at the centre point"
            );
        }
    }

    #[test]
    fn touching_is_symmetric_and_never_self() {
        for count in 1..=MAX_ZONES {
            let l = ZoneLayout::new(count).unwrap();
            let boxes = ZoneBoxes::new(&l);
            for a in 0..count as ZoneId {
                let na = boxes.touching(a);
                assert!(
                    !na.contains(a),
                    "count {count}: {a} is not its own neighbour"
                );
                for b in 0..count as ZoneId {
                    assert_eq!(
                        na.contains(b),
                        boxes.touching(b).contains(a),
                        "count {count}: {a}-{b} symmetric"
                    );
                }
            }
        }
    }

    #[test]
    fn radius_in_cells_rounds_up() {
        let b = WorldBounds::demo();
        // 29,297 um cells: 5 m is 170.67 cells.
        assert_eq!(radius_in_cells(&b, 5_000_000), [171; 3]);
        assert_eq!(radius_in_cells(&b, 0), [0; 3]);
        assert_eq!(radius_in_cells(&b, i64::MAX), [1024; 3], "clamped");
        let c = CellBox {
            lo: [10, 0, 1000],
            hi: [20, 5, 1010],
        };
        assert_eq!(
            c.padded([15, 15, 15]),
            CellBox {
                lo: [0, 0, 985],
                hi: [35, 20, 1023]
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Two cells next to each other (across a face, an edge or a corner) belong to the same
        /// zone or to zones that touch in space.
        #[test]
        fn cells_across_a_face_belong_to_touching_zones(
            pick in 0usize..COUNTS.len(),
            cell in prop::array::uniform3(0u32..CELLS_PER_AXIS),
            step in prop::array::uniform3(-1i32..=1),
        ) {
            let l = ZoneLayout::new(COUNTS[pick]).unwrap();
            let boxes = ZoneBoxes::new(&l);
            let next = [0, 1, 2].map(|k| (cell[k] as i32 + step[k]).clamp(0, 1023) as u32);
            let a = l.zone_of(encode(cell));
            let b = l.zone_of(encode(next));
            prop_assert!(boxes.get(a).unwrap().contains(cell), "cell {:?} in its zone's box", cell);
            prop_assert!(a == b || boxes.touching(a).contains(b),
                "count {}: cells {:?} (zone {}) and {:?} (zone {}) are adjacent", COUNTS[pick], cell, a, next, b);
        }

        /// Points just across each face of a zone's box: the zone owning them is a neighbour.
        #[test]
        fn every_face_of_every_zone_is_linked(
            pick in 0usize..COUNTS.len(),
            zone in 0u8..32,
            axis in 0usize..3,
            upper in any::<bool>(),
            along in prop::array::uniform3(0u32..CELLS_PER_AXIS),
        ) {
            let l = ZoneLayout::new(COUNTS[pick]).unwrap();
            let zone = zone % COUNTS[pick] as u8;
            let b = zone_box(&l, zone).unwrap();
            // A cell on the chosen face, and the cell just across it (if inside the grid).
            let mut inside = [0, 1, 2].map(|k| b.lo[k] + along[k] % (b.hi[k] - b.lo[k] + 1));
            inside[axis] = if upper { b.hi[axis] } else { b.lo[axis] };
            let mut across = inside;
            let out = if upper { inside[axis].checked_add(1).filter(|&c| c < CELLS_PER_AXIS) }
                else { inside[axis].checked_sub(1) };
            if let Some(c) = out {
                across[axis] = c;
                let other = l.zone_of(encode(across));
                prop_assert_ne!(other, zone, "the cell across the face is another zone's");
                prop_assert!(spatial_neighbours(&l, zone).contains(other),
                    "count {}: zone {} face {}{} touches zone {}", COUNTS[pick], zone, if upper {"+"} else {"-"}, axis, other);
            }
            prop_assert_eq!(l.zone_of(encode(inside)), zone, "the face cell is the zone's own");
        }
    }
}
