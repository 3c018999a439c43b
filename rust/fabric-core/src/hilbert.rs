//! The 3D Hilbert curve over the 1024^3 cell grid: 10 bits per axis, a 30-bit code.
//!
//! This is J. Skilling's transform ("Programming the Hilbert curve", AIP Conf. Proc. 707, 2004),
//! the curve the original fabric specified, written here for exactly three axes and ten bits
//! with no branches in the loops, so the tick can encode every slot at a constant cost.
//!
//! Code layout: bit `3*j + 2` of the code is bit `j` of the first transposed axis, `3*j + 1` of
//! the second and `3*j` of the third (the "transpose" of Skilling's paper, most significant level
//! first). Consecutive codes are face-adjacent cells; code 0 is cell (0, 0, 0).
//!
//! The test module holds a second, independently structured reference (generic dimension and
//! order, loops and branches exactly as in the paper, bit-by-bit interleave) and compares both.

use crate::coords::{AXIS_BITS, Vec3, WorldBounds};

/// A 30-bit Hilbert code.
pub type HilbertCode = u32;
/// Bits in a code.
pub const CODE_BITS: u32 = 3 * AXIS_BITS;
/// Number of codes, `2^30`; every code is below it.
pub const CODE_SPACE: u32 = 1 << CODE_BITS;

const AXIS_MASK: u32 = (1 << AXIS_BITS) - 1;

/// Spreads the low 10 bits of `x` so bit `j` lands on bit `3*j`.
#[inline(always)]
fn spread3(x: u32) -> u32 {
    let mut x = x & AXIS_MASK;
    x = (x | (x << 16)) & 0x0300_00ff;
    x = (x | (x << 8)) & 0x0300_f00f;
    x = (x | (x << 4)) & 0x030c_30c3;
    x = (x | (x << 2)) & 0x0924_9249;
    x
}

/// Inverse of [`spread3`]: gathers bits `3*j` into bit `j`.
#[inline(always)]
fn compact3(x: u32) -> u32 {
    let mut x = x & 0x0924_9249;
    x = (x ^ (x >> 2)) & 0x030c_30c3;
    x = (x ^ (x >> 4)) & 0x0300_f00f;
    x = (x ^ (x >> 8)) & 0x0300_00ff;
    x = (x ^ (x >> 16)) & 0x0000_03ff;
    x
}

/// All ones when bit `q` of `v` is set, zero otherwise.
#[inline(always)]
fn bit_mask(v: u32, q: u32) -> u32 {
    (((v & q) != 0) as u32).wrapping_neg()
}

/// Encodes a cell (each axis `0..1024`; higher bits are ignored) to its Hilbert code.
#[inline]
pub fn encode(cell: [u32; 3]) -> HilbertCode {
    let mut x0 = cell[0] & AXIS_MASK;
    let mut x1 = cell[1] & AXIS_MASK;
    let mut x2 = cell[2] & AXIS_MASK;
    // Inverse undo of the excess work, from the top level down (Skilling, AxestoTranspose).
    let mut q = 1u32 << (AXIS_BITS - 1);
    while q > 1 {
        let p = q - 1;
        // axis 0: invert the low bits of x0 when its bit q is set.
        x0 ^= p & bit_mask(x0, q);
        // axes 1 and 2: invert x0's low bits if set, else exchange the low bits of x0 and xi.
        let m1 = bit_mask(x1, q);
        let t1 = (x0 ^ x1) & p & !m1;
        x0 ^= (p & m1) | t1;
        x1 ^= t1;
        let m2 = bit_mask(x2, q);
        let t2 = (x0 ^ x2) & p & !m2;
        x0 ^= (p & m2) | t2;
        x2 ^= t2;
        q >>= 1;
    }
    // Gray encode.
    x1 ^= x0;
    x2 ^= x1;
    // t = xor of (q - 1) for every set bit q > 1 of x2: bit j of t is the parity of x2's bits above j.
    let mut t = x2 >> 1;
    t ^= t >> 1;
    t ^= t >> 2;
    t ^= t >> 4;
    t ^= t >> 8;
    x0 ^= t;
    x1 ^= t;
    x2 ^= t;
    (spread3(x0) << 2) | (spread3(x1) << 1) | spread3(x2)
}

