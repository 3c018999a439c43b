//! Area of interest: a zone's AOI band in Hilbert space, its neighbours, and per-subscriber culling.
//!
//! * **Band.** A zone's band is its Hilbert range padded by [`AOI_CELLS`] cells on each side,
//!   clamped to `[0, 2^30)`. The cell is the zone's own prefix cell ([`crate::zones`]), so the
//!   band is never wider than `(1 + 2 AOI_CELLS)` cells, whatever the number of zones.
//! * **Neighbours.** The zones whose ranges overlap a zone's band, plus the zones whose space
//!   touches its space ([`crate::adjacency`]: the curve's ends, for example, are adjacent
//!   octants): the only peers it exchanges entity rows and hand-offs with. The tick buckets every
//!   entity by the neighbour bands that contain its code and by the neighbour boxes, padded by
//!   the interest radius, that contain its cell ([`BandTable`]).
//! * **Subscribers.** A client sees only entities within [`INTEREST_RADIUS_MICROS`] of its own
//!   entity, *including the zone's own entities* (the original sent every active slot to every
//!   subscriber every tick: 1800 rows x 100 B x 20 Hz = 3.6 MB/s per client).

use crate::adjacency::{CellBox, ZoneBoxes};
use crate::coords::{CELLS_PER_AXIS, Vec3, floor_micros};
use crate::hilbert::CODE_SPACE;
use crate::zones::{HilbertRange, ZoneId, ZoneLayout, ZoneMask};

/// Band padding, in cells, on each side of a zone's range.
pub const AOI_CELLS: u32 = 2;
/// Interest radius of a subscriber, micrometres (5 m).
pub const INTEREST_RADIUS_MICROS: i64 = 5_000_000;

/// `zone`'s AOI band: its range padded by `aoi_cells` of its own cell width each side, clamped.
/// `None` if `zone` is not in the layout.
pub fn band_with(layout: &ZoneLayout, zone: ZoneId, aoi_cells: u32) -> Option<HilbertRange> {
    let r = layout.range(zone)?;
    let pad = r.width() as u64 * aoi_cells as u64;
    let start = (r.start as u64).saturating_sub(pad);
    let end = (r.end as u64 + pad).min(CODE_SPACE as u64);
    Some(HilbertRange {
        start: start as u32,
        end: end as u32,
    })
}

/// `zone`'s AOI band with the default padding [`AOI_CELLS`].
pub fn band(layout: &ZoneLayout, zone: ZoneId) -> Option<HilbertRange> {
    band_with(layout, zone, AOI_CELLS)
}

/// The zones other than `zone` whose ranges overlap `zone`'s band.
pub fn band_neighbours(layout: &ZoneLayout, zone: ZoneId) -> ZoneMask {
    let Some(b) = band(layout, zone) else {
        return ZoneMask(0);
    };
    let mut mask = 0u32;
    for other in 0..layout.count() as u8 {
        if other != zone && layout.range(other).is_some_and(|r| r.overlaps(&b)) {
            mask |= 1 << other;
        }
    }
    ZoneMask(mask)
}

/// `zone`'s neighbours: the zones whose ranges overlap its band ([`band_neighbours`]) and the
/// zones whose space touches its space ([`crate::adjacency::spatial_neighbours`]).
pub fn neighbours(layout: &ZoneLayout, zone: ZoneId) -> ZoneMask {
    ZoneMask(band_neighbours(layout, zone).0 | crate::adjacency::spatial_neighbours(layout, zone).0)
}

/// Neighbour bands and boxes packed for the tick's bucketing loop: for each neighbour, the start
/// and width of its band; and per axis and cell index, the neighbours whose box padded by the
/// interest radius spans that index, so "which padded boxes hold this cell" is three loads and
/// two ands (exact: a box holds a cell when each axis interval holds the cell's index). Fixed
/// size (12 KiB), built once, no allocation.
#[derive(Debug, Clone)]
pub struct BandTable {
    len: usize,
    zone: [ZoneId; 32],
    start: [u32; 32],
    width: [u32; 32],
    /// `axis_mask[k][c]`: neighbours whose padded box spans index `c` on axis `k`.
    axis_mask: [[u32; CELLS_PER_AXIS as usize]; 3],
}

impl BandTable {
    /// The bands of `zone`'s neighbours, with their boxes unpadded.
    pub fn for_zone(layout: &ZoneLayout, zone: ZoneId) -> Self {
        Self::with_padding(layout, zone, [0; 3])
    }

