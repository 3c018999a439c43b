//! The ownership state machine of one zone: per entity a holder (a player, named by its
//! avatar's global id) or none (the zone itself), and its [`PersistMode`].
//!
//! Transitions, all decided here and answered with a value the zone turns into messages:
//!
//! - [`Ownership::request`]: granted ([`Grant`]) or denied ([`Denial`]). Only the zone that
//!   owns the entity grants (the caller says whether it does); an avatar is never granted (its
//!   player acts on it anyway); one holder at a time: a request for an entity held by another
//!   is denied (`held`); a player holds at most [`OwnershipConfig::max_held`] entities.
//! - [`Ownership::release`]: the holder gives the entity back to the zone; a release by anyone
//!   else is refused (`not_holder`).
//! - [`Ownership::revoke`]: the server takes the entity back (forced).
//! - [`Ownership::holder_left`]: the holder disconnected: each entity it held is despawned or
//!   kept with its holder cleared, by its persist mode ([`Departure`]).
//! - [`Ownership::forget`]: the entity is gone from this zone (despawned, or handed off with
//!   its [`super::OwnershipRecord`]).
//! - [`Ownership::import`]: an entity handed over by a neighbour arrives with its record: its
//!   holder holds it here too.
//! - [`Ownership::expire_absent`]: a holder that plays no avatar in this zone (its entity was
//!   handed over without it, or its avatar left) keeps its entities for
//!   [`OwnershipConfig::absent_grace_ticks`]; then each follows its persist mode, as if the
//!   holder had disconnected. A holder that comes (or comes back) in time keeps them.
//!
//! **Fairness rule.** The first request to reach the zone wins; the others are denied at once
//! (every request is answered, nobody waits on a queue a client may have given up on). So that
//! a holder cannot keep an entity from everyone by releasing and grabbing it again, a holder
//! whose hold was contested (someone was denied it meanwhile) may not take it again for
//! [`OwnershipConfig::fair_ticks`] ticks after it let go (`cooldown`): those who were waiting
//! get the first chance.
//!
//! Every refusal is counted per reason ([`Ownership::refused`]), and so are grants, releases
//! and take-backs. Nothing here runs inside the tick; lookups ([`Ownership::holder_of`]) do
//! not allocate. Entries are kept in a `BTreeMap`, so departures come out in entity order and
//! the same inputs give the same outputs.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use thiserror::Error;

use super::persist::PersistMode;
use super::record::OwnershipRecord;

/// Why a request (or a release) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum Denial {
    /// Another player holds the entity.
    #[error("another player holds the entity")]
    Held,
    /// The requester let go of a contested entity less than `fair_ticks` ago.
    #[error("released a contested entity too recently: others go first")]
    Cooldown,
    /// The entity is not owned by this zone (unknown, or handed off): ask the zone that owns it.
    #[error("the entity is not owned by this zone")]
    NotHere,
    /// The entity is a player's avatar: never granted.
    #[error("an avatar cannot be held")]
    Avatar,
    /// The requester already holds `max_held` entities.
    #[error("holding too many entities")]
    TooMany,
    /// The requester has no avatar in this zone yet.
    #[error("no avatar: send spawn first")]
    NotJoined,
    /// A release (or update) by a session that does not hold the entity.
    #[error("not the holder of the entity")]
    NotHolder,
    /// A client sent an ownership event (only the zone grants): a forged grant.
    #[error("ownership events come from the zone only")]
    Forged,
}

/// Number of [`Denial`] reasons.
pub const DENIAL_COUNT: usize = 8;

impl Denial {
    /// Every reason, in index order.
    pub const ALL: [Denial; DENIAL_COUNT] = [
        Denial::Held,
        Denial::Cooldown,
        Denial::NotHere,
        Denial::Avatar,
        Denial::TooMany,
        Denial::NotJoined,
        Denial::NotHolder,
        Denial::Forged,
    ];

    /// Index in [`Denial::ALL`] and in count arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable name (wire `reason`, metrics label, stats line).
    pub fn name(self) -> &'static str {
        match self {
            Denial::Held => "held",
            Denial::Cooldown => "cooldown",
            Denial::NotHere => "not_here",
            Denial::Avatar => "avatar",
            Denial::TooMany => "too_many",
            Denial::NotJoined => "not_joined",
            Denial::NotHolder => "not_holder",
            Denial::Forged => "forged",
        }
    }
}

