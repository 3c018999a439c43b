//! The migration intent: one entity handed from its zone to a neighbour (244 bytes, version 1).
//!
//! Sent by the owner when an entity has stayed outside its range past the hysteresis. Unlike the
//! original 88-byte intent (`u64 eid | u32 to_zone | u32 arrival | 9 x f64`), it carries the
//! entity's exact 64.64 state and its payload (the original lost both: f64 rounding and no
//! payload), a migration id for acknowledgement and duplicate suppression, and a version.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind `0x4D` (`'M'`) |
//! | 1 | 1 | version = 1 |
//! | 2 | 1 | from_zone (0..32) |
//! | 3 | 1 | to_zone (0..32, != from_zone) |
//! | 4 | 4 | migration_id u32 (per sender and receiver, increasing from 1) |
//! | 8 | 2 | sender_slot u16 (echoed in the ack) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | global_id u32 |
//! | 16 | 8 | sent_tick u64 |
//! | 24 | 8 | sender_hlc u64 (`l << 16 \| c`) |
//! | 32 | 8 | arrival_hlc u64, `>= sender_hlc` |
//! | 40 | 4 | entity hlc u32 (row form) |
//! | 44 | 56 | payload 14 x u32 (class in `payload[0] >> 24`: 0, 1, 4, 5) |
//! | 100 | 48 | position x, y, z: i128 64.64 micrometres, `|v| <= 2^53` um |
//! | 148 | 48 | velocity: i128 64.64 um/tick, `|v| <= 2^40` |
//! | 196 | 48 | acceleration: i128 64.64 um/tick^2, `|v| <= 2^40` |

use crate::coords::{MAX_ABS_COORD_MICROS, Micros, Vec3};
use crate::entity::Entity;
use crate::entity_row::{EntityClass, PAYLOAD_WORDS};
use crate::hlc::Hlc;
use crate::wire::{WireError, exact, i128_at, put, u16_at, u32_at, u64_at, zeroed};
use crate::zones::{MAX_ZONES, ZoneId};

/// Size of a migration intent.
pub const INTENT_LEN: usize = 244;
/// Kind byte.
pub const INTENT_KIND: u8 = 0x4D;
/// Version byte.
pub const INTENT_VERSION: u8 = 1;
/// Largest velocity or acceleration component accepted, um per tick (or tick^2).
pub const MAX_ABS_RATE_MICROS: i64 = 1 << 40;

/// A decoded migration intent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationIntent {
    /// Sending zone.
    pub from_zone: ZoneId,
    /// Receiving zone.
    pub to_zone: ZoneId,
    /// Migration id, unique per (from, to) pair.
    pub migration_id: u32,
    /// Sender's slot (echoed back in the acknowledgement).
    pub sender_slot: u16,
    /// Tick the state below was taken at.
    pub sent_tick: u64,
    /// Sender's HLC when sending.
    pub sender_hlc: Hlc,
    /// The receiver takes ownership no earlier than this.
    pub arrival_hlc: Hlc,
    /// The entity.
    pub entity: Entity,
}

fn check_abs(v: Micros, limit: i64, field: &'static str) -> Result<Micros, WireError> {
    if v.to_bits().unsigned_abs() > (limit as u128) << 64 {
        Err(WireError::Range {
            field,
            value: (v.to_bits() >> 64) as u64,
        })
    } else {
        Ok(v)
    }
}

fn vec_at(
    b: &[u8; INTENT_LEN],
    off: usize,
    limit: i64,
    field: &'static str,
) -> Result<Vec3, WireError> {
    let mut v = [Micros::ZERO; 3];
    for (k, c) in v.iter_mut().enumerate() {
        *c = check_abs(Micros::from_bits(i128_at(b, off + 16 * k)), limit, field)?;
    }
    Ok(v)
}

