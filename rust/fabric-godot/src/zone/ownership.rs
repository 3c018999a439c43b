//! Ownership of a zone's entities by players: the glue between the client sessions, the
//! core's state machine ([`fabric_core::ownership::Ownership`]) and the players
//! ([`super::players`]).
//!
//! - `request_ownership` / `release_ownership` from a session are decided by the table and
//!   answered with an `ownership` event: a denial goes to the requester only; a grant, a
//!   release or a take-back goes to every player of the zone (reliable), so every client knows
//!   who holds what;
//! - an `ownership` event *from* a client is a forged grant: refused, counted (`forged`) and
//!   answered with an error reply;
//! - commands: a player may act on the entities it holds besides its avatar
//!   ([`HeldAuthority`] is what the command gate asks); a position upsert of a held entity
//!   must lie within reach of the entity's current position (`v_max` times the gate's
//!   `max_gap_ticks`), else it is refused as `speed`; a command on an entity held by another
//!   is refused as `authority` by the gate, in the existing counters and `/metrics`;
//! - when a session closes, the entities its avatar held follow their persist mode
//!   (`transient_held` ones are despawned, the others stay with no holder), and each change
//!   is announced;
//! - **hand-offs**: before the frame's ticks the table's records go to the zone core, which
//!   sends each inside the entity's migration intent ([`fabric_core::ownership::handoff`]).
//!   Once a frame: entities handed off with a holder are forgotten here and announced
//!   `released` with reason `moved` (the hold goes on in the zone they entered); records that
//!   arrived are installed and, when held, announced `granted` with reason `arrived` (the same
//!   holder: its commands on the entity are accepted here through any session playing its
//!   avatar in this zone, e.g. one that followed it with a `claim`); held entities gone
//!   otherwise (despawned) lose their holder (`released`, reason `gone`). A rolled-back
//!   hand-off changes nothing: a staging entity keeps its entry;
//! - **absent holders**: a holder that plays no avatar in this zone (the entity crossed without
//!   it, or its avatar moved on) keeps its entities for the grace (`--holder-grace-s`, default
//!   10 s); then each follows its persist mode as if the holder had disconnected
//!   (`transient_held` despawned, reason `despawned`; the others kept, reason `holder_absent`).
//!   A non-holder stays refused meanwhile (`held`; commands `authority`).
//!
//! The persist mode of entities the zone has not given one is `placed_room`, or the user
//! argument `--persist-mode MODE` (read here, ignored by the zone's own parser); scripts set
//! it per entity with `set_persist_mode`. Totals go to `/metrics`
//! ([`super::ownership_metrics`]). Nothing here runs inside the tick.

use fabric_core::avatars::Avatars;
use fabric_core::command_gate::Authority;
use fabric_core::ownership::{Denial, Departure, Ownership, OwnershipConfig, PersistMode};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::session_control::{ControlMessage, OwnershipState};
use fabric_core::slots::SlotState;
use godot::prelude::*;

use super::FabricZone;
use super::config::last_arg;
use super::ownership_metrics::OwnershipFigures;
use super::runtime::ZoneRuntime;

/// The ownership table of one zone and the persist mode of entities without one.
#[derive(Debug, Default)]
pub(crate) struct ZoneOwnership {
    /// The state machine.
    pub(crate) table: Ownership,
    /// Held entities arrived with their holder.
    handed_in: u64,
    /// Held entities handed off with their holder.
    handed_out: u64,
    /// Holds ended by the absent-holder grace.
    absent_expired: u64,
}

impl ZoneOwnership {
    /// The running totals for `/metrics`.
    pub(crate) fn figures(&self) -> OwnershipFigures {
        let (grants, releases, takebacks) = self.table.totals();
        OwnershipFigures {
            grants,
            releases,
            takebacks,
            denials: self.table.refused(),
            handed_in: self.handed_in,
            handed_out: self.handed_out,
            absent_expired: self.absent_expired,
            held: self.table.holders().count() as u64,
        }
    }

