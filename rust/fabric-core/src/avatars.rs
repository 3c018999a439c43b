//! Avatars: which session plays which entity, and where a joining player's avatar is made.
//!
//! An admitted session asks for its avatar with a `spawn` control message (explicit, not
//! automatic after admission: a client decides when it is ready and where it wants to start).
//! [`Avatars::decide`] answers:
//!
//! - the session already has an avatar: [`JoinDecision::Existing`] (the answer is resent, so a
//!   client may repeat `spawn` until it hears back);
//! - the spawn point (the requested one clamped into the world, or this zone's
//!   [`default_spawn`]) lies in this zone's Hilbert range: [`JoinDecision::Spawn`]; the zone
//!   creates the entity with a fresh global id and records it with [`Avatars::insert`];
//! - the point lies in another zone's range: [`JoinDecision::Elsewhere`] names that zone.
//!
//! When the session closes the zone despawns the avatar ([`Avatars::remove`] gives its id).
//! Besides its avatar a session may be granted other entities ([`Avatars::grant`], at most
//! [`MAX_GRANTS`]); [`crate::command_gate::Authority`] is answered from this table.

use rustc_hash::FxHashMap;

use crate::command_gate::Authority;
use crate::config::ZoneConfig;
use crate::coords::{Micros, Vec3};
use crate::zones::ZoneId;

/// Most entities granted to one session besides its avatar.
pub const MAX_GRANTS: usize = 8;

/// What to do with a `spawn` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinDecision {
    /// Create the avatar here, at this point.
    Spawn {
        /// The spawn point (inside the world and this zone's range).
        at: Vec3,
    },
    /// The session already plays this entity.
    Existing {
        /// Its global id.
        id: u32,
    },
    /// The spawn point belongs to another zone.
    Elsewhere {
        /// That zone.
        zone: ZoneId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Player {
    avatar: u32,
    grants: [u32; MAX_GRANTS],
    granted: usize,
}

/// Sessions and their avatars in one zone.
#[derive(Debug, Clone, Default)]
pub struct Avatars {
    /// Keyed by the zone's own session numbers and global ids (not chosen by clients): the
    /// fast non-keyed Fx hash is safe.
    by_session: FxHashMap<u64, Player>,
    by_avatar: FxHashMap<u32, u64>,
}

/// The centre of the first cell of `cfg`'s Hilbert range: a point this zone owns.
pub fn default_spawn(cfg: &ZoneConfig) -> Vec3 {
    let start = cfg.layout.range(cfg.zone_id).map_or(0, |r| r.start);
    let cell = crate::hilbert::decode(start);
    let origin = cfg.bounds.cell_origin(cell);
    [0, 1, 2].map(|k| {
        let half = (cfg.bounds.cell_size(k) / 2) as i64;
        crate::coords::micros(origin[k] + half)
    })
}

impl Avatars {
    /// No players.
    pub fn new() -> Self {
        Self::default()
    }

    /// Players with an avatar.
    pub fn len(&self) -> usize {
        self.by_session.len()
    }

    /// True when no session has an avatar.
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// Where `session`'s avatar goes, asked for at `at` (whole micrometres) or at this zone's
    /// default spawn point.
    pub fn decide(&self, session: u64, at: Option<[i64; 3]>, cfg: &ZoneConfig) -> JoinDecision {
        if let Some(p) = self.by_session.get(&session) {
            return JoinDecision::Existing { id: p.avatar };
        }
        let point = match at {
            Some(um) => cfg.bounds.clamp(&um.map(crate::coords::micros)),
            None => default_spawn(cfg),
        };
        let code = crate::hilbert::encode_position(&cfg.bounds, &point);
        let zone = cfg.layout.zone_of(code);
        if zone == cfg.zone_id {
            JoinDecision::Spawn { at: point }
        } else {
            JoinDecision::Elsewhere { zone }
        }
    }

    /// Records that `session` plays entity `avatar` (replacing any avatar it had).
    pub fn insert(&mut self, session: u64, avatar: u32) {
        if let Some(old) = self.by_session.insert(
            session,
            Player {
                avatar,
                grants: [0; MAX_GRANTS],
                granted: 0,
            },
        ) {
            self.by_avatar.remove(&old.avatar);
        }
        self.by_avatar.insert(avatar, session);
    }

    /// Forgets `session`; returns its avatar, which the zone despawns.
    pub fn remove(&mut self, session: u64) -> Option<u32> {
        let p = self.by_session.remove(&session)?;
        self.by_avatar.remove(&p.avatar);
        Some(p.avatar)
    }

    /// Lets `session` act on entity `id` too. Returns false when it has no avatar, the entity
    /// is another player's avatar, or it already holds [`MAX_GRANTS`] grants.
    pub fn grant(&mut self, session: u64, id: u32) -> bool {
        if self.by_avatar.get(&id).is_some_and(|&s| s != session) {
            return false;
        }
        let Some(p) = self.by_session.get_mut(&session) else {
            return false;
        };
        if p.avatar == id || p.grants[..p.granted].contains(&id) {
            return true;
        }
        if p.granted == MAX_GRANTS {
            return false;
        }
        p.grants[p.granted] = id;
        p.granted += 1;
        true
    }

    /// The session playing avatar `id`.
    pub fn session_of(&self, id: u32) -> Option<u64> {
        self.by_avatar.get(&id).copied()
    }

    /// Every (session, avatar) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.by_session.iter().map(|(&s, p)| (s, p.avatar))
    }
}

