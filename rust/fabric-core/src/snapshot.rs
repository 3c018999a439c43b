//! The world snapshot as plain data: what `FabricSnapshot` (the Godot resource) holds, its
//! validation, and the conversion to and from the core's [`Entity`].
//!
//! Graceful shutdown drains every zone into zone 0, which writes one snapshot of the whole
//! world; on restart each zone takes only the entities whose Hilbert code falls in its range
//! ([`Snapshot::entities_in_zone`]). The Godot class is a thin shell over this struct, so the
//! journal, the zone and tests use snapshots without an engine.
//!
//! Layout (format version [`SNAPSHOT_FORMAT_VERSION`]), every array of `i64` so it maps
//! one-to-one onto Godot's `PackedInt64Array`:
//!
//! | array           | words per entity   | meaning                                              |
//! |-----------------|--------------------|------------------------------------------------------|
//! | `ids`           | 1                  | global id, `0..=u32::MAX`, unique                    |
//! | `positions`     | [`VEC_WORDS`] (6)  | x, y, z micrometres in 64.64: `(high, low)` per axis |
//! | `velocities`    | 6                  | micrometres per tick, same encoding                  |
//! | `accelerations` | 6                  | micrometres per tick squared, same encoding          |
//! | `payloads`      | [`PAYLOAD_WORDS`]  | payload words, `0..=u32::MAX` each                   |
//!
//! A coordinate's 128 bits are stored exactly: `high` is the signed upper half (whole
//! micrometres, floor) and `low` the lower half's bit pattern (the fraction), so nothing is
//! rounded, whatever the distance from the origin. A CRC-32 of every field ([`Snapshot::checksum`])
//! catches a file whose bytes changed after it was written.
//!
//! **The clock.** Version 2 adds `hlc`: the saving zone's hybrid logical clock
//! ([`crate::hlc::Hlc::to_u64`]) when it wrote the snapshot. A zone restarted from the snapshot
//! (its journal superseded by the shutdown, or none) starts its clock at
//! [`Snapshot::clock_floor`], so it never issues a timestamp below one issued before the stop.
//! Version 1 files (written before the field existed) are still read: they carry no clock, so
//! their floor is the saved tick plus [`MAX_HLC_AHEAD_TICKS`], the most a zone's clock runs
//! ahead of its ticks; refusing them would strand every world saved by an older build.

use std::collections::HashMap;

use thiserror::Error;

use crate::coords::{Micros, Vec3, WorldBounds};
use crate::entity::Entity;
use crate::entity_row::PAYLOAD_WORDS;
use crate::hilbert::encode_position;
use crate::hlc::Hlc;
use crate::migration::MAX_HLC_AHEAD_TICKS;
use crate::zones::{MAX_ZONES, ZoneId, ZoneLayout};

/// The snapshot format this build writes: version 2, with the zone's clock (`hlc`).
pub const SNAPSHOT_FORMAT_VERSION: i64 = 2;
/// The first format, without `hlc`: still read (see the module docs, "The clock").
pub const SNAPSHOT_FORMAT_V1: i64 = 1;
/// `i64` words per vector (3 axes x (high, low)).
pub const VEC_WORDS: usize = 6;