    /// ` ownership_granted=N ownership_released=N ownership_revoked=N holders=N
    /// ownership_refused_<reason>=N ...` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        use std::fmt::Write as _;
        let (granted, released, revoked) = self.table.totals();
        let mut out = format!(
            " ownership_granted={granted} ownership_released={released} ownership_revoked={revoked} holders={}",
            self.table.holders().count()
        );
        let refused = self.table.refused();
        for d in Denial::ALL {
            // Writing into a String cannot fail.
            let _ = write!(
                out,
                " ownership_refused_{}={}",
                d.name(),
                refused[d.index()]
            );
        }
        out
    }
}

/// What the command gate asks: a session acts on its avatar, its grants, and the entities its
/// avatar holds.
pub(crate) struct HeldAuthority<'a> {
    /// Sessions and avatars.
    pub(crate) avatars: &'a Avatars,
    /// Holders.
    pub(crate) table: &'a Ownership,
}

impl Authority for HeldAuthority<'_> {
    fn avatar_of(&self, session: u64) -> Option<u32> {
        self.avatars.avatar_of(session)
    }

    fn may_act(&self, session: u64, id: u32) -> bool {
        self.avatars.may_act(session, id)
            || self
                .avatars
                .avatar_of(session)
                .is_some_and(|a| self.table.holder_of(id) == Some(a))
    }
}

/// Whether entity `id` is held by a player other than `session`'s.
pub(crate) fn held_by_other(table: &Ownership, avatars: &Avatars, session: u64, id: u32) -> bool {
    table
        .holder_of(id)
        .is_some_and(|h| avatars.avatar_of(session) != Some(h))
}

/// Whether an accepted command may be applied as far as held entities go: a position upsert
/// of an entity other than the sender's avatar lies within `reach_ticks` ticks of motion of
/// that entity's current position, or of the sender's avatar (a held thing may be carried to
/// the hand). Other commands, and entities not owned here, pass (the zone answers those with
/// `not_here`).
pub(crate) fn held_move_in_reach(
    rt: &ZoneRuntime,
    avatars: &Avatars,
    session: u64,
    p: &PlayerPacket,
    reach_ticks: u64,
) -> bool {
    if p.command != PlayerCommand::PositionUpsert || avatars.avatar_of(session) == Some(p.global_id)
    {
        return true;
    }
    let Some(e) = rt.owned_slot(p.global_id).and_then(|s| rt.zone().entity(s)) else {
        return true;
    };
    let reach = rt.zone().config().v_max_um as f64 * reach_ticks as f64;
    let near = |at: &fabric_core::coords::Vec3| {
        let d2: f64 = (0..3)
            .map(|k| (p.position[k] - at[k]).to_num::<f64>().powi(2))
            .sum();
        d2 <= reach * reach
    };
    let hand = avatars
        .avatar_of(session)
        .and_then(|a| rt.owned_slot(a))
        .and_then(|s| rt.zone().entity(s));
    near(&e.position) || hand.is_some_and(|h| near(&h.position))
}

/// Whether entity `id` is still this zone's: owned, staging (a hand-off may roll back) or
/// arriving (committed here, its arrival tick not reached).
fn still_here(rt: &ZoneRuntime, id: u32) -> bool {
    rt.zone().holdings().any(|h| {
        h.global_id == id
            && matches!(
                h.state,
                SlotState::Owned | SlotState::Staging | SlotState::Arriving
            )
    })
}

/// The grace named by `--holder-grace-s SECONDS` in `args`: `Ok(None)` when absent.
pub(crate) fn holder_grace_arg(args: &[String]) -> Result<Option<f64>, String> {
    last_arg(args, "--holder-grace-s")
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("--holder-grace-s: `{v}` is not a number of seconds"))
        })
        .transpose()
}

/// The persist mode named by `--persist-mode` in `args`: `Ok(None)` when absent, an error
/// naming the value when it is not a mode.
pub(crate) fn persist_mode_arg(args: &[String]) -> Result<Option<PersistMode>, String> {
    last_arg(args, "--persist-mode")
        .map(|v| {
            PersistMode::parse(&v).ok_or_else(|| {
                format!("--persist-mode: `{v}` is not transient_held, placed_room or placed_saved")
            })
        })
        .transpose()
}

fn event(entity: u32, state: OwnershipState, holder: Option<u32>, reason: &str) -> Vec<u8> {
    ControlMessage::Ownership {
        entity,
        state,
        holder,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    }
    .encode()
}