/// A granted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The entity.
    pub entity: u32,
    /// Its holder now (the requester's avatar).
    pub holder: u32,
    /// True when the requester held it already (a repeated request, answered again).
    pub repeated: bool,
}

/// Why an entity lost its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCause {
    /// The holder released it.
    Released,
    /// The server took it back.
    Revoked,
    /// The holder disconnected.
    HolderLeft,
    /// The entity left this zone or was despawned.
    Gone,
}

impl ReleaseCause {
    /// The stable name (wire `reason`).
    pub fn name(self) -> &'static str {
        match self {
            ReleaseCause::Released => "released",
            ReleaseCause::Revoked => "server",
            ReleaseCause::HolderLeft => "holder_left",
            ReleaseCause::Gone => "gone",
        }
    }
}

/// What becomes of an entity whose holder disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// `transient_held`: despawn it.
    Despawn(u32),
    /// `placed_room` / `placed_saved`: it stays, owned by the zone, without holder.
    Kept(u32, PersistMode),
}

/// Settings of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipConfig {
    /// Most entities one player holds at once.
    pub max_held: usize,
    /// Ticks a player that let go of a contested entity waits before taking it again.
    pub fair_ticks: u64,
    /// The persist mode of entities not given one ([`Ownership::set_persist`]).
    pub default_persist: PersistMode,
    /// Ticks a holder absent from this zone keeps its entities ([`Ownership::expire_absent`]).
    pub absent_grace_ticks: u64,
}

