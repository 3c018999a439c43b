//! An entity's full simulation state, as spawned, migrated and snapshotted.
//!
//! Inside a zone the same fields live in structure-of-arrays slots ([`crate::slots`]); this is the
//! one-entity view used at the edges (spawn, migration intents, tests).

use crate::coords::{Vec3, ZERO3};
use crate::entity_row::PAYLOAD_WORDS;

/// One entity's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity {
    /// Global entity id (unique in the world).
    pub global_id: u32,
    /// Position, micrometres.
    pub position: Vec3,
    /// Velocity, micrometres per tick.
    pub velocity: Vec3,
    /// Acceleration, micrometres per tick squared.
    pub acceleration: Vec3,
    /// HLC of the last authoritative change, row form.
    pub hlc: u32,
    /// Application payload (`payload[0] >> 24` is the class).
    pub payload: [u32; PAYLOAD_WORDS],
}

impl Entity {
    /// An entity at rest at `position` with an empty payload.
    pub fn at(global_id: u32, position: Vec3) -> Self {
        Self {
            global_id,
            position,
            velocity: ZERO3,
            acceleration: ZERO3,
            hlc: 0,
            payload: [0; PAYLOAD_WORDS],
        }
    }

    /// The same entity with velocity `v`.
    pub fn with_velocity(mut self, v: Vec3) -> Self {
        self.velocity = v;
        self
    }

    /// The same entity with acceleration `a`.
    pub fn with_acceleration(mut self, a: Vec3) -> Self {
        self.acceleration = a;
        self
    }
}
