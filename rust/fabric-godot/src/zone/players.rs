//! Players of a zone: avatars made on `spawn`, commands through the gate, error reports back.
//!
//! The glue between the client sessions ([`super::sessions`]), the core's avatar table
//! ([`fabric_core::avatars`]) and command gate ([`fabric_core::command_gate`]) and the tick
//! driver ([`super::runtime`]):
//!
//! - a `spawn` control message from an admitted session makes its avatar here (a fresh global
//!   id, at rest) and answers `avatar`, or answers `avatar_elsewhere` when the spawn point is in
//!   another zone's range; `player_joined` is emitted;
//! - a command frame goes through the gate; an accepted command changes the zone's slots between
//!   ticks, exactly as the next tick's input: a position upsert sets the avatar's position,
//!   velocity and acceleration; a velocity spike adds its velocity to the entities within 5 m
//!   of its position (other players' avatars excepted); a nudge adds its velocity to its
//!   target. A CMD_INSTANCE_ASSET places an asset instance ([`super::assets`]), answered with
//!   `placed` once durable. Stroke knots pass the gate and are counted, and are applied when
//!   the zone has strokes;
//! - once a frame, error reports due go back as `commands_refused` control messages
//!   (reliable), `command_refused(session, reason)` is emitted once per reason in each report,
//!   and the totals go to `/metrics`;
//! - when the session closes its avatar is despawned (if still owned here) and `player_left`
//!   is emitted.
//!
//! - after the ticks of a frame each player is sent its replication packet, and its acks are
//!   applied ([`super::replication`]).
//!
//! Nothing here runs inside the tick, so the tick stays allocation-free.

use fabric_core::admission::Action;
use fabric_core::asset_placement::Placer;
use fabric_core::avatars::{Avatars, JoinDecision};
use fabric_core::command_gate::{Authority, CommandGate, GateConfig, Refusal};
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{Vec3, ZERO3, metres};
use fabric_core::entity_row::{dequantize_acceleration, dequantize_velocity};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::ControlMessage;
use fabric_core::slots::SlotState;
use fabric_core::unclaimed::avatar_payload;
use godot::prelude::*;

use super::FabricZone;
use super::assets::{self, Placements};
use super::original_scheme::OriginalSchemeSessions;
use super::ownership::{HeldAuthority, ZoneOwnership, held_by_other, held_move_in_reach};
use super::replication::Replication;
use super::runtime::ZoneRuntime;
use fabric_core::ownership::Ownership;

/// Radius of a velocity spike, metres.
const SPIKE_RADIUS_M: i64 = 5;

/// Avatars and the command gate of one zone.
#[derive(Debug)]
pub(crate) struct Players {
    pub(crate) avatars: Avatars,
    gate: CommandGate,
    /// What each player sees.
    pub(crate) replication: Replication,
    /// Who holds which entity ([`super::ownership`]).
    pub(crate) ownership: ZoneOwnership,
    /// Asset placements and the answers owed ([`super::assets`]).
    pub(crate) placements: Placements,
    /// Sessions served the original scheme, the benchmark's baseline
    /// ([`super::original_scheme`]).
    pub(crate) original: OriginalSchemeSessions,
}

impl Default for Players {
    fn default() -> Self {
        let cfg = ZoneConfig::new(
            0,
            fabric_core::zones::ZoneLayout::new(1).expect("one zone is a layout"),
            fabric_core::coords::WorldBounds::demo(),
        );
        Self::new(&cfg)
    }
}

impl Players {
    /// No players; the gate uses `cfg`'s `v_max` and bounds.
    pub(crate) fn new(cfg: &ZoneConfig) -> Self {
        Self {
            avatars: Avatars::new(),
            gate: CommandGate::new(GateConfig::new(cfg)),
            replication: Replication::default(),
            ownership: ZoneOwnership::default(),
            placements: Placements::default(),
            original: OriginalSchemeSessions::default(),
        }
    }