impl Default for OwnershipConfig {
    /// 8 entities a player; 10 ticks (half a second at 20 Hz); `placed_room`; an absent
    /// holder keeps its entities 200 ticks (10 s at 20 Hz).
    fn default() -> Self {
        Self {
            max_held: 8,
            fair_ticks: 10,
            default_persist: PersistMode::PlacedRoom,
            absent_grace_ticks: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Entry {
    holder: Option<u32>,
    persist: PersistMode,
    /// Someone was denied it (held) during the current or last hold.
    contested: bool,
    /// Who held it last, and the tick it was let go.
    last: Option<(u32, u64)>,
    /// The tick its holder was first seen absent from this zone (reset when present).
    absent_since: Option<u64>,
}

/// Ownership of one zone's entities.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    cfg: OwnershipConfig,
    entries: BTreeMap<u32, Entry>,
    /// Entities held per holder. Keyed by avatar ids the zone assigned: Fx is safe.
    held: FxHashMap<u32, usize>,
    refused: [u64; DENIAL_COUNT],
    granted: u64,
    released: u64,
    revoked: u64,
}

impl Ownership {
    /// An empty table with `cfg`.
    pub fn new(cfg: OwnershipConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &OwnershipConfig {
        &self.cfg
    }

    /// The holder of `entity`, if a player holds it.
    pub fn holder_of(&self, entity: u32) -> Option<u32> {
        self.entries.get(&entity).and_then(|e| e.holder)
    }

    /// The persist mode of `entity` (the default mode unless set).
    pub fn persist_of(&self, entity: u32) -> PersistMode {
        self.entries
            .get(&entity)
            .map_or(self.cfg.default_persist, |e| e.persist)
    }

    /// The entry of `entity`, made with the default persist mode when it has none.
    fn entry(&mut self, entity: u32) -> &mut Entry {
        let persist = self.cfg.default_persist;
        self.entries.entry(entity).or_insert(Entry {
            persist,
            ..Entry::default()
        })
    }

    /// Sets the persist mode of `entity` (an entity of this zone).
    pub fn set_persist(&mut self, entity: u32, mode: PersistMode) {
        self.entry(entity).persist = mode;
    }

    /// How many entities `holder` holds.
    pub fn held_by(&self, holder: u32) -> usize {
        self.held.get(&holder).copied().unwrap_or(0)
    }

    /// Entities with a holder, as (entity, holder), in entity order.
    pub fn holders(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.entries
            .iter()
            .filter_map(|(&id, e)| e.holder.map(|h| (id, h)))
    }

    /// Entities marked `placed_saved` (what a room save includes), in entity order.
    pub fn saved(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .filter(|(_, e)| e.persist.saved())
            .map(|(&id, _)| id)
    }

    /// Refusals since the start, per [`Denial::index`].
    pub fn refused(&self) -> [u64; DENIAL_COUNT] {
        self.refused
    }

    /// Grants (repeats excluded), releases and take-backs since the start.
    pub fn totals(&self) -> (u64, u64, u64) {
        (self.granted, self.released, self.revoked)
    }

    /// Counts a refusal decided outside the table (e.g. [`Denial::Forged`]).
    pub fn count(&mut self, why: Denial) {
        self.refused[why.index()] += 1;
    }

    fn deny(&mut self, why: Denial) -> Result<Grant, Denial> {
        self.count(why);
        Err(why)
    }

    /// `requester` (an avatar id; `None` when the session has none) asks for `entity` at
    /// `tick`. `owned_here`: the entity is owned by this zone; `is_avatar`: it is a player's
    /// avatar. Granted or denied (the denial is counted).
    pub fn request(
        &mut self,
        entity: u32,
        requester: Option<u32>,
        tick: u64,
        owned_here: bool,
        is_avatar: bool,
    ) -> Result<Grant, Denial> {
        let Some(requester) = requester else {
            return self.deny(Denial::NotJoined);
        };
        if !owned_here {
            return self.deny(Denial::NotHere);
        }
        if is_avatar {
            return self.deny(Denial::Avatar);
        }
        let e = self.entries.get(&entity).copied().unwrap_or_default();
        match e.holder {
            Some(h) if h == requester => {
                return Ok(Grant {
                    entity,
                    holder: h,
                    repeated: true,
                });
            }
            Some(_) => {
                self.entry(entity).contested = true;
                return self.deny(Denial::Held);
            }
            None => {}
        }
        if e.contested
            && let Some((last, at)) = e.last
            && last == requester
            && tick < at.saturating_add(self.cfg.fair_ticks)
        {
            return self.deny(Denial::Cooldown);
        }
        if self.held_by(requester) >= self.cfg.max_held {
            return self.deny(Denial::TooMany);
        }
        let slot = self.entry(entity);
        slot.holder = Some(requester);
        slot.contested = false;
        *self.held.entry(requester).or_insert(0) += 1;
        self.granted += 1;
        Ok(Grant {
            entity,
            holder: requester,
            repeated: false,
        })
    }

    /// Clears the holder of `entity` at `tick`; returns the former holder.
    fn clear(&mut self, entity: u32, tick: u64) -> Option<u32> {
        let e = self.entries.get_mut(&entity)?;
        let h = e.holder.take()?;
        e.last = Some((h, tick));
        e.absent_since = None;
        if let Some(n) = self.held.get_mut(&h) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&h);
            }
        }
        Some(h)
    }

    /// `requester` (an avatar id) gives `entity` back to the zone at `tick`. Refused (and
    /// counted as `not_holder`) when it is not the holder.
    pub fn release(
        &mut self,
        entity: u32,
        requester: Option<u32>,
        tick: u64,
    ) -> Result<(), Denial> {
        if requester.is_none() || self.holder_of(entity) != requester {
            self.count(Denial::NotHolder);
            return Err(Denial::NotHolder);
        }
        self.clear(entity, tick);
        self.released += 1;
        Ok(())
    }

    /// The server takes `entity` back at `tick`: returns the former holder, if it had one.
    pub fn revoke(&mut self, entity: u32, tick: u64) -> Option<u32> {
        let h = self.clear(entity, tick)?;
        self.revoked += 1;
        Some(h)
    }

    /// `holder` disconnected at `tick`: calls `out` once per entity it held, in entity order,
    /// with what to do with it. `transient_held` entities are forgotten (the zone despawns
    /// them); the others stay, owned by the zone, without holder.
    pub fn holder_left(&mut self, holder: u32, tick: u64, out: impl FnMut(Departure)) {
        if self.held_by(holder) == 0 {
            return;
        }
        let mine: Vec<u32> = self
            .holders()
            .filter(|&(_, h)| h == holder)
            .map(|(id, _)| id)
            .collect();
        self.depart(mine, tick, out);
    }

