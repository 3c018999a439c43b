//! Settings of one client's replication (radius, hysteresis, byte budget, rate ceiling, MTU).

use super::priority::PriorityConfig;
use super::wire::{MAX_HANDLES, MAX_OFFSET_MM};

const _: () = assert!(
    MAX_RADIUS_MM < MAX_OFFSET_MM,
    "every offset in view fits the wire"
);
use thiserror::Error;

/// Largest interest radius plus hysteresis, millimetres (32 km): every offset from the viewer
/// then fits the wire's `+-2^25` mm, so positions keep their 1 mm precision.
pub const MAX_RADIUS_MM: i64 = 32_000_000;

/// Smallest MTU a view accepts.
pub const MIN_MTU: usize = 64;

/// Why a [`ReplicationConfig`] is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Radius not positive, or radius plus hysteresis above [`MAX_RADIUS_MM`].
    #[error(
        "interest radius {radius_mm} mm + hysteresis {hysteresis_mm} mm must be in 1..={MAX_RADIUS_MM}"
    )]
    Radius {
        /// Radius.
        radius_mm: i64,
        /// Hysteresis.
        hysteresis_mm: i64,
    },
    /// MTU below [`MIN_MTU`].
    #[error("mtu {0} below {MIN_MTU}")]
    Mtu(usize),
    /// Handle capacity zero or above the wire's bound.
    #[error("max_entities {0} must be in 1..={MAX_HANDLES}")]
    Capacity(usize),
    /// A zero tick rate or rate ceiling.
    #[error("tick_hz and max_hz must be positive")]
    Rate,
}

/// Settings of a [`super::ClientView`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicationConfig {
    /// Entities within this distance of the viewer enter the view, millimetres.
    pub radius_mm: i64,
    /// An entity leaves only beyond `radius + hysteresis`, so one on the border does not flap.
    pub hysteresis_mm: i64,
    /// Byte budget per second (64 KiB by default).
    pub bytes_per_second: u32,
    /// The zone's tick rate.
    pub tick_hz: u32,
    /// Most packets per second (20).
    pub max_hz: u32,
    /// Largest packet, bytes (1,200).
    pub mtu: usize,
    /// Most entities in view at once (handles).
    pub max_entities: usize,
    /// The priority accumulator's weights.
    pub priority: PriorityConfig,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self::with_radius(50_000)
    }
}

impl ReplicationConfig {
    /// Defaults around an interest radius: 10 % hysteresis, 64 KiB/s, 20 Hz, MTU 1,200, 1,024
    /// entities.
    pub fn with_radius(radius_mm: i64) -> Self {
        Self {
            radius_mm,
            hysteresis_mm: radius_mm / 10,
            bytes_per_second: 65_536,
            tick_hz: 20,
            max_hz: 20,
            mtu: 1200,
            max_entities: 1024,
            priority: PriorityConfig::for_radius(radius_mm),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let outer = self.radius_mm.checked_add(self.hysteresis_mm);
        if self.radius_mm < 1
            || self.hysteresis_mm < 0
            || !matches!(outer, Some(o) if o <= MAX_RADIUS_MM)
        {
            return Err(ConfigError::Radius {
                radius_mm: self.radius_mm,
                hysteresis_mm: self.hysteresis_mm,
            });
        }
        if self.mtu < MIN_MTU {
            return Err(ConfigError::Mtu(self.mtu));
        }
        if self.max_entities == 0 || self.max_entities > MAX_HANDLES {
            return Err(ConfigError::Capacity(self.max_entities));
        }
        if self.tick_hz == 0 || self.max_hz == 0 {
            return Err(ConfigError::Rate);
        }
        Ok(())
    }

    /// Budget added each tick, bytes (3,276 with the defaults).
    pub fn bytes_per_tick(&self) -> i64 {
        i64::from(self.bytes_per_second) / i64::from(self.tick_hz)
    }

    /// Fewest ticks between two packets (1 at 20 Hz; 3 for a 60 Hz zone).
    pub fn min_interval_ticks(&self) -> u64 {
        u64::from(self.tick_hz.div_ceil(self.max_hz))
    }
}