/// Decodes a Hilbert code (only its low 30 bits are used) back to its cell.
#[inline]
pub fn decode(code: HilbertCode) -> [u32; 3] {
    let mut x0 = compact3(code >> 2);
    let mut x1 = compact3(code >> 1);
    let mut x2 = compact3(code);
    // Gray decode.
    let t = x2 >> 1;
    x2 ^= x1;
    x1 ^= x0;
    x0 ^= t;
    // Undo the excess work, from the bottom level up (Skilling, TransposetoAxes).
    let mut q = 2u32;
    while q != (1 << AXIS_BITS) {
        let p = q - 1;
        let m2 = bit_mask(x2, q);
        let t2 = (x0 ^ x2) & p & !m2;
        x0 ^= (p & m2) | t2;
        x2 ^= t2;
        let m1 = bit_mask(x1, q);
        let t1 = (x0 ^ x1) & p & !m1;
        x0 ^= (p & m1) | t1;
        x1 ^= t1;
        x0 ^= p & bit_mask(x0, q);
        q <<= 1;
    }
    [x0, x1, x2]
}

/// The Hilbert code of a world position (positions outside `bounds` use the nearest edge cell).
#[inline]
pub fn encode_position(bounds: &WorldBounds, p: &Vec3) -> HilbertCode {
    encode(bounds.cell_of(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: Skilling's two routines for any dimension `n` and order `b`, written with the
    /// paper's loops and branches on a `Vec`, and a bit-by-bit interleave. Shares no code with
    /// the production version above.
    mod reference {
        pub fn axes_to_index(axes: &[u32], b: u32) -> u64 {
            let n = axes.len();
            let mut x: Vec<u32> = axes.to_vec();
            let m: u32 = 1 << (b - 1);
            let mut q = m;
            while q > 1 {
                let p = q - 1;
                for i in 0..n {
                    if x[i] & q != 0 {
                        x[0] ^= p;
                    } else {
                        let t = (x[0] ^ x[i]) & p;
                        x[0] ^= t;
                        x[i] ^= t;
                    }
                }
                q >>= 1;
            }
            for i in 1..n {
                x[i] ^= x[i - 1];
            }
            let mut t = 0;
            let mut q = m;
            while q > 1 {
                if x[n - 1] & q != 0 {
                    t ^= q - 1;
                }
                q >>= 1;
            }
            for xi in x.iter_mut() {
                *xi ^= t;
            }
            // Interleave, most significant level first, axis 0 first within a level.
            let mut index = 0u64;
            for level in (0..b).rev() {
                for xi in &x {
                    index = (index << 1) | ((xi >> level) & 1) as u64;
                }
            }
            index
        }

        pub fn index_to_axes(index: u64, n: usize, b: u32) -> Vec<u32> {
            let mut x = vec![0u32; n];
            let mut bit = (n as u32 * b) as i64 - 1;
            for level in (0..b).rev() {
                for xi in x.iter_mut() {
                    *xi |= (((index >> bit) & 1) as u32) << level;
                    bit -= 1;
                }
            }
            let big_n: u32 = 2 << (b - 1);
            let t = x[n - 1] >> 1;
            for i in (1..n).rev() {
                x[i] ^= x[i - 1];
            }
            x[0] ^= t;
            let mut q = 2;
            while q != big_n {
                let p = q - 1;
                for i in (0..n).rev() {
                    if x[i] & q != 0 {
                        x[0] ^= p;
                    } else {
                        let t = (x[0] ^ x[i]) & p;
                        x[0] ^= t;
                        x[i] ^= t;
                    }
                }
                q <<= 1;
            }
            x
        }
    }

    fn manhattan(a: [u32; 3], b: [u32; 3]) -> u32 {
        (0..3).map(|i| a[i].abs_diff(b[i])).sum()
    }

    #[test]
    fn spread_and_compact_are_inverse() {
        for v in 0..1024u32 {
            assert_eq!(compact3(spread3(v)), v, "compact(spread({v}))");
        }
        assert_eq!(
            spread3(0x3ff),
            0x0924_9249,
            "all ten bits spread to every third bit"
        );
    }

    #[test]
    fn corners_and_ends() {
        assert_eq!(encode([0, 0, 0]), 0, "the curve starts at the origin cell");
        let last = decode(CODE_SPACE - 1);
        assert_eq!(
            manhattan(last, [0, 0, 0]) % 1023,
            0,
            "the curve ends on a corner, got {last:?}"
        );
        assert_eq!(
            last.iter().filter(|&&c| c == 1023).count(),
            1,
            "the end corner differs from the start on one axis only: {last:?}"
        );
        for corner in 0..8u32 {
            let c = [
                (corner & 1) * 1023,
                ((corner >> 1) & 1) * 1023,
                ((corner >> 2) & 1) * 1023,
            ];
            let code = encode(c);
            assert!(code < CODE_SPACE, "corner code fits 30 bits");
            assert_eq!(decode(code), c, "corner {c:?} round trips");
            assert_eq!(
                code as u64,
                reference::axes_to_index(&c, 10),
                "corner {c:?} matches the reference"
            );
        }
    }

    #[test]
    fn every_edge_cell_round_trips_and_matches_the_reference() {
        // The 12 edges of the cube, 1024 cells each.
        for fixed_axes in [(0usize, 1usize, 2usize), (1, 2, 0), (2, 0, 1)] {
            let (free, a, b) = fixed_axes;
            for va in [0u32, 1023] {
                for vb in [0u32, 1023] {
                    for v in 0..1024 {
                        let mut c = [0u32; 3];
                        c[free] = v;
                        c[a] = va;
                        c[b] = vb;
                        let code = encode(c);
                        assert_eq!(decode(code), c, "edge cell {c:?}");
                        assert_eq!(
                            code as u64,
                            reference::axes_to_index(&c, 10),
                            "edge cell {c:?} vs reference"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_first_4096_codes_walk_adjacent_cells() {
        let mut prev = decode(0);
        for code in 1..4096 {
            let c = decode(code);
            assert_eq!(
                manhattan(prev, c),
                1,
                "codes {} and {code} are neighbours",
                code - 1
            );
            prev = c;
        }
    }

    #[test]
    fn reference_is_a_hilbert_curve_at_small_orders() {
        // Exhaustive at order 3 (512 cells): a bijection along which steps are unit steps.
        let mut seen = vec![false; 512];
        let mut prev: Option<Vec<u32>> = None;
        for i in 0..512u64 {
            let c = reference::index_to_axes(i, 3, 3);
            assert_eq!(reference::axes_to_index(&c, 3), i, "reference round trip");
            let flat = (c[0] * 64 + c[1] * 8 + c[2]) as usize;
            assert!(!seen[flat], "cell {c:?} visited twice");
            seen[flat] = true;
            if let Some(p) = prev {
                let d: u32 = (0..3).map(|k| p[k].abs_diff(c[k])).sum();
                assert_eq!(d, 1, "reference step {i} is a unit step");
            }
            prev = Some(c);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decode_encode_round_trip(x in 0u32..1024, y in 0u32..1024, z in 0u32..1024) {
            let code = encode([x, y, z]);
            prop_assert!(code < CODE_SPACE);
            prop_assert_eq!(decode(code), [x, y, z]);
        }

        #[test]
        fn encode_matches_reference(x in 0u32..1024, y in 0u32..1024, z in 0u32..1024) {
            prop_assert_eq!(encode([x, y, z]) as u64, reference::axes_to_index(&[x, y, z], 10));
        }

        #[test]
        fn decode_matches_reference(code in 0u32..CODE_SPACE) {
            prop_assert_eq!(decode(code).to_vec(), reference::index_to_axes(code as u64, 3, 10));
        }

        #[test]
        fn neighbouring_codes_are_adjacent_cells(code in 0u32..CODE_SPACE - 1) {
            let a = decode(code);
            let b = decode(code + 1);
            prop_assert_eq!(manhattan(a, b), 1, "codes {} and {} -> {:?} {:?}", code, code + 1, a, b);
        }
    }
}
