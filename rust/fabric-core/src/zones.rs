//! Zones: how N zones (1..=32) split the 30-bit Hilbert space into contiguous ranges.
//!
//! Every zone owns exactly one *prefix cell*: the set of codes that share a prefix of the code,
//! so "which zone owns code h" is a shift and a compare. With `d = ceil(log2 N)`:
//!
//! * the first `s = 2N - 2^d` zones own a depth-`d` cell each (`2^(30-d)` codes),
//! * the remaining `N - s` zones own a depth-`(d-1)` cell each (twice as wide).
//!
//! For a power of two this is exactly the original rule `zone = h >> (30 - bitlen(N-1))`.
//! For other counts the original rule `min(N-1, h >> (30 - bitlen(N-1)))` handed the whole tail
//! of the space to the last zone (for N = 5 the last zone owned half the world), which broke the
//! AOI band width bound ([`crate::aoi`]); here no zone is more than twice as wide as another.

use crate::hilbert::{CODE_BITS, CODE_SPACE, HilbertCode};
use thiserror::Error;

/// Most zones a layout may have.
pub const MAX_ZONES: usize = 32;

/// A zone's index, `0..count`.
pub type ZoneId = u8;

/// Why a zone count is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ZoneCountError {
    /// The count is 0 or above [`MAX_ZONES`].
    #[error("zone count {0} is outside 1..={MAX_ZONES}")]
    OutOfRange(usize),
}

/// A half-open range of Hilbert codes `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HilbertRange {
    /// First code in the range.
    pub start: u32,
    /// One past the last code (at most [`CODE_SPACE`]).
    pub end: u32,
}

impl HilbertRange {
    /// Number of codes in the range.
    #[inline]
    pub fn width(&self) -> u32 {
        self.end - self.start
    }

    /// Whether `code` lies in the range.
    #[inline]
    pub fn contains(&self, code: HilbertCode) -> bool {
        code.wrapping_sub(self.start) < self.width()
    }

    /// Whether the two ranges share at least one code.
    #[inline]
    pub fn overlaps(&self, other: &HilbertRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A set of zones as a bit mask (bit `z` set = zone `z` is in the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ZoneMask(pub u32);

impl ZoneMask {
    /// Whether `zone` is in the set.
    pub fn contains(self, zone: ZoneId) -> bool {
        (zone as usize) < MAX_ZONES && self.0 & (1 << zone) != 0
    }

    /// Number of zones in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The zones in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = ZoneId> {
        (0..MAX_ZONES as u8).filter(move |&z| self.0 & (1 << z) != 0)
    }
}

/// How the Hilbert space is split between `count` zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLayout {
    count: u32,
    /// `d = ceil(log2 count)`: depth of the finest prefix cells.
    depth: u32,
    /// `s = 2 count - 2^d`: zones owning a depth-`d` cell.
    split: u32,
}

impl ZoneLayout {
    /// A layout for `count` zones.
    pub fn new(count: usize) -> Result<Self, ZoneCountError> {
        if count == 0 || count > MAX_ZONES {
            return Err(ZoneCountError::OutOfRange(count));
        }
        let count = count as u32;
        let depth = u32::BITS - (count - 1).leading_zeros();
        let split = 2 * count - (1 << depth);
        Ok(Self {
            count,
            depth,
            split,
        })
    }

    /// Number of zones.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Depth of the finest prefix cells (`ceil(log2 count)`).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The zone that owns `code` (codes at or above [`CODE_SPACE`] are treated as the last code).
    #[inline]
    pub fn zone_of(&self, code: HilbertCode) -> ZoneId {
        let code = code.min(CODE_SPACE - 1);
        // Shift in u64 so depth 0 (a single zone) shifts by 30 without special cases.
        let cell = ((code as u64) >> (CODE_BITS - self.depth)) as u32;
        let zone = if cell < self.split {
            cell
        } else {
            (cell >> 1) + self.split / 2
        };
        zone as ZoneId
    }

