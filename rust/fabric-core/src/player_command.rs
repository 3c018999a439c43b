//! Player command packets (opcodes 0..=4), one canonical 100-byte layout, version 1.
//!
//! A player packet is shaped like an entity row ([`crate::entity_row`]) so the first 44 bytes
//! (id, f64 position, i16 velocity and acceleration, hlc) mean the same thing; the opcode sits at
//! byte 44 as in the original. The original had three incompatible CMD_INSTANCE_ASSET layouts;
//! this is the only one, and every unused byte must be zero:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `global_id` u32: the player's entity |
//! | 4, 12, 20 | 8 each | x, y, z: f64 micrometres (where the command applies) |
//! | 28, 30, 32 | 2 each | vx, vy, vz i16 (row scale) |
//! | 34, 36, 38 | 2 each | ax, ay, az i16 (row scale) |
//! | 40 | 4 | hlc u32 (row form) |
//! | 44 | 1 | opcode: 0 position upsert, 1 velocity spike, 2 nudge, 3 stroke knot, 4 instance asset |
//! | 45 | 1 | version = 1 |
//! | 46 | 2 | reserved, zero |
//! | 48 | 4 | arg0: nudge target gid / stroke id / asset id high 32 bits; otherwise zero |
//! | 52 | 4 | arg1: stroke RGBA / asset id low 32 bits; otherwise zero |
//! | 56 | 12 | reserved, zero (the C++ parser's f32 position; refused) |
//! | 68 | 4 | request u32: CMD_INSTANCE_ASSET's request number (0 = no acknowledgement asked); otherwise zero |
//! | 72 | 28 | reserved, zero |
//!
//! CMD_INSTANCE_ASSET keeps the C++ parser's asset id at 48/52, but the position is the f64
//! row position at 4/12/20 (the C++ parser's f32 position at 56/60/64 is gone), and the asset id
//! must not be zero. Its request number, chosen by the client, comes back in the zone's
//! `placed` / `place_refused` answer (`docs/session-protocol.md`).

use crate::coords::Vec3;
use crate::entity_row::{EntityRow, PAYLOAD_WORDS, ROW_LEN};
use crate::wire::{WireError, exact, put, u32_at};

/// Size of a player command packet.
pub const PLAYER_PACKET_LEN: usize = 100;
/// Version byte of the layout.
pub const PLAYER_PACKET_VERSION: u8 = 1;
/// Opcode: position upsert.
pub const CMD_POSITION_UPSERT: u8 = 0;
/// Opcode: velocity spike applied to entities within 5 m of the position.
pub const CMD_VELOCITY_SPIKE: u8 = 1;
/// Opcode: nudge another entity.
pub const CMD_NUDGE: u8 = 2;
/// Opcode: a knot of a paint stroke.
pub const CMD_STROKE_KNOT: u8 = 3;
/// Opcode: instance an asset (the authority zone fetches the manifest and allocates a slot).
pub const CMD_INSTANCE_ASSET: u8 = 0x04;
/// Offset of CMD_INSTANCE_ASSET's request number (u32 LE).
pub const REQUEST_OFFSET: usize = 68;

/// What the player asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayerCommand {
    /// Set the player's position, velocity and acceleration.
    PositionUpsert,
    /// Add the packet's velocity to entities within 5 m of its position.
    VelocitySpike,
    /// Push entity `target` with the packet's velocity.
    Nudge {
        /// Global id of the entity to push.
        target: u32,
    },
    /// One knot of a paint stroke at the packet's position.
    StrokeKnot {
        /// Stroke id.
        stroke_id: u32,
        /// Colour, RGBA8.
        rgba: u32,
    },
    /// CMD_INSTANCE_ASSET: instance asset `asset_id` at the packet's position.
    InstanceAsset {
        /// Asset id (non-zero).
        asset_id: u64,
        /// The client's request number, echoed in the zone's answer (0: no answer asked).
        request: u32,
    },
}

impl PlayerCommand {
    /// The opcode byte.
    pub fn opcode(&self) -> u8 {
        match self {
            Self::PositionUpsert => CMD_POSITION_UPSERT,
            Self::VelocitySpike => CMD_VELOCITY_SPIKE,
            Self::Nudge { .. } => CMD_NUDGE,
            Self::StrokeKnot { .. } => CMD_STROKE_KNOT,
            Self::InstanceAsset { .. } => CMD_INSTANCE_ASSET,
        }
    }

    fn args(&self) -> (u32, u32) {
        match *self {
            Self::PositionUpsert | Self::VelocitySpike => (0, 0),
            Self::Nudge { target } => (target, 0),
            Self::StrokeKnot { stroke_id, rgba } => (stroke_id, rgba),
            Self::InstanceAsset { asset_id, .. } => ((asset_id >> 32) as u32, asset_id as u32),
        }
    }
}

