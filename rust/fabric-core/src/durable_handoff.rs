//! Durable hand-offs: after any crash of sender or receiver, exactly one zone owns the entity.
//!
//! Plain STAGING migration ([`crate::migration`]) decides in memory: the sender frees its slot
//! when the receiver's ack comes, and the two journals record the departure and the arrival
//! independently. A crash between the two loses the entity (departure durable, arrival not) or
//! duplicates it (arrival durable, departure not). With a journal the zone turns this mode on
//! ([`Zone::set_durable_handoffs`]) and the hand-off becomes a three-step commit whose every
//! step waits for the journal (`docs/persistence.md`, "Hand-offs across a crash"):
//!
//! ```text
//! sender                                          receiver
//! Owned --intent--> Staging                       Incoming (tentative; REFU / ABRT as before)
//!        <--ACKK--  Staging+SEALED  (journal: mark "sealed to R, migration m")
//!        [seal durable] --CMIT(m, gid)-->         Owned/Arriving+PINNED (journal: spawn + mark)
//!        <--CMAK--  [arrival durable]             (CMAK resent every RTO until FRGT)
//! Free (journal: despawn)
//!        [despawn durable] --FRGT-->              unpinned (journal: mark cleared)
//! ```
//!
//! - A **sealed** entity never rolls back on its own (no RTO): only the receiver decides. A
//!   CMAK frees it; a CMNK ("no reservation, no arrival: never taken, never will be") makes it
//!   owned again (journal: mark cleared).
//! - A **pinned** arrival is owned and simulated but not handed on: while the sender's
//!   departure may not be durable, the receiver must be able to answer for it.
//! - **Restart.** The journal restores marked entities with their marks
//!   ([`Zone::restore_marked`]): a sealed one asks again (CMIT, resent until answered); a pinned
//!   one sends CMAK again until FRGT. Everything restored is durable. Reservations are not
//!   journaled: a CMIT for a lost reservation gets CMNK and the sender keeps the entity.
//! - A CMAK for a hand-off the sender does not know (its FRGT was lost, or it restarted after
//!   its despawn became durable) is answered FRGT once everything the sender journaled so far
//!   is durable.
//! - A receiver refuses an intent for an entity it already holds (`REFUSE_HELD`), except a
//!   stale reservation from the same sender, which the new intent replaces (the sender
//!   restarted, or rolled back and retried). When a neighbour's link comes up again its
//!   replay window restarts (a restarted sender numbers migrations from 1 again) and its
//!   reservations here are dropped (a restarted sender forgot them; CMNK covers a CMIT).
//!
//! Every step that needs the journal records a [`HandoffRecord`] (taken by the glue with
//! [`Zone::handoff_records`], written with the tick's batch) stamped with the tick whose batch
//! holds it; the glue reports the journal's durable tick ([`Zone::set_durable_tick`]) and the
//! zone sends what waited for it. Sans-IO: no clock, no disk.

use crate::entity::Entity;
use crate::replay::ReplayWindow;
use crate::slots::SlotState;
use crate::zone::{Decision, Resolution, SpawnError, Zone};
use crate::zone_control::{ControlKind, NO_SLOT, REFUSE_HELD, ZoneControl};
use crate::zones::{MAX_ZONES, ZoneId};

/// The kind of a durable hand-off mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MarkKind {
    /// Sender: promised to the receiver; gone once it confirms, back once it refuses.
    Sealed = 1,
    /// Receiver: arrived, not handed on until the sender's departure is durable.
    Pinned = 2,
}

impl MarkKind {
    /// The kind of a stored byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Sealed),
            2 => Some(Self::Pinned),
            _ => None,
        }
    }
}

/// What a journal keeps about an entity in a hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandoffMark {
    /// Sealed (sender) or pinned (receiver).
    pub kind: MarkKind,
    /// The other zone.
    pub peer: ZoneId,
    /// The sender's migration id.
    pub migration_id: u32,
}

/// A step of a durable hand-off that must be journaled (in the batch of the tick it was made).
// Records live in a vector allocated once; boxing the arrival's entity would allocate per
// hand-off on the tick thread.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffRecord {
    /// Sender: the entity is sealed (journal the mark).
    Sealed {
        /// The entity.
        global_id: u32,
        /// Its mark.
        mark: HandoffMark,
    },
    /// Sender: the receiver refused the commit; the entity is owned again (clear the mark).
    Unsealed {
        /// The entity.
        global_id: u32,
    },
    /// Sender: the receiver's arrival is durable; the entity left (journal a despawn).
    Released {
        /// The entity.
        global_id: u32,
    },
    /// Receiver: a committed arrival (journal a spawn with this state, then the mark).
    Arrived {
        /// The entity as it arrived.
        entity: Entity,
        /// Its (pinned) mark.
        mark: HandoffMark,
    },
    /// Receiver: the sender's departure is durable (clear the mark).
    Unpinned {
        /// The entity.
        global_id: u32,
    },
}