#[godot_api(secondary)]
impl FabricZone {
    /// Sets the persist mode of entity `id` owned by this zone: `"transient_held"` (despawned
    /// when its holder disconnects), `"placed_room"` (kept, holder cleared) or
    /// `"placed_saved"` (kept, and included in room saves). Returns false for an unknown mode
    /// or an entity not owned here.
    #[func]
    pub fn set_persist_mode(&mut self, id: i64, mode: GString) -> bool {
        let (Ok(id), Some(mode)) = (u32::try_from(id), PersistMode::parse(&mode.to_string()))
        else {
            return false;
        };
        if self
            .runtime
            .as_ref()
            .and_then(|rt| rt.owned_slot(id))
            .is_none()
        {
            return false;
        }
        self.players.ownership.table.set_persist(id, mode);
        true
    }

    /// The persist mode of entity `id` (`"placed_room"` unless set).
    #[func]
    pub fn get_persist_mode(&self, id: i64) -> GString {
        let mode = u32::try_from(id).map_or(PersistMode::default(), |id| {
            self.players.ownership.table.persist_of(id)
        });
        GString::from(mode.name())
    }

    /// The avatar id of the player holding entity `id`, or -1 when the zone holds it.
    #[func]
    pub fn get_holder(&self, id: i64) -> i64 {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.players.ownership.table.holder_of(id))
            .map_or(-1, i64::from)
    }

    /// Takes entity `id` back from its holder (every player hears `revoked`). Returns false
    /// when nobody held it.
    #[func]
    pub fn revoke_ownership(&mut self, id: i64) -> bool {
        let Ok(id) = u32::try_from(id) else {
            return false;
        };
        let tick = self.zone_tick();
        match self.players.ownership.table.revoke(id, tick) {
            Some(_) => {
                self.broadcast(&event(id, OwnershipState::Revoked, None, "server"));
                true
            }
            None => false,
        }
    }
}

impl FabricZone {
    fn zone_tick(&self) -> u64 {
        self.runtime
            .as_ref()
            .map_or(0, |rt| rt.zone().current_tick())
    }

    /// Sends `bytes` reliably to every session with an avatar here.
    fn broadcast(&self, bytes: &[u8]) {
        let Some(server) = self.server.as_ref() else {
            return;
        };
        let tx = server.sender();
        for (session, _) in self.players.avatars.iter() {
            let _ = tx.send_message(session, bytes.to_vec());
        }
    }

    /// Starts an empty table (when the runtime starts); a zone process takes the default
    /// persist mode from `--persist-mode`.
    pub(super) fn reset_ownership(&mut self) {
        let mut cfg = OwnershipConfig::default();
        if self.use_command_line {
            let args = super::user_args();
            match persist_mode_arg(&args) {
                Ok(m) => cfg.default_persist = m.unwrap_or(cfg.default_persist),
                Err(e) => godot_error!("FabricZone: {e}; placed_room is used"),
            }
            let hz = self
                .runtime
                .as_ref()
                .map_or(20, |rt| rt.zone().config().tick_hz);
            match holder_grace_arg(&args) {
                Ok(Some(s)) => cfg.absent_grace_ticks = (s * f64::from(hz)).round() as u64,
                Ok(None) => cfg.absent_grace_ticks = 10 * u64::from(hz),
                Err(e) => godot_error!("FabricZone: {e}; 10 s is used"),
            }
        }
        self.players.ownership = ZoneOwnership {
            table: Ownership::new(cfg),
            ..ZoneOwnership::default()
        };
    }

    /// Before the frame's ticks: the records the zone carries with entities it hands off.
    pub(super) fn carry_ownership(&mut self) {
        if let Some(rt) = self.runtime.as_mut() {
            rt.zone_mut()
                .set_carried_ownership(self.players.ownership.table.records());
        }
    }

