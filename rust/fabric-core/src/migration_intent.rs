//! The migration intent: one entity handed from its zone to a neighbour (256 bytes, version 2;
//! the 244-byte version 1 is still accepted).
//!
//! Sent by the owner when an entity has stayed outside its range past the hysteresis. Unlike the
//! original 88-byte intent (`u64 eid | u32 to_zone | u32 arrival | 9 x f64`), it carries the
//! entity's exact 64.64 state and its payload (the original lost both: f64 rounding and no
//! payload), a migration id for acknowledgement and duplicate suppression, and a version.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind `0x4D` (`'M'`) |
//! | 1 | 1 | version = 2 (1: the 244-byte form without the ownership record) |
//! | 2 | 1 | from_zone (0..32) |
//! | 3 | 1 | to_zone (0..32, != from_zone) |
//! | 4 | 4 | migration_id u32 (per sender and receiver, increasing from 1) |
//! | 8 | 2 | sender_slot u16 (echoed in the ack) |
//! | 10 | 1 | flags: bit 0 = an ownership record follows at 244 (version 2; 0 in version 1) |
//! | 11 | 1 | reserved, zero |
//! | 12 | 4 | global_id u32 |
//! | 16 | 8 | sent_tick u64 |
//! | 24 | 8 | sender_hlc u64 (`l << 16 \| c`) |
//! | 32 | 8 | arrival_hlc u64, `>= sender_hlc` |
//! | 40 | 4 | entity hlc u32 (row form) |
//! | 44 | 56 | payload 14 x u32 (class in `payload[0] >> 24`: 0, 1, 4, 5) |
//! | 100 | 48 | position x, y, z: i128 64.64 micrometres, `|v| <= 2^53` um |
//! | 148 | 48 | velocity: i128 64.64 um/tick, `|v| <= 2^40` |
//! | 196 | 48 | acceleration: i128 64.64 um/tick^2, `|v| <= 2^40` |
//! | 244 | 12 | version 2: the entity's [`OwnershipRecord`] (holder, persist mode) when flag bit 0 is set, else zero |
//!
//! Version 2 carries the ownership of a held entity inside the hand-off itself, so it arrives
//! (or is rolled back) together with the entity: there is no second packet to lose or reorder.
//! The record's entity id must be the intent's global id. A version 1 intent decodes with no
//! record (a zone of an older build hands entities over without their holders).

use crate::coords::{MAX_ABS_COORD_MICROS, Micros, Vec3};
use crate::entity::Entity;
use crate::entity_row::{EntityClass, PAYLOAD_WORDS};
use crate::hlc::Hlc;
use crate::ownership::record::{OwnershipRecord, RECORD_LEN};
use crate::wire::{WireError, exact, i128_at, put, u16_at, u32_at, u64_at, zeroed};
use crate::zones::{MAX_ZONES, ZoneId};

/// Size of a migration intent as sent (version 2).
pub const INTENT_LEN: usize = 256;
/// Size of a version 1 intent (accepted, never sent).
pub const INTENT_V1_LEN: usize = 244;
/// Kind byte.
pub const INTENT_KIND: u8 = 0x4D;
/// Version byte of what is sent.
pub const INTENT_VERSION: u8 = 2;
/// Flag bit at offset 10: an ownership record follows.
const FLAG_OWNERSHIP: u8 = 1;