    /// The bands of `zone`'s neighbours, with their boxes padded by `pad` cells per axis (see
    /// [`crate::adjacency::radius_in_cells`]).
    pub fn with_padding(layout: &ZoneLayout, zone: ZoneId, pad: [u32; 3]) -> Self {
        let mut t = Self {
            len: 0,
            zone: [0; 32],
            start: [0; 32],
            width: [0; 32],
            axis_mask: [[0; CELLS_PER_AXIS as usize]; 3],
        };
        let boxes = ZoneBoxes::new(layout);
        for n in neighbours(layout, zone).iter() {
            let b = band(layout, n).expect("neighbour is in the layout");
            let cb: CellBox = boxes
                .get(n)
                .expect("neighbour is in the layout")
                .padded(pad);
            t.zone[t.len] = n;
            t.start[t.len] = b.start;
            t.width[t.len] = b.width();
            for (k, masks) in t.axis_mask.iter_mut().enumerate() {
                for m in &mut masks[cb.lo[k] as usize..=cb.hi[k] as usize] {
                    *m |= 1 << n;
                }
            }
            t.len += 1;
        }
        t
    }

    /// Number of neighbour bands.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the zone has no neighbours (a single-zone world).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The neighbours, as a mask.
    pub fn zones(&self) -> ZoneMask {
        let mut mask = 0u32;
        for &z in &self.zone[..self.len] {
            mask |= 1 << z;
        }
        ZoneMask(mask)
    }

    /// The neighbours whose bands contain `code`, as a mask. Branch-free over the table.
    #[inline]
    pub fn interested(&self, code: u32) -> u32 {
        let mut mask = 0u32;
        for i in 0..self.len {
            let inside = code.wrapping_sub(self.start[i]) < self.width[i];
            mask |= (inside as u32) << self.zone[i];
        }
        mask
    }

    /// The neighbours whose bands contain `code` or whose padded boxes contain `cell` (the
    /// cell of the same position; indices above the grid count as its last cell), as a mask.
    #[inline]
    pub fn interested_at(&self, code: u32, cell: [u32; 3]) -> u32 {
        let last = CELLS_PER_AXIS - 1;
        let in_box = self.axis_mask[0][cell[0].min(last) as usize]
            & self.axis_mask[1][cell[1].min(last) as usize]
            & self.axis_mask[2][cell[2].min(last) as usize];
        self.interested(code) | in_box
    }
}

