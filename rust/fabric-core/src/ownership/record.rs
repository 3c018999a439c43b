//! The ownership record: 12 bytes that travel with an entity handed off to another zone, so
//! its holder and persist mode hold there too.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | entity global id (u32 LE) |
//! | 4 | 4 | holder: the holder's avatar global id (u32 LE), 0 when the flag says none |
//! | 8 | 1 | persist mode code: 0 `transient_held`, 1 `placed_room`, 2 `placed_saved` |
//! | 9 | 1 | flags: bit 0 = has a holder; other bits 0 |
//! | 10 | 2 | reserved, 0 |
//!
//! The record goes beside the entity's row, not inside it: the hand-off and ghost rows keep
//! their pinned formats, and an entity without an entry ([`super::Ownership::export`] gives
//! `None`) carries nothing. [`OwnershipRecord::decode`] validates every byte.

use thiserror::Error;

use super::persist::PersistMode;

/// Length of an encoded record.
pub const RECORD_LEN: usize = 12;

/// Why bytes are not an ownership record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Not [`RECORD_LEN`] bytes.
    #[error("ownership record is {0} bytes, expected {RECORD_LEN}")]
    Length(usize),
    /// The persist mode code is not 0, 1 or 2.
    #[error("unknown persist mode code {0}")]
    Persist(u8),
    /// Unknown flag bits, non-zero reserved bytes, or a holder id without the holder flag.
    #[error("ownership record has unknown flags or non-zero reserved bytes")]
    Reserved,
}

/// Holder and persist mode of one entity, as handed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipRecord {
    /// The entity.
    pub entity: u32,
    /// Its holder's avatar id, if held.
    pub holder: Option<u32>,
    /// Its persist mode.
    pub persist: PersistMode,
}

impl OwnershipRecord {
    /// The 12 bytes of the record.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..4].copy_from_slice(&self.entity.to_le_bytes());
        out[4..8].copy_from_slice(&self.holder.unwrap_or(0).to_le_bytes());
        out[8] = self.persist.code();
        out[9] = u8::from(self.holder.is_some());
        out
    }

    /// Decodes and validates a record.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let b: &[u8; RECORD_LEN] = b.try_into().map_err(|_| RecordError::Length(b.len()))?;
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let persist = PersistMode::from_code(b[8]).ok_or(RecordError::Persist(b[8]))?;
        let holder = match b[9] {
            0 if word(4) == 0 => None,
            1 => Some(word(4)),
            _ => return Err(RecordError::Reserved),
        };
        if b[10] != 0 || b[11] != 0 {
            return Err(RecordError::Reserved);
        }
        Ok(Self {
            entity: word(0),
            holder,
            persist,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_are_pinned() {
        let r = OwnershipRecord {
            entity: 0x0403_0201,
            holder: Some(0x8000_0005),
            persist: PersistMode::PlacedSaved,
        };
        assert_eq!(
            r.encode(),
            [1, 2, 3, 4, 5, 0, 0, 0x80, 2, 1, 0, 0],
            "entity, holder, persist, flags, reserved"
        );
        let free = OwnershipRecord {
            entity: 9,
            holder: None,
            persist: PersistMode::TransientHeld,
        };
        assert_eq!(free.encode(), [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(OwnershipRecord::decode(&r.encode()), Ok(r));
        assert_eq!(OwnershipRecord::decode(&free.encode()), Ok(free));
    }

    #[test]
    fn bad_bytes_get_typed_errors() {
        let good = OwnershipRecord {
            entity: 1,
            holder: Some(2),
            persist: PersistMode::PlacedRoom,
        }
        .encode();
        assert_eq!(
            OwnershipRecord::decode(&good[..11]),
            Err(RecordError::Length(11))
        );
        let mut b = good;
        b[8] = 3;
        assert_eq!(OwnershipRecord::decode(&b), Err(RecordError::Persist(3)));
        let mut b = good;
        b[9] = 2;
        assert_eq!(OwnershipRecord::decode(&b), Err(RecordError::Reserved));
        let mut b = good;
        b[9] = 0;
        assert_eq!(
            OwnershipRecord::decode(&b),
            Err(RecordError::Reserved),
            "a holder id without the flag"
        );
        let mut b = good;
        b[11] = 1;
        assert_eq!(OwnershipRecord::decode(&b), Err(RecordError::Reserved));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_error_and_valid_ones_round_trip(
            b in proptest::collection::vec(any::<u8>(), 0..16)
        ) {
            if let Ok(r) = OwnershipRecord::decode(&b) {
                let again = r.encode();
                prop_assert_eq!(again.as_slice(), b.as_slice());
            }
        }
    }
}
