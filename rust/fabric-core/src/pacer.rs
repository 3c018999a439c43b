//! Fixed-step pacing: how many simulation ticks a frame should run, with bounded catch-up.
//!
//! The driver (Godot's main loop) reports the time that passed since the last frame; the pacer
//! answers how many ticks to run now. A zone that fell behind (a long frame, a stall) runs at
//! most `max_catch_up` ticks in one frame and drops the rest of the backlog, counted, so it
//! never spirals into ever longer frames. Time is an argument (nanoseconds), never read here.

/// What one frame should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Steps {
    /// Ticks to run now.
    pub run: u32,
    /// Ticks of backlog dropped because the zone was too far behind (0 normally).
    pub dropped: u64,
}

/// A fixed-step accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    step_ns: u64,
    max_catch_up: u32,
    acc_ns: u64,
    dropped_total: u64,
    catch_ups: u64,
}

impl Pacer {
    /// A pacer for `tick_hz` ticks per second running at most `max_catch_up` (at least 1) ticks
    /// per frame.
    pub fn new(tick_hz: u32, max_catch_up: u32) -> Self {
        Self {
            step_ns: 1_000_000_000 / u64::from(tick_hz.max(1)),
            max_catch_up: max_catch_up.max(1),
            acc_ns: 0,
            dropped_total: 0,
            catch_ups: 0,
        }
    }

    /// Length of a tick, nanoseconds.
    pub fn step_ns(&self) -> u64 {
        self.step_ns
    }

    /// Ticks dropped so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Frames that hit the catch-up limit so far.
    pub fn catch_ups(&self) -> u64 {
        self.catch_ups
    }

    /// `elapsed_ns` passed since the last call: the ticks to run.
    pub fn advance(&mut self, elapsed_ns: u64) -> Steps {
        self.acc_ns = self.acc_ns.saturating_add(elapsed_ns);
        let due = self.acc_ns / self.step_ns;
        let run = due.min(u64::from(self.max_catch_up));
        let dropped = due - run;
        self.acc_ns -= due * self.step_ns;
        if dropped > 0 {
            self.dropped_total += dropped;
            self.catch_ups += 1;
        }
        Steps {
            run: run as u32,
            dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn runs_one_tick_per_step_and_keeps_the_remainder() {
        let mut p = Pacer::new(20, 4);
        assert_eq!(p.step_ns(), 50 * MS);
        assert_eq!(p.advance(30 * MS).run, 0, "30 ms: not yet");
        assert_eq!(p.advance(30 * MS).run, 1, "60 ms: one tick, 10 ms kept");
        assert_eq!(p.advance(40 * MS).run, 1, "the 10 ms remainder counts");
        assert_eq!(p.advance(120 * MS).run, 2, "two steps in one long frame");
        assert_eq!(p.dropped_total(), 0);
    }

    #[test]
    fn a_stall_catches_up_a_bounded_number_of_ticks_and_says_so() {
        let mut p = Pacer::new(20, 4);
        let s = p.advance(1_000 * MS);
        assert_eq!(
            s,
            Steps {
                run: 4,
                dropped: 16
            },
            "1 s behind at 20 Hz: 4 run, 16 dropped"
        );
        assert_eq!((p.dropped_total(), p.catch_ups()), (16, 1));
        assert_eq!(p.advance(50 * MS).run, 1, "back to normal afterwards");
        assert_eq!(
            Pacer::new(0, 0).advance(2_000 * MS).run,
            1,
            "0 Hz and 0 catch-up are clamped"
        );
    }
}