    /// Counts a refusal of `session`'s command decided outside the gate.
    pub(super) fn refuse(&mut self, session: u64, why: Refusal) {
        self.gate.refuse(session, why);
    }

    /// Refused commands per reason since the start.
    #[cfg(test)]
    pub(super) fn refused_counts(&self) -> [u64; fabric_core::command_gate::REFUSAL_COUNT] {
        self.gate.refused()
    }

    /// The avatar `session` plays here, if any.
    pub(super) fn avatar_of(&self, session: u64) -> Option<u32> {
        self.avatars.avatar_of(session)
    }

    /// The session playing `id` here, if any.
    pub(super) fn session_of(&self, id: u32) -> Option<u64> {
        self.avatars.session_of(id)
    }

    /// Avatar `id` moved to another zone: its session no longer plays it here (nor sees from
    /// here). Returns that session.
    pub(super) fn release_moved(&mut self, id: u32) -> Option<u64> {
        let session = self.avatars.session_of(id)?;
        self.avatars.remove(session);
        self.replication.drop_session(session);
        Some(session)
    }

    /// `session` plays `id`, which it claimed here at `at` on `tick` ([`super::follow`]).
    pub(super) fn bind(&mut self, session: u64, id: u32, at: fabric_core::coords::Vec3, tick: u64) {
        self.avatars.insert(session, id);
        self.gate.place(session, at, tick);
    }

    /// ` commands_accepted=N refused_<reason>=N ...` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            " players={} commands_accepted={}",
            self.avatars.len(),
            self.gate.accepted()
        );
        let refused = self.gate.refused();
        for r in Refusal::ALL {
            // Writing into a String cannot fail.
            let _ = write!(out, " refused_{}={}", r.name(), refused[r.index()]);
        }
        out.push_str(&self.replication.stats_fields());
        out.push_str(&self.ownership.stats_fields());
        out.push_str(&self.placements.stats_fields());
        out.push_str(&self.original.stats_fields());
        out
    }
}

/// Applies an accepted command of `session` to the runtime's slots (a spike spares entities
/// held by other players, as `held`). Returns false when the entity it names is not owned
/// here (it migrated).
fn apply(
    rt: &mut ZoneRuntime,
    avatars: &Avatars,
    held: &Ownership,
    session: u64,
    p: &PlayerPacket,
) -> bool {
    let vmax = rt.zone().config().v_max_um;
    let velocity: Vec3 = p.velocity.map(|q| dequantize_velocity(q, vmax));
    match p.command {
        PlayerCommand::PositionUpsert => {
            let Some(slot) = rt.owned_slot(p.global_id) else {
                return false;
            };
            let acceleration = p.acceleration.map(|q| dequantize_acceleration(q, vmax));
            rt.zone_mut()
                .set_motion(slot, p.position, velocity, acceleration)
        }
        PlayerCommand::Nudge { target } => {
            let Some(slot) = rt.owned_slot(target) else {
                return false;
            };
            push(rt, slot, &velocity)
        }
        PlayerCommand::VelocitySpike => {
            if rt.owned_slot(p.global_id).is_none() {
                return false;
            }
            let r = metres(SPIKE_RADIUS_M).to_num::<f64>();
            let n = rt.zone().slots().capacity();
            for slot in 0..n {
                let slots = rt.zone().slots();
                if slots.state(slot) != SlotState::Owned {
                    continue;
                }
                let gid = slots.global_id(slot);
                if avatars.session_of(gid).is_some_and(|s| s != session)
                    || held_by_other(held, avatars, session, gid)
                {
                    continue;
                }
                let at = slots.position(slot);
                let d2: f64 = (0..3)
                    .map(|k| (at[k] - p.position[k]).to_num::<f64>().powi(2))
                    .sum();
                if d2 <= r * r {
                    push(rt, slot, &velocity);
                }
            }
            true
        }
        // Placed by `super::assets` before `apply` is reached.
        PlayerCommand::StrokeKnot { .. } | PlayerCommand::InstanceAsset { .. } => {
            rt.owned_slot(p.global_id).is_some()
        }
    }
}

