//! A window of recent durations (tick times, hand-off latencies) and their percentiles.
//!
//! Samples go into a fixed ring; [`Timings::summary`] sorts a preallocated copy, so neither
//! recording nor summarising allocates. Durations are nanoseconds given by the caller.

/// p50 / p99 / max of a window, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Samples in the window.
    pub count: usize,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile (nearest rank).
    pub p99_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// The last `window` samples.
#[derive(Debug, Clone)]
pub struct Timings {
    ring: Vec<u64>,
    scratch: Vec<u64>,
    next: usize,
    filled: usize,
    total: u64,
}

impl Timings {
    /// A window of `window` (at least 1) samples.
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self {
            ring: vec![0; window],
            scratch: Vec::with_capacity(window),
            next: 0,
            filled: 0,
            total: 0,
        }
    }

    /// Records one sample.
    pub fn record(&mut self, ns: u64) {
        self.ring[self.next] = ns;
        self.next = (self.next + 1) % self.ring.len();
        self.filled = (self.filled + 1).min(self.ring.len());
        self.total += 1;
    }

    /// Samples recorded since the start (not only those in the window).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Percentiles of the window (zeros when empty).
    pub fn summary(&mut self) -> Summary {
        let n = self.filled;
        if n == 0 {
            return Summary::default();
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.ring[..n]);
        self.scratch.sort_unstable();
        let rank = |p: usize| self.scratch[((n * p).div_ceil(100)).clamp(1, n) - 1];
        Summary {
            count: n,
            p50_ns: rank(50),
            p99_ns: rank(99),
            max_ns: self.scratch[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut t = Timings::new(1000);
        assert_eq!(t.summary(), Summary::default(), "empty window");
        for v in 1..=100 {
            t.record(v);
        }
        let s = t.summary();
        assert_eq!((s.count, s.p50_ns, s.p99_ns, s.max_ns), (100, 50, 99, 100));
    }

    #[test]
    fn the_window_forgets_old_samples() {
        let mut t = Timings::new(4);
        for v in [1_000, 1, 2, 3, 4] {
            t.record(v);
        }
        let s = t.summary();
        assert_eq!(
            (s.count, s.max_ns, s.p50_ns),
            (4, 4, 2),
            "1000 left the window"
        );
        assert_eq!(t.total(), 5, "but it was counted");
    }
}
