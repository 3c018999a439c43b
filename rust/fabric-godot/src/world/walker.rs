//! [`Walker`]: `move_avatar_to` as a walk. The zone refuses a position upsert that moves the
//! avatar farther than its top speed allows since the last accepted one, so a far target is
//! reached by a walk at `walk_speed`: one position upsert per zone tick, each carrying the
//! walk's velocity (other clients see the avatar glide), the last one at rest on the target.

/// A walk of the own avatar towards a target.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Walker {
    at: Option<[f64; 3]>,
    target: Option<[f64; 3]>,
}

/// One step of a walk: where the avatar is now and its velocity (m/s; zero on arrival).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Position, metres.
    pub position: [f64; 3],
    /// Velocity, metres per second.
    pub velocity: [f64; 3],
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

    /// Advances `dt` seconds at `speed` m/s; `None` when not walking. The step that reaches
    /// the target ends the walk and has zero velocity.
    pub fn step(&mut self, dt: f64, speed: f64) -> Option<Step> {
        let target = self.target?;
        let at = self.at?;
        let d = [0, 1, 2].map(|k| target[k] - at[k]);
        let dist = d.iter().map(|c| c * c).sum::<f64>().sqrt();
        let reach = speed.max(0.0) * dt.max(0.0);
        if dist <= reach || dist < 1e-6 {
            self.at = None;
            self.target = None;
            return Some(Step {
                position: target,
                velocity: [0.0; 3],
            });
        }
        let dir = d.map(|c| c / dist);
        let position = [0, 1, 2].map(|k| at[k] + dir[k] * reach);
        self.at = Some(position);
        Some(Step {
            position,
            velocity: dir.map(|c| c * speed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_advances_at_its_speed_and_ends_at_rest_on_the_target() {
        let mut w = Walker::default();
        assert_eq!(w.step(0.05, 4.0), None, "no walk, no step");
        w.walk_to([0.0, 0.0, 0.0], [1.0, 0.0, 0.0]);
        let mut steps = Vec::new();
        while let Some(s) = w.step(0.05, 4.0) {
            steps.push(s);
        }
        // 1 m at 4 m/s in 0.05 s steps: 0.2 m each, 5 steps.
        assert_eq!(steps.len(), 5, "steps: {steps:?}");
        assert!((steps[0].position[0] - 0.2).abs() < 1e-9);
        assert!(
            (steps[0].velocity[0] - 4.0).abs() < 1e-9,
            "moving at the walk speed"
        );
        let last = steps.last().unwrap();
        assert_eq!(last.position, [1.0, 0.0, 0.0], "on the target");
        assert_eq!(last.velocity, [0.0; 3], "at rest");
        assert!(!w.walking());
    }

    #[test]
    fn a_new_target_during_a_walk_continues_from_where_the_walk_is() {
        let mut w = Walker::default();
        w.walk_to([0.0; 3], [10.0, 0.0, 0.0]);
        w.step(0.5, 2.0);
        // The received position lags; the walk goes on from its own.
        w.walk_to([0.3, 0.0, 0.0], [1.0, 1.0, 0.0]);
        let s = w.step(0.0, 2.0).unwrap();
        assert!((s.position[0] - 1.0).abs() < 1e-9, "{s:?}");
    }
}
