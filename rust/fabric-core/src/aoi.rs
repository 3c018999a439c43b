//! Area of interest: a zone's AOI band in Hilbert space, its neighbours, and per-subscriber culling.
//!
//! * **Band.** A zone's band is its Hilbert range padded by [`AOI_CELLS`] cells on each side,
//!   clamped to `[0, 2^30)`. The cell is the zone's own prefix cell ([`crate::zones`]), so the
//!   band is never wider than `(1 + 2 AOI_CELLS)` cells, whatever the number of zones.
//! * **Neighbours.** The zones whose ranges overlap a zone's band: the only peers it exchanges
//!   entity rows with. The tick buckets every entity by the neighbour bands that contain its code.
//! * **Subscribers.** A client sees only entities within [`INTEREST_RADIUS_MICROS`] of its own
//!   entity, *including the zone's own entities* (the original sent every active slot to every
//!   subscriber every tick: 1800 rows x 100 B x 20 Hz = 3.6 MB/s per client).

use crate::coords::{Vec3, floor_micros};
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
pub fn neighbours(layout: &ZoneLayout, zone: ZoneId) -> ZoneMask {
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

/// Neighbour bands packed for the tick's bucketing loop: for each neighbour, the start and width
/// of its band. Fixed size, no allocation.
#[derive(Debug, Clone, Copy)]
pub struct BandTable {
    len: usize,
    zone: [ZoneId; 32],
    start: [u32; 32],
    width: [u32; 32],
}

impl BandTable {
    /// The bands of `zone`'s neighbours.
    pub fn for_zone(layout: &ZoneLayout, zone: ZoneId) -> Self {
        let mut t = Self {
            len: 0,
            zone: [0; 32],
            start: [0; 32],
            width: [0; 32],
        };
        for n in neighbours(layout, zone).iter() {
            let b = band(layout, n).expect("neighbour is in the layout");
            t.zone[t.len] = n;
            t.start[t.len] = b.start;
            t.width[t.len] = b.width();
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
            neighbours(&l, 8),
            ZoneMask(0b11 << 6 | 0b11 << 9),
            "zones 6,7,9,10"
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
            // Neighbours are exactly the other zones whose ranges overlap the band.
            let n = neighbours(&l, zone);
            for other in 0..count as u8 {
                let overlaps = other != zone && l.range(other).unwrap().overlaps(&band(&l, zone).unwrap());
                prop_assert_eq!(n.contains(other), overlaps);
            }
        }
    }
}
