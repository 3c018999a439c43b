//! Player commands as `FabricWorld` sends them: a command kind and its arguments (metres and
//! metres per second, as a game thinks of them) become the 100-byte player packet the zone
//! accepts (`fabric_core::player_command`, framed by `fabric_core::command_gate::command_frame`).
//!
//! Plain Rust: `FabricWorld::send_command` only converts a Godot `Dictionary` into
//! [`CommandArgs`]. What the zone checks (rate, authority, bounds, speed) it still checks; what
//! cannot be said on the wire at all (an unknown kind, a speed the i16 velocity would clamp, a
//! zero asset id, a non-finite number) is refused here with a typed error, before sending.

use fabric_core::command_gate::{COMMAND_FRAME_LEN, command_frame};
use fabric_core::coords::Micros;
use fabric_core::entity_row::quantize_velocity;
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use thiserror::Error;

/// Why a command was not sent.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CommandError {
    /// The kind is not one of the five commands.
    #[error(
        "unknown command kind {0:?} (position_upsert, velocity_spike, nudge, stroke_knot, instance_asset)"
    )]
    UnknownKind(String),
    /// No avatar yet (and no `entity` given).
    #[error("no avatar yet: wait for avatar_spawned")]
    NoAvatar,
    /// Not connected to a zone.
    #[error("not connected to a zone")]
    NotConnected,
    /// A position or velocity component is NaN or infinite.
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
    /// Faster than the zone's top speed (it would be clamped on the wire).
    #[error("speed {speed:.2} m/s above the top speed {max:.2} m/s")]
    TooFast {
        /// Asked speed, m/s.
        speed: f64,
        /// Top speed, m/s.
        max: f64,
    },
    /// `instance_asset` needs a non-zero asset id.
    #[error("instance_asset needs a non-zero asset_id")]
    ZeroAsset,
}

/// The five player commands (opcodes 0..=4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Set the entity's position and velocity (opcode 0).
    PositionUpsert,
    /// Add a velocity to entities within 5 m of the position (opcode 1).
    VelocitySpike,
    /// Push entity `target` with the velocity (opcode 2).
    Nudge,
    /// One knot of a paint stroke at the position (opcode 3).
    StrokeKnot,
    /// Instance asset `asset_id` at the position (opcode 4).
    InstanceAsset,
}

impl CommandKind {
    /// The kind named `name`: `position_upsert` (or `position`), `velocity_spike` (or
    /// `velocity`), `nudge`, `stroke_knot`, `instance_asset`.
    pub fn from_name(name: &str) -> Result<Self, CommandError> {
        Ok(match name {
            "position_upsert" | "position" => Self::PositionUpsert,
            "velocity_spike" | "velocity" => Self::VelocitySpike,
            "nudge" => Self::Nudge,
            "stroke_knot" => Self::StrokeKnot,
            "instance_asset" => Self::InstanceAsset,
            other => return Err(CommandError::UnknownKind(other.to_owned())),
        })
    }
}

/// The arguments of a command; what a kind does not use is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CommandArgs {
    /// The entity acted on (0 = the own avatar).
    pub entity: u32,
    /// Where, metres.
    pub position: [f64; 3],
    /// Velocity, metres per second.
    pub velocity: [f64; 3],
    /// `nudge`: the entity pushed.
    pub target: u32,
    /// `stroke_knot`: the stroke.
    pub stroke_id: u32,
    /// `stroke_knot`: colour, RGBA8.
    pub rgba: u32,
    /// `instance_asset`: the asset.
    pub asset_id: u64,
    /// `instance_asset`: the request number the zone's answer carries (0: none asked).
    pub request: u32,
}

/// The zone's speed limit and tick rate, which the velocity's wire scale depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// Zone ticks per second.
    pub tick_hz: f64,
    /// Top speed, metres per second.
    pub max_speed: f64,
}

impl Default for Motion {
    /// 20 Hz, 10 m/s (the zone's defaults).
    fn default() -> Self {
        Self {
            tick_hz: 20.0,
            max_speed: 10.0,
        }
    }
}

impl Motion {
    /// Top speed, micrometres per tick (the row's velocity scale).
    pub fn v_max_um(&self) -> i64 {
        (self.max_speed * 1e6 / self.tick_hz).round().max(1.0) as i64
    }
}

fn finite(v: &[f64; 3], what: &'static str) -> Result<(), CommandError> {
    if v.iter().all(|c| c.is_finite()) {
        Ok(())
    } else {
        Err(CommandError::NotFinite(what))
    }
}