/// A receiver's arrival whose CMAK is owed (first once durable, then every RTO until FRGT).
#[derive(Debug, Clone, Copy)]
struct Pin {
    from: ZoneId,
    id: u32,
    gid: u32,
    wait: u64,
    last_sent: u64,
    sends: u32,
}

/// What durable hand-offs are waiting for ([`Zone::handoff_backlog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandoffBacklog {
    /// Sealed entities whose CMIT waits for the seal to be durable.
    pub sealing: usize,
    /// Arrivals pinned until their sender's FRGT.
    pub pinned: usize,
    /// FRGTs owed once this zone's despawns are durable.
    pub forgets_owed: usize,
    /// The journal's durable tick as last reported (0 while none).
    pub durable_tick: u64,
}

/// A FRGT owed once the tick `wait` is durable.
#[derive(Debug, Clone, Copy)]
struct ForgetOwed {
    peer: ZoneId,
    id: u32,
    gid: u32,
    wait: u64,
}

/// The zone's durable hand-off bookkeeping (allocated once, sized by the slots).
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    on: bool,
    /// The journal's durable tick (0 while none).
    durable_tick: u64,
    /// The tick of the latest record.
    last_record: u64,
    records: Vec<HandoffRecord>,
    /// Sealed slots whose CMIT waits for the seal to be durable: (slot, tick of the seal).
    sealing: Vec<(u16, u64)>,
    pins: Vec<Pin>,
    forgets: Vec<ForgetOwed>,
}

impl Durable {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            on: false,
            durable_tick: 0,
            last_record: 0,
            records: Vec::with_capacity(cap * 2 + 64),
            sealing: Vec::with_capacity(cap),
            pins: Vec::with_capacity(cap),
            forgets: Vec::with_capacity(cap),
        }
    }

    fn is_durable(&self, wait: u64) -> bool {
        wait == 0 || self.durable_tick >= wait
    }
}

impl Zone {
    /// Turns durable hand-offs on (a zone with a journal) or off. Set before the first tick.
    pub fn set_durable_handoffs(&mut self, on: bool) {
        self.durable.on = on;
    }

    /// Whether hand-offs wait for the journal.
    pub fn durable_handoffs(&self) -> bool {
        self.durable.on
    }

    /// The journal committed every batch up to tick `tick`: sends the commits, commit acks and
    /// forgets that waited for it (into the outbox).
    pub fn set_durable_tick(&mut self, tick: Option<u64>) {
        let t = tick.unwrap_or(0);
        if t > self.durable.durable_tick {
            self.durable.durable_tick = t;
            self.flush_durable();
        }
    }

    /// Records of hand-off steps to journal, oldest first (with the tick's other mutations).
    pub fn handoff_records(&self) -> &[HandoffRecord] {
        &self.durable.records
    }

    /// Forgets the records (call after adding them to the journal's batch).
    pub fn clear_handoff_records(&mut self) {
        self.durable.records.clear();
    }

    /// Arrivals still pinned here (waiting for their sender's FRGT).
    pub fn pinned_count(&self) -> usize {
        self.durable.pins.len()
    }

    /// Arrivals from `peer` still pinned here.
    pub fn pinned_from(&self, peer: ZoneId) -> usize {
        self.durable.pins.iter().filter(|p| p.from == peer).count()
    }

    /// FRGTs owed to receivers, waiting for this zone's journal.
    pub fn forgets_owed(&self) -> usize {
        self.durable.forgets.len()
    }

    /// What durable hand-offs are waiting for, for status and shutdown reports.
    pub fn handoff_backlog(&self) -> HandoffBacklog {
        HandoffBacklog {
            sealing: self.durable.sealing.len(),
            pinned: self.durable.pins.len(),
            forgets_owed: self.durable.forgets.len(),
            durable_tick: self.durable.durable_tick,
        }
    }