/// Whether `b` is within `radius_um` micrometres of `a` (Euclidean, on whole micrometres).
#[inline]
pub fn within_radius(a: &Vec3, b: &Vec3, radius_um: i64) -> bool {
    let mut sum: i128 = 0;
    for k in 0..3 {
        let d = (floor_micros(a[k]) as i128 - floor_micros(b[k]) as i128).abs();
        if d > radius_um as i128 {
            return false;
        }
        sum += d * d;
    }
    sum <= (radius_um as i128) * (radius_um as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::metres;
    use proptest::prelude::*;

    #[test]
    fn band_of_a_middle_zone_is_five_cells() {
        let l = ZoneLayout::new(16).unwrap();
        let b = band(&l, 8).unwrap();
        let w = 1u32 << 26;
        assert_eq!(b.start, 6 * w, "padded two cells below");
        assert_eq!(b.end, 11 * w, "padded two cells above");
        assert_eq!(
            band_neighbours(&l, 8),
            ZoneMask(0b11 << 6 | 0b11 << 9),
            "zones 6,7,9,10"
        );
        let n = neighbours(&l, 8);
        assert_eq!(
            n.0 & (0b11 << 6 | 0b11 << 9),
            0b11 << 6 | 0b11 << 9,
            "band neighbours are neighbours"
        );
        assert_eq!(
            n,
            ZoneMask(band_neighbours(&l, 8).0 | crate::adjacency::spatial_neighbours(&l, 8).0),
            "plus the zones touching in space"
        );
    }

    #[test]
    fn band_clamps_at_both_ends() {
        let l = ZoneLayout::new(8).unwrap();
        assert_eq!(band(&l, 0).unwrap().start, 0, "clamped at 0");
        assert_eq!(band(&l, 7).unwrap().end, CODE_SPACE, "clamped at 2^30");
        let one = ZoneLayout::new(1).unwrap();
        assert_eq!(
            band(&one, 0).unwrap(),
            HilbertRange {
                start: 0,
                end: CODE_SPACE
            },
            "a single zone's band is the whole space"
        );
        assert!(
            neighbours(&one, 0).is_empty(),
            "a single zone has no neighbours"
        );
        assert_eq!(band(&l, 8), None, "no band for a zone outside the layout");
    }

    #[test]
    fn band_table_buckets_codes() {
        let l = ZoneLayout::new(4).unwrap();
        let t = BandTable::for_zone(&l, 1);
        let q = 1u32 << 28;
        // With 4 zones every band covers 5 quarter-widths, so every other zone is a neighbour.
        assert_eq!(t.len(), 3, "zones 0, 2, 3 are neighbours of 1");
        assert_eq!(
            t.interested(q),
            0b1101,
            "code at the start of zone 1 is in every band"
        );
        let l16 = ZoneLayout::new(16).unwrap();
        let t16 = BandTable::for_zone(&l16, 8);
        let w = 1u32 << 26;
        assert_eq!(
            t16.interested(8 * w),
            0b11 << 6 | 0b11 << 9,
            "inside all four"
        );
        assert_eq!(
            t16.interested(9 * w),
            0b10 << 6 | 0b11 << 9,
            "zone 6's band ends at 9w"
        );
    }

    #[test]
    fn padded_boxes_bring_in_the_zone_across_a_face() {
        // 4 zones: 0 and 3 are far apart on the curve (3 is outside 0's band) but share a face.
        let l = ZoneLayout::new(4).unwrap();
        let b0 = crate::adjacency::zone_box(&l, 0).unwrap();
        let b3 = crate::adjacency::zone_box(&l, 3).unwrap();
        let axis = (0..3)
            .find(|&k| b0.hi[k] + 1 == b3.lo[k] || b3.hi[k] + 1 == b0.lo[k])
            .expect("a shared face");
        let t = BandTable::with_padding(&l, 0, [10; 3]);
        assert!(t.zones().contains(3), "zone 3 is a neighbour of 0");
        // A cell of zone 0 on the shared face, one 10 cells in, one 11 cells in.
        let face = if b0.hi[axis] < b3.lo[axis] {
            b0.hi[axis]
        } else {
            b0.lo[axis]
        };
        let inward = |d: u32| {
            let mut c = b0.lo;
            c[axis] = if b0.hi[axis] < b3.lo[axis] {
                face - d
            } else {
                face + d
            };
            c
        };
        for (d, expect) in [(0, true), (9, true), (10, false), (11, false)] {
            let cell = inward(d);
            let code = crate::hilbert::encode(cell);
            assert_eq!(l.zone_of(code), 0, "the cell is zone 0's");
            assert!(
                !band(&l, 3).unwrap().contains(code),
                "not in zone 3's band: only the box can bring 3 in"
            );
            assert_eq!(
                t.interested_at(code, cell) & 0b1000 != 0,
                expect,
                "{d} cells from the face: within 10 cells of zone 3's box = {expect}"
            );
        }
    }

    #[test]
    fn subscriber_radius() {
        let a = [metres(0); 3];
        assert!(within_radius(
            &a,
            &[metres(3), metres(4), metres(0)],
            INTEREST_RADIUS_MICROS
        ));
        assert!(!within_radius(
            &a,
            &[metres(3), metres(4), metres(1)],
            INTEREST_RADIUS_MICROS
        ));
        assert!(!within_radius(
            &a,
            &[metres(6), metres(0), metres(0)],
            INTEREST_RADIUS_MICROS
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn bucketing_is_exactly_bands_or_padded_boxes(
            count in 1usize..=32,
            pick in 0usize..32,
            pad in prop::array::uniform3(0u32..300),
            cell in prop::array::uniform3(0u32..1024),
        ) {
            let l = ZoneLayout::new(count).unwrap();
            let zone = (pick % count) as u8;
            let t = BandTable::with_padding(&l, zone, pad);
            let code = crate::hilbert::encode(cell);
            let mut expect = 0u32;
            for n in neighbours(&l, zone).iter() {
                let in_band = band(&l, n).unwrap().contains(code);
                let in_box = crate::adjacency::zone_box(&l, n).unwrap().padded(pad).contains(cell);
                expect |= ((in_band || in_box) as u32) << n;
            }
            prop_assert_eq!(t.interested_at(code, cell), expect, "zone {} of {}, cell {:?}", zone, count, cell);
            prop_assert_eq!(t.zones(), neighbours(&l, zone));
        }

        #[test]
        fn band_width_is_bounded_whatever_the_zone_count(count in 1usize..=32, pick in 0usize..32, cells in 0u32..4) {
            let l = ZoneLayout::new(count).unwrap();
            let zone = (pick % count) as u8;
            let r = l.range(zone).unwrap();
            let b = band_with(&l, zone, cells).unwrap();
            let cell_width = 1u64 << (30 - l.zone_depth(zone));
            prop_assert!(b.width() as u64 <= (1 + 2 * cells as u64) * cell_width,
                "count {} zone {} band {:?}", count, zone, b);
            prop_assert!(b.start <= r.start && b.end >= r.end, "band covers the range");
            prop_assert!(b.end <= CODE_SPACE);
            // Band neighbours are exactly the other zones whose ranges overlap the band;
            // neighbours add exactly the zones touching in space.
            let n = band_neighbours(&l, zone);
            let all = neighbours(&l, zone);
            let touching = crate::adjacency::spatial_neighbours(&l, zone);
            for other in 0..count as u8 {
                let overlaps = other != zone && l.range(other).unwrap().overlaps(&band(&l, zone).unwrap());
                prop_assert_eq!(n.contains(other), overlaps);
                prop_assert_eq!(all.contains(other), overlaps || touching.contains(other));
            }
        }
    }
}
