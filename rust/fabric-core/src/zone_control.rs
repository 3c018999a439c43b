//! Zone-to-zone control packets: ping, pong, migration acknowledgements, drain (20 bytes, v1).
//!
//! The first eight bytes keep the original `u32 field | u32 magic` order and magics; version 1
//! adds a version byte, the sender's zone and two more fields, so a control packet names its
//! sender and the exact migration and slots it refers to:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | field u32 (meaning per magic, below) |
//! | 4 | 4 | magic u32 |
//! | 8 | 1 | version = 1 |
//! | 9 | 1 | from_zone (0..32) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | field2 u32 |
//! | 16 | 4 | field3 u32 |
//!
//! | magic | name | field | field2 | field3 |
//! |---|---|---|---|---|
//! | `0x50494E47` PING | ping | sequence | sender tick (low 32 bits) | 0 |
//! | `0x504F4E47` PONG | pong | echoed sequence | echoed tick | 0 |
//! | `0x41434B4B` ACKK | intent accepted | migration id | receiver slot | sender slot |
//! | `0x52454655` REFU | intent refused | migration id | reason (1 full, 2 draining) | sender slot |
//! | `0x434D4954` CMIT | commit: receiver owns it | migration id | receiver slot | 0 |
//! | `0x434D414B` CMAK | commit acknowledged | migration id | receiver slot | 0 |
//! | `0x41425254` ABRT | abort (sender rolled back) | migration id | receiver slot or `0xFFFFFFFF` | 0 |
//! | `0x4142414B` ABAK | abort acknowledged | migration id | 0 | 0 |
//! | `0x4452414E` DRAN | drain toward a zone | target zone | 0 | 0 |
//! | `0x44524E44` DRND | drain done | entities drained | 0 | 0 |
//! | `0x434D4E4B` CMNK | commit refused: never taken, never will be | migration id | 0 | global id |
//! | `0x46524754` FRGT | sender's departure is durable: forget it | migration id | 0 | global id |
//! | `0x4452414B` DRAK | drain done confirmed: nothing pinned from the sender | 0 | 0 | 0 |
//!
//! With durable hand-offs ([`crate::durable_handoff`]) a CMIT carries the entity's global id
//! in `field3` and a CMAK is sent only once the arrival is durable; REFU may give reason 3
//! (the receiver already holds that entity).

use crate::wire::{WireError, exact, put, u32_at, zeroed};
use crate::zones::{MAX_ZONES, ZoneId};

/// Size of a control packet.
pub const CONTROL_LEN: usize = 20;
/// Version byte.
pub const CONTROL_VERSION: u8 = 1;

/// What a control packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `ACKK`: the receiver reserved a slot for the intent.
    Ack,
    /// `REFU`: the receiver refused the intent.
    Refuse,
    /// `CMIT`: the sender freed its slot; the receiver owns the entity.
    Commit,
    /// `CMAK`: commit received.
    CommitAck,
    /// `ABRT`: the sender rolled back; the receiver frees its reservation.
    Abort,
    /// `ABAK`: abort received.
    AbortAck,
    /// `DRAN`: drain every entity toward zone `field`.
    Drain,
    /// `DRND`: drain finished.
    DrainDone,
    /// `DRAK`: drain-done notice received, and nothing from its sender is pinned here any
    /// more: the drained zone may stop.
    DrainDoneAck,
    /// `CMNK`: the receiver has no reservation and no arrival for this commit, and will never
    /// take it: the sender keeps the entity ([`crate::durable_handoff`]).
    CommitNack,
    /// `FRGT`: the sender's departure is durable; the receiver stops answering for it.
    Forget,
}

impl ControlKind {
    /// The magic number on the wire.
    pub const fn magic(self) -> u32 {
        match self {
            Self::Ping => 0x5049_4E47,
            Self::Pong => 0x504F_4E47,
            Self::Ack => 0x4143_4B4B,
            Self::Refuse => 0x5245_4655,
            Self::Commit => 0x434D_4954,
            Self::CommitAck => 0x434D_414B,
            Self::Abort => 0x4142_5254,
            Self::AbortAck => 0x4142_414B,
            Self::Drain => 0x4452_414E,
            Self::DrainDone => 0x4452_4E44,
            Self::DrainDoneAck => 0x4452_414B,
            Self::CommitNack => 0x434D_4E4B,
            Self::Forget => 0x4652_4754,
        }
    }