    /// Prefix depth of `zone`'s cell (`depth` or `depth - 1`).
    pub fn zone_depth(&self, zone: ZoneId) -> u32 {
        if (zone as u32) < self.split {
            self.depth
        } else {
            self.depth - 1
        }
    }

    /// The codes `zone` owns, or `None` if `zone >= count`.
    pub fn range(&self, zone: ZoneId) -> Option<HilbertRange> {
        let z = zone as u32;
        if z >= self.count {
            return None;
        }
        let (start, width) = if z < self.split {
            let w = 1u64 << (CODE_BITS - self.depth);
            (z as u64 * w, w)
        } else {
            let w = 1u64 << (CODE_BITS + 1 - self.depth);
            ((z - self.split / 2) as u64 * w, w)
        };
        Some(HilbertRange {
            start: start as u32,
            end: (start + width) as u32,
        })
    }

    /// All zones, as a mask.
    pub fn all(&self) -> ZoneMask {
        ZoneMask(((1u64 << self.count) - 1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_outside_one_to_32_are_refused() {
        assert_eq!(ZoneLayout::new(0), Err(ZoneCountError::OutOfRange(0)));
        assert_eq!(ZoneLayout::new(33), Err(ZoneCountError::OutOfRange(33)));
        assert!(ZoneLayout::new(32).is_ok(), "32 zones is allowed");
    }

    #[test]
    fn powers_of_two_follow_the_original_prefix_rule() {
        for count in [1usize, 2, 4, 8, 16, 32] {
            let l = ZoneLayout::new(count).unwrap();
            let bitlen = u32::BITS - (count as u32 - 1).leading_zeros();
            for h in [0u32, 1, 12345, 1 << 27, (1 << 29) + 7, CODE_SPACE - 1] {
                let original = ((count as u64 - 1).min((h as u64) >> (30 - bitlen))) as u8;
                assert_eq!(l.zone_of(h), original, "count {count} code {h}");
            }
        }
    }

    #[test]
    fn five_zones_are_balanced() {
        let l = ZoneLayout::new(5).unwrap();
        let widths: Vec<u32> = (0..5).map(|z| l.range(z).unwrap().width()).collect();
        let eighth = 1u32 << 27;
        assert_eq!(
            widths,
            vec![eighth, eighth, 2 * eighth, 2 * eighth, 2 * eighth],
            "N=5: two 1/8 zones and three 1/4 zones"
        );
        assert_eq!(
            l.zone_of(CODE_SPACE - 1),
            4,
            "last code belongs to the last zone"
        );
        assert_eq!(l.zone_of(2 * eighth), 2, "zone 2 starts at 2/8");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn ranges_tile_the_space_and_agree_with_zone_of(count in 1usize..=32, h in 0u32..CODE_SPACE) {
            let l = ZoneLayout::new(count).unwrap();
            let mut next = 0u32;
            for z in 0..count as u8 {
                let r = l.range(z).unwrap();
                prop_assert_eq!(r.start, next, "zone {} starts where {} ended", z, z as i32 - 1);
                prop_assert!(r.width() > 0);
                prop_assert_eq!(r.width(), 1u32 << (30 - l.zone_depth(z)));
                next = r.end;
            }
            prop_assert_eq!(next, CODE_SPACE, "ranges cover the space");
            let z = l.zone_of(h);
            prop_assert!((z as usize) < count);
            prop_assert!(l.range(z).unwrap().contains(h), "zone_of({}) = {} contains it", h, z);
            prop_assert_eq!(l.range(count as u8), None);
        }

        #[test]
        fn no_zone_is_more_than_twice_another(count in 1usize..=32) {
            let l = ZoneLayout::new(count).unwrap();
            let w: Vec<u32> = (0..count as u8).map(|z| l.range(z).unwrap().width()).collect();
            let max = *w.iter().max().unwrap();
            let min = *w.iter().min().unwrap();
            prop_assert!(max <= 2 * min, "widths {:?}", w);
        }
    }
}