/// Why a snapshot is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The format version is neither [`SNAPSHOT_FORMAT_VERSION`] nor [`SNAPSHOT_FORMAT_V1`].
    #[error("unsupported format version {found} (this build reads versions 1 to {supported})")]
    UnsupportedVersion {
        /// Version found in the snapshot.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// A version-1 snapshot holds a clock, which that format does not have: the file was not
    /// written by a version-1 build (its version was changed afterwards).
    #[error("a version-1 snapshot has no clock, yet `hlc` is {0:#x}")]
    ClockInV1(i64),
    /// The zone count is outside `1..=MAX_ZONES`.
    #[error("zone count {0} is outside 1..={MAX_ZONES}")]
    ZoneCount(i64),
    /// The tick is negative.
    #[error("tick {0} is negative")]
    NegativeTick(i64),
    /// An array does not have `per_entity` words for each id.
    #[error(
        "array `{array}` has {found} values, expected {expected} ({per_entity} per entity for {entities} ids)"
    )]
    LengthMismatch {
        /// Name of the array.
        array: &'static str,
        /// Values found.
        found: usize,
        /// Values expected.
        expected: usize,
        /// Values per entity.
        per_entity: usize,
        /// Number of ids.
        entities: usize,
    },
    /// An id does not fit the core's 32-bit global ids.
    #[error("id {id} at index {index} is outside 0..=4294967295")]
    IdOutOfRange {
        /// Index of the entity.
        index: usize,
        /// The id.
        id: i64,
    },
    /// Two entities share an id.
    #[error("id {id} appears twice (indices {first} and {second})")]
    DuplicateId {
        /// The id.
        id: i64,
        /// First index holding it.
        first: usize,
        /// Second index holding it.
        second: usize,
    },
    /// A payload word does not fit 32 bits.
    #[error("payload word {word} of entity {index} is {value}, outside 0..=4294967295")]
    PayloadWordOutOfRange {
        /// Index of the entity.
        index: usize,
        /// Word within the payload.
        word: usize,
        /// The value.
        value: i64,
    },
    /// The stored checksum does not match the content: the data changed after it was sealed.
    #[error(
        "checksum mismatch (stored {stored:#010x}, content gives {computed:#010x}): the data is corrupt"
    )]
    ChecksumMismatch {
        /// Checksum stored with the snapshot.
        stored: i64,
        /// Checksum of the content.
        computed: i64,
    },
    /// The zone asked for is not in the layout.
    #[error("zone {zone} is not in a layout of {count} zones")]
    NoSuchZone {
        /// The zone asked for.
        zone: ZoneId,
        /// Zones in the layout.
        count: usize,
    },
}

/// A snapshot of the world: metadata and one row per entity, in flat `i64` arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Format version, [`SNAPSHOT_FORMAT_VERSION`] when written by this build.
    pub format_version: i64,
    /// Name of the fabric that wrote it.
    pub fabric_name: String,
    /// Zones the fabric had when it was written (`1..=32`).
    pub zone_count: i64,
    /// Tick at which it was taken.
    pub tick: i64,
    /// Unix time (seconds) at which it was taken.
    pub created_unix_time: i64,
    /// The saving zone's hybrid logical clock, [`Hlc::to_u64`] as bits (version 2; 0 in a
    /// version-1 snapshot). See [`Snapshot::clock_floor`].
    pub hlc: i64,
    /// Global ids.
    pub ids: Vec<i64>,
    /// Positions, [`VEC_WORDS`] per entity.
    pub positions: Vec<i64>,
    /// Velocities, [`VEC_WORDS`] per entity.
    pub velocities: Vec<i64>,
    /// Accelerations, [`VEC_WORDS`] per entity.
    pub accelerations: Vec<i64>,
    /// Payloads, [`PAYLOAD_WORDS`] per entity.
    pub payloads: Vec<i64>,
    /// CRC-32 of every other field ([`Snapshot::content_checksum`]).
    pub checksum: i64,
}

/// The two words of a coordinate: signed upper half, lower half's bit pattern.
#[inline]
pub fn micros_to_words(m: Micros) -> [i64; 2] {
    let bits = m.to_bits();
    [(bits >> 64) as i64, bits as u64 as i64]
}

/// The coordinate of two words written by [`micros_to_words`].
#[inline]
pub fn micros_from_words(high: i64, low: i64) -> Micros {
    Micros::from_bits(((high as i128) << 64) | (low as u64 as i128))
}

/// An order-independent digest of entities' exact state (id, 64.64 position, velocity,
/// acceleration, payload; not the HLC): the wrapping sum of each entity's FNV-1a 64 hash. The
/// digests of disjoint sets add up to the digest of their union, so the parts a snapshot is
/// split into at reload (one per zone) can be checked against the whole, bit for bit.
pub fn entity_digest<'a>(entities: impl IntoIterator<Item = &'a Entity>) -> u64 {
    entities.into_iter().fold(0u64, |sum, e| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(&e.global_id.to_le_bytes());
        for v in [&e.position, &e.velocity, &e.acceleration] {
            for axis in v {
                for w in micros_to_words(*axis) {
                    eat(&w.to_le_bytes());
                }
            }
        }
        for w in &e.payload {
            eat(&w.to_le_bytes());
        }
        sum.wrapping_add(h)
    })
}

