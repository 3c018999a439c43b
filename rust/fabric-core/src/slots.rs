//! Entity slots: the zone's fixed-size structure-of-arrays store.
//!
//! A zone has `capacity` slots (default [`ZONE_CAPACITY`] = 1800), all allocated up front; the
//! tick walks every one of them whatever the occupancy ([`crate::tick`]). Each field is its own
//! array so the integration pass streams through positions and velocities only. Local spawns stop
//! at `capacity - headroom` ([`MIGRATION_HEADROOM`] = 400 by default): the remaining slots are
//! kept for entities migrating in, so a burst of arrivals is absorbed instead of refused.
//!
//! A slot is [`SlotState::Free`], or holds an entity that is `Owned` (simulated and broadcast
//! here), `Staging` (handed to a neighbour, waiting for its answer), `Incoming` (a reservation
//! for a neighbour's entity, not ours until the sender commits) or `Arriving` (committed, ours
//! once the arrival HLC is reached). See [`crate::migration`].

use crate::coords::{Micros, ZERO3};
use crate::entity::Entity;
use crate::entity_row::PAYLOAD_WORDS;

/// Default number of slots per zone.
pub const ZONE_CAPACITY: usize = 1800;
/// Default number of slots kept free for arrivals (local spawns stop at 1400).
pub const MIGRATION_HEADROOM: usize = 400;
/// Most slots a zone may have (slot indices are u16 on the wire).
pub const MAX_CAPACITY: usize = u16::MAX as usize;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SlotState {
    /// Nothing.
    #[default]
    Free = 0,
    /// An entity this zone owns.
    Owned = 1,
    /// An entity handed to a neighbour, waiting for its ack or refusal.
    Staging = 2,
    /// A reservation for a neighbour's entity; not ours until the sender commits.
    Incoming = 3,
    /// A committed arrival, owned once the arrival HLC is reached.
    Arriving = 4,
}

/// The structure-of-arrays slot store.
#[derive(Debug, Clone)]
pub struct Slots {
    pub(crate) state: Vec<SlotState>,
    pub(crate) gid: Vec<u32>,
    /// Positions, raw 64.64 bits of [`Micros`] (plain `i128` keeps the hot loop free of the
    /// `fixed` crate's generic plumbing, which dominates unoptimised builds).
    pub(crate) pos: [Vec<i128>; 3],
    /// Velocities, raw 64.64 bits.
    pub(crate) vel: [Vec<i128>; 3],
    /// Accelerations, raw 64.64 bits.
    pub(crate) acc: [Vec<i128>; 3],
    pub(crate) ehlc: Vec<u32>,
    pub(crate) payload: Vec<[u32; PAYLOAD_WORDS]>,
    /// Hilbert code of the position after the last tick.
    pub(crate) code: Vec<u32>,
    /// Consecutive ticks an owned entity has spent outside the zone's range.
    pub(crate) outside: Vec<u32>,
    /// Neighbours whose AOI band contains the entity (bit per zone); zero unless the entity is
    /// visible (owned, staging or arriving).
    pub(crate) interest: Vec<u32>,
    /// Migration peer (target when staging, source when incoming/arriving).
    pub(crate) peer: Vec<u8>,
    /// Migration id.
    pub(crate) mig_id: Vec<u32>,
    /// Tick the intent was sent (staging).
    pub(crate) mig_tick: Vec<u64>,
    /// Arrival HLC, u64 form.
    pub(crate) arrival: Vec<u64>,
    /// The other side's slot (sender slot when incoming).
    pub(crate) peer_slot: Vec<u16>,
    /// Durable hand-off mark ([`crate::durable_handoff::MarkKind`] as `u8`, 0 = none): a
    /// staging entity promised to its receiver, or an arrival its sender has not released yet.
    pub(crate) mark: Vec<u8>,
    free: Vec<u16>,
    headroom: usize,
}

impl Slots {
    /// `capacity` free slots (at most [`MAX_CAPACITY`]), `headroom` of them kept for arrivals.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        let v = || vec![0i128; capacity];
        Self {
            state: vec![SlotState::Free; capacity],
            gid: vec![0; capacity],
            pos: [v(), v(), v()],
            vel: [v(), v(), v()],
            acc: [v(), v(), v()],
            ehlc: vec![0; capacity],
            payload: vec![[0; PAYLOAD_WORDS]; capacity],
            code: vec![0; capacity],
            outside: vec![0; capacity],
            interest: vec![0; capacity],
            peer: vec![0; capacity],
            mig_id: vec![0; capacity],
            mig_tick: vec![0; capacity],
            arrival: vec![0; capacity],
            peer_slot: vec![0; capacity],
            mark: vec![0; capacity],
            // Popped from the end: slot 0 is handed out first.
            free: (0..capacity as u16).rev().collect(),
            headroom: headroom.min(capacity),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.state.len()
    }

    /// Slots in use (any state but free).
    pub fn used(&self) -> usize {
        self.capacity() - self.free.len()
    }

