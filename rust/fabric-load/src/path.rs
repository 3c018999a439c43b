//! Where a simulated player walks: a loop of waypoints in the world's cube (zones are Hilbert
//! blocks in three dimensions, so a plane would leave some zones empty), walked at a steady
//! speed. Sans-IO and deterministic: the plan comes from a seed and the player's index,
//! and time comes in as an argument.
//!
//! Most players wander the whole world, so their paths cross zone borders; a share of them
//! (`crowd`) keep their waypoints within [`CROWD_RADIUS_M`] of one of [`CROWD_CENTRES`], so
//! crowds form where many avatars see each other.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Crowd centres, as fractions of the world's half-width along x, y and z.
pub const CROWD_CENTRES: [[f64; 3]; 3] = [[0.0, 0.0, 0.0], [0.5, -0.5, 0.5], [-0.5, 0.5, -0.5]];

/// How far from its centre a crowd member's waypoints lie, metres.
pub const CROWD_RADIUS_M: f64 = 2.0;

/// Waypoints of one loop.
pub const WAYPOINTS: usize = 6;

/// A walk along a closed loop of waypoints.
#[derive(Debug, Clone)]
pub struct Walk {
    waypoints: [[f64; 3]; WAYPOINTS],
    next: usize,
    at: [f64; 3],
    speed_m_s: f64,
    /// How far from the centre a waypoint may lie on each axis (the world less its margin).
    reach: f64,
}