impl MigrationIntent {
    /// Writes the intent into `out`.
    pub fn encode(&self, out: &mut [u8; INTENT_LEN]) {
        out[0] = INTENT_KIND;
        out[1] = INTENT_VERSION;
        out[2] = self.from_zone;
        out[3] = self.to_zone;
        put(out, 4, self.migration_id.to_le_bytes());
        put(out, 8, self.sender_slot.to_le_bytes());
        put(out, 10, [0u8; 2]);
        put(out, 12, self.entity.global_id.to_le_bytes());
        put(out, 16, self.sent_tick.to_le_bytes());
        put(out, 24, self.sender_hlc.to_u64().to_le_bytes());
        put(out, 32, self.arrival_hlc.to_u64().to_le_bytes());
        put(out, 40, self.entity.hlc.to_le_bytes());
        for (i, w) in self.entity.payload.iter().enumerate() {
            put(out, 44 + 4 * i, w.to_le_bytes());
        }
        for k in 0..3 {
            put(
                out,
                100 + 16 * k,
                self.entity.position[k].to_bits().to_le_bytes(),
            );
            put(
                out,
                148 + 16 * k,
                self.entity.velocity[k].to_bits().to_le_bytes(),
            );
            put(
                out,
                196 + 16 * k,
                self.entity.acceleration[k].to_bits().to_le_bytes(),
            );
        }
    }

    /// The intent as a new array.
    pub fn to_bytes(&self) -> [u8; INTENT_LEN] {
        let mut out = [0u8; INTENT_LEN];
        self.encode(&mut out);
        out
    }