    /// Slots kept for arrivals.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Whether a local spawn fits (below `capacity - headroom`).
    pub fn can_spawn(&self) -> bool {
        self.used() < self.capacity() - self.headroom
    }

    /// Whether an arrival fits (any free slot).
    pub fn can_accept(&self) -> bool {
        !self.free.is_empty()
    }

    /// State of slot `i` (`Free` outside the capacity).
    pub fn state(&self, i: usize) -> SlotState {
        self.state.get(i).copied().unwrap_or(SlotState::Free)
    }

    /// Global id in slot `i` (meaningless when free).
    pub fn global_id(&self, i: usize) -> u32 {
        self.gid.get(i).copied().unwrap_or(0)
    }

    /// Hilbert code of slot `i` after the last tick.
    pub fn code(&self, i: usize) -> u32 {
        self.code.get(i).copied().unwrap_or(0)
    }

    /// Position of slot `i`.
    pub fn position(&self, i: usize) -> crate::coords::Vec3 {
        [0, 1, 2].map(|k| Micros::from_bits(self.pos[k].get(i).copied().unwrap_or(0)))
    }

    /// Durable hand-off mark of slot `i` (0 = none, else a [`crate::durable_handoff::MarkKind`]).
    pub fn mark(&self, i: usize) -> u8 {
        self.mark.get(i).copied().unwrap_or(0)
    }

    /// Interest mask of slot `i` after the last tick.
    pub fn interest(&self, i: usize) -> u32 {
        self.interest.get(i).copied().unwrap_or(0)
    }

    /// Takes a free slot for `e` in state `state`; `None` when no slot is free.
    pub(crate) fn alloc(&mut self, e: &Entity, state: SlotState) -> Option<usize> {
        let i = self.free.pop()? as usize;
        self.write(i, e);
        self.state[i] = state;
        self.outside[i] = 0;
        self.interest[i] = 0;
        self.mark[i] = 0;
        Some(i)
    }

    /// Frees slot `i` and zeroes its motion so the constant-work tick leaves it still.
    pub(crate) fn release(&mut self, i: usize) {
        if self.state[i] == SlotState::Free {
            return;
        }
        self.state[i] = SlotState::Free;
        self.write(i, &Entity::at(0, ZERO3));
        self.outside[i] = 0;
        self.interest[i] = 0;
        self.mark[i] = 0;
        // Never more entries than slots: each slot is pushed once per release of a used slot.
        self.free.push(i as u16);
    }

    /// Overwrites slot `i`'s entity fields.
    pub(crate) fn write(&mut self, i: usize, e: &Entity) {
        self.gid[i] = e.global_id;
        for k in 0..3 {
            self.pos[k][i] = e.position[k].to_bits();
            self.vel[k][i] = e.velocity[k].to_bits();
            self.acc[k][i] = e.acceleration[k].to_bits();
        }
        self.ehlc[i] = e.hlc;
        self.payload[i] = e.payload;
    }

    /// The entity in slot `i`.
    pub fn entity(&self, i: usize) -> Entity {
        Entity {
            global_id: self.gid[i],
            position: [0, 1, 2].map(|k| Micros::from_bits(self.pos[k][i])),
            velocity: [0, 1, 2].map(|k| Micros::from_bits(self.vel[k][i])),
            acceleration: [0, 1, 2].map(|k| Micros::from_bits(self.acc[k][i])),
            hlc: self.ehlc[i],
            payload: self.payload[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::micros;

    #[test]
    fn spawn_limit_keeps_headroom() {
        let mut s = Slots::new(10, 4);
        let e = Entity::at(1, [micros(1); 3]);
        let mut n = 0;
        while s.can_spawn() {
            s.alloc(&e, SlotState::Owned)
                .expect("a slot below the spawn limit");
            n += 1;
        }
        assert_eq!(n, 6, "capacity 10 - headroom 4");
        assert!(s.can_accept(), "arrivals still fit");
        for _ in 0..4 {
            s.alloc(&e, SlotState::Incoming).expect("headroom slot");
        }
        assert!(!s.can_accept(), "now full");
        assert_eq!(s.alloc(&e, SlotState::Incoming), None, "no slot when full");
        assert_eq!(s.used(), 10, "all used");
    }

    #[test]
    fn release_zeroes_and_recycles() {
        let mut s = Slots::new(3, 0);
        let e = Entity::at(7, [micros(5); 3]).with_velocity([micros(1); 3]);
        let i = s.alloc(&e, SlotState::Owned).unwrap();
        assert_eq!(i, 0, "lowest slot first");
        assert_eq!(s.entity(i), e, "stored as given");
        s.release(i);
        assert_eq!(s.state(i), SlotState::Free, "freed");
        assert_eq!(s.entity(i), Entity::at(0, ZERO3), "zeroed");
        s.release(i);
        assert_eq!(s.used(), 0, "double release does not double-free");
        assert_eq!(s.alloc(&e, SlotState::Owned), Some(0), "recycled");
    }
}