/// The framed command (`0x43` + 100-byte player packet) for `kind` with `args`, acting for
/// `avatar` unless `args.entity` names another entity.
pub fn build_command(
    kind: CommandKind,
    args: &CommandArgs,
    avatar: Option<u32>,
    motion: Motion,
) -> Result<[u8; COMMAND_FRAME_LEN], CommandError> {
    let global_id = match args.entity {
        0 => avatar.ok_or(CommandError::NoAvatar)?,
        id => id,
    };
    finite(&args.position, "position")?;
    finite(&args.velocity, "velocity")?;
    let speed = args.velocity.iter().map(|c| c * c).sum::<f64>().sqrt();
    if speed > motion.max_speed {
        return Err(CommandError::TooFast {
            speed,
            max: motion.max_speed,
        });
    }
    let v_max = motion.v_max_um();
    let command = match kind {
        CommandKind::PositionUpsert => PlayerCommand::PositionUpsert,
        CommandKind::VelocitySpike => PlayerCommand::VelocitySpike,
        CommandKind::Nudge => PlayerCommand::Nudge {
            target: args.target,
        },
        CommandKind::StrokeKnot => PlayerCommand::StrokeKnot {
            stroke_id: args.stroke_id,
            rgba: args.rgba,
        },
        CommandKind::InstanceAsset if args.asset_id == 0 => return Err(CommandError::ZeroAsset),
        CommandKind::InstanceAsset => PlayerCommand::InstanceAsset {
            asset_id: args.asset_id,
            request: args.request,
        },
    };
    let packet = PlayerPacket {
        global_id,
        position: args.position.map(|m| Micros::from_num((m * 1e6).round())),
        velocity: args
            .velocity
            .map(|v| quantize_velocity(Micros::from_num(v * 1e6 / motion.tick_hz), v_max)),
        acceleration: [0; 3],
        hlc: 0,
        command,
    };
    Ok(command_frame(&packet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::entity_row::dequantize_velocity;

    fn decode(frame: &[u8]) -> PlayerPacket {
        assert_eq!(frame[0], 0x43, "command frame kind");
        PlayerPacket::decode(&frame[1..]).expect("the zone's decoder accepts it")
    }

    #[test]
    fn a_position_upsert_carries_the_avatar_the_position_in_micrometres_and_the_velocity() {
        let args = CommandArgs {
            position: [1.5, -2.0, 3.25],
            velocity: [4.0, 0.0, -2.0],
            ..Default::default()
        };
        let m = Motion::default();
        let p = decode(&build_command(CommandKind::PositionUpsert, &args, Some(77), m).unwrap());
        assert_eq!(p.global_id, 77, "acts for the avatar");
        assert_eq!(p.command, PlayerCommand::PositionUpsert);
        let um: Vec<f64> = p.position.iter().map(|c| c.to_num()).collect();
        assert_eq!(um, [1_500_000.0, -2_000_000.0, 3_250_000.0], "micrometres");
        // 4 m/s at 20 Hz = 200,000 um/tick; v_max 500,000 um/tick.
        let vx: f64 = dequantize_velocity(p.velocity[0], m.v_max_um()).to_num();
        assert!((vx - 200_000.0).abs() < 20.0, "vx {vx} um/tick");
        assert_eq!(p.velocity[1], 0);
    }

    #[test]
    fn every_kind_maps_to_its_opcode_and_arguments() {
        let args = CommandArgs {
            entity: 9,
            target: 12,
            stroke_id: 3,
            rgba: 0xff00_00ff,
            asset_id: 0x1_0000_0002,
            request: 44,
            ..Default::default()
        };
        let m = Motion::default();
        let cases = [
            ("velocity", PlayerCommand::VelocitySpike),
            ("nudge", PlayerCommand::Nudge { target: 12 }),
            (
                "stroke_knot",
                PlayerCommand::StrokeKnot {
                    stroke_id: 3,
                    rgba: 0xff00_00ff,
                },
            ),
            (
                "instance_asset",
                PlayerCommand::InstanceAsset {
                    asset_id: 0x1_0000_0002,
                    request: 44,
                },
            ),
        ];
        for (name, want) in cases {
            let kind = CommandKind::from_name(name).unwrap();
            let p = decode(&build_command(kind, &args, Some(1), m).unwrap());
            assert_eq!(p.command, want, "{name}");
            assert_eq!(
                p.global_id, 9,
                "{name}: the entity given wins over the avatar"
            );
        }
    }

    #[test]
    fn what_the_wire_cannot_say_is_refused_before_sending() {
        let m = Motion::default();
        let ok = CommandArgs::default();
        assert_eq!(
            CommandKind::from_name("teleport"),
            Err(CommandError::UnknownKind("teleport".into()))
        );
        assert_eq!(
            build_command(CommandKind::PositionUpsert, &ok, None, m),
            Err(CommandError::NoAvatar)
        );
        let fast = CommandArgs {
            velocity: [8.0, 8.0, 0.0],
            ..ok
        };
        assert!(matches!(
            build_command(CommandKind::PositionUpsert, &fast, Some(1), m),
            Err(CommandError::TooFast { .. })
        ));
        let nan = CommandArgs {
            position: [f64::NAN, 0.0, 0.0],
            ..ok
        };
        assert_eq!(
            build_command(CommandKind::PositionUpsert, &nan, Some(1), m),
            Err(CommandError::NotFinite("position"))
        );
        assert_eq!(
            build_command(CommandKind::InstanceAsset, &ok, Some(1), m),
            Err(CommandError::ZeroAsset)
        );
    }
}