/// Adds `dv` to the velocity of the owned entity in `slot` (clamped to `v_max` by the core).
fn push(rt: &mut ZoneRuntime, slot: usize, dv: &Vec3) -> bool {
    let Some(e) = rt.zone().entity(slot) else {
        return false;
    };
    let v: Vec3 = [0, 1, 2].map(|k| e.velocity[k].saturating_add(dv[k]));
    rt.zone_mut().set_velocity(slot, v)
}

#[godot_api(secondary)]
impl FabricZone {
    /// The global id of `session`'s avatar, or -1 when it has none (no `spawn` yet, or the
    /// session is closed).
    #[func]
    pub fn get_avatar(&self, session: i64) -> i64 {
        u64::try_from(session)
            .ok()
            .and_then(|s| self.players.avatars.avatar_of(s))
            .map_or(-1, i64::from)
    }
}

impl FabricZone {
    /// Starts fresh for a zone configured as `cfg`, its players' views as `repl` (called when
    /// the runtime starts).
    pub(super) fn reset_players(&mut self, cfg: &ZoneConfig, repl: Replication) {
        self.players = Players::new(cfg);
        self.players.replication = repl;
        self.reset_ownership();
    }

    /// After the frame's ticks: each player's replication packet goes out as a datagram, and
    /// the figures to the metrics.
    pub(super) fn replicate(&mut self) {
        let Some(rt) = self.runtime.as_ref() else {
            return;
        };
        let players = &mut self.players;
        match self.server.as_ref() {
            Some(server) => {
                let tx = server.sender();
                players.replication.run(
                    rt,
                    &players.avatars,
                    |s| tx.max_datagram_size(s).unwrap_or(0),
                    |s, bytes| {
                        let _ = tx.send_datagram(s, bytes);
                    },
                );
                players.original.run(
                    rt.zone(),
                    |s| tx.max_datagram_size(s).unwrap_or(0),
                    |s, bytes| tx.send_datagram(s, bytes).is_ok(),
                );
            }
            None => players
                .replication
                .run(rt, &players.avatars, |_| 0, |_, _| {}),
        }
        if let Some(p) = &self.published {
            p.publish_replication(
                &players.replication.totals(),
                &players.replication.rates(),
                players.replication.views() as u64,
            );
        }
        self.send_properties();
        self.send_baseline_markers();
    }

    /// A client ack datagram from `session`.
    pub(super) fn on_replication_ack(&mut self, session: u64, frame: &[u8]) {
        self.players.replication.on_ack(session, frame);
    }

    /// A session opened at `now_ms`.
    pub(super) fn player_session_opened(&mut self, session: u64, now_ms: u64) {
        self.players.gate.open(session, now_ms);
    }

    /// A session closed: its avatar, if still owned here, is despawned.
    pub(super) fn player_session_closed(&mut self, session: u64) {
        self.players.gate.close(session);
        self.players.replication.drop_session(session);
        self.players.placements.drop_session(session);
        self.players.original.drop_session(session);
        let Some(id) = self.players.avatars.remove(session) else {
            return;
        };
        self.ownership_holder_left(id);
        if let Some(rt) = self.runtime.as_mut() {
            rt.despawn(id);
        }
        self.signals()
            .player_left()
            .emit(session as i64, i64::from(id));
    }

    /// An `original_scheme` request from `session`: served (see [`super::original_scheme`])
    /// or refused, answered with a reply `original_scheme`.
    pub(super) fn on_original_scheme(
        &mut self,
        session: u64,
        reliable: bool,
        actions: &mut Vec<Action>,
    ) {
        let result = if self.admission.is_admitted(session) {
            self.players
                .original
                .subscribe(session)
                .map(|()| "serving".to_owned())
                .map_err(str::to_owned)
        } else {
            Err("original_scheme before admission: send hello (with a join token) first".into())
        };
        actions.push(Action::Send {
            session,
            bytes: ControlMessage::Reply {
                id: "original_scheme".into(),
                result,
            }
            .encode(),
            reliable,
        });
    }

