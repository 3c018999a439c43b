//! Migration latency classes and the latency floor, in ticks.
//!
//! A migration's arrival time is the sender's HLC plus the link's latency in ticks: the receiver
//! does not take ownership before it. The class comes from where the neighbour runs
//! ([`FabricLatency`]); the result is never below the floor `max(tick_hz / 10, 1)` ticks
//! (100 ms), so a fast link cannot make arrivals land before a round trip is plausible.

/// Latency class of the link between two zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FabricLatency {
    /// Same host or data centre: 1 tick.
    #[default]
    SameRegion,
    /// Another region: 4 ticks.
    CrossRegion,
    /// A satellite hop: 40 ticks.
    Satellite,
}

impl FabricLatency {
    /// The class's nominal latency, in ticks.
    pub const fn ticks(self) -> u64 {
        match self {
            Self::SameRegion => 1,
            Self::CrossRegion => 4,
            Self::Satellite => 40,
        }
    }

    /// The latency used for arrivals: the class's ticks, at least [`latency_floor`].
    pub const fn effective_ticks(self, tick_hz: u32) -> u64 {
        let floor = latency_floor(tick_hz);
        let t = self.ticks();
        if t > floor { t } else { floor }
    }
}

/// The latency floor `max(tick_hz / 10, 1)` ticks.
pub const fn latency_floor(tick_hz: u32) -> u64 {
    let f = (tick_hz / 10) as u64;
    if f > 1 { f } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_floor() {
        assert_eq!(FabricLatency::SameRegion.ticks(), 1, "sameRegion");
        assert_eq!(FabricLatency::CrossRegion.ticks(), 4, "crossRegion");
        assert_eq!(FabricLatency::Satellite.ticks(), 40, "satellite");
        assert_eq!(latency_floor(20), 2, "20 Hz -> 2 ticks");
        assert_eq!(latency_floor(5), 1, "never below 1 tick");
        assert_eq!(latency_floor(60), 6, "60 Hz -> 6 ticks");
        assert_eq!(
            FabricLatency::SameRegion.effective_ticks(20),
            2,
            "floor wins over 1"
        );
        assert_eq!(
            FabricLatency::CrossRegion.effective_ticks(20),
            4,
            "class wins over floor"
        );
        assert_eq!(
            FabricLatency::CrossRegion.effective_ticks(60),
            6,
            "floor wins at 60 Hz"
        );
    }
}