    /// Restores an entity from the journal with its hand-off mark: owned (no mark), sealed
    /// (staging toward `mark.peer`, asking it again) or pinned (owned, sending CMAK again until
    /// the sender forgets). Fails when no slot is free. Returns the slot.
    pub fn restore_marked(
        &mut self,
        e: Entity,
        mark: Option<HandoffMark>,
    ) -> Result<usize, SpawnError> {
        let full = SpawnError::Full {
            used: self.slots.used(),
            capacity: self.slots.capacity(),
            headroom: self.slots.headroom(),
        };
        let Some(mark) = mark.filter(|m| self.valid_peer(m.peer)) else {
            return self.spawn(e);
        };
        if !self.slots.can_accept() {
            return Err(full);
        }
        let mut e = e;
        self.sanitize(&mut e);
        let state = match mark.kind {
            MarkKind::Sealed => SlotState::Staging,
            MarkKind::Pinned => SlotState::Owned,
        };
        let i = self.slots.alloc(&e, state).ok_or(full)?;
        let s = &mut self.slots;
        s.code[i] = crate::hilbert::encode_position(&self.cfg.bounds, &e.position);
        s.peer[i] = mark.peer;
        s.mig_id[i] = mark.migration_id;
        s.mig_tick[i] = self.now;
        s.peer_slot[i] = u16::MAX;
        s.mark[i] = mark.kind as u8;
        if mark.kind == MarkKind::Sealed {
            // This incarnation numbers its migrations after the ones it still answers for.
            let next = &mut self.next_mig_id[mark.peer as usize % MAX_ZONES];
            *next = (*next).max(mark.migration_id.wrapping_add(1)).max(1);
        }
        match mark.kind {
            MarkKind::Sealed => {
                self.staging += 1;
                // Due at the first tick: ask the receiver what became of it.
                self.resolutions.push(Resolution {
                    decision: Decision::Commit,
                    peer: mark.peer,
                    migration_id: mark.migration_id,
                    peer_slot: NO_SLOT,
                    global_id: e.global_id,
                    intent_tick: self.now,
                    last_sent: self.now,
                    sends: 1,
                });
                let id = mark.migration_id;
                self.send_control(mark.peer, ControlKind::Commit, id, NO_SLOT, e.global_id);
            }
            MarkKind::Pinned => self.durable.pins.push(Pin {
                from: mark.peer,
                id: mark.migration_id,
                gid: e.global_id,
                wait: 0,
                last_sent: 0,
                sends: 0,
            }),
        }
        Ok(i)
    }

    /// The link to `peer` came up (again): it may have restarted. Hand-offs toward it may start
    /// again ([`crate::peer_departure`]). Restarts its replay window,
    /// drops its reservations here, and makes every commit and commit ack toward it due now:
    /// those only with durable hand-offs (without, a dropped reservation would lose a commit).
    pub fn peer_relinked(&mut self, peer: ZoneId) {
        self.peer_returned(peer);
        if !self.durable.on || !self.valid_peer(peer) {
            return;
        }
        self.replay[peer as usize % MAX_ZONES] = ReplayWindow::new();
        for i in 0..self.slots.capacity() {
            if self.slots.state[i] == SlotState::Incoming && self.slots.peer[i] == peer {
                self.carry.aborted_in(peer, self.slots.mig_id[i]);
                self.slots.release(i);
                self.stats.reservations_aborted += 1;
            }
        }
        for r in self.resolutions.iter_mut().filter(|r| r.peer == peer) {
            r.last_sent = 0;
            r.sends = 1;
        }
        for p in self.durable.pins.iter_mut().filter(|p| p.from == peer) {
            p.last_sent = 0;
            p.sends = p.sends.min(1);
        }
    }

    fn record(&mut self, r: HandoffRecord) {
        self.durable.last_record = self.now;
        self.durable.records.push(r);
    }

    /// Intent for `gid` from `from`: whether this zone already holds it (refuse). A stale
    /// reservation of the same entity from the same sender is dropped for the new one.
    pub(crate) fn held_conflict(&mut self, from: ZoneId, gid: u32) -> bool {
        let Some(i) = (0..self.slots.capacity())
            .find(|&i| self.slots.state[i] != SlotState::Free && self.slots.gid[i] == gid)
        else {
            return false;
        };
        if self.slots.state[i] == SlotState::Incoming && self.slots.peer[i] == from {
            self.carry.aborted_in(from, self.slots.mig_id[i]);
            self.slots.release(i);
            self.stats.reservations_aborted += 1;
            return false;
        }
        true
    }

    /// The refusal reason for a held entity.
    pub(crate) const HELD: u32 = REFUSE_HELD;

