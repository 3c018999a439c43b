//! Quantised entity state, the prediction both sides compute from a baseline, and the server's
//! record of what each unacknowledged packet carried (so an ack can promote those states to
//! baselines).
//!
//! Positions are whole millimetres on an absolute grid, velocities 1/256 mm per tick. An update
//! is coded against the state of that entity the client last *acknowledged* (its baseline),
//! extrapolated by the baseline's velocity: `predict(b, age) = b.q + round(b.v * age / 256)`.
//! The server and the client run this same integer arithmetic, so they agree to the bit.

use crate::coords::{Micros, Vec3, floor_micros, micros};

/// Micrometres per position quantum (1 mm).
pub const QUANTUM_UM: i64 = 1000;
/// Velocity quanta per millimetre per tick.
pub const VELOCITY_SCALE: i64 = 256;
/// Largest error the encoder leaves on any axis when it keeps the prediction, micrometres: a
/// reconstructed position is always within 1 mm (exclusive) of the server's on each axis.
pub const TOLERANCE_UM: i64 = QUANTUM_UM - 1;

/// An entity's state as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QState {
    /// Position, whole millimetres.
    pub q: [i64; 3],
    /// Velocity, 1/256 mm per tick.
    pub v: [i32; 3],
}

/// Rounds `num / den` to the nearest integer, halves away from negative infinity (`den > 0`).
#[inline]
fn round_div(num: i64, den: i64) -> i64 {
    (num + den / 2).div_euclid(den)
}

/// A position's nearest millimetre.
#[inline]
pub fn quantize_position(p: &Vec3) -> [i64; 3] {
    p.map(|c| round_div(floor_micros(c), QUANTUM_UM))
}

/// A velocity (micrometres per tick) in 1/256 mm per tick, clamped to the wire's range.
#[inline]
pub fn quantize_velocity(v: &Vec3) -> [i32; 3] {
    // Half the wire range, so a velocity delta between two of them also fits.
    let max = super::wire::MAX_VELOCITY_Q / 2 - 1;
    v.map(|c| {
        round_div(floor_micros(c).saturating_mul(VELOCITY_SCALE), QUANTUM_UM).clamp(-max, max)
            as i32
    })
}

/// The position of a quantised state, micrometres.
#[inline]
pub fn position_micros(q: &[i64; 3]) -> Vec3 {
    q.map(|c| micros(c * QUANTUM_UM))
}

/// The velocity of a quantised state, micrometres per tick.
#[inline]
pub fn velocity_micros(v: &[i32; 3]) -> Vec3 {
    v.map(|c| Micros::from_num(i64::from(c) * QUANTUM_UM) / Micros::from_num(VELOCITY_SCALE))
}

/// Where a baseline `age` ticks old says the entity is now.
#[inline]
pub fn predict(base: &QState, age: u32) -> [i64; 3] {
    [0, 1, 2].map(|k| base.q[k] + round_div(i64::from(base.v[k]) * i64::from(age), VELOCITY_SCALE))
}

/// Whether `q` (millimetres) is within [`TOLERANCE_UM`] of the exact position on every axis.
#[inline]
pub fn within_tolerance(q: &[i64; 3], exact: &Vec3) -> bool {
    (0..3).all(|k| (q[k] * QUANTUM_UM - floor_micros(exact[k])).abs() <= TOLERANCE_UM)
}

/// What kind of record a sent record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentKind {
    /// An enter record.
    Enter,
    /// An update.
    Update,
    /// A leave record.
    Leave,
}

/// One record of a sent packet, as the server remembers it until the packet is acked or its
/// sequence number leaves the ack window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentRecord {
    /// Handle.
    pub handle: u16,
    /// The handle's generation when sent (a reused handle has another).
    pub generation: u16,
    /// Record kind.
    pub kind: SentKind,
    /// The state the client reconstructs from it.
    pub state: QState,
    /// The owning zone the client holds after it.
    pub zone: u8,
}

const EMPTY_RECORD: SentRecord = SentRecord {
    handle: 0,
    generation: 0,
    kind: SentKind::Leave,
    state: QState {
        q: [0; 3],
        v: [0; 3],
    },
    zone: 0,
};

/// Packets remembered (a power of two, so sequence numbers wrap cleanly; an ack naming an older one is ignored).
pub const WINDOW: usize = 32;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    live: bool,
    seq: u16,
    tick: u64,
    count: usize,
}

/// The records of the last [`WINDOW`] packets, in one preallocated array.
#[derive(Debug, Clone)]
pub struct InFlight {
    per_packet: usize,
    slots: [Slot; WINDOW],
    records: Vec<SentRecord>,
}

impl InFlight {
    /// Room for `per_packet` records in each of the last [`WINDOW`] packets.
    pub fn new(per_packet: usize) -> Self {
        Self {
            per_packet,
            slots: [Slot::default(); WINDOW],
            records: vec![EMPTY_RECORD; per_packet * WINDOW],
        }
    }

    /// Most records one packet may carry.
    pub fn per_packet(&self) -> usize {
        self.per_packet
    }

    fn index(seq: u16) -> usize {
        usize::from(seq) % WINDOW
    }

    /// Starts packet `seq` of `tick`, forgetting the packet that used its place.
    pub fn begin(&mut self, seq: u16, tick: u64) {
        self.slots[Self::index(seq)] = Slot {
            live: true,
            seq,
            tick,
            count: 0,
        };
    }

    /// Adds a record to packet `seq` (begun last); `false` when the packet is full.
    pub fn push(&mut self, seq: u16, rec: SentRecord) -> bool {
        let i = Self::index(seq);
        let slot = &mut self.slots[i];
        if slot.count == self.per_packet {
            return false;
        }
        self.records[i * self.per_packet + slot.count] = rec;
        slot.count += 1;
        true
    }

    /// Takes the records of packet `seq` if it is still remembered and not yet acked: its tick
    /// and records. A second ack of the same packet returns `None`.
    pub fn take(&mut self, seq: u16) -> Option<(u64, &[SentRecord])> {
        let i = Self::index(seq);
        let slot = &mut self.slots[i];
        if !slot.live || slot.seq != seq {
            return None;
        }
        slot.live = false;
        let start = i * self.per_packet;
        Some((slot.tick, &self.records[start..start + slot.count]))
    }
}
