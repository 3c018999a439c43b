//! The three journaled mutations and their byte layout in the journal.
//!
//! A zone journals only discrete changes to its dynamic entities: a spawn (the entity's whole
//! state), a despawn and a payload update. Positions moved by the physics step are **not**
//! journaled: the design (seed "Persistence") recomputes them from the simulation, and writing
//! 1,800 positions per tick would make the journal a second, slower copy of the tick.
//!
//! Positions, velocities and accelerations are stored exactly, as the raw bits of their 64.64
//! fixed-point value (`i128`, little endian): never `f32`, which lost precision far from the origin
//! in the first implementation.
//!
//! Row body layout (little endian):
//!
//! | op | body |
//! |---|---|
//! | [`OP_SPAWN`] | position, velocity, acceleration (9 x `i128`, 144 bytes), hlc `u32`, payload 14 x `u32` ([`SPAWN_BODY_LEN`] = 204 bytes) |
//! | [`OP_DESPAWN`] | empty |
//! | [`OP_PAYLOAD_UPDATE`] | payload 14 x `u32` ([`PAYLOAD_BODY_LEN`] = 56 bytes) |
//! | [`OP_MARK`] | hand-off mark: kind `u8` (1 sealed, 2 pinned), peer zone `u8`, migration id `u32` ([`MARK_BODY_LEN`] = 6 bytes) |
//! | [`OP_UNMARK`] | empty |
//!
//! Marks are the durable hand-off protocol's state ([`fabric_core::durable_handoff`]): a
//! sealed entity was promised to a neighbour, a pinned one arrived and its sender's departure
//! may not be durable yet. A build older than the marks refuses a journal that has them
//! (unknown op), rather than restore an entity twice.
//!
//! The global id is a column of its own, so it is not in the body.

use fabric_core::coords::{Micros, Vec3};
use fabric_core::durable_handoff::{HandoffMark, MarkKind};
use fabric_core::entity::Entity;
use fabric_core::entity_row::PAYLOAD_WORDS;
use thiserror::Error;

/// Op code of a spawn row.
pub const OP_SPAWN: u8 = 1;
/// Op code of a despawn row.
pub const OP_DESPAWN: u8 = 2;
/// Op code of a payload-update row.
pub const OP_PAYLOAD_UPDATE: u8 = 3;
/// Op code of a hand-off mark row.
pub const OP_MARK: u8 = 4;
/// Op code of a row clearing a hand-off mark.
pub const OP_UNMARK: u8 = 5;
/// Bytes of a mark body.
pub const MARK_BODY_LEN: usize = 6;

/// Bytes of a payload (14 words).
pub const PAYLOAD_BODY_LEN: usize = PAYLOAD_WORDS * 4;
/// Bytes of a spawn body.
pub const SPAWN_BODY_LEN: usize = 9 * 16 + 4 + PAYLOAD_BODY_LEN;
/// Longest body of any op.
pub const MAX_BODY_LEN: usize = SPAWN_BODY_LEN;

/// One discrete change to a zone's dynamic entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// An entity appears (or is replaced) with this exact state.
    Spawn(Entity),
    /// The entity with this global id is gone.
    Despawn {
        /// Global id.
        global_id: u32,
    },
    /// The entity's payload words change.
    PayloadUpdate {
        /// Global id.
        global_id: u32,
        /// The new payload.
        payload: [u32; PAYLOAD_WORDS],
    },
    /// The entity is in a durable hand-off (ignored when no entity has that id).
    Mark {
        /// Global id.
        global_id: u32,
        /// The mark.
        mark: HandoffMark,
    },
    /// The entity's hand-off mark is cleared.
    Unmark {
        /// Global id.
        global_id: u32,
    },
}

/// Why a stored mutation row does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MutationDecodeError {
    /// The op code is none of [`OP_SPAWN`] ..= [`OP_UNMARK`].
    #[error("unknown op code {0}")]
    UnknownOp(i64),
    /// The global id column is outside `0..=u32::MAX`.
    #[error("global id {0} out of range")]
    GlobalIdRange(i64),
    /// The body length does not match the op.
    #[error("op {op} needs a {expected}-byte body, found {found} bytes")]
    BodyLength {
        /// Op code.
        op: u8,
        /// Bytes the op needs.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A mark body names an unknown kind or a zone outside `0..32`.
    #[error("hand-off mark with kind {kind} and peer zone {peer}")]
    BadMark {
        /// Kind byte.
        kind: u8,
        /// Peer zone byte.
        peer: u8,
    },
}

