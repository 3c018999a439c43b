//! Reconnect delays of a dropped link: exponential from [`Backoff::INITIAL`], doubling per failed
//! attempt, capped at [`Backoff::CAP`] (30 s), back to the start after a session that was
//! accepted. Sans-IO: the dialer sleeps for what [`Backoff::next_delay`] returns.

use std::time::Duration;

/// Reconnect delay state of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
    initial: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::INITIAL, Self::CAP)
    }
}

impl Backoff {
    /// First delay.
    pub const INITIAL: Duration = Duration::from_millis(100);
    /// Longest delay.
    pub const CAP: Duration = Duration::from_secs(30);

    /// Delays from `initial`, doubling, at most `cap`.
    pub fn new(initial: Duration, cap: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1)).min(cap);
        Self {
            next: initial,
            cap,
            initial,
        }
    }

    /// The delay before the next attempt; the one after it is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d
    }

    /// A session was accepted: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_thirty_seconds_and_resets() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..12).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            got,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100), "reset");
    }
}