    /// Sender, durable: the receiver reserved slot `receiver_slot` for staging slot `i`.
    /// Seals it; the commit goes out once the seal is durable.
    pub(crate) fn seal(&mut self, i: usize, from: ZoneId, id: u32, receiver_slot: u32) {
        if self.slots.mark[i] != 0 {
            return; // A duplicate ack.
        }
        let rtt = self.now.saturating_sub(self.slots.mig_tick[i]);
        self.rtt[from as usize].sample(rtt);
        self.slots.mark[i] = MarkKind::Sealed as u8;
        self.slots.peer_slot[i] = u16::try_from(receiver_slot).unwrap_or(u16::MAX);
        let global_id = self.slots.gid[i];
        self.record(HandoffRecord::Sealed {
            global_id,
            mark: HandoffMark {
                kind: MarkKind::Sealed,
                peer: from,
                migration_id: id,
            },
        });
        self.durable.sealing.push((i as u16, self.now));
        self.flush_durable();
    }

    /// The sealed staging slot of migration `id` to `peer` for entity `gid`.
    fn sealed_slot(&self, peer: ZoneId, id: u32, gid: u32) -> Option<usize> {
        (0..self.slots.capacity()).find(|&i| {
            self.slots.state[i] == SlotState::Staging
                && self.slots.mark[i] == MarkKind::Sealed as u8
                && self.slots.peer[i] == peer
                && self.slots.mig_id[i] == id
                && self.slots.gid[i] == gid
        })
    }

    /// The commit resolution of migration `id` to `peer` for `gid` (ids repeat after a restart,
    /// so the entity is part of the key).
    fn drop_resolution(&mut self, peer: ZoneId, id: u32, gid: u32) -> Option<Resolution> {
        let pos = self.resolutions.iter().position(|r| {
            r.peer == peer
                && r.migration_id == id
                && r.global_id == gid
                && r.decision == Decision::Commit
        })?;
        Some(self.resolutions.swap_remove(pos))
    }

    /// Receiver, durable: a commit (first or resent, possibly after either side restarted).
    pub(crate) fn on_commit_durable(&mut self, c: &ZoneControl) {
        let (from, id, gid) = (c.from_zone, c.field, c.field3);
        let reserved = if gid == 0 {
            self.reservation(c.field2, from, id)
        } else {
            (0..self.slots.capacity()).find(|&i| {
                self.slots.state[i] == SlotState::Incoming
                    && self.slots.peer[i] == from
                    && self.slots.mig_id[i] == id
                    && self.slots.gid[i] == gid
            })
        };
        if let Some(i) = reserved {
            self.commit_reservation(i, from, id);
            self.slots.mark[i] = MarkKind::Pinned as u8;
            let mark = HandoffMark {
                kind: MarkKind::Pinned,
                peer: from,
                migration_id: id,
            };
            let entity = self.slots.entity(i);
            self.record(HandoffRecord::Arrived { entity, mark });
            let wait = self.now;
            self.durable.pins.push(Pin {
                from,
                id,
                gid: entity.global_id,
                wait,
                last_sent: 0,
                sends: 0,
            });
            self.flush_durable();
            return;
        }
        if let Some(p) = self
            .durable
            .pins
            .iter()
            .position(|p| p.from == from && p.id == id && p.gid == gid)
        {
            // Pinned here: answer at once when durable (else the flush will).
            let p = self.durable.pins[p];
            if self.durable.is_durable(p.wait) && p.sends > 0 {
                self.send_control(from, ControlKind::CommitAck, id, NO_SLOT, p.gid);
            }
            return;
        }
        let held = (0..self.slots.capacity())
            .any(|i| self.slots.state[i] != SlotState::Free && self.slots.gid[i] == gid);
        if !held {
            // Never taken, and the late intent is dropped if it comes: never will be.
            self.replay[from as usize].check_and_mark(id);
            self.stats.commit_nacks_sent += 1;
            self.send_control(from, ControlKind::CommitNack, id, 0, gid);
        }
    }

    /// Sender, durable: the receiver's arrival is durable (or it asks again about one).
    pub(crate) fn on_commit_ack_durable(&mut self, c: &ZoneControl) {
        let (from, id, gid) = (c.from_zone, c.field, c.field3);
        self.drop_resolution(from, id, gid);
        let wait = if let Some(i) = self.sealed_slot(from, id, gid) {
            self.slots.release(i);
            self.carry.committed_out(gid);
            self.staging -= 1;
            self.stats.commits += 1;
            self.record(HandoffRecord::Released { global_id: gid });
            self.now
        } else {
            // Not (or no longer) here: forget once all this zone wrote is durable.
            self.durable.last_record
        };
        if self.durable.forgets.len() < self.durable.forgets.capacity() {
            self.durable.forgets.push(ForgetOwed {
                peer: from,
                id,
                gid,
                wait,
            });
        }
        self.flush_durable();
    }