/// Whether `bytes` has the length and kind of a migration intent (either version); it may
/// still fail to decode.
pub fn is_intent(bytes: &[u8]) -> bool {
    matches!(bytes.len(), INTENT_LEN | INTENT_V1_LEN) && bytes[0] == INTENT_KIND
}
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
    /// Its holder and persist mode, when it has an ownership entry (version 2 only).
    pub ownership: Option<OwnershipRecord>,
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
        put(
            out,
            10,
            [u8::from(self.ownership.is_some()) * FLAG_OWNERSHIP, 0],
        );
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
        let record = self.ownership.map_or([0; RECORD_LEN], |r| r.encode());
        put(out, INTENT_V1_LEN, record);
    }

    /// The intent as a new array.
    pub fn to_bytes(&self) -> [u8; INTENT_LEN] {
        let mut out = [0u8; INTENT_LEN];
        self.encode(&mut out);
        out
    }

    /// Decodes and validates an intent: version 2 (256 bytes) or version 1 (244 bytes, no
    /// ownership record).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let mut full = [0u8; INTENT_LEN];
        let version = match input.len() {
            INTENT_V1_LEN => 1,
            _ => INTENT_VERSION,
        };
        if version == 1 {
            full[..INTENT_V1_LEN].copy_from_slice(input);
        } else {
            full = *exact::<INTENT_LEN>("migration intent", input)?;
        }
        let b = &full;
        if b[0] != INTENT_KIND {
            return Err(WireError::Kind {
                what: "migration intent",
                got: b[0] as u32,
            });
        }
        if b[1] != version {
            return Err(WireError::Version {
                what: "migration intent",
                got: b[1],
                supported: INTENT_VERSION,
            });
        }
        let ownership = match b[10] {
            0 if version == 1 => None,
            0 => {
                zeroed(b, INTENT_V1_LEN..INTENT_LEN)?;
                None
            }
            FLAG_OWNERSHIP if version == 2 => {
                let r =
                    OwnershipRecord::decode(&b[INTENT_V1_LEN..]).map_err(|_| WireError::Range {
                        field: "ownership",
                        value: u64::from(b[INTENT_V1_LEN + 8]),
                    })?;
                if r.entity != u32_at(b, 12) {
                    return Err(WireError::Range {
                        field: "ownership entity",
                        value: u64::from(r.entity),
                    });
                }
                Some(r)
            }
            _ => return Err(WireError::Reserved { offset: 10 }),
        };
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
        zeroed(b, 11..12)?;
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
            ownership,
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
            ownership: Some(OwnershipRecord {
                entity: 0xcafe_f00d,
                holder: Some(0x8000_0005),
                persist: crate::ownership::PersistMode::TransientHeld,
            }),
        }
    }

    #[test]
    fn every_offset_is_pinned() {
        let b = sample().to_bytes();
        assert_eq!(b.len(), 256);
        assert_eq!(&b[0..4], &[0x4D, 2, 1, 2], "kind, version, from, to");
        assert_eq!(&b[4..8], &[0x0d, 0x0c, 0x0b, 0x0a], "migration id @4");
        assert_eq!(
            &b[8..12],
            &[0x02, 0x01, 1, 0],
            "sender slot @8, flags @10 (ownership record), reserved @11"
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
        assert_eq!(
            &b[244..256],
            &[0x0d, 0xf0, 0xfe, 0xca, 5, 0, 0, 0x80, 0, 1, 0, 0],
            "ownership record @244: entity, holder, transient_held, has holder"
        );
        assert_eq!(MigrationIntent::decode(&b), Ok(sample()), "round trip");
        let mut bare = sample();
        bare.ownership = None;
        let nb = bare.to_bytes();
        assert_eq!(nb[10], 0, "no record: flag clear");
        assert_eq!(&nb[244..256], &[0; 12], "no record: zeros");
        assert_eq!(MigrationIntent::decode(&nb), Ok(bare), "round trip");
    }

    #[test]
    fn version_1_intents_still_decode_without_a_record() {
        let mut bare = sample();
        bare.ownership = None;
        let mut v1 = [0u8; INTENT_V1_LEN];
        v1.copy_from_slice(&bare.to_bytes()[..INTENT_V1_LEN]);
        v1[1] = 1;
        assert!(is_intent(&v1) && is_intent(&bare.to_bytes()));
        assert_eq!(MigrationIntent::decode(&v1), Ok(bare));
        v1[10] = 1;
        assert_eq!(
            MigrationIntent::decode(&v1),
            Err(WireError::Reserved { offset: 10 }),
            "version 1 has no ownership flag"
        );
        let mut v2_short = bare.to_bytes();
        v2_short[1] = 1;
        assert!(
            matches!(
                MigrationIntent::decode(&v2_short),
                Err(WireError::Version { got: 1, .. })
            ),
            "256 bytes are version 2"
        );
    }

    #[test]
    fn bad_ownership_records_are_refused() {
        let good = sample().to_bytes();
        let mut other = good;
        other[244] ^= 1;
        assert!(
            matches!(
                MigrationIntent::decode(&other),
                Err(WireError::Range {
                    field: "ownership entity",
                    ..
                })
            ),
            "the record names another entity"
        );
        let mut mode = good;
        mode[252] = 9;
        assert!(matches!(
            MigrationIntent::decode(&mode),
            Err(WireError::Range {
                field: "ownership",
                ..
            })
        ));
        let mut stray = sample();
        stray.ownership = None;
        let mut stray = stray.to_bytes();
        stray[250] = 1;
        assert_eq!(
            MigrationIntent::decode(&stray),
            Err(WireError::Reserved { offset: 250 }),
            "record bytes without the flag"
        );
        let mut flags = good;
        flags[10] = 2;
        assert_eq!(
            MigrationIntent::decode(&flags),
            Err(WireError::Reserved { offset: 10 })
        );
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
        v[1] = 3;
        assert!(matches!(
            MigrationIntent::decode(&v),
            Err(WireError::Version { got: 3, .. })
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
