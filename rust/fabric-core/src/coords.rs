//! World coordinates: 64.64 fixed-point micrometres, the world bounds and the 1024^3 cell grid.
//!
//! Every position, velocity and acceleration inside the zone core is a [`Micros`]
//! (`fixed::types::I64F64`): the integer part counts micrometres, the 64 fractional bits keep
//! integration exact and deterministic on every platform (no floating point in the simulation).
//! Velocities are micrometres per tick and accelerations micrometres per tick squared, so one
//! integration step is two additions and never a multiplication.
//!
//! [`WorldBounds`] maps a position to a cell of the `2^10 x 2^10 x 2^10` grid the Hilbert curve
//! ([`crate::hilbert`]) runs over. Positions outside the bounds map to the nearest edge cell.

use fixed::types::I64F64;
use thiserror::Error;

/// A length in micrometres, 64.64 fixed point.
pub type Micros = I64F64;

/// A 3-vector of [`Micros`] (x, y, z).
pub type Vec3 = [Micros; 3];

/// Bits per axis of the cell grid.
pub const AXIS_BITS: u32 = 10;
/// Cells per axis (`2^AXIS_BITS`).
pub const CELLS_PER_AXIS: u32 = 1 << AXIS_BITS;
/// Micrometres in a metre.
pub const MICROS_PER_METRE: i64 = 1_000_000;
/// Largest world extent per axis, in micrometres (`2^52`, about 4,500 km): positions inside it
/// survive a round trip through the `f64` fields of the entity row exactly.
pub const MAX_EXTENT_MICROS: i64 = 1 << 52;
/// Largest magnitude of any coordinate accepted from the wire, in micrometres (`2^53`).
pub const MAX_ABS_COORD_MICROS: i64 = 1 << 53;

/// The zero vector.
pub const ZERO3: Vec3 = [Micros::ZERO; 3];

/// Builds a [`Micros`] from whole micrometres.
#[inline]
pub fn micros(um: i64) -> Micros {
    Micros::from_bits((um as i128) << 64)
}

/// Builds a [`Micros`] from whole metres.
#[inline]
pub fn metres(m: i64) -> Micros {
    micros(m * MICROS_PER_METRE)
}

/// Builds a [`Vec3`] from whole micrometres.
pub fn vec3_micros(v: [i64; 3]) -> Vec3 {
    [micros(v[0]), micros(v[1]), micros(v[2])]
}

/// The whole micrometres of `p`, rounded towards negative infinity.
#[inline]
pub fn floor_micros(p: Micros) -> i64 {
    // An I64F64 holds at most 2^63 micrometres, so the integer part always fits an i64.
    (p.to_bits() >> 64) as i64
}

/// Why world bounds are not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BoundsError {
    /// `max <= min` on an axis.
    #[error("world bounds are empty on axis {axis}: min {min} >= max {max}")]
    Empty {
        /// 0 = x, 1 = y, 2 = z.
        axis: usize,
        /// Lower bound in micrometres.
        min: i64,
        /// Upper bound in micrometres.
        max: i64,
    },
    /// The extent or a bound is larger than [`MAX_EXTENT_MICROS`] / [`MAX_ABS_COORD_MICROS`].
    #[error(
        "world bounds on axis {axis} exceed the supported range ({MAX_EXTENT_MICROS} um extent)"
    )]
    TooLarge {
        /// 0 = x, 1 = y, 2 = z.
        axis: usize,
    },
}

/// The axis-aligned box the Hilbert curve covers, with its cell size per axis.
///
/// The box is `[min, max]` per axis (both inclusive, in micrometres). Cells are
/// `ceil((max - min) / 1024)` micrometres wide, so the grid covers the whole box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldBounds {
    min: [i64; 3],
    max: [i64; 3],
    cell: [u64; 3],
}

impl WorldBounds {
    /// Bounds from per-axis minimum and maximum, in micrometres.
    pub fn new(min: [i64; 3], max: [i64; 3]) -> Result<Self, BoundsError> {
        let mut cell = [0u64; 3];
        for axis in 0..3 {
            if max[axis] <= min[axis] {
                return Err(BoundsError::Empty {
                    axis,
                    min: min[axis],
                    max: max[axis],
                });
            }
            if min[axis].unsigned_abs() > MAX_ABS_COORD_MICROS as u64
                || max[axis].unsigned_abs() > MAX_ABS_COORD_MICROS as u64
            {
                return Err(BoundsError::TooLarge { axis });
            }
            let extent = (max[axis] - min[axis]) as u64;
            if extent > MAX_EXTENT_MICROS as u64 {
                return Err(BoundsError::TooLarge { axis });
            }
            cell[axis] = extent.div_ceil(CELLS_PER_AXIS as u64);
        }
        Ok(Self { min, max, cell })
    }

    /// A cube of `+-half_metres` on every axis around the origin.
    pub fn cube_metres(half_metres: i64) -> Result<Self, BoundsError> {
        let h = half_metres.saturating_mul(MICROS_PER_METRE);
        Self::new([-h; 3], [h; 3])
    }