impl Mutation {
    /// Op code stored in the row.
    pub fn op(&self) -> u8 {
        match self {
            Mutation::Spawn(_) => OP_SPAWN,
            Mutation::Despawn { .. } => OP_DESPAWN,
            Mutation::PayloadUpdate { .. } => OP_PAYLOAD_UPDATE,
            Mutation::Mark { .. } => OP_MARK,
            Mutation::Unmark { .. } => OP_UNMARK,
        }
    }

    /// Global id of the entity it changes.
    pub fn global_id(&self) -> u32 {
        match self {
            Mutation::Spawn(e) => e.global_id,
            Mutation::Despawn { global_id }
            | Mutation::PayloadUpdate { global_id, .. }
            | Mutation::Mark { global_id, .. }
            | Mutation::Unmark { global_id } => *global_id,
        }
    }

    /// Writes the row body into `out` and returns its length.
    pub fn encode_body(&self, out: &mut [u8; MAX_BODY_LEN]) -> usize {
        match self {
            Mutation::Spawn(e) => {
                encode_entity_body(e, out);
                SPAWN_BODY_LEN
            }
            Mutation::Despawn { .. } | Mutation::Unmark { .. } => 0,
            Mutation::PayloadUpdate { payload, .. } => {
                encode_payload(payload, &mut out[..PAYLOAD_BODY_LEN]);
                PAYLOAD_BODY_LEN
            }
            Mutation::Mark { mark, .. } => {
                encode_mark(mark, &mut out[..MARK_BODY_LEN]);
                MARK_BODY_LEN
            }
        }
    }

    /// Decodes a row's op, global id and body.
    pub fn decode(op: i64, global_id: i64, body: &[u8]) -> Result<Self, MutationDecodeError> {
        let global_id =
            u32::try_from(global_id).map_err(|_| MutationDecodeError::GlobalIdRange(global_id))?;
        let op = u8::try_from(op)
            .ok()
            .filter(|op| (OP_SPAWN..=OP_UNMARK).contains(op))
            .ok_or(MutationDecodeError::UnknownOp(op))?;
        let expected = match op {
            OP_SPAWN => SPAWN_BODY_LEN,
            OP_DESPAWN | OP_UNMARK => 0,
            OP_MARK => MARK_BODY_LEN,
            _ => PAYLOAD_BODY_LEN,
        };
        if body.len() != expected {
            return Err(MutationDecodeError::BodyLength {
                op,
                expected,
                found: body.len(),
            });
        }
        Ok(match op {
            OP_SPAWN => Mutation::Spawn(decode_entity_body(global_id, body)),
            OP_DESPAWN => Mutation::Despawn { global_id },
            OP_UNMARK => Mutation::Unmark { global_id },
            OP_MARK => Mutation::Mark {
                global_id,
                mark: decode_mark(body)?,
            },
            _ => Mutation::PayloadUpdate {
                global_id,
                payload: decode_payload(body),
            },
        })
    }
}

/// Writes an entity's state (all but the global id) as a [`SPAWN_BODY_LEN`]-byte body.
pub fn encode_entity_body(e: &Entity, out: &mut [u8]) {
    let vectors = [e.position, e.velocity, e.acceleration];
    for (i, axis) in vectors.iter().flatten().enumerate() {
        out[i * 16..i * 16 + 16].copy_from_slice(&axis.to_bits().to_le_bytes());
    }
    out[144..148].copy_from_slice(&e.hlc.to_le_bytes());
    encode_payload(&e.payload, &mut out[148..SPAWN_BODY_LEN]);
}

/// Reads a [`SPAWN_BODY_LEN`]-byte body written by [`encode_entity_body`].
pub fn decode_entity_body(global_id: u32, body: &[u8]) -> Entity {
    let axis = |i: usize| {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&body[i * 16..i * 16 + 16]);
        Micros::from_bits(i128::from_le_bytes(raw))
    };
    let vector = |v: usize| -> Vec3 { [axis(v * 3), axis(v * 3 + 1), axis(v * 3 + 2)] };
    Entity {
        global_id,
        position: vector(0),
        velocity: vector(1),
        acceleration: vector(2),
        hlc: u32::from_le_bytes([body[144], body[145], body[146], body[147]]),
        payload: decode_payload(&body[148..SPAWN_BODY_LEN]),
    }
}

/// Writes a hand-off mark as a [`MARK_BODY_LEN`]-byte body.
pub fn encode_mark(mark: &HandoffMark, out: &mut [u8]) {
    out[0] = mark.kind as u8;
    out[1] = mark.peer;
    out[2..6].copy_from_slice(&mark.migration_id.to_le_bytes());
}