    /// A `request_ownership`, `release_ownership` or (forged) `ownership` message from
    /// `session`: decided, answered, announced. Returns false for any other message.
    pub(super) fn on_ownership(
        &mut self,
        session: u64,
        msg: &ControlMessage,
        actions: &mut Vec<fabric_core::admission::Action>,
    ) -> bool {
        let tick = self.zone_tick();
        let avatar = self.players.avatars.avatar_of(session);
        let reply =
            |entity: u32, holder: Option<u32>, why: Denial| fabric_core::admission::Action::Send {
                session,
                bytes: event(entity, OwnershipState::Denied, holder, why.name()),
                reliable: true,
            };
        match *msg {
            ControlMessage::RequestOwnership { entity } => {
                let owned = self
                    .runtime
                    .as_ref()
                    .is_some_and(|rt| rt.owned_slot(entity).is_some());
                let is_avatar = self.players.avatars.session_of(entity).is_some();
                let table = &mut self.players.ownership.table;
                match table.request(entity, avatar, tick, owned, is_avatar) {
                    Ok(g) if g.repeated => actions.push(fabric_core::admission::Action::Send {
                        session,
                        bytes: event(entity, OwnershipState::Granted, Some(g.holder), ""),
                        reliable: true,
                    }),
                    Ok(g) => {
                        self.broadcast(&event(entity, OwnershipState::Granted, Some(g.holder), ""))
                    }
                    Err(why) => actions.push(reply(entity, table.holder_of(entity), why)),
                }
            }
            ControlMessage::ReleaseOwnership { entity } => {
                let table = &mut self.players.ownership.table;
                match table.release(entity, avatar, tick) {
                    Ok(()) => {
                        self.broadcast(&event(entity, OwnershipState::Released, None, "released"))
                    }
                    Err(why) => actions.push(reply(entity, table.holder_of(entity), why)),
                }
            }
            ControlMessage::Ownership { entity, .. } => {
                self.players.ownership.table.count(Denial::Forged);
                godot_print!(
                    "FabricZone {}: session {session} sent an ownership event for {entity}: refused",
                    self.zone_id
                );
                actions.push(fabric_core::admission::Action::Send {
                    session,
                    bytes: ControlMessage::Reply {
                        id: String::new(),
                        result: Err(Denial::Forged.to_string()),
                    }
                    .encode(),
                    reliable: true,
                });
            }
            _ => return false,
        }
        true
    }

    /// The player with avatar `avatar` left: the entities it held follow their persist mode.
    pub(super) fn ownership_holder_left(&mut self, avatar: u32) {
        let tick = self.zone_tick();
        let mut gone = Vec::new();
        self.players
            .ownership
            .table
            .holder_left(avatar, tick, |d| gone.push(d));
        for d in gone {
            match d {
                Departure::Despawn(id) => {
                    if let Some(rt) = self.runtime.as_mut() {
                        rt.despawn(id);
                    }
                    self.broadcast(&event(id, OwnershipState::Released, None, "despawned"));
                }
                Departure::Kept(id, _) => {
                    self.broadcast(&event(id, OwnershipState::Released, None, "holder_left"));
                }
            }
        }
    }