    /// The demo world of the original fabric: +-15 m on every axis.
    pub fn demo() -> Self {
        Self::cube_metres(15).expect("+-15 m is a valid world")
    }

    /// Lower corner, micrometres.
    pub fn min(&self) -> [i64; 3] {
        self.min
    }

    /// Upper corner, micrometres (inclusive).
    pub fn max(&self) -> [i64; 3] {
        self.max
    }

    /// Width of one cell on `axis`, micrometres.
    pub fn cell_size(&self, axis: usize) -> u64 {
        self.cell[axis]
    }

    /// Lower bound of `axis` as a [`Micros`].
    #[inline]
    pub fn min_micros(&self, axis: usize) -> Micros {
        micros(self.min[axis])
    }

    /// Upper bound of `axis` as a [`Micros`].
    #[inline]
    pub fn max_micros(&self, axis: usize) -> Micros {
        micros(self.max[axis])
    }

    /// The cell index (0..1024) of coordinate `p` on `axis`; outside positions clamp to the edge.
    #[inline]
    pub fn cell_of_axis(&self, axis: usize, p: Micros) -> u32 {
        self.cell_of_axis_bits(axis, p.to_bits())
    }

    /// [`Self::cell_of_axis`] on the raw 64.64 bits of a coordinate.
    #[inline]
    pub fn cell_of_axis_bits(&self, axis: usize, bits: i128) -> u32 {
        let um = (bits >> 64) as i64;
        let d = um.saturating_sub(self.min[axis]).max(0) as u64;
        let c = d / self.cell[axis];
        c.min(CELLS_PER_AXIS as u64 - 1) as u32
    }

    /// The cell of a position.
    #[inline]
    pub fn cell_of(&self, p: &Vec3) -> [u32; 3] {
        [
            self.cell_of_axis(0, p[0]),
            self.cell_of_axis(1, p[1]),
            self.cell_of_axis(2, p[2]),
        ]
    }

    /// The lower corner of a cell, in micrometres (the inverse of [`Self::cell_of`] up to the cell size).
    pub fn cell_origin(&self, cell: [u32; 3]) -> [i64; 3] {
        let mut o = [0i64; 3];
        for axis in 0..3 {
            let c = cell[axis].min(CELLS_PER_AXIS - 1) as i64;
            o[axis] = self.min[axis] + c * self.cell[axis] as i64;
        }
        o
    }

    /// Whether `p` lies inside the bounds (inclusive).
    pub fn contains(&self, p: &Vec3) -> bool {
        (0..3).all(|a| p[a] >= self.min_micros(a) && p[a] <= self.max_micros(a))
    }

    /// `p` clamped into the bounds.
    pub fn clamp(&self, p: &Vec3) -> Vec3 {
        let mut q = *p;
        for (a, c) in q.iter_mut().enumerate() {
            *c = (*c).clamp(self.min_micros(a), self.max_micros(a));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_cells_are_about_three_centimetres() {
        let b = WorldBounds::demo();
        assert_eq!(b.cell_size(0), 29_297, "30 m / 1024 rounded up, in um");
        assert_eq!(b.cell_of(&[metres(-15); 3]), [0; 3], "min corner is cell 0");
        assert_eq!(
            b.cell_of(&[metres(15); 3]),
            [1023; 3],
            "max corner is the last cell"
        );
        assert_eq!(
            b.cell_of(&[metres(0); 3]),
            [511; 3],
            "origin: 15e6 / 29297 = 511.99, cells round up so the middle falls in 511"
        );
        assert_eq!(b.cell_of(&[metres(-100); 3]), [0; 3], "outside clamps low");
        assert_eq!(
            b.cell_of(&[metres(100); 3]),
            [1023; 3],
            "outside clamps high"
        );
    }

    #[test]
    fn cell_origin_maps_back_into_its_cell() {
        let b = WorldBounds::new([-7, 0, 100], [1_000_003, 5_000, 2_000_000]).unwrap();
        for c in [0u32, 1, 511, 1022, 1023] {
            let o = b.cell_origin([c; 3]);
            assert_eq!(
                b.cell_of(&vec3_micros(o)),
                [c; 3],
                "origin of cell {c} lies in cell {c}"
            );
        }
    }

    #[test]
    fn bad_bounds_are_refused() {
        assert_eq!(
            WorldBounds::new([0; 3], [0, 1, 1]),
            Err(BoundsError::Empty {
                axis: 0,
                min: 0,
                max: 0
            })
        );
        assert_eq!(
            WorldBounds::new([0; 3], [1, 1, MAX_EXTENT_MICROS + 1]),
            Err(BoundsError::TooLarge { axis: 2 })
        );
    }

    #[test]
    fn floor_rounds_down_for_negative_fractions() {
        let p = micros(-3) + Micros::from_bits(1); // -2.999.. um
        assert_eq!(floor_micros(p), -3, "floor of -2.99 is -3");
        assert_eq!(floor_micros(micros(42)), 42, "integers are exact");
    }
}