    /// The kind of a magic number.
    pub fn from_magic(m: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.magic() == m)
    }

    /// Every kind, in wire-documentation order.
    pub const ALL: [Self; 13] = [
        Self::Ping,
        Self::Pong,
        Self::Ack,
        Self::Refuse,
        Self::Commit,
        Self::CommitAck,
        Self::Abort,
        Self::AbortAck,
        Self::Drain,
        Self::DrainDone,
        Self::CommitNack,
        Self::Forget,
        Self::DrainDoneAck,
    ];
}

/// Refusal reason: the receiver has no free slot.
pub const REFUSE_FULL: u32 = 1;
/// Refusal reason: the receiver is draining.
pub const REFUSE_DRAINING: u32 = 2;
/// Refusal reason: the receiver already holds that entity (durable hand-offs).
pub const REFUSE_HELD: u32 = 3;
/// "Receiver slot unknown" in an abort.
pub const NO_SLOT: u32 = u32::MAX;

/// A decoded control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneControl {
    /// What it says.
    pub kind: ControlKind,
    /// Sending zone.
    pub from_zone: ZoneId,
    /// First field (see the table in the module docs).
    pub field: u32,
    /// Second field.
    pub field2: u32,
    /// Third field.
    pub field3: u32,
}

impl ZoneControl {
    /// A control packet.
    pub const fn new(
        kind: ControlKind,
        from_zone: ZoneId,
        field: u32,
        field2: u32,
        field3: u32,
    ) -> Self {
        Self {
            kind,
            from_zone,
            field,
            field2,
            field3,
        }
    }

    /// The packet's bytes.
    pub fn to_bytes(&self) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        put(&mut b, 0, self.field.to_le_bytes());
        put(&mut b, 4, self.kind.magic().to_le_bytes());
        b[8] = CONTROL_VERSION;
        b[9] = self.from_zone;
        put(&mut b, 12, self.field2.to_le_bytes());
        put(&mut b, 16, self.field3.to_le_bytes());
        b
    }

    /// Decodes and validates a control packet.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let b: &[u8; CONTROL_LEN] = exact("zone control", input)?;
        let magic = u32_at(b, 4);
        let kind = ControlKind::from_magic(magic).ok_or(WireError::Kind {
            what: "zone control",
            got: magic,
        })?;
        if b[8] != CONTROL_VERSION {
            return Err(WireError::Version {
                what: "zone control",
                got: b[8],
                supported: CONTROL_VERSION,
            });
        }
        if b[9] as usize >= MAX_ZONES {
            return Err(WireError::Range {
                field: "from_zone",
                value: b[9] as u64,
            });
        }
        zeroed(b, 10..12)?;
        let field = u32_at(b, 0);
        let field2 = u32_at(b, 12);
        let field3 = u32_at(b, 16);
        match kind {
            ControlKind::Drain if field as usize >= MAX_ZONES => Err(WireError::Range {
                field: "drain target",
                value: field as u64,
            }),
            ControlKind::Refuse
                if !matches!(field2, REFUSE_FULL | REFUSE_DRAINING | REFUSE_HELD) =>
            {
                Err(WireError::Range {
                    field: "refuse reason",
                    value: field2 as u64,
                })
            }
            _ => Ok(Self {
                kind,
                from_zone: b[9],
                field,
                field2,
                field3,
            }),
        }
    }
}