    /// Once a frame: hand-offs out and in, held entities gone, absent holders (see the module
    /// doc); then the totals go to `/metrics`.
    pub(super) fn poll_ownership(&mut self) {
        let Some(rt) = self.runtime.as_mut() else {
            return;
        };
        let tick = rt.zone().current_tick();
        let own = &mut self.players.ownership;
        let mut news = Vec::new();
        for id in rt.zone_mut().take_handed_off_ownership() {
            if own.table.forget(id).is_some() {
                own.handed_out += 1;
                news.push(event(id, OwnershipState::Released, None, "moved"));
            }
        }
        for r in rt.zone_mut().take_arrived_ownership() {
            if own.table.import(&r) && r.holder.is_some() {
                own.handed_in += 1;
                news.push(event(
                    r.entity,
                    OwnershipState::Granted,
                    r.holder,
                    "arrived",
                ));
            }
        }
        let gone: Vec<u32> = own
            .table
            .holders()
            .filter(|&(id, _)| !still_here(rt, id))
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            own.table.forget(id);
            news.push(event(id, OwnershipState::Released, None, "gone"));
        }
        let avatars = &self.players.avatars;
        let mut departed = Vec::new();
        own.table.expire_absent(
            tick,
            |h| avatars.session_of(h).is_some(),
            |d| departed.push(d),
        );
        for d in departed {
            own.absent_expired += 1;
            news.push(match d {
                Departure::Despawn(id) => {
                    rt.despawn(id);
                    event(id, OwnershipState::Released, None, "despawned")
                }
                Departure::Kept(id, _) => {
                    event(id, OwnershipState::Released, None, "holder_absent")
                }
            });
        }
        if let Some(p) = &self.published {
            p.publish_ownership(&own.figures());
            p.set_holders(own.table.holders());
        }
        for bytes in news {
            self.broadcast(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn persist_mode_argument() {
        assert_eq!(persist_mode_arg(&args(&["--port", "0"])), Ok(None));
        assert_eq!(
            persist_mode_arg(&args(&["--persist-mode", "transient_held"])),
            Ok(Some(PersistMode::TransientHeld))
        );
        assert_eq!(
            persist_mode_arg(&args(&["--persist-mode=placed_saved"])),
            Ok(Some(PersistMode::PlacedSaved))
        );
        let e = persist_mode_arg(&args(&["--persist-mode", "forever"])).unwrap_err();
        assert!(e.contains("`forever`"), "{e}");
    }

    #[test]
    fn holder_grace_argument() {
        assert_eq!(holder_grace_arg(&args(&["--port", "0"])), Ok(None));
        assert_eq!(
            holder_grace_arg(&args(&["--holder-grace-s", "2.5"])),
            Ok(Some(2.5))
        );
        assert_eq!(
            holder_grace_arg(&args(&["--holder-grace-s=0"])),
            Ok(Some(0.0))
        );
        for bad in ["-1", "soon", "NaN"] {
            let e = holder_grace_arg(&args(&["--holder-grace-s", bad])).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn holders_act_on_what_they_hold_and_nobody_else_does() {
        let mut avatars = Avatars::new();
        avatars.insert(1, 100);
        avatars.insert(2, 200);
        let mut table = Ownership::default();
        table.request(7, Some(100), 0, true, false).unwrap();
        let auth = HeldAuthority {
            avatars: &avatars,
            table: &table,
        };
        assert!(auth.may_act(1, 7), "the holder");
        assert!(
            held_by_other(&table, &avatars, 2, 7),
            "a spike by B spares it"
        );
        assert!(!held_by_other(&table, &avatars, 1, 7), "not by its holder");
        assert!(
            !held_by_other(&table, &avatars, 2, 8),
            "an entity nobody holds"
        );
        assert!(!auth.may_act(2, 7), "another player");
        assert!(!auth.may_act(3, 7), "a session without avatar");
        assert!(
            auth.may_act(2, 200) && !auth.may_act(2, 100),
            "avatars as before"
        );
    }

    #[test]
    fn a_held_entity_moves_only_within_reach() {
        use crate::zone::players::tests::runtime;
        use fabric_core::coords::{Micros, ZERO3};
        let mut rt = runtime();
        let m = |v: f64| Micros::from_num(v * 1e6);
        let crate_ = rt.spawn([m(1.0), m(0.0), m(0.0)], ZERO3, [0; 14]).unwrap();
        let avatar = rt.spawn([m(-9.0), m(0.0), m(0.0)], ZERO3, [0; 14]).unwrap();
        let mut avatars = Avatars::new();
        avatars.insert(1, avatar);
        let upsert = |gid, x: f64| PlayerPacket {
            global_id: gid,
            position: [m(x), m(0.0), m(0.0)],
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::PositionUpsert,
        };
        // v_max is 10 m/s: 0.5 m a tick at 20 Hz, 2.5 m in 5 ticks.
        assert!(held_move_in_reach(
            &rt,
            &avatars,
            1,
            &upsert(crate_, 3.0),
            5
        ));
        assert!(!held_move_in_reach(
            &rt,
            &avatars,
            1,
            &upsert(crate_, 4.0),
            5
        ));
        assert!(
            held_move_in_reach(&rt, &avatars, 1, &upsert(crate_, -7.0), 5),
            "to the holder's hand"
        );
        assert!(
            !held_move_in_reach(&rt, &avatars, 2, &upsert(crate_, -7.0), 5),
            "a session without avatar has no hand"
        );
        assert!(
            held_move_in_reach(&rt, &avatars, 1, &upsert(avatar, 9.0), 5),
            "the avatar's own reach is the gate's business"
        );
    }
}