fn push_vec3(out: &mut Vec<i64>, v: &Vec3) {
    for axis in v {
        out.extend_from_slice(&micros_to_words(*axis));
    }
}

/// Row `i` of a flat array with `per` words per entity (`None` past the end, even for an `i`
/// whose offset would overflow).
fn row(words: &[i64], i: usize, per: usize) -> Option<&[i64]> {
    let start = i.checked_mul(per)?;
    words.get(start..start.checked_add(per)?)
}

fn vec3_at(words: &[i64], i: usize) -> Option<Vec3> {
    let w = row(words, i, VEC_WORDS)?;
    Some([
        micros_from_words(w[0], w[1]),
        micros_from_words(w[2], w[3]),
        micros_from_words(w[4], w[5]),
    ])
}

impl Snapshot {
    /// An empty snapshot of the current format (sealed).
    pub fn new(fabric_name: &str, zone_count: u32, tick: u64, created_unix_time: i64) -> Self {
        Self::from_entities(fabric_name, zone_count, tick, created_unix_time, &[])
    }

    /// A sealed snapshot of `entities`, in the order given.
    pub fn from_entities(
        fabric_name: &str,
        zone_count: u32,
        tick: u64,
        created_unix_time: i64,
        entities: &[Entity],
    ) -> Self {
        let n = entities.len();
        let mut s = Self {
            format_version: SNAPSHOT_FORMAT_VERSION,
            fabric_name: fabric_name.to_owned(),
            zone_count: i64::from(zone_count),
            tick: i64::try_from(tick).unwrap_or(i64::MAX),
            created_unix_time,
            hlc: 0,
            ids: Vec::with_capacity(n),
            positions: Vec::with_capacity(n * VEC_WORDS),
            velocities: Vec::with_capacity(n * VEC_WORDS),
            accelerations: Vec::with_capacity(n * VEC_WORDS),
            payloads: Vec::with_capacity(n * PAYLOAD_WORDS),
            checksum: 0,
        };
        for e in entities {
            s.ids.push(i64::from(e.global_id));
            push_vec3(&mut s.positions, &e.position);
            push_vec3(&mut s.velocities, &e.velocity);
            push_vec3(&mut s.accelerations, &e.acceleration);
            s.payloads.extend(e.payload.iter().map(|&w| i64::from(w)));
        }
        s.seal();
        s
    }

    /// The same snapshot carrying clock `hlc` (sealed again).
    pub fn with_hlc(mut self, hlc: Hlc) -> Self {
        self.hlc = hlc.to_u64() as i64;
        self.seal();
        self
    }

    /// The clock a zone restarted from this snapshot starts at (no earlier): the saved clock,
    /// and never below the saved tick. A version-1 snapshot has no clock: its floor is the
    /// tick plus [`MAX_HLC_AHEAD_TICKS`] (a zone's clock runs ahead of its own ticks by at
    /// most that: arrivals stamped by a neighbour ahead of it, see `migration`), later than
    /// needed but never earlier.
    pub fn clock_floor(&self) -> Hlc {
        let tick = u64::try_from(self.tick).unwrap_or(0);
        if self.format_version == SNAPSHOT_FORMAT_V1 {
            return Hlc::at_tick(tick.saturating_add(MAX_HLC_AHEAD_TICKS));
        }
        Hlc::from_u64(self.hlc as u64).max(Hlc::at_tick(tick))
    }

    /// Number of entities (the length of `ids`).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds no entity.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// CRC-32 of every field but `checksum`, as written into `checksum` by [`Snapshot::seal`].
    pub fn content_checksum(&self) -> i64 {
        let mut h = crc32fast::Hasher::new();
        for v in [
            self.format_version,
            self.zone_count,
            self.tick,
            self.created_unix_time,
        ] {
            h.update(&v.to_le_bytes());
        }
        // Version 1 had no clock: its checksums (files already written) stay valid.
        if self.format_version != SNAPSHOT_FORMAT_V1 {
            h.update(&self.hlc.to_le_bytes());
        }
        h.update(&(self.fabric_name.len() as u64).to_le_bytes());
        h.update(self.fabric_name.as_bytes());
        for array in [
            &self.ids,
            &self.positions,
            &self.velocities,
            &self.accelerations,
            &self.payloads,
        ] {
            h.update(&(array.len() as u64).to_le_bytes());
            // Little-endian bytes through a buffer: one hasher call per 4 KiB, not per value.
            let mut buf = [0u8; 8 * 512];
            for chunk in array.chunks(512) {
                for (out, v) in buf.chunks_exact_mut(8).zip(chunk) {
                    out.copy_from_slice(&v.to_le_bytes());
                }
                h.update(&buf[..chunk.len() * 8]);
            }
        }
        i64::from(h.finalize())
    }