    /// A `spawn` request from `session` (`at` in whole micrometres).
    pub(super) fn on_spawn(
        &mut self,
        session: u64,
        at: Option<[i64; 3]>,
        reliable: bool,
        actions: &mut Vec<Action>,
    ) {
        let reply = |msg: ControlMessage| Action::Send {
            session,
            bytes: msg.encode(),
            reliable,
        };
        let refuse = |why: &str| {
            reply(ControlMessage::Reply {
                id: "spawn".into(),
                result: Err(why.to_owned()),
            })
        };
        if !self.admission.is_admitted(session) {
            actions.push(refuse(
                "spawn before admission: send hello (with a join token) first",
            ));
            return;
        }
        let Some(rt) = self.runtime.as_mut() else {
            actions.push(refuse("the zone is not running"));
            return;
        };
        let cfg = *rt.zone().config();
        let zone = u32::from(cfg.zone_id);
        match self.players.avatars.decide(session, at, &cfg) {
            JoinDecision::Existing { id } => {
                actions.push(reply(ControlMessage::Avatar { id, zone }));
            }
            JoinDecision::Elsewhere { zone: owner } => {
                actions.push(reply(ControlMessage::AvatarElsewhere {
                    zone: u32::from(owner),
                    address: None,
                }));
            }
            JoinDecision::Spawn { at } => match rt.spawn(at, ZERO3, avatar_payload()) {
                Ok(id) => {
                    let tick = rt.zone().current_tick();
                    self.players.avatars.insert(session, id);
                    self.players.gate.place(session, at, tick);
                    actions.push(reply(ControlMessage::Avatar { id, zone }));
                    godot_print!(
                        "FabricZone {}: session {session} plays avatar {id}",
                        self.zone_id
                    );
                    self.signals()
                        .player_joined()
                        .emit(session as i64, i64::from(id));
                }
                Err(e) => actions.push(refuse(&format!("no avatar: {e}"))),
            },
        }
    }

    /// A command frame from `session` at `now_ms`: checked, then applied or counted.
    pub(super) fn on_command(&mut self, session: u64, frame: &[u8], now_ms: u64) {
        let Some(rt) = self.runtime.as_mut() else {
            return;
        };
        let tick = rt.zone().current_tick();
        let players = &mut self.players;
        let authority = HeldAuthority {
            avatars: &players.avatars,
            table: &players.ownership.table,
        };
        let Ok(p) = players.gate.check(session, frame, now_ms, tick, &authority) else {
            return;
        };
        let reach = players.gate.config().max_gap_ticks;
        if !held_move_in_reach(rt, &players.avatars, session, &p, reach) {
            players.gate.refuse(session, Refusal::Speed);
        } else if let PlayerCommand::InstanceAsset { asset_id, request } = p.command {
            let placer = Placer::from_permission(self.admission.may_place(session));
            let placed = assets::place(rt, players, session, placer, &p, asset_id, request);
            if let Some(entity) = placed {
                self.signals().asset_placed().emit(
                    session as i64,
                    i64::from(entity),
                    asset_id as i64,
                );
            }
        } else if !apply(rt, &players.avatars, &players.ownership.table, session, &p) {
            players.gate.refuse(session, Refusal::NotHere);
        }
    }