/// A decoded player packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerPacket {
    /// The player's entity.
    pub global_id: u32,
    /// Position, micrometres.
    pub position: Vec3,
    /// Quantised velocity (row scale).
    pub velocity: [i16; 3],
    /// Quantised acceleration (row scale).
    pub acceleration: [i16; 3],
    /// Client HLC, row form.
    pub hlc: u32,
    /// The command.
    pub command: PlayerCommand,
}

impl PlayerPacket {
    /// Writes the packet into `out`.
    pub fn encode(&self, out: &mut [u8; PLAYER_PACKET_LEN]) {
        // Reuse the row encoder for bytes 0..44, then overwrite the command part.
        let row = EntityRow {
            global_id: self.global_id,
            position: self.position,
            velocity: self.velocity,
            acceleration: self.acceleration,
            hlc: self.hlc,
            payload: [0; PAYLOAD_WORDS],
        };
        let mut bytes = [0u8; ROW_LEN];
        row.encode(&mut bytes);
        *out = bytes;
        out[44] = self.command.opcode();
        out[45] = PLAYER_PACKET_VERSION;
        let (a0, a1) = self.command.args();
        put(out, 48, a0.to_le_bytes());
        put(out, 52, a1.to_le_bytes());
        if let PlayerCommand::InstanceAsset { request, .. } = self.command {
            put(out, REQUEST_OFFSET, request.to_le_bytes());
        }
    }

    /// The packet as a new array.
    pub fn to_bytes(&self) -> [u8; PLAYER_PACKET_LEN] {
        let mut out = [0u8; PLAYER_PACKET_LEN];
        self.encode(&mut out);
        out
    }

