//! [`Walker`]: `move_avatar_to` as a walk. The zone refuses a position upsert that moves the
//! avatar farther than its top speed allows since the last accepted one, so a far target is
//! reached by a walk at `walk_speed`: one position upsert per zone tick, each `speed / tick_hz`
//! further on, the last one on the target.
//!
//! The upserts carry zero velocity: the zone integrates an entity's velocity every tick, so an
//! avatar sent with its walking velocity would move on by itself between upserts, and an
//! upsert arriving a tick late would pull it back. At rest between upserts it only ever moves
//! forwards; clients draw it smoothly by interpolating between ticks.

/// A walk of the own avatar towards a target.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Walker {
    at: Option<[f64; 3]>,
    target: Option<[f64; 3]>,
}

impl Walker {
    /// Walk to `target`, starting from `from` unless a walk is already under way (the avatar's
    /// position as last received; the walk's own position is newer than that).
    pub fn walk_to(&mut self, from: [f64; 3], target: [f64; 3]) {
        if self.target.is_none() || self.at.is_none() {
            self.at = Some(from);
        }
        self.target = Some(target);
    }

    /// Whether a walk is under way.
    pub fn walking(&self) -> bool {
        self.target.is_some()
    }

    /// Stops (the next walk starts from the position it is given).
    pub fn stop(&mut self) {
        self.target = None;
        self.at = None;
    }

    /// Moves `reach` metres on towards the target and returns where the avatar is then;
    /// `None` when not walking. The step that reaches the target ends the walk.
    pub fn step(&mut self, reach: f64) -> Option<[f64; 3]> {
        let target = self.target?;
        let at = self.at?;
        let d = [0, 1, 2].map(|k| target[k] - at[k]);
        let dist = d.iter().map(|c| c * c).sum::<f64>().sqrt();
        let reach = reach.max(0.0);
        if dist <= reach || dist < 1e-6 {
            self.stop();
            return Some(target);
        }
        let position = [0, 1, 2].map(|k| at[k] + d[k] / dist * reach);
        self.at = Some(position);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_advances_by_its_reach_and_ends_on_the_target() {
        let mut w = Walker::default();
        assert_eq!(w.step(0.2), None, "no walk, no step");
        w.walk_to([0.0, 0.0, 0.0], [1.0, 0.0, 0.0]);
        let steps: Vec<[f64; 3]> = std::iter::from_fn(|| w.step(0.2)).collect();
        // 1 m at 4 m/s and 20 Hz: 0.2 m a tick, 5 steps.
        assert_eq!(steps.len(), 5, "steps: {steps:?}");
        assert!((steps[0][0] - 0.2).abs() < 1e-9);
        assert!(
            steps.windows(2).all(|p| p[1][0] > p[0][0]),
            "always onwards"
        );
        assert_eq!(*steps.last().unwrap(), [1.0, 0.0, 0.0], "on the target");
        assert!(!w.walking());
    }

    #[test]
    fn a_new_target_during_a_walk_continues_from_where_the_walk_is() {
        let mut w = Walker::default();
        w.walk_to([0.0; 3], [10.0, 0.0, 0.0]);
        w.step(1.0);
        // The received position lags; the walk goes on from its own.
        w.walk_to([0.3, 0.0, 0.0], [1.0, 1.0, 0.0]);
        let p = w.step(0.0).unwrap();
        assert!((p[0] - 1.0).abs() < 1e-9, "{p:?}");
    }
}