/// Reads and validates a [`MARK_BODY_LEN`]-byte mark body.
pub fn decode_mark(body: &[u8]) -> Result<HandoffMark, MutationDecodeError> {
    let (kind, peer) = (body[0], body[1]);
    let bad = MutationDecodeError::BadMark { kind, peer };
    let k = MarkKind::from_u8(kind).ok_or(bad.clone())?;
    if peer as usize >= fabric_core::zones::MAX_ZONES {
        return Err(bad);
    }
    Ok(HandoffMark {
        kind: k,
        peer,
        migration_id: u32::from_le_bytes([body[2], body[3], body[4], body[5]]),
    })
}

fn encode_payload(payload: &[u32; PAYLOAD_WORDS], out: &mut [u8]) {
    for (i, word) in payload.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
}

fn decode_payload(body: &[u8]) -> [u32; PAYLOAD_WORDS] {
    let mut payload = [0u32; PAYLOAD_WORDS];
    for (i, word) in payload.iter_mut().enumerate() {
        *word = u32::from_le_bytes([
            body[i * 4],
            body[i * 4 + 1],
            body[i * 4 + 2],
            body[i * 4 + 3],
        ]);
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::coords::micros;

    fn far_entity() -> Entity {
        // 10^7 m from the origin, with a fractional part an f32 (or even an f64) cannot hold.
        let far = Micros::from_bits((10_000_000_000_000i128 << 64) | 0x1234_5678_9abc_def1);
        let mut payload = [0u32; PAYLOAD_WORDS];
        payload[0] = 5 << 24 | 0x00ab_cdef;
        payload[13] = u32::MAX;
        Entity {
            global_id: u32::MAX,
            position: [far, -far, micros(-1)],
            velocity: [Micros::from_bits(1), Micros::from_bits(-1), Micros::MAX],
            acceleration: [Micros::MIN, Micros::ZERO, micros(7)],
            hlc: 0xdead_beef,
            payload,
        }
    }

    #[test]
    fn spawn_round_trips_every_bit() {
        let m = Mutation::Spawn(far_entity());
        let mut body = [0u8; MAX_BODY_LEN];
        let len = m.encode_body(&mut body);
        assert_eq!(len, SPAWN_BODY_LEN);
        let back = Mutation::decode(m.op().into(), m.global_id().into(), &body[..len]);
        assert_eq!(back, Ok(m), "a spawn must come back bit for bit");
    }

    #[test]
    fn spawn_body_layout_is_pinned() {
        let mut body = [0u8; MAX_BODY_LEN];
        Mutation::Spawn(far_entity()).encode_body(&mut body);
        // position x: low 64 bits are the fraction, then 10^13 micrometres.
        assert_eq!(&body[0..8], &0x1234_5678_9abc_def1u64.to_le_bytes());
        assert_eq!(&body[8..16], &10_000_000_000_000u64.to_le_bytes());
        assert_eq!(&body[144..148], &0xdead_beefu32.to_le_bytes(), "hlc at 144");
        assert_eq!(&body[148..152], &(5u32 << 24 | 0x00ab_cdef).to_le_bytes());
        assert_eq!(
            &body[200..204],
            &u32::MAX.to_le_bytes(),
            "last payload word"
        );
    }

    #[test]
    fn payload_update_and_despawn_round_trip() {
        let mut payload = [0u32; PAYLOAD_WORDS];
        payload[3] = 42;
        for m in [
            Mutation::PayloadUpdate {
                global_id: 9,
                payload,
            },
            Mutation::Despawn { global_id: 0 },
        ] {
            let mut body = [0u8; MAX_BODY_LEN];
            let len = m.encode_body(&mut body);
            let back = Mutation::decode(m.op().into(), m.global_id().into(), &body[..len]);
            assert_eq!(back, Ok(m));
        }
    }

    #[test]
    fn bad_rows_are_typed_errors() {
        assert_eq!(
            Mutation::decode(9, 1, &[]),
            Err(MutationDecodeError::UnknownOp(9))
        );
        assert_eq!(
            Mutation::decode(-1, 1, &[]),
            Err(MutationDecodeError::UnknownOp(-1))
        );
        assert_eq!(
            Mutation::decode(2, 1 << 32, &[]),
            Err(MutationDecodeError::GlobalIdRange(1 << 32))
        );
        assert_eq!(
            Mutation::decode(1, 1, &[0; 203]),
            Err(MutationDecodeError::BodyLength {
                op: 1,
                expected: 204,
                found: 203
            })
        );
        assert_eq!(
            Mutation::decode(2, 1, &[0]),
            Err(MutationDecodeError::BodyLength {
                op: 2,
                expected: 0,
                found: 1
            })
        );
    }
}