    /// Clears the holder of each of `ids` at `tick` and applies its persist mode.
    fn depart(&mut self, ids: Vec<u32>, tick: u64, mut out: impl FnMut(Departure)) {
        for id in ids {
            self.clear(id, tick);
            let persist = self.persist_of(id);
            if let Some(e) = self.entries.get_mut(&id) {
                // The player is gone: no cooldown for it to keep.
                e.last = None;
                e.contested = false;
            }
            if persist.survives_holder() {
                out(Departure::Kept(id, persist));
            } else {
                self.entries.remove(&id);
                out(Departure::Despawn(id));
            }
        }
    }

    /// `entity` is gone from this zone (despawned, or handed off): its entry is dropped and
    /// its former holder returned.
    pub fn forget(&mut self, entity: u32) -> Option<u32> {
        let h = self.clear(entity, 0);
        self.entries.remove(&entity);
        h
    }

    /// The record of `entity` to send with it in a hand-off (`None` when it has no entry:
    /// no holder and the default mode, nothing to carry).
    pub fn export(&self, entity: u32) -> Option<OwnershipRecord> {
        let e = self.entries.get(&entity)?;
        Some(OwnershipRecord {
            entity,
            holder: e.holder,
            persist: e.persist,
        })
    }

    /// The record of every entity with an entry (held, or given a persist mode), in entity
    /// order: what the zone carries with them if they are handed off.
    pub fn records(&self) -> impl Iterator<Item = OwnershipRecord> + '_ {
        self.entries.iter().map(|(&entity, e)| OwnershipRecord {
            entity,
            holder: e.holder,
            persist: e.persist,
        })
    }

    /// Once a frame at `tick`: holders for which `present` is false (no avatar of theirs is
    /// played in this zone) are noted; those absent for [`OwnershipConfig::absent_grace_ticks`]
    /// lose each entity they hold here, which follows its persist mode ([`Departure`], as in
    /// [`Ownership::holder_left`]); `out` hears each, in entity order. Allocates only when
    /// something expires.
    pub fn expire_absent(
        &mut self,
        tick: u64,
        present: impl Fn(u32) -> bool,
        out: impl FnMut(Departure),
    ) {
        let grace = self.cfg.absent_grace_ticks;
        let mut expired = Vec::new();
        for (&id, e) in self.entries.iter_mut() {
            let Some(h) = e.holder else { continue };
            if present(h) {
                e.absent_since = None;
                continue;
            }
            let since = *e.absent_since.get_or_insert(tick);
            if tick >= since.saturating_add(grace) {
                expired.push(id);
            }
        }
        if !expired.is_empty() {
            self.depart(expired, tick, out);
        }
    }

    /// Takes in the record of an entity handed off to this zone: its holder and mode are
    /// restored. Returns false (nothing changed) when the holder already holds `max_held`
    /// entities here; the entity then arrives without holder.
    pub fn import(&mut self, r: &OwnershipRecord) -> bool {
        self.forget(r.entity);
        self.set_persist(r.entity, r.persist);
        let Some(h) = r.holder else {
            return true;
        };
        if self.held_by(h) >= self.cfg.max_held {
            return false;
        }
        self.entry(r.entity).holder = Some(h);
        *self.held.entry(h).or_insert(0) += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<u32> = Some(100);
    const B: Option<u32> = Some(200);

    fn req(o: &mut Ownership, e: u32, who: Option<u32>, tick: u64) -> Result<Grant, Denial> {
        o.request(e, who, tick, true, false)
    }

    #[test]
    fn one_holder_at_a_time_and_release_frees_it() {
        let mut o = Ownership::default();
        let g = req(&mut o, 7, A, 1).expect("a free entity is granted");
        assert_eq!((g.entity, g.holder, g.repeated), (7, 100, false));
        assert_eq!(req(&mut o, 7, B, 2), Err(Denial::Held), "B is denied");
        assert!(req(&mut o, 7, A, 3).unwrap().repeated, "A asks again: yes");
        assert_eq!(o.holder_of(7), Some(100));
        assert_eq!(
            o.release(7, B, 4),
            Err(Denial::NotHolder),
            "B cannot release"
        );
        assert_eq!(o.holder_of(7), Some(100), "still A's");
        o.release(7, A, 5).expect("A releases");
        assert_eq!(o.holder_of(7), None);
        assert_eq!(req(&mut o, 7, B, 6).unwrap().holder, 200, "now B gets it");
        let r = o.refused();
        assert_eq!(r[Denial::Held.index()], 1);
        assert_eq!(r[Denial::NotHolder.index()], 1);
        assert_eq!(
            o.totals(),
            (2, 1, 0),
            "2 grants (the repeat not counted), 1 release"
        );
    }

    #[test]
    fn only_the_owning_zone_grants_and_avatars_are_never_granted() {
        let mut o = Ownership::default();
        assert_eq!(o.request(7, A, 0, false, false), Err(Denial::NotHere));
        assert_eq!(o.request(7, A, 0, true, true), Err(Denial::Avatar));
        assert_eq!(o.request(7, None, 0, true, false), Err(Denial::NotJoined));
        assert_eq!(o.holder_of(7), None);
        o.count(Denial::Forged);
        assert_eq!(o.refused()[Denial::Forged.index()], 1);
        assert_eq!(
            o.refused().iter().sum::<u64>(),
            4,
            "each refusal counted once"
        );
    }

    #[test]
    fn a_player_holds_at_most_max_held() {
        let mut o = Ownership::new(OwnershipConfig {
            max_held: 2,
            ..OwnershipConfig::default()
        });
        req(&mut o, 1, A, 0).unwrap();
        req(&mut o, 2, A, 0).unwrap();
        assert_eq!(req(&mut o, 3, A, 0), Err(Denial::TooMany));
        o.release(1, A, 1).unwrap();
        req(&mut o, 3, A, 2).expect("room again after a release");
        assert_eq!(o.held_by(100), 2);
    }

    #[test]
    fn a_contested_holder_waits_fair_ticks_before_regrabbing() {
        let mut o = Ownership::default();
        req(&mut o, 7, A, 0).unwrap();
        o.release(7, A, 1).unwrap();
        req(&mut o, 7, A, 2).expect("uncontested: A may take it straight back");
        assert_eq!(req(&mut o, 7, B, 3), Err(Denial::Held), "B wanted it");
        o.release(7, A, 4).unwrap();
        assert_eq!(req(&mut o, 7, A, 5), Err(Denial::Cooldown), "B goes first");
        assert_eq!(
            req(&mut o, 7, A, 13),
            Err(Denial::Cooldown),
            "still 10 ticks"
        );
        req(&mut o, 7, A, 14).expect("after fair_ticks A may take it again");
        assert_eq!(req(&mut o, 7, B, 15), Err(Denial::Held));
        o.release(7, A, 16).unwrap();
        req(&mut o, 7, B, 17).expect("B, who waited, is granted at once");
    }

    #[test]
    fn revoke_takes_it_back_for_the_zone() {
        let mut o = Ownership::default();
        assert_eq!(o.revoke(7, 0), None, "nothing to take back");
        req(&mut o, 7, A, 0).unwrap();
        assert_eq!(o.revoke(7, 1), Some(100));
        assert_eq!(o.holder_of(7), None);
        assert_eq!(o.held_by(100), 0);
        assert_eq!(
            o.release(7, A, 2),
            Err(Denial::NotHolder),
            "A no longer holds it"
        );
        assert_eq!(o.totals(), (1, 0, 1));
    }

    #[test]
    fn departures_follow_each_persist_mode() {
        let mut o = Ownership::default();
        o.set_persist(1, PersistMode::TransientHeld);
        o.set_persist(3, PersistMode::PlacedSaved);
        for e in [3, 1, 2] {
            req(&mut o, e, A, 0).unwrap();
        }
        req(&mut o, 4, B, 0).unwrap();
        let mut out = Vec::new();
        o.holder_left(100, 9, |d| out.push(d));
        assert_eq!(
            out,
            [
                Departure::Despawn(1),
                Departure::Kept(2, PersistMode::PlacedRoom),
                Departure::Kept(3, PersistMode::PlacedSaved),
            ],
            "in entity order, by persist mode"
        );
        assert_eq!(o.holder_of(2), None, "kept, holder cleared");
        assert_eq!(o.holder_of(4), Some(200), "B's entity untouched");
        assert_eq!(o.export(1), None, "the transient entity is forgotten");
        assert_eq!(o.saved().collect::<Vec<_>>(), [3]);
        req(&mut o, 2, B, 10).expect("a kept entity can be granted again at once");
        let mut none = Vec::new();
        o.holder_left(100, 11, |d| none.push(d));
        assert!(none.is_empty(), "a second departure finds nothing");
    }

    #[test]
    fn the_default_mode_applies_to_entities_not_given_one() {
        let mut o = Ownership::new(OwnershipConfig {
            default_persist: PersistMode::TransientHeld,
            ..OwnershipConfig::default()
        });
        o.set_persist(2, PersistMode::PlacedRoom);
        assert_eq!(o.persist_of(1), PersistMode::TransientHeld);
        req(&mut o, 1, A, 0).unwrap();
        req(&mut o, 2, A, 0).unwrap();
        let mut out = Vec::new();
        o.holder_left(100, 1, |d| out.push(d));
        assert_eq!(
            out,
            [
                Departure::Despawn(1),
                Departure::Kept(2, PersistMode::PlacedRoom)
            ]
        );
    }

    #[test]
    fn records_carry_holder_and_mode_to_another_zone() {
        let mut from = Ownership::default();
        from.set_persist(7, PersistMode::PlacedSaved);
        req(&mut from, 7, A, 0).unwrap();
        let r = from.export(7).expect("a record");
        assert_eq!(from.forget(7), Some(100));
        assert_eq!(from.held_by(100), 0);
        let mut to = Ownership::default();
        assert!(to.import(&r));
        assert_eq!(to.holder_of(7), Some(100));
        assert_eq!(to.persist_of(7), PersistMode::PlacedSaved);
        to.release(7, A, 1)
            .expect("the holder releases it in the new zone");
        assert_eq!(
            Ownership::default().export(7),
            None,
            "no entry, nothing to carry"
        );
    }

    #[test]
    fn an_absent_holder_keeps_its_entities_for_the_grace_then_they_follow_their_mode() {
        let cfg = OwnershipConfig {
            absent_grace_ticks: 20,
            ..OwnershipConfig::default()
        };
        let mut t = Ownership::new(cfg);
        for (id, mode) in [
            (1, PersistMode::TransientHeld),
            (2, PersistMode::PlacedRoom),
        ] {
            t.import(&OwnershipRecord {
                entity: id,
                holder: A,
                persist: mode,
            });
        }
        t.import(&OwnershipRecord {
            entity: 3,
            holder: B,
            persist: PersistMode::PlacedSaved,
        });
        let here = |h: u32| Some(h) == B;
        let mut out = Vec::new();
        t.expire_absent(100, here, |d| out.push(d));
        t.expire_absent(119, here, |d| out.push(d));
        assert!(out.is_empty(), "within the grace: {out:?}");
        assert_eq!(t.holder_of(1), A, "still held by the absent player");
        t.expire_absent(120, here, |d| out.push(d));
        assert_eq!(
            out,
            [
                Departure::Despawn(1),
                Departure::Kept(2, PersistMode::PlacedRoom)
            ],
            "after the grace, by persist mode"
        );
        assert_eq!((t.holder_of(2), t.held_by(100)), (None, 0));
        assert_eq!(t.holder_of(3), B, "a present holder keeps its entity");
        assert_eq!(
            t.records().map(|r| r.entity).collect::<Vec<_>>(),
            [2, 3],
            "the despawned entity has no record left"
        );
    }

    #[test]
    fn a_holder_that_comes_back_in_time_starts_a_new_grace() {
        let cfg = OwnershipConfig {
            absent_grace_ticks: 10,
            ..OwnershipConfig::default()
        };
        let mut t = Ownership::new(cfg);
        t.request(5, A, 0, true, false).unwrap();
        let mut out = Vec::new();
        t.expire_absent(0, |_| false, |d| out.push(d));
        t.expire_absent(9, |_| true, |d| out.push(d));
        t.expire_absent(15, |_| false, |d| out.push(d));
        t.expire_absent(24, |_| false, |d| out.push(d));
        assert!(out.is_empty(), "absent again only since 15: {out:?}");
        t.expire_absent(25, |_| false, |d| out.push(d));
        assert_eq!(out, [Departure::Kept(5, PersistMode::PlacedRoom)]);
    }
}
