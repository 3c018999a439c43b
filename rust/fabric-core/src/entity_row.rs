//! The 100-byte entity row (interest traffic) and the versioned row batch that carries it.
//!
//! Row layout, little-endian, compatible with the original fabric (see `docs/protocol.md`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `global_id` u32 |
//! | 4, 12, 20 | 8 each | x, y, z: f64 micrometres, finite, `|v| <= 2^53` |
//! | 28, 30, 32 | 2 each | vx, vy, vz: i16, scale `32767 / v_max`, `-32768` refused |
//! | 34, 36, 38 | 2 each | ax, ay, az: i16, scale `32767 / (2 v_max)`, `-32768` refused |
//! | 40 | 4 | hlc: `(tick & 0xFFFFFF) << 8 \| counter` |
//! | 44 | 56 | payload: 14 x u32; `payload[0] >> 24` is the entity class (0, 1, 4 or 5) |
//!
//! The row itself has no spare byte for a version, so rows travel in a [`RowBatchHeader`]
//! (4 bytes: kind `0x52`, version 1, source zone, row count 1..=11), at most 1104 bytes a datagram.
//! Positions are f64 micrometres: exact for whole micrometres anywhere in a supported world
//! (extent `<= 2^52` um), unlike the f32 positions the original journal used.

use crate::coords::{MAX_ABS_COORD_MICROS, Micros, Vec3};
use crate::wire::{WireError, exact, f64_at, i16_at, put, u32_at};

/// Size of one row.
pub const ROW_LEN: usize = 100;
/// Number of payload words.
pub const PAYLOAD_WORDS: usize = 14;
/// Kind byte of a row batch.
pub const ROW_BATCH_KIND: u8 = 0x52;
/// Version of the row batch (and of the row layout it carries).
pub const ROW_BATCH_VERSION: u8 = 1;
/// Size of the row batch header.
pub const ROW_BATCH_HEADER_LEN: usize = 4;
/// Most rows in one batch (keeps a batch within 1104 bytes, under any QUIC datagram limit).
pub const MAX_ROWS_PER_BATCH: usize = 11;
/// Quantisation range of the i16 velocity/acceleration fields.
pub const I16_SCALE: i64 = 32767;
/// Largest quantisation range (um per tick) the row helpers accept; larger ranges are clamped.
const MAX_QUANT_RANGE_UM: i64 = 1 << 48;

/// Entity class in the top byte of `payload[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntityClass {
    /// Not classified.
    None = 0,
    /// A player: `payload[0] = 1 << 24 | player_id16 << 8 | bone6 << 2 | dof2`.
    Player = 1,
    /// A bone of a player's skeleton.
    Bone = 4,
    /// An instanced asset: `payload[0] = 5 << 24 | asset_lo & 0xFFFFFF`.
    Asset = 5,
}

impl EntityClass {
    /// The class of a payload's first word, or `None` for an unknown class.
    pub fn of(payload0: u32) -> Option<Self> {
        match payload0 >> 24 {
            0 => Some(Self::None),
            1 => Some(Self::Player),
            4 => Some(Self::Bone),
            5 => Some(Self::Asset),
            _ => None,
        }
    }
}

/// One decoded entity row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntityRow {
    /// Global entity id.
    pub global_id: u32,
    /// Position, micrometres (carried as f64 on the wire).
    pub position: Vec3,
    /// Quantised velocity (see [`quantize_velocity`]).
    pub velocity: [i16; 3],
    /// Quantised acceleration (see [`quantize_acceleration`]).
    pub acceleration: [i16; 3],
    /// HLC in the 32-bit row form.
    pub hlc: u32,
    /// Application payload; `payload[0] >> 24` is the [`EntityClass`].
    pub payload: [u32; PAYLOAD_WORDS],
}

/// Quantises a velocity (um/tick) to the row's i16: `round(v * 32767 / v_max)`, clamped.
pub fn quantize_velocity(v: Micros, v_max_um: i64) -> i16 {
    quantize(v, v_max_um)
}

