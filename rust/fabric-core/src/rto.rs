//! Retransmission timeout from measured round trips (RFC 6298 in tick units).
//!
//! `RTO = SRTT + max(1 tick, 4 RTTVAR)`, and one second (`tick_hz` ticks) before the first
//! sample. The one-tick granularity term is RFC 6298's `G`: without it a perfectly steady link
//! drives RTTVAR to zero and RTO to exactly the round trip, so any jitter would roll migrations
//! back needlessly. Values are kept in eighths of a tick so the smoothing stays integral.

/// Fractional bits of the internal tick unit (eighths).
const SHIFT: u32 = 3;

/// Smoothed round-trip estimator for one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttEstimator {
    /// Smoothed RTT, eighths of a tick; 0 until the first sample.
    srtt: u64,
    /// RTT variation, eighths of a tick.
    rttvar: u64,
    samples: u64,
}

impl RttEstimator {
    /// An estimator with no samples.
    pub const fn new() -> Self {
        Self {
            srtt: 0,
            rttvar: 0,
            samples: 0,
        }
    }

    /// Adds a measured round trip of `rtt_ticks` ticks.
    pub fn sample(&mut self, rtt_ticks: u64) {
        let r = rtt_ticks.min(1 << 40) << SHIFT;
        if self.samples == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let diff = self.srtt.abs_diff(r);
            self.rttvar = (3 * self.rttvar + diff) / 4;
            self.srtt = (7 * self.srtt + r) / 8;
        }
        self.samples += 1;
    }

    /// Number of samples taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Smoothed RTT in ticks (rounded up), or `None` before the first sample.
    pub fn srtt_ticks(&self) -> Option<u64> {
        (self.samples > 0).then(|| self.srtt.div_ceil(1 << SHIFT))
    }

    /// The retransmission timeout in ticks: `SRTT + max(1, 4 RTTVAR)`, or `tick_hz` (1 s) unmeasured.
    pub fn rto_ticks(&self, tick_hz: u32) -> u64 {
        if self.samples == 0 {
            return (tick_hz as u64).max(1);
        }
        let var = (4 * self.rttvar).max(1 << SHIFT);
        (self.srtt + var).div_ceil(1 << SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_is_one_second() {
        let e = RttEstimator::new();
        assert_eq!(e.rto_ticks(20), 20, "1 s at 20 Hz");
        assert_eq!(e.rto_ticks(60), 60, "1 s at 60 Hz");
        assert_eq!(e.srtt_ticks(), None, "no SRTT yet");
    }

    #[test]
    fn first_sample_gives_three_rtt() {
        let mut e = RttEstimator::new();
        e.sample(4);
        // SRTT = 4, RTTVAR = 2, RTO = 4 + 8 = 12.
        assert_eq!(e.srtt_ticks(), Some(4), "SRTT = R");
        assert_eq!(e.rto_ticks(20), 12, "RTO = R + 4 R/2");
    }

    #[test]
    fn steady_link_converges_to_rtt_plus_one_tick() {
        let mut e = RttEstimator::new();
        for _ in 0..200 {
            e.sample(4);
        }
        assert_eq!(e.srtt_ticks(), Some(4), "SRTT stays 4");
        assert_eq!(
            e.rto_ticks(20),
            5,
            "RTTVAR -> 0, G = 1 tick keeps RTO above the RTT"
        );
    }

    #[test]
    fn jitter_raises_rto() {
        let mut e = RttEstimator::new();
        for i in 0..100 {
            e.sample(if i % 2 == 0 { 2 } else { 10 });
        }
        let rto = e.rto_ticks(20);
        assert!(
            rto >= 14,
            "alternating 2/10 tick RTTs need a wide RTO, got {rto}"
        );
    }
}