    /// Stores the content's checksum (call after changing any field by hand).
    pub fn seal(&mut self) {
        self.checksum = self.content_checksum();
    }

    /// [`Snapshot::validate`], then the checksum: what a snapshot read back from a file must pass.
    pub fn verify(&self) -> Result<usize, SnapshotError> {
        let n = self.validate()?;
        let computed = self.content_checksum();
        if computed != self.checksum {
            return Err(SnapshotError::ChecksumMismatch {
                stored: self.checksum,
                computed,
            });
        }
        Ok(n)
    }

    /// Checks the version, the metadata, the array lengths, the id and payload ranges and that
    /// ids are unique (not the checksum: see [`Snapshot::verify`]); returns the number of entities.
    pub fn validate(&self) -> Result<usize, SnapshotError> {
        if self.format_version != SNAPSHOT_FORMAT_VERSION
            && self.format_version != SNAPSHOT_FORMAT_V1
        {
            return Err(SnapshotError::UnsupportedVersion {
                found: self.format_version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        if self.format_version == SNAPSHOT_FORMAT_V1 && self.hlc != 0 {
            return Err(SnapshotError::ClockInV1(self.hlc));
        }
        if !(1..=MAX_ZONES as i64).contains(&self.zone_count) {
            return Err(SnapshotError::ZoneCount(self.zone_count));
        }
        if self.tick < 0 {
            return Err(SnapshotError::NegativeTick(self.tick));
        }
        let n = self.ids.len();
        for (array, values, per_entity) in [
            ("positions", &self.positions, VEC_WORDS),
            ("velocities", &self.velocities, VEC_WORDS),
            ("accelerations", &self.accelerations, VEC_WORDS),
            ("payloads", &self.payloads, PAYLOAD_WORDS),
        ] {
            if values.len() != n * per_entity {
                return Err(SnapshotError::LengthMismatch {
                    array,
                    found: values.len(),
                    expected: n * per_entity,
                    per_entity,
                    entities: n,
                });
            }
        }
        let mut seen = HashMap::with_capacity(n);
        for (index, &id) in self.ids.iter().enumerate() {
            if u32::try_from(id).is_err() {
                return Err(SnapshotError::IdOutOfRange { index, id });
            }
            if let Some(first) = seen.insert(id, index) {
                return Err(SnapshotError::DuplicateId {
                    id,
                    first,
                    second: index,
                });
            }
        }
        for (i, &value) in self.payloads.iter().enumerate() {
            if u32::try_from(value).is_err() {
                return Err(SnapshotError::PayloadWordOutOfRange {
                    index: i / PAYLOAD_WORDS,
                    word: i % PAYLOAD_WORDS,
                    value,
                });
            }
        }
        Ok(n)
    }

    /// Position of entity `i`, or `None` when `positions` has no row `i`.
    pub fn position(&self, i: usize) -> Option<Vec3> {
        vec3_at(&self.positions, i)
    }

    /// Entity `i` (`None` when an array lacks row `i` or a value is out of range; call
    /// [`Snapshot::validate`] first to learn why). The HLC is not stored: it is 0.
    pub fn entity(&self, i: usize) -> Option<Entity> {
        let global_id = u32::try_from(*self.ids.get(i)?).ok()?;
        let words = row(&self.payloads, i, PAYLOAD_WORDS)?;
        let mut payload = [0u32; PAYLOAD_WORDS];
        for (p, &w) in payload.iter_mut().zip(words) {
            *p = u32::try_from(w).ok()?;
        }
        Some(Entity {
            global_id,
            position: vec3_at(&self.positions, i)?,
            velocity: vec3_at(&self.velocities, i)?,
            acceleration: vec3_at(&self.accelerations, i)?,
            hlc: 0,
            payload,
        })
    }

    /// Every entity, after [`Snapshot::validate`].
    pub fn entities(&self) -> Result<Vec<Entity>, SnapshotError> {
        let n = self.validate()?;
        Ok((0..n).filter_map(|i| self.entity(i)).collect())
    }

    /// The entities whose Hilbert code (in `bounds`) falls in `zone`'s range of `layout`, after
    /// [`Snapshot::validate`]: what zone `zone` reloads at start.
    pub fn entities_in_zone(
        &self,
        bounds: &WorldBounds,
        layout: &ZoneLayout,
        zone: ZoneId,
    ) -> Result<Vec<Entity>, SnapshotError> {
        let range = layout.range(zone).ok_or(SnapshotError::NoSuchZone {
            zone,
            count: layout.count(),
        })?;
        let n = self.validate()?;
        Ok((0..n)
            .filter(|&i| {
                self.position(i)
                    .is_some_and(|p| range.contains(encode_position(bounds, &p)))
            })
            .filter_map(|i| self.entity(i))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::{metres, micros};

    #[test]
    fn the_digest_of_parts_adds_up_to_the_whole_and_sees_every_bit() {
        let all = sample(50);
        let whole = entity_digest(&all);
        let (a, b) = all.split_at(17);
        assert_eq!(entity_digest(a).wrapping_add(entity_digest(b)), whole);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(entity_digest(&reversed), whole, "order does not matter");
        let mut moved = all.clone();
        moved[3].position[1] = Micros::from_bits(moved[3].position[1].to_bits() ^ 1);
        assert_ne!(entity_digest(&moved), whole, "one bit of one coordinate");
        let mut lost = all.clone();
        lost.pop();
        assert_ne!(entity_digest(&lost), whole);
    }

    fn sample(n: u32) -> Vec<Entity> {
        (0..n)
            .map(|i| {
                let far = metres(10_000_000) + Micros::from_bits(0x1234_5678_9abc_def0 + i as i128);
                let mut e = Entity::at(1000 + i, [far, -far, micros(i as i64 - 7)])
                    .with_velocity([micros(3), Micros::from_bits(-5), micros(-1)])
                    .with_acceleration([Micros::DELTA, Micros::ZERO, -Micros::DELTA]);
                e.payload[0] = 0xFFFF_FFFF;
                e.payload[13] = i;
                e
            })
            .collect()
    }

    #[test]
    fn words_keep_every_bit_of_a_coordinate() {
        for bits in [
            0i128,
            1,
            -1,
            i128::MAX,
            i128::MIN,
            (10_000_000_000_000i128 << 64) | 0xdead_beef,
            -(10_000_000_000_000i128 << 64) + 3,
        ] {
            let m = Micros::from_bits(bits);
            let [h, l] = micros_to_words(m);
            assert_eq!(micros_from_words(h, l), m, "bits {bits:#x}");
        }
        assert_eq!(
            micros_to_words(micros(-1)),
            [-1, 0],
            "whole micrometres: high word"
        );
    }

    #[test]
    fn entities_round_trip_exactly() {
        let es = sample(20);
        let s = Snapshot::from_entities("world", 3, 77, 1_700_000_000, &es);
        assert_eq!(s.validate(), Ok(20));
        assert_eq!(s.positions.len(), 20 * VEC_WORDS);
        assert_eq!(s.payloads.len(), 20 * PAYLOAD_WORDS);
        assert_eq!(s.entities().unwrap(), es, "every field, every bit");
    }

    #[test]
    fn validate_names_each_problem() {
        let good = Snapshot::from_entities("w", 2, 1, 0, &sample(3));

        let mut s = good.clone();
        s.format_version = 3;
        s.seal();
        assert_eq!(
            s.validate(),
            Err(SnapshotError::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        );
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "unsupported format version 3 (this build reads versions 1 to 2)"
        );

        let mut s = good.clone();
        s.velocities.pop();
        s.seal();
        let e = s.validate().unwrap_err();
        assert!(
            matches!(
                e,
                SnapshotError::LengthMismatch {
                    array: "velocities",
                    found: 17,
                    expected: 18,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "array `velocities` has 17 values, expected 18 (6 per entity for 3 ids)"
        );

        let mut s = good.clone();
        s.ids[2] = s.ids[0];
        s.seal();
        assert_eq!(
            s.validate(),
            Err(SnapshotError::DuplicateId {
                id: 1000,
                first: 0,
                second: 2
            })
        );

        let mut s = good.clone();
        s.ids[1] = -4;
        s.seal();
        assert_eq!(
            s.validate(),
            Err(SnapshotError::IdOutOfRange { index: 1, id: -4 })
        );

        let mut s = good.clone();
        s.payloads[PAYLOAD_WORDS + 3] = 1 << 32;
        s.seal();
        assert_eq!(
            s.validate(),
            Err(SnapshotError::PayloadWordOutOfRange {
                index: 1,
                word: 3,
                value: 1 << 32
            })
        );

        let mut s = good.clone();
        s.zone_count = 0;
        s.seal();
        assert_eq!(s.validate(), Err(SnapshotError::ZoneCount(0)));

        let mut s = good.clone();
        s.tick = -1;
        s.seal();
        assert_eq!(s.validate(), Err(SnapshotError::NegativeTick(-1)));
    }

    #[test]
    fn any_changed_value_breaks_the_checksum() {
        let good = Snapshot::from_entities("w", 2, 1, 0, &sample(4));
        assert_eq!(good.verify(), Ok(4));
        let mut s = good.clone();
        s.positions[7] ^= 1 << 40;
        assert_eq!(s.validate(), Ok(4), "the structure is still fine");
        assert!(matches!(
            s.verify(),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
        let mut s = good.clone();
        s.fabric_name.push('x');
        assert!(matches!(
            s.verify(),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
        // Moving a value from one array to the next keeps the word stream but not the lengths.
        let mut s = good;
        let v = s.velocities.remove(0);
        s.positions.push(v);
        assert!(matches!(
            s.validate(),
            Err(SnapshotError::LengthMismatch { .. })
        ));
        assert_ne!(
            s.content_checksum(),
            s.checksum,
            "lengths are part of the checksum"
        );
    }

    #[test]
    fn the_clock_is_kept_and_sealed() {
        let clock = Hlc { l: 70_123, c: 9 };
        let s = Snapshot::from_entities("w", 3, 70_000, 0, &sample(2)).with_hlc(clock);
        assert_eq!(s.format_version, 2);
        assert_eq!(s.verify(), Ok(2), "sealed with the clock");
        assert_eq!(s.hlc as u64, clock.to_u64(), "the clock's 64-bit wire form");
        assert_eq!(s.clock_floor(), clock, "the saved clock, counter included");
        let mut changed = s.clone();
        changed.hlc += 1;
        assert!(
            matches!(
                changed.verify(),
                Err(SnapshotError::ChecksumMismatch { .. })
            ),
            "the checksum covers the clock"
        );
        // A clock behind the saved tick (a snapshot edited by hand): the tick wins.
        let behind = Snapshot::from_entities("w", 3, 70_000, 0, &[]).with_hlc(Hlc::at_tick(5));
        assert_eq!(behind.clock_floor(), Hlc::at_tick(70_000));
    }

    /// A version-1 snapshot, as an older build wrote it: no `hlc`, its checksum over the
    /// fields of that format.
    fn version_1(entities: &[Entity], tick: u64) -> Snapshot {
        let mut s = Snapshot::from_entities("w", 2, tick, 0, entities);
        s.format_version = SNAPSHOT_FORMAT_V1;
        s.seal();
        s
    }

    #[test]
    fn version_1_is_read_with_a_conservative_clock() {
        let es = sample(3);
        let s = version_1(&es, 4_000);
        // The checksum of a version-1 file does not cover `hlc` (the field did not exist), so
        // files written by the older build verify unchanged: pinned here.
        let mut h = crc32fast::Hasher::new();
        for v in [1i64, 2, 4_000, 0] {
            h.update(&v.to_le_bytes());
        }
        h.update(&1u64.to_le_bytes());
        h.update(b"w");
        for array in [
            &s.ids,
            &s.positions,
            &s.velocities,
            &s.accelerations,
            &s.payloads,
        ] {
            h.update(&(array.len() as u64).to_le_bytes());
            for v in array.iter() {
                h.update(&v.to_le_bytes());
            }
        }
        assert_eq!(s.checksum, i64::from(h.finalize()), "version-1 checksum");
        assert_eq!(s.verify(), Ok(3));
        assert_eq!(s.entities().unwrap(), es, "entities read as before");
        assert_eq!(
            s.clock_floor(),
            Hlc::at_tick(4_000 + MAX_HLC_AHEAD_TICKS),
            "no clock saved: the tick plus the most a clock runs ahead"
        );
        let mut forged = s.clone();
        forged.hlc = 77;
        forged.seal();
        assert_eq!(forged.validate(), Err(SnapshotError::ClockInV1(77)));
        assert_eq!(
            forged.validate().unwrap_err().to_string(),
            "a version-1 snapshot has no clock, yet `hlc` is 0x4d"
        );
        // Relabelling a version-2 file as version 1 (or back) breaks its checksum.
        let mut relabelled = Snapshot::from_entities("w", 2, 4_000, 0, &es);
        relabelled.format_version = SNAPSHOT_FORMAT_V1;
        assert!(matches!(
            relabelled.verify(),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn rows_past_the_end_are_none_even_for_huge_indices() {
        let s = Snapshot::from_entities("w", 1, 0, 0, &sample(2));
        for i in [2, usize::MAX / 6, usize::MAX / 6 + 1, usize::MAX] {
            assert_eq!(s.position(i), None, "position({i})");
            assert_eq!(s.entity(i), None, "entity({i})");
        }
    }

    proptest::proptest! {
        /// Whatever a file holds, checking and reading it gives values or typed errors.
        #[test]
        fn any_arrays_validate_without_panicking(
            version in 0i64..4,
            zones in -1i64..40,
            ids in proptest::collection::vec(-3i64..(1i64 << 33), 0..6),
            words in proptest::collection::vec(proptest::num::i64::ANY, 0..120),
            cut in 0usize..120,
        ) {
            let mut s = Snapshot::new("p", 1, 0, 0);
            s.format_version = version;
            s.zone_count = zones;
            s.positions = words.iter().copied().take(cut.min(ids.len() * VEC_WORDS)).collect();
            s.velocities = words.iter().copied().take(ids.len() * VEC_WORDS).collect();
            s.accelerations = s.velocities.clone();
            s.payloads = words.iter().map(|w| w & 0xffff_ffff).take(ids.len() * PAYLOAD_WORDS).collect();
            s.ids = ids;
            let checked = s.validate();
            let read = s.entities();
            proptest::prop_assert_eq!(checked.is_ok(), read.is_ok());
            if let Ok(es) = read {
                proptest::prop_assert_eq!(es.len(), s.len());
            }
            let bounds = WorldBounds::cube_metres(10).unwrap();
            let _ = s.entities_in_zone(&bounds, &ZoneLayout::new(2).unwrap(), 1);
        }
    }

    #[test]
    fn each_zone_reloads_exactly_its_range() {
        let bounds = WorldBounds::cube_metres(100).unwrap();
        let layout = ZoneLayout::new(3).unwrap();
        // A grid of entities spread over the whole world.
        let mut es = Vec::new();
        let mut id = 0;
        for x in (-95..95).step_by(10) {
            for y in (-95..95).step_by(19) {
                for z in (-95..95).step_by(23) {
                    es.push(Entity::at(id, [metres(x), metres(y), metres(z)]));
                    id += 1;
                }
            }
        }
        let s = Snapshot::from_entities("w", 3, 0, 0, &es);
        let mut total = 0;
        for zone in 0..3 {
            let mine = s.entities_in_zone(&bounds, &layout, zone).unwrap();
            assert!(!mine.is_empty(), "zone {zone} gets some entities");
            for e in &mine {
                assert_eq!(
                    layout.zone_of(encode_position(&bounds, &e.position)),
                    zone,
                    "entity {} belongs to zone {zone}",
                    e.global_id
                );
            }
            total += mine.len();
        }
        assert_eq!(total, es.len(), "every entity lands in exactly one zone");
        assert_eq!(
            s.entities_in_zone(&bounds, &layout, 3),
            Err(SnapshotError::NoSuchZone { zone: 3, count: 3 })
        );
    }
}