/// Quantises an acceleration (um/tick^2) to the row's i16: `round(a * 32767 / (2 v_max))`, clamped.
pub fn quantize_acceleration(a: Micros, v_max_um: i64) -> i16 {
    quantize(a, v_max_um.saturating_mul(2))
}

/// Inverse of [`quantize_velocity`] (to the nearest representable value).
pub fn dequantize_velocity(q: i16, v_max_um: i64) -> Micros {
    dequantize(q, v_max_um)
}

/// Inverse of [`quantize_acceleration`].
pub fn dequantize_acceleration(q: i16, v_max_um: i64) -> Micros {
    dequantize(q, v_max_um.saturating_mul(2))
}

fn quantize(v: Micros, range_um: i64) -> i16 {
    let range = (range_um.clamp(1, MAX_QUANT_RANGE_UM) as i128) << 64;
    let clamped = v.to_bits().clamp(-range, range);
    // |clamped| <= 2^112, so the product fits an i128; round half away from zero.
    let num = clamped * I16_SCALE as i128;
    let q = (num + num.signum() * range / 2) / range;
    q.clamp(-(I16_SCALE as i128), I16_SCALE as i128) as i16
}

fn dequantize(q: i16, range_um: i64) -> Micros {
    let q = (q as i128).clamp(-(I16_SCALE as i128), I16_SCALE as i128);
    Micros::from_bits(
        q * ((range_um.clamp(1, MAX_QUANT_RANGE_UM) as i128) << 64) / I16_SCALE as i128,
    )
}

fn coord_from_f64(v: f64, field: &'static str) -> Result<Micros, WireError> {
    if !v.is_finite() || v.abs() > MAX_ABS_COORD_MICROS as f64 {
        return Err(WireError::Range {
            field,
            value: v.to_bits(),
        });
    }
    // Finite and within 2^53: every such f64 is exactly representable in 64.64.
    Micros::checked_from_num(v).ok_or(WireError::Range {
        field,
        value: v.to_bits(),
    })
}

fn check_i16(v: i16, field: &'static str) -> Result<i16, WireError> {
    if v == i16::MIN {
        Err(WireError::Range {
            field,
            value: v as u16 as u64,
        })
    } else {
        Ok(v)
    }
}

impl EntityRow {
    /// Writes the row into `out`.
    pub fn encode(&self, out: &mut [u8; ROW_LEN]) {
        put(out, 0, self.global_id.to_le_bytes());
        for k in 0..3 {
            put(
                out,
                4 + 8 * k,
                self.position[k].to_num::<f64>().to_le_bytes(),
            );
            put(out, 28 + 2 * k, self.velocity[k].to_le_bytes());
            put(out, 34 + 2 * k, self.acceleration[k].to_le_bytes());
        }
        put(out, 40, self.hlc.to_le_bytes());
        for (i, w) in self.payload.iter().enumerate() {
            put(out, 44 + 4 * i, w.to_le_bytes());
        }
    }

    /// The row as a new array.
    pub fn to_bytes(&self) -> [u8; ROW_LEN] {
        let mut out = [0u8; ROW_LEN];
        self.encode(&mut out);
        out
    }

    /// Decodes and validates one row.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let b: &[u8; ROW_LEN] = exact("entity row", input)?;
        const POS: [&str; 3] = ["x", "y", "z"];
        const VEL: [&str; 3] = ["vx", "vy", "vz"];
        const ACC: [&str; 3] = ["ax", "ay", "az"];
        let mut position = [Micros::ZERO; 3];
        let mut velocity = [0i16; 3];
        let mut acceleration = [0i16; 3];
        for k in 0..3 {
            position[k] = coord_from_f64(f64_at(b, 4 + 8 * k), POS[k])?;
            velocity[k] = check_i16(i16_at(b, 28 + 2 * k), VEL[k])?;
            acceleration[k] = check_i16(i16_at(b, 34 + 2 * k), ACC[k])?;
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
        Ok(Self {
            global_id: u32_at(b, 0),
            position,
            velocity,
            acceleration,
            hlc: u32_at(b, 40),
            payload,
        })
    }
}