impl Authority for Avatars {
    fn avatar_of(&self, session: u64) -> Option<u32> {
        self.by_session.get(&session).map(|p| p.avatar)
    }

    fn may_act(&self, session: u64, id: u32) -> bool {
        self.by_session
            .get(&session)
            .is_some_and(|p| p.avatar == id || p.grants[..p.granted].contains(&id))
    }
}

/// Metres to micrometres for a spawn point given in metres (tests, tools).
pub fn metres_to_um(m: [f64; 3]) -> [i64; 3] {
    m.map(|v| Micros::from_num(v * 1e6).to_num::<i64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::WorldBounds;
    use crate::zones::ZoneLayout;

    fn cfg(zone: ZoneId, count: usize) -> ZoneConfig {
        ZoneConfig::new(zone, ZoneLayout::new(count).unwrap(), WorldBounds::demo())
    }

    #[test]
    fn each_zone_spawns_in_its_own_range_and_points_elsewhere_to_the_owner() {
        for zone in 0..3 {
            let c = cfg(zone, 3);
            let a = Avatars::new();
            let JoinDecision::Spawn { at } = a.decide(1, None, &c) else {
                panic!("zone {zone}: the default spawn point is its own");
            };
            let code = crate::hilbert::encode_position(&c.bounds, &at);
            assert_eq!(c.layout.zone_of(code), zone, "zone {zone}");
            for other in (0..3).filter(|&o| o != zone) {
                let there = default_spawn(&cfg(other, 3)).map(|m| m.to_num::<i64>());
                assert_eq!(
                    a.decide(1, Some(there), &c),
                    JoinDecision::Elsewhere { zone: other },
                    "zone {zone} sends a spawn at zone {other}'s point there"
                );
            }
        }
    }

    #[test]
    fn points_outside_the_world_are_clamped_and_repeats_get_the_same_avatar() {
        let c = cfg(0, 1);
        let mut a = Avatars::new();
        let far = metres_to_um([1e6, -1e6, 0.0]);
        let JoinDecision::Spawn { at } = a.decide(7, Some(far), &c) else {
            panic!("one zone owns everything");
        };
        assert!(c.bounds.contains(&at), "clamped into the world: {at:?}");
        a.insert(7, 0x8000_0001);
        assert_eq!(
            a.decide(7, None, &c),
            JoinDecision::Existing { id: 0x8000_0001 }
        );
        assert_eq!(a.session_of(0x8000_0001), Some(7));
        assert_eq!(a.remove(7), Some(0x8000_0001));
        assert_eq!(a.session_of(0x8000_0001), None);
        assert_eq!(a.remove(7), None, "removed once");
        assert!(a.is_empty());
    }

    #[test]
    fn authority_is_the_avatar_and_the_grants_only() {
        let mut a = Avatars::new();
        a.insert(1, 100);
        a.insert(2, 200);
        assert!(a.may_act(1, 100));
        assert!(!a.may_act(1, 200), "another player's avatar");
        assert!(!a.may_act(3, 100), "a session without avatar");
        assert!(
            !a.grant(1, 200),
            "another player's avatar cannot be granted"
        );
        assert!(!a.grant(3, 5), "no avatar, no grants");
        for id in 0..MAX_GRANTS as u32 {
            assert!(a.grant(1, 1000 + id));
        }
        assert!(!a.grant(1, 5000), "at most {MAX_GRANTS} grants");
        assert!(a.may_act(1, 1000) && a.may_act(1, 1007));
        assert!(!a.may_act(2, 1000));
        assert_eq!(a.avatar_of(2), Some(200));
        assert_eq!(a.len(), 2);
    }
}