    /// Decodes and validates an intent.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let b: &[u8; INTENT_LEN] = exact("migration intent", input)?;
        if b[0] != INTENT_KIND {
            return Err(WireError::Kind {
                what: "migration intent",
                got: b[0] as u32,
            });
        }
        if b[1] != INTENT_VERSION {
            return Err(WireError::Version {
                what: "migration intent",
                got: b[1],
                supported: INTENT_VERSION,
            });
        }
        let (from_zone, to_zone) = (b[2], b[3]);
        for (field, z) in [("from_zone", from_zone), ("to_zone", to_zone)] {
            if z as usize >= MAX_ZONES {
                return Err(WireError::Range {
                    field,
                    value: z as u64,
                });
            }
        }
        if from_zone == to_zone {
            return Err(WireError::Range {
                field: "to_zone",
                value: to_zone as u64,
            });
        }
        zeroed(b, 10..12)?;
        let sender_hlc = Hlc::from_u64(u64_at(b, 24));
        let arrival_hlc = Hlc::from_u64(u64_at(b, 32));
        if arrival_hlc < sender_hlc {
            return Err(WireError::Range {
                field: "arrival_hlc",
                value: arrival_hlc.to_u64(),
            });
        }
        let mut payload = [0u32; PAYLOAD_WORDS];
        for (i, w) in payload.iter_mut().enumerate() {
            *w = u32_at(b, 44 + 4 * i);
        }
        if EntityClass::of(payload[0]).is_none() {
            return Err(WireError::Range {
                field: "class",
                value: (payload[0] >> 24) as u64,
            });
        }
        let entity = Entity {
            global_id: u32_at(b, 12),
            position: vec_at(b, 100, MAX_ABS_COORD_MICROS, "position")?,
            velocity: vec_at(b, 148, MAX_ABS_RATE_MICROS, "velocity")?,
            acceleration: vec_at(b, 196, MAX_ABS_RATE_MICROS, "acceleration")?,
            hlc: u32_at(b, 40),
            payload,
        };
        Ok(Self {
            from_zone,
            to_zone,
            migration_id: u32_at(b, 4),
            sender_slot: u16_at(b, 8),
            sent_tick: u64_at(b, 16),
            sender_hlc,
            arrival_hlc,
            entity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::micros;
    use proptest::prelude::*;

    fn sample() -> MigrationIntent {
        let mut payload = [0u32; PAYLOAD_WORDS];
        payload[0] = 5 << 24 | 0x12_3456;
        payload[13] = 0xdead_beef;
        MigrationIntent {
            from_zone: 1,
            to_zone: 2,
            migration_id: 0x0a0b_0c0d,
            sender_slot: 0x0102,
            sent_tick: 0x1122_3344_5566_7788,
            sender_hlc: Hlc { l: 100, c: 3 },
            arrival_hlc: Hlc { l: 102, c: 0 },
            entity: Entity {
                global_id: 0xcafe_f00d,
                position: [micros(1) + Micros::from_bits(1), micros(-2), micros(3)],
                velocity: [micros(4), micros(-5), Micros::from_bits(-1)],
                acceleration: [micros(0), micros(1), micros(-1)],
                hlc: 0x1234_5678,
                payload,
            },
        }
    }

    #[test]
    fn every_offset_is_pinned() {
        let b = sample().to_bytes();
        assert_eq!(&b[0..4], &[0x4D, 1, 1, 2], "kind, version, from, to");
        assert_eq!(&b[4..8], &[0x0d, 0x0c, 0x0b, 0x0a], "migration id @4");
        assert_eq!(
            &b[8..12],
            &[0x02, 0x01, 0, 0],
            "sender slot @8, reserved @10"
        );
        assert_eq!(&b[12..16], &[0x0d, 0xf0, 0xfe, 0xca], "gid @12");
        assert_eq!(
            &b[16..24],
            &0x1122_3344_5566_7788u64.to_le_bytes(),
            "sent tick @16"
        );
        assert_eq!(
            &b[24..32],
            &((100u64 << 16) | 3).to_le_bytes(),
            "sender hlc @24"
        );
        assert_eq!(&b[32..40], &(102u64 << 16).to_le_bytes(), "arrival hlc @32");
        assert_eq!(&b[40..44], &0x1234_5678u32.to_le_bytes(), "entity hlc @40");
        assert_eq!(&b[44..48], &[0x56, 0x34, 0x12, 5], "payload[0] @44");
        assert_eq!(
            &b[96..100],
            &0xdead_beefu32.to_le_bytes(),
            "payload[13] @96"
        );
        let x = (1i128 << 64) + 1;
        assert_eq!(&b[100..116], &x.to_le_bytes(), "x @100, exact 64.64 bits");
        assert_eq!(&b[116..132], &(-2i128 << 64).to_le_bytes(), "y @116");
        assert_eq!(&b[148..164], &(4i128 << 64).to_le_bytes(), "vx @148");
        assert_eq!(&b[180..196], &(-1i128).to_le_bytes(), "vz @180");
        assert_eq!(&b[228..244], &(-1i128 << 64).to_le_bytes(), "az @228");
        assert_eq!(MigrationIntent::decode(&b), Ok(sample()), "round trip");
    }

    #[test]
    fn invalid_intents_are_refused() {
        let good = sample().to_bytes();
        assert!(
            matches!(
                MigrationIntent::decode(&good[..88]),
                Err(WireError::Length { got: 88, .. })
            ),
            "the original 88-byte intent is refused"
        );
        let mut k = good;
        k[0] = 0;
        assert!(matches!(
            MigrationIntent::decode(&k),
            Err(WireError::Kind { .. })
        ));
        let mut v = good;
        v[1] = 2;
        assert!(matches!(
            MigrationIntent::decode(&v),
            Err(WireError::Version { got: 2, .. })
        ));
        let mut same = good;
        same[3] = 1;
        assert!(matches!(
            MigrationIntent::decode(&same),
            Err(WireError::Range {
                field: "to_zone",
                ..
            })
        ));
        let mut z = good;
        z[2] = 32;
        assert!(matches!(
            MigrationIntent::decode(&z),
            Err(WireError::Range {
                field: "from_zone",
                ..
            })
        ));
        let mut early = sample();
        early.arrival_hlc = Hlc { l: 99, c: 0 };
        assert!(matches!(
            MigrationIntent::decode(&early.to_bytes()),
            Err(WireError::Range {
                field: "arrival_hlc",
                ..
            })
        ));
        let mut far = good;
        far[100 + 15] = 0x40; // x = 2^126 bits = 2^62 um
        assert!(matches!(
            MigrationIntent::decode(&far),
            Err(WireError::Range {
                field: "position",
                ..
            })
        ));
        let mut res = good;
        res[11] = 1;
        assert_eq!(
            MigrationIntent::decode(&res),
            Err(WireError::Reserved { offset: 11 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MigrationIntent::decode(&bytes);
        }

        #[test]
        fn mutated_intents_never_panic_and_valid_ones_round_trip(pos in 0usize..INTENT_LEN, val in any::<u8>()) {
            let mut b = sample().to_bytes();
            b[pos] = val;
            if let Ok(i) = MigrationIntent::decode(&b) {
                prop_assert_eq!(i.to_bytes(), b, "a valid intent re-encodes to the same bytes");
            }
        }
    }
}