/// Header of a datagram of entity rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowBatchHeader {
    /// Zone that sent the rows.
    pub from_zone: u8,
    /// Number of rows that follow (1..=11).
    pub count: u8,
}

impl RowBatchHeader {
    /// Writes the header.
    pub fn encode(&self) -> [u8; ROW_BATCH_HEADER_LEN] {
        [
            ROW_BATCH_KIND,
            ROW_BATCH_VERSION,
            self.from_zone,
            self.count,
        ]
    }

    /// Decodes a batch: the header and the rows' bytes (`count * 100`), each to decode with
    /// [`EntityRow::decode`].
    pub fn decode(input: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let Some((head, rows)) = input.split_first_chunk::<ROW_BATCH_HEADER_LEN>() else {
            return Err(WireError::Length {
                what: "row batch",
                expected: ROW_BATCH_HEADER_LEN + ROW_LEN,
                got: input.len(),
            });
        };
        if head[0] != ROW_BATCH_KIND {
            return Err(WireError::Kind {
                what: "row batch",
                got: head[0] as u32,
            });
        }
        if head[1] != ROW_BATCH_VERSION {
            return Err(WireError::Version {
                what: "row batch",
                got: head[1],
                supported: ROW_BATCH_VERSION,
            });
        }
        if head[2] as usize >= crate::zones::MAX_ZONES {
            return Err(WireError::Range {
                field: "from_zone",
                value: head[2] as u64,
            });
        }
        let count = head[3] as usize;
        if count == 0 || count > MAX_ROWS_PER_BATCH {
            return Err(WireError::Range {
                field: "count",
                value: count as u64,
            });
        }
        if rows.len() != count * ROW_LEN {
            return Err(WireError::Length {
                what: "row batch",
                expected: ROW_BATCH_HEADER_LEN + count * ROW_LEN,
                got: input.len(),
            });
        }
        Ok((
            Self {
                from_zone: head[2],
                count: head[3],
            },
            rows,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::micros;
    use proptest::prelude::*;

    fn sample() -> EntityRow {
        let mut payload = [0u32; PAYLOAD_WORDS];
        for (i, w) in payload.iter_mut().enumerate() {
            *w = 0x0100_0000 + i as u32;
        }
        EntityRow {
            global_id: 0x0403_0201,
            position: [micros(1), micros(-2), micros(3_000_000)],
            velocity: [1, -1, 32767],
            acceleration: [-32767, 2, 3],
            hlc: 0xAABB_CCDD,
            payload,
        }
    }

    #[test]
    fn every_offset_is_pinned() {
        let b = sample().to_bytes();
        assert_eq!(&b[0..4], &[1, 2, 3, 4], "global_id @0");
        assert_eq!(&b[4..12], &1.0f64.to_le_bytes(), "x @4 as f64 um");
        assert_eq!(&b[12..20], &(-2.0f64).to_le_bytes(), "y @12");
        assert_eq!(&b[20..28], &3.0e6f64.to_le_bytes(), "z @20");
        assert_eq!(&b[28..34], &[1, 0, 0xff, 0xff, 0xff, 0x7f], "vx,vy,vz @28");
        assert_eq!(&b[34..40], &[0x01, 0x80, 2, 0, 3, 0], "ax,ay,az @34");
        assert_eq!(&b[40..44], &[0xDD, 0xCC, 0xBB, 0xAA], "hlc @40");
        assert_eq!(&b[44..48], &[0, 0, 0, 1], "payload[0] @44, class byte last");
        assert_eq!(&b[96..100], &[13, 0, 0, 1], "payload[13] @96");
        assert_eq!(EntityRow::decode(&b), Ok(sample()), "round trip");
    }

    #[test]
    fn invalid_rows_are_refused() {
        let good = sample().to_bytes();
        assert!(matches!(
            EntityRow::decode(&good[..99]),
            Err(WireError::Length { got: 99, .. })
        ));
        let mut nan = good;
        nan[4..12].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(matches!(
            EntityRow::decode(&nan),
            Err(WireError::Range { field: "x", .. })
        ));
        let mut far = good;
        far[20..28].copy_from_slice(&1e17f64.to_le_bytes());
        assert!(matches!(
            EntityRow::decode(&far),
            Err(WireError::Range { field: "z", .. })
        ));
        let mut vmin = good;
        vmin[30..32].copy_from_slice(&i16::MIN.to_le_bytes());
        assert!(matches!(
            EntityRow::decode(&vmin),
            Err(WireError::Range { field: "vy", .. })
        ));
        let mut class = good;
        class[47] = 2;
        assert_eq!(
            EntityRow::decode(&class),
            Err(WireError::Range {
                field: "class",
                value: 2
            })
        );
    }

    #[test]
    fn quantisation_scales() {
        let vmax = 500_000; // 10 m/s at 20 Hz
        assert_eq!(
            quantize_velocity(micros(vmax), vmax),
            32767,
            "v_max -> 32767"
        );
        assert_eq!(
            quantize_velocity(micros(-2 * vmax), vmax),
            -32767,
            "clamped"
        );
        assert_eq!(
            quantize_velocity(micros(vmax / 2), vmax),
            16384,
            "half, rounded"
        );
        assert_eq!(
            quantize_acceleration(micros(vmax), vmax),
            16384,
            "a scale is 2 v_max"
        );
        let back = dequantize_velocity(16384, vmax);
        assert!(
            (back - micros(vmax / 2)).abs() < micros(16),
            "dequantised within one step (15.26 um): {back}"
        );
    }

    #[test]
    fn batch_header() {
        let h = RowBatchHeader {
            from_zone: 3,
            count: 2,
        };
        let mut bytes = h.encode().to_vec();
        assert_eq!(bytes, [0x52, 1, 3, 2], "kind, version, zone, count");
        bytes.extend_from_slice(&sample().to_bytes());
        bytes.extend_from_slice(&sample().to_bytes());
        let (d, rows) = RowBatchHeader::decode(&bytes).unwrap();
        assert_eq!(d, h, "header round trip");
        assert_eq!(rows.len(), 200, "two rows follow");
        bytes.pop();
        assert!(matches!(
            RowBatchHeader::decode(&bytes),
            Err(WireError::Length { .. })
        ));
        assert!(matches!(
            RowBatchHeader::decode(&[0x52, 2, 0, 1]),
            Err(WireError::Version { got: 2, .. })
        ));
        assert!(matches!(
            RowBatchHeader::decode(&[0x52, 1, 0, 12]),
            Err(WireError::Range { field: "count", .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = EntityRow::decode(&bytes);
            if let Ok((h, rows)) = RowBatchHeader::decode(&bytes) {
                prop_assert_eq!(rows.len(), h.count as usize * ROW_LEN);
                for r in rows.chunks(ROW_LEN) {
                    let _ = EntityRow::decode(r);
                }
            }
        }

        #[test]
        fn arbitrary_rows_never_panic_and_valid_ones_round_trip(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::collection::vec(any::<u8>(), 68)) {
            let mut row = [0u8; ROW_LEN];
            row[..32].copy_from_slice(&bytes);
            row[32..].copy_from_slice(&tail);
            if let Ok(r) = EntityRow::decode(&row) {
                let again = EntityRow::decode(&r.to_bytes()).unwrap();
                prop_assert_eq!(again, r);
            }
        }

        #[test]
        fn whole_micrometre_positions_are_exact(x in -(1i64 << 52)..(1i64 << 52), gid in any::<u32>()) {
            let mut r = sample();
            r.global_id = gid;
            r.position = [micros(x), micros(-x), micros(x / 3)];
            prop_assert_eq!(EntityRow::decode(&r.to_bytes()).unwrap(), r);
        }
    }
}