impl Walk {
    /// The walk of player `index` in a world of half-width `half_m` metres (a margin of 1 m
    /// is kept from its faces): a crowd member when `index` falls in the first `crowd` share
    /// of every hundred players.
    pub fn plan(seed: u64, index: u32, half_m: f64, crowd: f64, speed_m_s: f64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(index) << 20) ^ 0x5eed);
        let reach = (half_m - 1.0).max(0.5);
        let in_crowd = f64::from(index % 100) < crowd * 100.0;
        let centre = CROWD_CENTRES[index as usize % CROWD_CENTRES.len()];
        let mut waypoints = [[0.0; 3]; WAYPOINTS];
        let r = CROWD_RADIUS_M.min(reach);
        for w in &mut waypoints {
            for (c, centre) in w.iter_mut().zip(centre) {
                *c = if in_crowd {
                    (centre * reach + rng.gen_range(-r..=r)).clamp(-reach, reach)
                } else {
                    rng.gen_range(-reach..=reach)
                };
            }
        }
        Self {
            at: waypoints[0],
            waypoints,
            next: 1,
            speed_m_s,
            reach,
        }
    }

    /// Where the walk is now, metres.
    pub fn position(&self) -> [f64; 3] {
        self.at
    }

    /// The velocity now, metres per second: towards the next waypoint at the walk's speed.
    pub fn velocity(&self) -> [f64; 3] {
        let to = self.waypoints[self.next];
        let d = [to[0] - self.at[0], to[1] - self.at[1], to[2] - self.at[2]];
        let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if dist < 1e-9 {
            return [0.0; 3];
        }
        d.map(|c| c / dist * self.speed_m_s)
    }

    /// Moves the walker to the first point of its loop where `inside` holds (the loop's
    /// segments sampled every 1/32 of their length), or, when the loop never passes there, to
    /// the first such point of a 1 m grid over the world; the walk goes on from there to the
    /// loop's next waypoint (a grid point: from it to the next waypoint). Returns whether a
    /// point was found. A player joined through the
    /// gateway starts (and starts again) in the gateway's zone this way.
    pub fn start_in(&mut self, inside: impl Fn([f64; 3]) -> bool) -> bool {
        if inside(self.at) {
            return true;
        }
        for k in 0..WAYPOINTS {
            let (a, b) = (self.waypoints[k], self.waypoints[(k + 1) % WAYPOINTS]);
            for s in 0..32 {
                let f = f64::from(s) / 32.0;
                let p = [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * f);
                if inside(p) {
                    self.at = p;
                    self.next = (k + 1) % WAYPOINTS;
                    return true;
                }
            }
        }
        let steps = self.reach.floor() as i32;
        for x in -steps..=steps {
            for y in -steps..=steps {
                for z in -steps..=steps {
                    let p = [x, y, z].map(f64::from);
                    if inside(p) {
                        self.at = p;
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Walks for `dt_s` seconds and returns the new position: straight towards the next
    /// waypoint, turning to the one after it on arrival, never further than `speed x dt`.
    pub fn advance(&mut self, dt_s: f64) -> [f64; 3] {
        let mut left = self.speed_m_s * dt_s.max(0.0);
        // At most one turn per waypoint of the loop per call (a long dt cannot spin forever).
        for _ in 0..WAYPOINTS {
            let to = self.waypoints[self.next];
            let d = [to[0] - self.at[0], to[1] - self.at[1], to[2] - self.at[2]];
            let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            if dist > left {
                let k = left / dist;
                for (a, d) in self.at.iter_mut().zip(d) {
                    *a += d * k;
                }
                break;
            }
            self.at = to;
            left -= dist;
            self.next = (self.next + 1) % WAYPOINTS;
        }
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
        (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn a_walk_never_steps_further_than_its_speed_allows_and_stays_in_the_world() {
        let mut w = Walk::plan(7, 3, 15.0, 0.0, 1.5);
        let mut last = w.position();
        for _ in 0..2000 {
            let p = w.advance(0.05);
            assert!(dist(p, last) <= 1.5 * 0.05 + 1e-9, "{p:?} from {last:?}");
            assert!(p.iter().all(|c| c.abs() <= 14.0), "{p:?} inside the margin");
            let v = w.velocity();
            let speed = v.iter().map(|c| c * c).sum::<f64>().sqrt();
            assert!(speed <= 1.5 + 1e-9, "speed {speed}");
            last = p;
        }
    }

    #[test]
    fn a_walk_comes_back_round_its_loop_and_the_plan_is_deterministic() {
        let a = Walk::plan(1, 9, 15.0, 0.0, 2.0);
        let b = Walk::plan(1, 9, 15.0, 0.0, 2.0);
        assert_eq!(a.waypoints, b.waypoints, "same seed and index, same plan");
        let c = Walk::plan(1, 10, 15.0, 0.0, 2.0);
        assert_ne!(a.waypoints, c.waypoints, "another player walks elsewhere");
        let mut w = a.clone();
        let mut visited = 0;
        for _ in 0..20_000 {
            let before = w.next;
            w.advance(0.05);
            if w.next != before {
                visited += 1;
            }
        }
        assert!(
            visited > WAYPOINTS,
            "the loop closes: {visited} waypoints reached"
        );
    }

    #[test]
    fn a_walk_starts_in_the_region_asked_for_and_walks_on_from_there() {
        for index in 0..40 {
            let mut w = Walk::plan(3, index, 15.0, 0.3, 1.4);
            assert!(w.start_in(|p| p[0] > 5.0 && p[1] < 0.0), "player {index}");
            let p = w.position();
            assert!(p[0] > 5.0 && p[1] < 0.0, "player {index} at {p:?}");
            let next = w.advance(0.05);
            assert!(dist(next, p) <= 1.4 * 0.05 + 1e-9, "walks on from there");
        }
        let mut w = Walk::plan(3, 1, 15.0, 0.0, 1.4);
        assert!(!w.start_in(|p| p[0] > 100.0), "outside the world: no point");
    }

    #[test]
    fn crowd_members_keep_near_their_centre() {
        let half = 15.0;
        for index in 0..60 {
            let w = Walk::plan(5, index, half, 0.3, 1.0);
            let centre = CROWD_CENTRES[index as usize % CROWD_CENTRES.len()];
            let c = centre.map(|f| f * (half - 1.0));
            let near = w
                .waypoints
                .iter()
                .all(|p| dist(*p, c) <= CROWD_RADIUS_M * 3f64.sqrt() + 1e-9);
            assert_eq!(near, index < 30, "player {index}");
        }
    }
}
