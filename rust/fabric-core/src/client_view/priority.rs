//! The priority accumulator: how often each visible entity is updated.
//!
//! Every tick each visible entity's priority grows by a weight in `(0, 1]`: 1 for a moving entity
//! within the full-rate radius, falling as `(full_rate_radius / distance)^2` beyond it, times
//! `idle_factor` for an entity at rest, never below `min_weight`. An entity is a candidate for
//! the packet once its priority reaches 1; candidates go in highest priority first until the
//! packet or the byte budget is full, and a sent entity's priority resets to 0. With the
//! defaults (full rate within half the radius) a moving entity near the viewer is sent every
//! tick (20 Hz), one at the edge of the radius every fourth tick (5 Hz); an idle one (at rest)
//! every fourth tick near the viewer (5 Hz) and every tenth at the edge (2 Hz): idle and far
//! entities downshift to 2-5 Hz (`tests/idle_downshift.rs` measures it). When the budget is
//! short, far and idle entities wait longer while near ones keep their rate.

/// Weights of the accumulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorityConfig {
    /// Within this distance (millimetres) a moving entity has weight 1.
    pub full_rate_radius_mm: i64,
    /// Factor for an entity whose velocity is zero.
    pub idle_factor: f32,
    /// Smallest weight (`0.1`: at least two updates a second at 20 Hz).
    pub min_weight: f32,
}

impl PriorityConfig {
    /// Defaults for an interest radius: full rate within half of it, idle factor 1/4, floor 1/10.
    pub fn for_radius(radius_mm: i64) -> Self {
        Self {
            full_rate_radius_mm: radius_mm / 2,
            idle_factor: 0.25,
            min_weight: 0.1,
        }
    }

    /// The per-tick weight of an entity at `distance_mm` from the viewer.
    #[inline]
    pub fn weight(&self, distance_mm: f64, moving: bool) -> f32 {
        let full = self.full_rate_radius_mm as f64;
        let by_distance = if distance_mm <= full {
            1.0
        } else {
            ((full / distance_mm) * (full / distance_mm)) as f32
        };
        let by_motion = if moving { 1.0 } else { self.idle_factor };
        (by_distance * by_motion).clamp(self.min_weight, 1.0)
    }
}

/// Priority at which an entity becomes a candidate for the next packet.
pub const SEND_THRESHOLD: f32 = 1.0;

/// Orders `(priority, handle)` pairs highest priority first, lower handle first among equals
/// (a total order, so the choice is deterministic).
#[inline]
pub fn by_priority(a: &(f32, u16), b: &(f32, u16)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_moving_is_full_rate_far_and_idle_downshift() {
        let p = PriorityConfig::for_radius(50_000);
        assert_eq!(p.weight(1_000.0, true), 1.0, "near and moving: every tick");
        assert_eq!(p.weight(25_000.0, true), 1.0, "inside half the radius");
        let edge = p.weight(50_000.0, true);
        assert!(
            (edge - 0.25).abs() < 1e-6,
            "edge of the radius: 5 Hz, got {edge}"
        );
        assert_eq!(
            p.weight(50_000.0, false),
            0.1,
            "idle at the edge (1/16): the floor, 2 Hz"
        );
        assert_eq!(p.weight(1_000.0, false), 0.25, "idle and near: 5 Hz");
        assert_eq!(p.weight(1e12, false), 0.1, "floor: 2 Hz");
    }

    #[test]
    fn order_is_total_and_deterministic() {
        let mut v = vec![(0.5, 3), (2.0, 7), (2.0, 1), (1.0, 0)];
        v.sort_unstable_by(by_priority);
        assert_eq!(v, vec![(2.0, 1), (2.0, 7), (1.0, 0), (0.5, 3)]);
    }
}
