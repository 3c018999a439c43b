//! A zone's static configuration and the defaults of the original fabric.

use crate::coords::{MICROS_PER_METRE, WorldBounds};
use crate::latency::FabricLatency;
use crate::slots::{MAX_CAPACITY, MIGRATION_HEADROOM, ZONE_CAPACITY};
use crate::zones::{ZoneId, ZoneLayout};
use thiserror::Error;

/// Default simulation rate.
pub const TICK_HZ: u32 = 20;
/// Most migrations a zone starts per tick.
pub const MAX_MIGRATIONS_PER_TICK: usize = 50;
/// Hysteresis before a boundary crossing migrates, in seconds of ticks (4 x tick rate).
pub const HYSTERESIS_SECONDS: u32 = 4;
/// Top speed, metres per second (`v_max = 10e6 / tick_hz` um per tick).
pub const V_MAX_METRES_PER_SECOND: i64 = 10;

/// Why a configuration is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The zone id is not in the layout.
    #[error("zone {zone} is not in a layout of {count} zones")]
    ZoneId {
        /// The id.
        zone: ZoneId,
        /// Zones in the layout.
        count: usize,
    },
    /// Capacity is 0, above the maximum, or below the headroom.
    #[error("capacity {capacity} with headroom {headroom} is not usable (max {MAX_CAPACITY})")]
    Capacity {
        /// Slots.
        capacity: usize,
        /// Headroom.
        headroom: usize,
    },
    /// The tick rate is 0.
    #[error("tick rate must be at least 1 Hz")]
    TickRate,
}

/// Everything a zone needs to know that does not change while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneConfig {
    /// This zone.
    pub zone_id: ZoneId,
    /// How the Hilbert space is split.
    pub layout: ZoneLayout,
    /// The world the Hilbert curve covers.
    pub bounds: WorldBounds,
    /// Simulation rate.
    pub tick_hz: u32,
    /// Slots.
    pub capacity: usize,
    /// Slots kept for arrivals.
    pub headroom: usize,
    /// Consecutive ticks outside the range before a migration starts (at least 1 is used).
    pub hysteresis_ticks: u32,
    /// Most migrations started per tick.
    pub max_migrations_per_tick: usize,
    /// Latency class of links to neighbours.
    pub latency: FabricLatency,
    /// Top speed, micrometres per tick.
    pub v_max_um: i64,
}

impl ZoneConfig {
    /// The original fabric's defaults for zone `zone_id` of `layout` over `bounds`.
    pub fn new(zone_id: ZoneId, layout: ZoneLayout, bounds: WorldBounds) -> Self {
        Self {
            zone_id,
            layout,
            bounds,
            tick_hz: TICK_HZ,
            capacity: ZONE_CAPACITY,
            headroom: MIGRATION_HEADROOM,
            hysteresis_ticks: HYSTERESIS_SECONDS * TICK_HZ,
            max_migrations_per_tick: MAX_MIGRATIONS_PER_TICK,
            latency: FabricLatency::SameRegion,
            v_max_um: V_MAX_METRES_PER_SECOND * MICROS_PER_METRE / TICK_HZ as i64,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.zone_id as usize >= self.layout.count() {
            return Err(ConfigError::ZoneId {
                zone: self.zone_id,
                count: self.layout.count(),
            });
        }
        if self.capacity == 0 || self.capacity > MAX_CAPACITY || self.headroom > self.capacity {
            return Err(ConfigError::Capacity {
                capacity: self.capacity,
                headroom: self.headroom,
            });
        }
        if self.tick_hz == 0 {
            return Err(ConfigError::TickRate);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let c = ZoneConfig::new(0, ZoneLayout::new(2).unwrap(), WorldBounds::demo());
        assert_eq!(c.capacity, 1800, "ZONE_CAPACITY");
        assert_eq!(c.headroom, 400, "MIGRATION_HEADROOM");
        assert_eq!(c.max_migrations_per_tick, 50, "MAX_MIGRATIONS_PER_TICK");
        assert_eq!(c.hysteresis_ticks, 80, "4 x 20 Hz");
        assert_eq!(c.v_max_um, 500_000, "10 m/s at 20 Hz in um/tick");
        assert_eq!(c.validate(), Ok(()), "defaults are valid");
        let bad = ZoneConfig { zone_id: 2, ..c };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::ZoneId { zone: 2, count: 2 })
        );
        let bad = ZoneConfig {
            headroom: 1801,
            ..c
        };
        assert!(matches!(bad.validate(), Err(ConfigError::Capacity { .. })));
    }
}
