//! Ownership across hand-offs: the zone core carries each handed-off entity's
//! [`OwnershipRecord`] inside its migration intent (version 2,
//! [`crate::migration_intent`]), so the holder and persist mode arrive, or are rolled back,
//! together with the entity.
//!
//! The ownership table ([`super::Ownership`]) lives beside the zone, not in it; before the
//! ticks of a frame the glue hands the zone the records to carry
//! ([`Zone::set_carried_ownership`], from [`super::Ownership::records`]). Then:
//!
//! - **sender**: an intent for an entity with a record carries it; when the receiver's ack
//!   commits the hand-off, the entity's id is listed in [`Zone::take_handed_off_ownership`]
//!   (the glue forgets it without announcing a release: the holder is unchanged, elsewhere). A
//!   rolled-back hand-off leaves the entity, and its entry in the table, where they were.
//! - **receiver**: an accepted intent's record is kept with the reservation; the commit moves
//!   it to [`Zone::take_arrived_ownership`] (the glue imports it, [`super::Ownership::import`]);
//!   an abort drops it.
//!
//! Maps are sized for every slot when the zone is made, so a tick does not allocate for them.

use rustc_hash::FxHashMap;

use super::record::OwnershipRecord;
use crate::zone::Zone;
use crate::zones::ZoneId;

/// The ownership records a zone carries through hand-offs.
#[derive(Debug, Clone, Default)]
pub struct OwnershipCarry {
    /// Records of this zone's entities, set by the glue (by global id).
    carried: FxHashMap<u32, OwnershipRecord>,
    /// Records of reservations (neighbours' entities not committed yet), by (sender, migration
    /// id): an entity may be reserved again while the abort of an earlier try is on its way.
    incoming: FxHashMap<(ZoneId, u32), OwnershipRecord>,
    /// Records of committed arrivals, not yet taken.
    arrived: Vec<OwnershipRecord>,
    /// Entities handed off with a record, not yet taken.
    handed_off: Vec<u32>,
}

impl OwnershipCarry {
    /// Room for `slots` entities each way.
    pub fn with_capacity(slots: usize) -> Self {
        Self {
            carried: FxHashMap::with_capacity_and_hasher(slots, Default::default()),
            incoming: FxHashMap::with_capacity_and_hasher(slots, Default::default()),
            arrived: Vec::with_capacity(slots),
            handed_off: Vec::with_capacity(slots),
        }
    }

    /// The record to send with entity `gid`.
    pub(crate) fn outgoing(&self, gid: u32) -> Option<OwnershipRecord> {
        self.carried.get(&gid).copied()
    }

    /// Migration `id` from `from` was reserved from an intent carrying `record`.
    pub(crate) fn reserved(&mut self, from: ZoneId, id: u32, record: Option<OwnershipRecord>) {
        if let Some(r) = record {
            self.incoming.insert((from, id), r);
        }
    }

    /// Migration `id` from `from` was committed.
    pub(crate) fn committed_in(&mut self, from: ZoneId, id: u32) {
        if let Some(r) = self.incoming.remove(&(from, id)) {
            self.arrived.push(r);
        }
    }

    /// Migration `id` from `from` was aborted.
    pub(crate) fn aborted_in(&mut self, from: ZoneId, id: u32) {
        self.incoming.remove(&(from, id));
    }

    /// This zone's hand-off of `gid` was committed.
    pub(crate) fn committed_out(&mut self, gid: u32) {
        if self.carried.remove(&gid).is_some() {
            self.handed_off.push(gid);
        }
    }
}

impl Zone {
    /// Replaces the records carried with this zone's entities when handed off (call before
    /// the ticks of a frame; entities without one carry nothing).
    pub fn set_carried_ownership(&mut self, records: impl Iterator<Item = OwnershipRecord>) {
        let c = &mut self.carry.carried;
        c.clear();
        c.extend(records.map(|r| (r.entity, r)));
    }

    /// Records of entities that arrived since the last call, in arrival order.
    pub fn take_arrived_ownership(&mut self) -> std::vec::Drain<'_, OwnershipRecord> {
        self.carry.arrived.drain(..)
    }

    /// Entities handed off with their record since the last call.
    pub fn take_handed_off_ownership(&mut self) -> std::vec::Drain<'_, u32> {
        self.carry.handed_off.drain(..)
    }
}
