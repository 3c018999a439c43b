//! [`Rates`]: what `FabricWorld.get_stats()` reports about the replication stream: bytes per
//! second, packets per second and entity records per second over the last whole second, and
//! the totals.

/// Length of a measuring window, milliseconds.
pub const WINDOW_MS: u64 = 1000;

/// Traffic of the replication stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    window_start: Option<u64>,
    window: [u64; 3],
    per_second: [f64; 3],
    /// Replication bytes received in all.
    pub bytes_total: u64,
    /// Replication packets applied in all.
    pub packets_total: u64,
    /// Entity records (enters and updates) applied in all.
    pub records_total: u64,
}

impl Rates {
    fn roll(&mut self, now_ms: u64) {
        let start = *self.window_start.get_or_insert(now_ms);
        let elapsed = now_ms.saturating_sub(start);
        if elapsed >= WINDOW_MS {
            let secs = elapsed as f64 / 1000.0;
            // A gap of several windows: what came in it, spread over it.
            self.per_second = self.window.map(|n| n as f64 / secs);
            self.window = [0; 3];
            self.window_start = Some(now_ms);
        }
    }

    /// `len` replication bytes arrived at `now_ms`.
    pub fn on_bytes(&mut self, now_ms: u64, len: usize) {
        self.roll(now_ms);
        self.window[0] += len as u64;
        self.bytes_total += len as u64;
    }

    /// A packet with `records` enters and updates was applied at `now_ms`.
    pub fn on_packet(&mut self, now_ms: u64, records: usize) {
        self.roll(now_ms);
        self.window[1] += 1;
        self.window[2] += records as u64;
        self.packets_total += 1;
        self.records_total += records as u64;
    }

    /// Bytes per second over the last whole window.
    pub fn bytes_per_second(&self) -> f64 {
        self.per_second[0]
    }

    /// Packets per second over the last whole window (the update rate, at most the zone's
    /// 20 Hz ceiling).
    pub fn packets_per_second(&self) -> f64 {
        self.per_second[1]
    }

    /// Entity records per second over the last whole window.
    pub fn records_per_second(&self) -> f64 {
        self.per_second[2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_counted_over_whole_seconds() {
        let mut r = Rates::default();
        for i in 0..20u64 {
            r.on_bytes(i * 50, 100);
            r.on_packet(i * 50, 3);
        }
        assert_eq!(r.bytes_per_second(), 0.0, "no whole second yet");
        r.on_bytes(1000, 100);
        assert_eq!(r.bytes_per_second(), 2000.0);
        assert_eq!(r.packets_per_second(), 20.0);
        assert_eq!(r.records_per_second(), 60.0);
        assert_eq!(
            (r.bytes_total, r.packets_total, r.records_total),
            (2100, 20, 60)
        );
    }
}