/// Whether `bytes` look like a control packet (by length and magic), to dispatch without a full decode.
pub fn is_control(bytes: &[u8]) -> bool {
    bytes.len() == CONTROL_LEN
        && bytes
            .get(4..8)
            .and_then(|m| <[u8; 4]>::try_from(m).ok())
            .is_some_and(|m| ControlKind::from_magic(u32::from_le_bytes(m)).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_offset_is_pinned() {
        let c = ZoneControl::new(ControlKind::Ack, 3, 0x0102_0304, 0x0a0b_0c0d, 7);
        let b = c.to_bytes();
        assert_eq!(&b[0..4], &[4, 3, 2, 1], "field @0");
        assert_eq!(&b[4..8], &0x4143_4B4Bu32.to_le_bytes(), "magic ACKK @4");
        assert_eq!(&b[4..8], b"KKCA", "ACKK little-endian spells KKCA");
        assert_eq!(b[8], 1, "version @8");
        assert_eq!(b[9], 3, "from zone @9");
        assert_eq!(&b[10..12], &[0, 0], "reserved @10");
        assert_eq!(&b[12..16], &[0x0d, 0x0c, 0x0b, 0x0a], "field2 @12");
        assert_eq!(&b[16..20], &[7, 0, 0, 0], "field3 @16");
        assert_eq!(ZoneControl::decode(&b), Ok(c), "round trip");
    }

    #[test]
    fn original_magics_are_kept() {
        assert_eq!(ControlKind::Ping.magic(), 0x50494E47, "PING");
        assert_eq!(ControlKind::Pong.magic(), 0x504F4E47, "PONG");
        assert_eq!(ControlKind::Ack.magic(), 0x41434B4B, "ACKK");
        assert_eq!(ControlKind::Drain.magic(), 0x4452414E, "DRAN");
        assert_eq!(ControlKind::DrainDone.magic(), 0x44524E44, "DRND");
        assert_eq!(&ControlKind::CommitNack.magic().to_be_bytes(), b"CMNK");
        assert_eq!(&ControlKind::Forget.magic().to_be_bytes(), b"FRGT");
        assert_eq!(&ControlKind::DrainDoneAck.magic().to_be_bytes(), b"DRAK");
        for k in ControlKind::ALL {
            assert_eq!(
                ControlKind::from_magic(k.magic()),
                Some(k),
                "{k:?} magic round trip"
            );
        }
    }

    #[test]
    fn invalid_control_packets_are_refused() {
        let good = ZoneControl::new(ControlKind::Ping, 0, 1, 2, 0).to_bytes();
        assert!(
            matches!(
                ZoneControl::decode(&good[..8]),
                Err(WireError::Length { got: 8, .. })
            ),
            "the original 8-byte form is refused"
        );
        let mut m = good;
        m[4] = 0;
        assert!(matches!(
            ZoneControl::decode(&m),
            Err(WireError::Kind { .. })
        ));
        let mut v = good;
        v[8] = 0;
        assert!(matches!(
            ZoneControl::decode(&v),
            Err(WireError::Version { got: 0, .. })
        ));
        let mut z = good;
        z[9] = 40;
        assert!(matches!(
            ZoneControl::decode(&z),
            Err(WireError::Range {
                field: "from_zone",
                ..
            })
        ));
        let drain = ZoneControl::new(ControlKind::Drain, 0, 32, 0, 0).to_bytes();
        assert!(matches!(
            ZoneControl::decode(&drain),
            Err(WireError::Range {
                field: "drain target",
                ..
            })
        ));
        let refuse = ZoneControl::new(ControlKind::Refuse, 0, 1, 9, 0).to_bytes();
        assert!(matches!(
            ZoneControl::decode(&refuse),
            Err(WireError::Range {
                field: "refuse reason",
                ..
            })
        ));
        assert!(is_control(&good), "dispatch recognises a control packet");
        assert!(!is_control(&m), "unknown magic is not a control packet");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ZoneControl::decode(&bytes);
            let _ = is_control(&bytes);
        }

        #[test]
        fn valid_packets_round_trip(kind in 0usize..ControlKind::ALL.len(), from in 0u8..32, f in any::<u32>(), f2 in any::<u32>(), f3 in any::<u32>()) {
            let c = ZoneControl::new(ControlKind::ALL[kind], from, f, f2, f3);
            let b = c.to_bytes();
            match ZoneControl::decode(&b) {
                Ok(d) => prop_assert_eq!(d, c),
                Err(e) => prop_assert!(matches!(c.kind, ControlKind::Drain | ControlKind::Refuse), "{:?} refused: {}", c, e),
            }
        }
    }
}
