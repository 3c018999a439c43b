//! Smooth motion between ticks. The zone sends states at its ticks (20 Hz, fewer for far or
//! idle entities); frames come at any rate. [`TickClock`] estimates the zone's tick now from
//! when packets arrive, and each entity's [`Track`] keeps its last [`TRACK_LEN`] received
//! states, so an entity is drawn at `now - interpolation_delay` ticks: between the two states
//! around that tick it is interpolated linearly; past the newest one it moves on with the
//! newest velocity for at most [`MAX_EXTRAPOLATION_TICKS`], then holds still until the next
//! state.

/// Most ticks an entity is moved past its newest state (a late or lost packet).
pub const MAX_EXTRAPOLATION_TICKS: f64 = 2.0;

/// Ticks of disagreement between the clock and an arriving packet after which the clock
/// jumps to the packet instead of drifting towards it (a stall, a new zone).
const RESYNC_TICKS: f64 = 4.0;

/// Share of the disagreement corrected at each packet.
const DRIFT: f64 = 0.1;

/// Continuous tick numbers from the wire's 32-bit ticks (which wrap after 6.8 years at 20 Hz,
/// but a session may start at any tick).
#[derive(Debug, Clone, Copy, Default)]
pub struct TickUnwrap {
    last: Option<(u32, i64)>,
}

impl TickUnwrap {
    /// The continuous tick of wire tick `tick` (near the previous one).
    pub fn unwrap(&mut self, tick: u32) -> i64 {
        let t = match self.last {
            None => i64::from(tick),
            Some((w, t)) => t + i64::from(tick.wrapping_sub(w) as i32),
        };
        self.last = Some((tick, t));
        t
    }

    /// The continuous tick of `tick` without moving the reference.
    pub fn peek(&self, tick: u32) -> i64 {
        match self.last {
            None => i64::from(tick),
            Some((w, t)) => t + i64::from(tick.wrapping_sub(w) as i32),
        }
    }
}

/// The zone's tick as the client estimates it (fractional), from packet arrivals.
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    tick_hz: f64,
    anchor: Option<(f64, u64)>,
    shown: f64,
}

impl TickClock {
    /// A clock for a zone ticking `tick_hz` times a second.
    pub fn new(tick_hz: f64) -> Self {
        Self {
            tick_hz: tick_hz.max(1.0),
            anchor: None,
            shown: f64::NEG_INFINITY,
        }
    }

    /// The estimate at `now_ms`, if a packet arrived yet.
    fn estimate(&self, now_ms: u64) -> Option<f64> {
        let (tick, at) = self.anchor?;
        Some(tick + now_ms.saturating_sub(at) as f64 * self.tick_hz / 1000.0)
    }

    /// A packet of continuous tick `tick` arrived at `now_ms`.
    pub fn on_packet(&mut self, tick: i64, now_ms: u64) {
        let tick = tick as f64;
        match self.estimate(now_ms) {
            Some(est) if (tick - est).abs() <= RESYNC_TICKS => {
                let (t, at) = self.anchor.unwrap_or((tick, now_ms));
                self.anchor = Some((t + (tick - est) * DRIFT, at));
            }
            _ => {
                self.anchor = Some((tick, now_ms));
                self.shown = f64::NEG_INFINITY;
            }
        }
    }

    /// The tick to draw at `now_ms`: the estimate less `delay` ticks, never earlier than what
    /// was drawn before (so motion never runs backwards). `None` before the first packet.
    pub fn render_tick(&mut self, now_ms: u64, delay: f64) -> Option<f64> {
        let t = (self.estimate(now_ms)? - delay).max(self.shown);
        self.shown = t;
        Some(t)
    }
}

/// One received state: continuous tick, position (metres) and velocity (metres per tick).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Continuous tick.
    pub tick: i64,
    /// Position, metres.
    pub position: [f64; 3],
    /// Velocity, metres per tick.
    pub velocity: [f64; 3],
}

/// States kept per entity: enough to draw `interpolation_delay` ticks back (up to 3 ticks
/// with every tick received; further back with the slower rates of far entities).
pub const TRACK_LEN: usize = 4;

/// The last [`TRACK_LEN`] states of an entity (a fixed ring: no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Track {
    ring: [Sample; TRACK_LEN],
    len: usize,
    newest: usize,
}

impl Track {
    /// A track that starts at `s`.
    pub fn new(s: Sample) -> Self {
        let mut ring = [Sample::default(); TRACK_LEN];
        ring[0] = s;
        Self {
            ring,
            len: 1,
            newest: 0,
        }
    }

    /// Adds a newer state (an older or equal tick is ignored); whether it was newer.
    pub fn push(&mut self, s: Sample) -> bool {
        if s.tick <= self.last().tick {
            return false;
        }
        self.newest = (self.newest + 1) % TRACK_LEN;
        self.ring[self.newest] = s;
        self.len = (self.len + 1).min(TRACK_LEN);
        true
    }