    /// Decodes and validates a player packet.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let b: &[u8; PLAYER_PACKET_LEN] = exact("player packet", input)?;
        if b[45] != PLAYER_PACKET_VERSION {
            return Err(WireError::Version {
                what: "player packet",
                got: b[45],
                supported: PLAYER_PACKET_VERSION,
            });
        }
        let opcode = b[44];
        if opcode > CMD_INSTANCE_ASSET {
            return Err(WireError::Opcode(opcode));
        }
        crate::wire::zeroed(b, 46..48)?;
        crate::wire::zeroed(b, 56..REQUEST_OFFSET)?;
        crate::wire::zeroed(b, REQUEST_OFFSET + 4..100)?;
        let request = u32_at(b, REQUEST_OFFSET);
        if opcode != CMD_INSTANCE_ASSET {
            crate::wire::zeroed(b, REQUEST_OFFSET..REQUEST_OFFSET + 4)?;
        }
        let a0 = u32_at(b, 48);
        let a1 = u32_at(b, 52);
        let command = match opcode {
            CMD_POSITION_UPSERT | CMD_VELOCITY_SPIKE => {
                crate::wire::zeroed(b, 48..56)?;
                if opcode == CMD_POSITION_UPSERT {
                    PlayerCommand::PositionUpsert
                } else {
                    PlayerCommand::VelocitySpike
                }
            }
            CMD_NUDGE => {
                crate::wire::zeroed(b, 52..56)?;
                PlayerCommand::Nudge { target: a0 }
            }
            CMD_STROKE_KNOT => PlayerCommand::StrokeKnot {
                stroke_id: a0,
                rgba: a1,
            },
            _ => {
                let asset_id = ((a0 as u64) << 32) | a1 as u64;
                if asset_id == 0 {
                    return Err(WireError::Range {
                        field: "asset_id",
                        value: 0,
                    });
                }
                PlayerCommand::InstanceAsset { asset_id, request }
            }
        };
        // Validate the row-shaped head with the row decoder (payload bytes 44.. are ours and
        // already checked, so give it a zero payload).
        let mut head = [0u8; ROW_LEN];
        head[..44].copy_from_slice(&b[..44]);
        let row = EntityRow::decode(&head)?;
        Ok(Self {
            global_id: row.global_id,
            position: row.position,
            velocity: row.velocity,
            acceleration: row.acceleration,
            hlc: row.hlc,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::micros;
    use proptest::prelude::*;

    fn packet(command: PlayerCommand) -> PlayerPacket {
        PlayerPacket {
            global_id: 7,
            position: [micros(10), micros(20), micros(-30)],
            velocity: [1, 2, 3],
            acceleration: [4, 5, 6],
            hlc: 0x0102_0304,
            command,
        }
    }

    #[test]
    fn instance_asset_offsets_are_pinned() {
        let p = packet(PlayerCommand::InstanceAsset {
            asset_id: 0x1122_3344_5566_7788,
            request: 0xA1B2_C3D4,
        });
        let b = p.to_bytes();
        assert_eq!(&b[0..4], &[7, 0, 0, 0], "gid @0");
        assert_eq!(&b[4..12], &10.0f64.to_le_bytes(), "x @4 f64");
        assert_eq!(&b[12..20], &20.0f64.to_le_bytes(), "y @12 f64");
        assert_eq!(&b[20..28], &(-30.0f64).to_le_bytes(), "z @20 f64");
        assert_eq!(
            &b[28..40],
            &[1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0],
            "v, a @28/@34"
        );
        assert_eq!(&b[40..44], &[4, 3, 2, 1], "hlc @40");
        assert_eq!(b[44], 0x04, "opcode CMD_INSTANCE_ASSET @44");
        assert_eq!(b[45], 1, "version @45");
        assert_eq!(&b[46..48], &[0, 0], "reserved @46");
        assert_eq!(&b[48..52], &[0x44, 0x33, 0x22, 0x11], "asset id high @48");
        assert_eq!(&b[52..56], &[0x88, 0x77, 0x66, 0x55], "asset id low @52");
        assert!(b[56..68].iter().all(|&x| x == 0), "56..68 reserved zero");
        assert_eq!(&b[68..72], &[0xD4, 0xC3, 0xB2, 0xA1], "request @68");
        assert!(b[72..].iter().all(|&x| x == 0), "72..100 reserved zero");
        assert_eq!(PlayerPacket::decode(&b), Ok(p), "round trip");
    }

    #[test]
    fn other_commands_round_trip_with_their_args() {
        for (cmd, a0, a1) in [
            (PlayerCommand::PositionUpsert, 0u32, 0u32),
            (PlayerCommand::VelocitySpike, 0, 0),
            (PlayerCommand::Nudge { target: 99 }, 99, 0),
            (
                PlayerCommand::StrokeKnot {
                    stroke_id: 5,
                    rgba: 0xff00_80ff,
                },
                5,
                0xff00_80ff,
            ),
        ] {
            let b = packet(cmd).to_bytes();
            assert_eq!(b[44], cmd.opcode(), "opcode of {cmd:?}");
            assert_eq!(&b[48..52], &a0.to_le_bytes(), "arg0 of {cmd:?}");
            assert_eq!(&b[52..56], &a1.to_le_bytes(), "arg1 of {cmd:?}");
            assert_eq!(
                PlayerPacket::decode(&b),
                Ok(packet(cmd)),
                "round trip {cmd:?}"
            );
        }
    }

    #[test]
    fn invalid_packets_are_refused() {
        let good = packet(PlayerCommand::Nudge { target: 1 }).to_bytes();
        assert!(
            matches!(
                PlayerPacket::decode(&[0u8; 128]),
                Err(WireError::Length { got: 128, .. })
            ),
            "the 128-byte console layout is refused"
        );
        let mut v0 = good;
        v0[45] = 0;
        assert!(matches!(
            PlayerPacket::decode(&v0),
            Err(WireError::Version { got: 0, .. })
        ));
        let mut op = good;
        op[44] = 5;
        assert_eq!(PlayerPacket::decode(&op), Err(WireError::Opcode(5)));
        let mut f32_layout = packet(PlayerCommand::InstanceAsset {
            asset_id: 1,
            request: 0,
        })
        .to_bytes();
        f32_layout[56..60].copy_from_slice(&1.5f32.to_le_bytes());
        assert!(
            matches!(
                PlayerPacket::decode(&f32_layout),
                Err(WireError::Reserved { offset: 58 })
            ),
            "the old f32 position at 56 is refused"
        );
        let mut stray = good;
        stray[52] = 1;
        assert_eq!(
            PlayerPacket::decode(&stray),
            Err(WireError::Reserved { offset: 52 }),
            "nudge has no arg1"
        );
        let mut request_on_nudge = good;
        request_on_nudge[68] = 1;
        assert_eq!(
            PlayerPacket::decode(&request_on_nudge),
            Err(WireError::Reserved { offset: 68 }),
            "only CMD_INSTANCE_ASSET carries a request number"
        );
        let zero_asset = packet(PlayerCommand::InstanceAsset {
            asset_id: 0,
            request: 1,
        })
        .to_bytes();
        assert!(matches!(
            PlayerPacket::decode(&zero_asset),
            Err(WireError::Range {
                field: "asset_id",
                ..
            })
        ));
        let mut nan = good;
        nan[12..20].copy_from_slice(&f64::INFINITY.to_le_bytes());
        assert!(matches!(
            PlayerPacket::decode(&nan),
            Err(WireError::Range { field: "y", .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PlayerPacket::decode(&bytes);
        }

        #[test]
        fn mutated_packets_never_panic_and_valid_ones_round_trip(pos in 0usize..100, val in any::<u8>(), asset in 1u64.., request in any::<u32>()) {
            let mut b = packet(PlayerCommand::InstanceAsset { asset_id: asset, request }).to_bytes();
            b[pos] = val;
            if let Ok(p) = PlayerPacket::decode(&b) {
                prop_assert_eq!(PlayerPacket::decode(&p.to_bytes()).unwrap(), p);
            }
        }
    }
}