    /// Once a frame: error reports due go out (and as signals), totals go to the metrics.
    pub(super) fn poll_players(&mut self, now_ms: u64, actions: &mut Vec<Action>) {
        self.poll_ownership();
        if let Some(rt) = self.runtime.as_ref() {
            assets::poll(rt, &mut self.players.placements, actions);
        }
        let mut refused: Vec<(u64, Refusal)> = Vec::new();
        self.players.gate.poll_reports(now_ms, |r| {
            actions.push(Action::Send {
                session: r.session,
                bytes: r.to_control().encode(),
                reliable: true,
            });
            refused.extend(r.reasons().map(|(why, _)| (r.session, why)));
        });
        for (session, why) in refused {
            self.signals()
                .command_refused()
                .emit(session as i64, &GString::from(why.name()));
        }
        if let Some(p) = &self.published {
            p.publish_commands(
                self.players.gate.accepted(),
                &self.players.gate.refused(),
                self.players.avatars.len() as u64,
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::zone::config::ZoneSettings;
    use crate::zone::metrics::Published;
    use crate::zone::network::NoNetwork;
    use crate::zone::runtime::Limits;
    use fabric_core::command_gate::command_frame;
    use fabric_core::coords::Micros;
    use fabric_core::entity_row::PAYLOAD_WORDS;

    /// Metres to [`Micros`].
    fn m(v: f64) -> Micros {
        Micros::from_num(v * 1e6)
    }

    /// A zone runtime with the default settings and no neighbours.
    pub(crate) fn runtime() -> ZoneRuntime {
        runtime_with(&ZoneSettings::default())
    }

    /// A zone runtime with `settings` and no neighbours.
    pub(crate) fn runtime_with(settings: &ZoneSettings) -> ZoneRuntime {
        let cfg = settings.core_config().unwrap();
        let limits = Limits {
            max_catch_up: 5,
            event_budget: 64,
            ghost_rows: 16,
        };
        ZoneRuntime::new(
            cfg,
            Box::new(NoNetwork),
            limits,
            Published::new("players", 0),
        )
        .unwrap()
    }

    fn packet(gid: u32, at: Vec3, v: [i16; 3], command: PlayerCommand) -> PlayerPacket {
        PlayerPacket {
            global_id: gid,
            position: at,
            velocity: v,
            acceleration: [0; 3],
            hlc: 0,
            command,
        }
    }

    #[test]
    fn upserts_move_the_avatar_and_spikes_spare_other_players() {
        let mut rt = runtime();
        let mut avatars = Avatars::new();
        let a = rt.spawn([m(0.0); 3], ZERO3, [0; PAYLOAD_WORDS]).unwrap();
        let b = rt.spawn([m(1.0), m(0.0), m(0.0)], ZERO3, [0; 14]).unwrap();
        let crate_ = rt.spawn([m(0.0), m(1.0), m(0.0)], ZERO3, [0; 14]).unwrap();
        let far = rt.spawn([m(9.0), m(0.0), m(0.0)], ZERO3, [0; 14]).unwrap();
        avatars.insert(1, a);
        avatars.insert(2, b);
        let to = [m(2.0), m(0.5), m(-1.0)];
        assert!(apply(
            &mut rt,
            &avatars,
            &Ownership::default(),
            1,
            &packet(a, to, [1000, 0, 0], PlayerCommand::PositionUpsert)
        ));
        let slot = rt.owned_slot(a).unwrap();
        let e = rt.zone().entity(slot).unwrap();
        assert_eq!(e.position, to, "the upsert placed the avatar");
        assert!(e.velocity[0] > Micros::ZERO, "and set its velocity");
        assert!(apply(
            &mut rt,
            &avatars,
            &Ownership::default(),
            1,
            &packet(a, [m(0.0); 3], [0, 0, 16000], PlayerCommand::VelocitySpike)
        ));
        let vz = |rt: &ZoneRuntime, id| {
            rt.zone()
                .entity(rt.owned_slot(id).unwrap())
                .unwrap()
                .velocity[2]
        };
        assert!(
            vz(&rt, crate_) > Micros::ZERO,
            "an entity within 5 m is pushed"
        );
        assert_eq!(vz(&rt, b), Micros::ZERO, "another player's avatar is not");
        assert_eq!(vz(&rt, far), Micros::ZERO, "nor an entity 9 m away");
        rt.despawn(a);
        assert!(
            !apply(
                &mut rt,
                &avatars,
                &Ownership::default(),
                1,
                &packet(a, to, [0; 3], PlayerCommand::PositionUpsert)
            ),
            "an avatar not owned here is not moved"
        );
        assert_eq!(
            command_frame(&packet(a, to, [0; 3], PlayerCommand::PositionUpsert)).len(),
            101
        );
    }
}