    /// The newest state.
    pub fn last(&self) -> &Sample {
        &self.ring[self.newest]
    }

    /// The `k`-th newest state (0 = newest); `k < len`.
    fn nth(&self, k: usize) -> &Sample {
        &self.ring[(self.newest + TRACK_LEN - k) % TRACK_LEN]
    }

    /// Where to draw the entity at (fractional, continuous) tick `t`: between the two states
    /// around `t`; before the oldest, the oldest; past the newest, the newest moved on with its
    /// velocity for at most [`MAX_EXTRAPOLATION_TICKS`].
    pub fn at(&self, t: f64) -> [f64; 3] {
        let l = self.last();
        if t >= l.tick as f64 {
            let ahead = (t - l.tick as f64).clamp(0.0, MAX_EXTRAPOLATION_TICKS);
            return [0, 1, 2].map(|k| l.position[k] + l.velocity[k] * ahead);
        }
        for k in 1..self.len {
            let (a, b) = (self.nth(k), self.nth(k - 1));
            if t >= a.tick as f64 {
                let f = (t - a.tick as f64) / (b.tick - a.tick) as f64;
                return [0, 1, 2].map(|i| a.position[i] + (b.position[i] - a.position[i]) * f);
            }
        }
        self.nth(self.len - 1).position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tick: i64, x: f64, vx: f64) -> Sample {
        Sample {
            tick,
            position: [x, 0.0, 0.0],
            velocity: [vx, 0.0, 0.0],
        }
    }

    #[test]
    fn between_two_states_the_position_is_interpolated_and_after_them_extrapolated_briefly() {
        let mut tr = Track::new(s(10, 0.0, 0.5));
        assert!(tr.push(s(12, 1.0, 0.5)));
        assert!(!tr.push(s(11, 9.0, 0.0)), "an older state is ignored");
        assert_eq!(tr.at(9.0)[0], 0.0, "before the older state: held");
        assert!((tr.at(11.0)[0] - 0.5).abs() < 1e-12, "half-way");
        assert!((tr.at(11.5)[0] - 0.75).abs() < 1e-12);
        assert!(
            (tr.at(13.0)[0] - 1.5).abs() < 1e-12,
            "one tick on at 0.5 m/tick"
        );
        assert!(
            (tr.at(20.0)[0] - 2.0).abs() < 1e-12,
            "at most {MAX_EXTRAPOLATION_TICKS} ticks on"
        );
    }

    #[test]
    fn a_delay_of_two_ticks_interpolates_between_older_states_and_the_ring_keeps_four() {
        let mut tr = Track::new(s(1, 0.0, 0.0));
        for t in 2..=6 {
            tr.push(s(t, f64::from(t as i32 - 1), 1.0));
        }
        // Newest 6 (x 5): drawn at 4.25 (2 ticks back) lies between 4 (x 3) and 5 (x 4).
        assert!((tr.at(4.25)[0] - 3.25).abs() < 1e-12);
        assert!((tr.at(3.5)[0] - 2.5).abs() < 1e-12, "between 3 and 4");
        // States 1 and 2 fell out of the ring: before 3, the oldest kept.
        assert_eq!(tr.at(1.5)[0], 2.0);
    }

    #[test]
    fn the_clock_follows_packets_smoothly_and_never_runs_backwards() {
        let mut c = TickClock::new(20.0);
        assert_eq!(c.render_tick(0, 2.0), None);
        c.on_packet(100, 1000);
        assert_eq!(c.render_tick(1000, 2.0), Some(98.0));
        // 25 ms later: half a tick on.
        assert_eq!(c.render_tick(1025, 2.0), Some(98.5));
        // A packet that arrives one tick late pulls the clock back a little, but what is drawn
        // does not go back.
        c.on_packet(101, 1100);
        let t = c.render_tick(1100, 2.0).unwrap();
        assert!(t >= 98.5, "never backwards: {t}");
        assert!(t < 100.0, "and the late packet slowed it: {t}");
        // A jump (a stall of 10 s): the clock resyncs at once.
        c.on_packet(400, 11_000);
        assert_eq!(c.render_tick(11_000, 2.0), Some(398.0));
    }

    #[test]
    fn wire_ticks_unwrap_across_the_32_bit_wrap() {
        let mut u = TickUnwrap::default();
        assert_eq!(u.unwrap(u32::MAX - 1), i64::from(u32::MAX - 1));
        assert_eq!(u.unwrap(1), i64::from(u32::MAX) + 2);
        assert_eq!(u.peek(0), i64::from(u32::MAX) + 1);
    }
}