    /// Sender, durable: the receiver never took it. The entity is owned here again.
    pub(crate) fn on_commit_nack(&mut self, c: &ZoneControl) {
        if !self.durable.on {
            return;
        }
        let (from, id, gid) = (c.from_zone, c.field, c.field3);
        if let Some(i) = self.sealed_slot(from, id, gid) {
            self.drop_resolution(from, id, gid);
            self.slots.state[i] = SlotState::Owned;
            self.slots.mark[i] = 0;
            self.slots.outside[i] = 0;
            self.staging -= 1;
            self.stats.commit_nacks += 1;
            self.record(HandoffRecord::Unsealed { global_id: gid });
        }
    }

    /// Receiver, durable: the sender's departure is durable. Unpins the arrival.
    pub(crate) fn on_forget(&mut self, c: &ZoneControl) {
        let (from, id, gid) = (c.from_zone, c.field, c.field3);
        let Some(p) = self
            .durable
            .pins
            .iter()
            .position(|p| p.from == from && p.id == id && p.gid == gid)
        else {
            return;
        };
        let p = self.durable.pins.swap_remove(p);
        if let Some(i) = (0..self.slots.capacity()).find(|&i| {
            self.slots.state[i] != SlotState::Free
                && self.slots.gid[i] == p.gid
                && self.slots.mark[i] == MarkKind::Pinned as u8
        }) {
            self.slots.mark[i] = 0;
        }
        self.record(HandoffRecord::Unpinned { global_id: p.gid });
    }

    /// Sends what waited for the journal: commits of durable seals, first commit acks of
    /// durable arrivals, forgets of durable departures.
    fn flush_durable(&mut self) {
        let mut n = 0;
        while n < self.durable.sealing.len() {
            let (slot, wait) = self.durable.sealing[n];
            if !self.durable.is_durable(wait) {
                n += 1;
                continue;
            }
            self.durable.sealing.swap_remove(n);
            let i = slot as usize;
            if self.slots.state[i] != SlotState::Staging
                || self.slots.mark[i] != MarkKind::Sealed as u8
            {
                continue;
            }
            let (peer, id, gid) = (self.slots.peer[i], self.slots.mig_id[i], self.slots.gid[i]);
            let peer_slot = match self.slots.peer_slot[i] {
                u16::MAX => NO_SLOT,
                s => u32::from(s),
            };
            self.resolutions.push(Resolution {
                decision: Decision::Commit,
                peer,
                migration_id: id,
                peer_slot,
                global_id: gid,
                intent_tick: self.slots.mig_tick[i],
                last_sent: self.now,
                sends: 1,
            });
            self.send_control(peer, ControlKind::Commit, id, peer_slot, gid);
        }
        for n in 0..self.durable.pins.len() {
            let p = self.durable.pins[n];
            if p.sends == 0 && self.durable.is_durable(p.wait) {
                self.durable.pins[n].sends = 1;
                self.durable.pins[n].last_sent = self.now;
                self.send_control(p.from, ControlKind::CommitAck, p.id, NO_SLOT, p.gid);
            }
        }
        let mut n = 0;
        while n < self.durable.forgets.len() {
            let f = self.durable.forgets[n];
            if self.durable.is_durable(f.wait) {
                self.durable.forgets.swap_remove(n);
                self.send_control(f.peer, ControlKind::Forget, f.id, 0, f.gid);
            } else {
                n += 1;
            }
        }
    }

    /// Per tick: what became durable, and commit acks resent (RTO, doubling up to 8 x) until
    /// the sender forgets.
    pub(crate) fn durable_tick_work(&mut self, tick: u64, rto: &[u64; MAX_ZONES]) {
        if !self.durable.on {
            return;
        }
        self.flush_durable();
        for n in 0..self.durable.pins.len() {
            let p = self.durable.pins[n];
            let wait = rto[p.from as usize % MAX_ZONES] << p.sends.saturating_sub(1).min(3);
            if p.sends > 0 && tick.saturating_sub(p.last_sent) >= wait {
                self.durable.pins[n].sends += 1;
                self.durable.pins[n].last_sent = tick;
                self.stats.resends += 1;
                self.send_control(p.from, ControlKind::CommitAck, p.id, NO_SLOT, p.gid);
            }
        }
    }
}
