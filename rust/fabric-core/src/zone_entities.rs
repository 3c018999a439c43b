//! Changing a zone's own entities from the outside (the game, GDScript, tools).
//!
//! Only `Owned` entities can be changed: a staging entity belongs to the migration in flight
//! and an incoming one is not ours yet. Inputs are clamped like spawns ([`Zone::spawn`]), so no
//! value can make the tick overflow.

use crate::coords::Vec3;
use crate::entity::Entity;
use crate::entity_row::PAYLOAD_WORDS;
use crate::slots::{SlotState, Slots};
use crate::zone::Zone;
use crate::zones::ZoneId;

impl Slots {
    /// Migration peer of `slot`: target when staging, source when incoming or arriving (and
    /// the last one for an owned entity that arrived).
    pub fn peer_of(&self, slot: usize) -> ZoneId {
        self.peer[slot]
    }
}

impl Zone {
    fn owned(&self, slot: usize) -> bool {
        slot < self.slots.capacity() && self.slots.state[slot] == SlotState::Owned
    }

    /// The full state of the entity in `slot` (any non-free state), if any.
    pub fn entity(&self, slot: usize) -> Option<Entity> {
        (slot < self.slots.capacity() && self.slots.state[slot] != SlotState::Free)
            .then(|| self.slots.entity(slot))
    }

    /// Sets the velocity (micrometres per tick, clamped to `v_max`) of an owned entity.
    /// Returns whether `slot` holds one.
    pub fn set_velocity(&mut self, slot: usize, v: Vec3) -> bool {
        self.update(slot, |e| e.velocity = v)
    }

    /// Sets the acceleration (micrometres per tick squared, clamped) of an owned entity.
    pub fn set_acceleration(&mut self, slot: usize, a: Vec3) -> bool {
        self.update(slot, |e| e.acceleration = a)
    }

    /// Sets the position, velocity and acceleration of an owned entity at once (a player's
    /// position upsert), clamped like a spawn; the Hilbert code follows the new position.
    /// Returns whether `slot` holds one.
    pub fn set_motion(
        &mut self,
        slot: usize,
        position: Vec3,
        velocity: Vec3,
        acceleration: Vec3,
    ) -> bool {
        if !self.owned(slot) {
            return false;
        }
        let mut e = self.slots.entity(slot);
        e.position = position;
        e.velocity = velocity;
        e.acceleration = acceleration;
        self.sanitize(&mut e);
        self.slots.write(slot, &e);
        self.slots.code[slot] = crate::hilbert::encode_position(&self.cfg.bounds, &e.position);
        true
    }

    /// Replaces the payload of an owned entity.
    pub fn set_payload(&mut self, slot: usize, payload: [u32; PAYLOAD_WORDS]) -> bool {
        if !self.owned(slot) {
            return false;
        }
        self.slots.payload[slot] = payload;
        true
    }

    fn update(&mut self, slot: usize, f: impl FnOnce(&mut Entity)) -> bool {
        if !self.owned(slot) {
            return false;
        }
        let mut e = self.slots.entity(slot);
        f(&mut e);
        self.sanitize(&mut e);
        for k in 0..3 {
            self.slots.vel[k][slot] = e.velocity[k].to_bits();
            self.slots.acc[k][slot] = e.acceleration[k].to_bits();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ZoneConfig;
    use crate::coords::{WorldBounds, metres, micros};
    use crate::entity::Entity;
    use crate::zone::Zone;
    use crate::zones::ZoneLayout;

    #[test]
    fn owned_entities_change_and_inputs_are_clamped() {
        let cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
        let mut z = Zone::new(cfg).unwrap();
        let slot = z.spawn(Entity::at(7, [metres(0); 3])).unwrap();
        assert!(z.set_velocity(slot, [micros(1_000), micros(0), micros(-10_000_000)]));
        assert!(z.set_acceleration(slot, [micros(5), micros(0), micros(0)]));
        assert!(z.set_payload(slot, [3; 14]));
        let e = z.entity(slot).expect("spawned");
        assert_eq!(e.velocity[0], micros(1_000), "velocity set");
        assert_eq!(e.velocity[2], micros(-cfg.v_max_um), "clamped to v_max");
        assert_eq!(e.acceleration[0], micros(5), "acceleration set");
        assert_eq!(e.payload, [3; 14], "payload set");
        z.tick(1);
        let e = z.entity(slot).unwrap();
        assert_eq!(
            e.position[0],
            micros(1_005),
            "the tick integrates what was set"
        );
        assert!(
            !z.set_velocity(slot + 1, [micros(1); 3]),
            "a free slot is refused"
        );
        assert!(!z.set_payload(99_999, [0; 14]), "out of range is refused");
        assert!(z.entity(slot + 1).is_none());
    }

    #[test]
    fn set_motion_moves_an_owned_entity_and_its_hilbert_code() {
        let cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
        let mut z = Zone::new(cfg).unwrap();
        let slot = z.spawn(Entity::at(7, [metres(0); 3])).unwrap();
        let to = [metres(5), metres(-3), metres(100)];
        assert!(z.set_motion(slot, to, [micros(10); 3], [micros(0); 3]));
        let e = z.entity(slot).unwrap();
        assert_eq!(e.position[0], metres(5));
        assert_eq!(e.position[2], metres(15), "clamped into the world");
        assert_eq!(
            z.slots().code(slot),
            crate::hilbert::encode_position(&cfg.bounds, &e.position),
            "the code follows"
        );
        z.tick(1);
        assert_eq!(z.entity(slot).unwrap().position[0], metres(5) + micros(10));
        assert!(!z.set_motion(slot + 1, to, [micros(0); 3], [micros(0); 3]));
    }
}
