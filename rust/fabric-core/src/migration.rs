//! STAGING migration: handing an entity to a neighbour without ever losing or duplicating it.
//!
//! States of the entity's slot on each side ([`SlotState`]):
//!
//! ```text
//! sender:   Owned --crossing--> Staging(target, arrival_hlc) --ACKK--> (slot freed, CMIT resent until CMAK)
//!                                  |--REFU--> Owned (rollback)
//!                                  '--RTO---> Owned (rollback, ABRT resent until ABAK)
//! receiver: (intent) --> Incoming(from) --CMIT--> Arriving --arrival_hlc <= now--> Owned
//!                           '--ABRT--> freed
//! ```
//!
//! Exactly one side decides: the sender, when it sees the receiver's ack (commit) or a refusal
//! or its RTO (rollback). The receiver's reservation is tentative until the commit arrives, so a
//! lost ack followed by a rollback cannot leave two owners, and the sender frees its slot only
//! after the ack, so nothing is lost. Commit and abort are resent every RTO until acknowledged;
//! intents are sent once (a lost intent or ack ends in a rollback after the RTO, which
//! `RTO = SRTT + max(1, 4 RTTVAR)` from the acks' round trips, 1 s before any sample).
//! Duplicated or reordered intents are dropped by a per-sender [`crate::replay`] window, and an
//! abort that overtakes its intent marks the id so the late intent is dropped too.
//!
//! A full receiver (no free slot, headroom included) refuses; a draining receiver refuses.
//! At most `max_migrations_per_tick` (50) migrations start per tick; the rest wait, still
//! counted as outside, for the next tick.

use crate::entity::Entity;
use crate::hlc::Hlc;
use crate::migration_intent::{INTENT_LEN, MigrationIntent, is_intent};
use crate::replay::Seen;
use crate::slots::SlotState;
use crate::wire::WireError;
use crate::zone::{Decision, Resolution, Zone};
use crate::zone_control::{
    CONTROL_LEN, ControlKind, NO_SLOT, REFUSE_DRAINING, REFUSE_FULL, ZoneControl,
};
use crate::zones::{MAX_ZONES, ZoneId};

/// Most ticks an arriving entity is integrated forward to catch up with the sender's clock.
pub const MAX_CATCH_UP_TICKS: u64 = 256;
/// Intents whose sender or arrival HLC is more than this many ticks ahead of the receiver are
/// dropped as bad packets: a forged or broken clock must not drag this zone's HLC (and every
/// later arrival) into the far future. The sender rolls back after its RTO.
pub const MAX_HLC_AHEAD_TICKS: u64 = 256;

impl Zone {
    pub(crate) fn send_control(
        &mut self,
        to: ZoneId,
        kind: ControlKind,
        field: u32,
        field2: u32,
        field3: u32,
    ) {
        self.clock.send(self.now);
        let c = ZoneControl::new(kind, self.cfg.zone_id, field, field2, field3);
        self.outbox.push(to, &c.to_bytes());
    }

    /// Handles one packet from a neighbour (intent, control or row batch) received before tick
    /// `now` runs (slots hold the state after tick `now - 1`). Bad packets are counted in
    /// [`crate::zone::ZoneStats::bad_packets`] and dropped; the error says why.
    pub fn handle(&mut self, now: u64, bytes: &[u8]) -> Result<(), WireError> {
        self.now = self.now.max(now);
        let r = if is_intent(bytes) {
            MigrationIntent::decode(bytes).map(|i| self.on_intent(&i))
        } else if bytes.len() == CONTROL_LEN {
            ZoneControl::decode(bytes).map(|c| self.on_control(&c))
        } else if bytes.first() == Some(&crate::entity_row::ROW_BATCH_KIND) {
            crate::entity_row::RowBatchHeader::decode(bytes).map(|_| {
                self.stats.row_batches += 1;
            })
        } else {
            Err(WireError::Length {
                what: "zone packet",
                expected: INTENT_LEN,
                got: bytes.len(),
            })
        };
        if r.is_err() {
            self.stats.bad_packets += 1;
        }
        r
    }

    pub(crate) fn valid_peer(&self, z: ZoneId) -> bool {
        (z as usize) < self.cfg.layout.count() && z != self.cfg.zone_id
    }

    fn on_intent(&mut self, it: &MigrationIntent) {
        let from = it.from_zone;
        if it.to_zone != self.cfg.zone_id || !self.valid_peer(from) {
            self.stats.bad_packets += 1;
            return;
        }
        let horizon = self.now.saturating_add(MAX_HLC_AHEAD_TICKS);
        if it.sender_hlc.l > horizon || it.arrival_hlc.l > horizon {
            self.stats.bad_packets += 1;
            return;
        }
        if self.replay[from as usize].check_and_mark(it.migration_id) == Seen::Duplicate {
            self.stats.intents_duplicate += 1;
            return;
        }
        self.clock.recv(self.now, it.sender_hlc);
        let reason = if self.drain_to.is_some() {
            Some(REFUSE_DRAINING)
        } else if self.durable_handoffs() && self.held_conflict(from, it.entity.global_id) {
            Some(Self::HELD)
        } else if !self.slots.can_accept() {
            Some(REFUSE_FULL)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.stats.intents_refused += 1;
            self.send_control(
                from,
                ControlKind::Refuse,
                it.migration_id,
                reason,
                it.sender_slot as u32,
            );
            return;
        }
        let mut e: Entity = it.entity;
        self.sanitize(&mut e);
        // The intent holds the state after the sender's tick `sent_tick`; bring it to ours.
        // Our slots hold the state after tick `now - 1`.
        let behind = self
            .now
            .saturating_sub(1)
            .saturating_sub(it.sent_tick)
            .min(MAX_CATCH_UP_TICKS);
        self.catch_up(&mut e, behind);
        let slot = self
            .slots
            .alloc(&e, SlotState::Incoming)
            .expect("can_accept checked a free slot");
        self.slots.code[slot] = crate::hilbert::encode_position(&self.cfg.bounds, &e.position);
        self.slots.peer[slot] = from;
        self.slots.mig_id[slot] = it.migration_id;
        self.slots.arrival[slot] = it.arrival_hlc.to_u64();
        self.slots.peer_slot[slot] = it.sender_slot;
        self.carry.reserved(from, it.migration_id, it.ownership);
        self.stats.intents_accepted += 1;
        self.send_control(
            from,
            ControlKind::Ack,
            it.migration_id,
            slot as u32,
            it.sender_slot as u32,
        );
    }

    /// The staging slot `slot` if it is migration `id` to `peer`.
    fn staging_slot(&self, slot: u32, peer: ZoneId, id: u32) -> Option<usize> {
        let i = slot as usize;
        (i < self.slots.capacity()
            && self.slots.state[i] == SlotState::Staging
            && self.slots.peer[i] == peer
            && self.slots.mig_id[i] == id)
            .then_some(i)
    }

    /// The reservation for migration `id` from `peer`, by slot hint or by scanning.
    pub(crate) fn reservation(&self, hint: u32, peer: ZoneId, id: u32) -> Option<usize> {
        let is = |i: usize| {
            matches!(self.slots.state[i], SlotState::Incoming)
                && self.slots.peer[i] == peer
                && self.slots.mig_id[i] == id
        };
        let h = hint as usize;
        if hint != NO_SLOT && h < self.slots.capacity() {
            return is(h).then_some(h);
        }
        (0..self.slots.capacity()).find(|&i| is(i))
    }

    /// Reservation `i` (migration `id` from `from`) is committed: owned now, or arriving until
    /// its arrival HLC.
    pub(crate) fn commit_reservation(&mut self, i: usize, from: ZoneId, id: u32) {
        self.carry.committed_in(from, id);
        let now = self.clock.now().to_u64();
        if self.slots.arrival[i] <= now {
            self.slots.state[i] = SlotState::Owned;
            self.stats.arrivals += 1;
        } else {
            self.slots.state[i] = SlotState::Arriving;
        }
    }

    fn rollback(&mut self, i: usize) {
        self.slots.state[i] = SlotState::Owned;
        self.slots.outside[i] = 0;
        self.staging -= 1;
    }

    fn on_control(&mut self, c: &ZoneControl) {
        let from = c.from_zone;
        if !self.valid_peer(from) {
            self.stats.bad_packets += 1;
            return;
        }
        match c.kind {
            ControlKind::Ping => self.send_control(from, ControlKind::Pong, c.field, c.field2, 0),
            ControlKind::Pong => {
                let rtt = (self.now as u32).wrapping_sub(c.field2);
                if rtt < 1 << 20 {
                    self.rtt[from as usize].sample(rtt as u64);
                }
            }
            ControlKind::Ack => {
                if self.durable_handoffs()
                    && let Some(i) = self.staging_slot(c.field3, from, c.field)
                {
                    self.seal(i, from, c.field, c.field2);
                } else if let Some(i) = self.staging_slot(c.field3, from, c.field) {
                    let rtt = self.now.saturating_sub(self.slots.mig_tick[i]);
                    self.rtt[from as usize].sample(rtt);
                    let gid = self.slots.gid[i];
                    let sent = self.slots.mig_tick[i];
                    self.slots.release(i);
                    self.carry.committed_out(gid);
                    self.staging -= 1;
                    self.stats.commits += 1;
                    self.resolutions.push(Resolution {
                        decision: Decision::Commit,
                        peer: from,
                        migration_id: c.field,
                        peer_slot: c.field2,
                        global_id: gid,
                        intent_tick: sent,
                        last_sent: self.now,
                        sends: 1,
                    });
                    self.send_control(from, ControlKind::Commit, c.field, c.field2, 0);
                } else if let Some(r) = self.resolutions.iter_mut().find(|r| {
                    r.decision == Decision::Abort && r.peer == from && r.migration_id == c.field
                }) {
                    // A late ack for a migration already rolled back. The intent was sent once,
                    // so its round trip is still a valid sample (without it only the fast
                    // round trips would be measured and the RTO would shrink below the real one).
                    // The receiver's slot is now known: the abort no longer needs a scan.
                    r.peer_slot = c.field2;
                    let rtt = self.now.saturating_sub(r.intent_tick);
                    self.rtt[from as usize].sample(rtt);
                }
            }
            ControlKind::Refuse => {
                if let Some(i) = self
                    .staging_slot(c.field3, from, c.field)
                    .filter(|&i| self.slots.mark[i] == 0)
                {
                    self.rollback(i);
                    self.stats.rollbacks_refused += 1;
                }
            }
            ControlKind::Commit if self.durable_handoffs() => self.on_commit_durable(c),
            ControlKind::CommitAck if self.durable_handoffs() => self.on_commit_ack_durable(c),
            ControlKind::Commit => {
                if let Some(i) = self.reservation(c.field2, from, c.field) {
                    self.commit_reservation(i, from, c.field);
                }
                self.send_control(from, ControlKind::CommitAck, c.field, c.field2, 0);
            }
            ControlKind::Abort => {
                if let Some(i) = self.reservation(c.field2, from, c.field) {
                    self.carry.aborted_in(from, c.field);
                    self.slots.release(i);
                    self.stats.reservations_aborted += 1;
                } else {
                    // The abort overtook its intent: make sure the intent is dropped when it comes.
                    self.replay[from as usize].check_and_mark(c.field);
                }
                self.send_control(from, ControlKind::AbortAck, c.field, 0, 0);
            }
            ControlKind::CommitAck | ControlKind::AbortAck => {
                let want = if c.kind == ControlKind::CommitAck {
                    Decision::Commit
                } else {
                    Decision::Abort
                };
                if let Some(pos) = self
                    .resolutions
                    .iter()
                    .position(|r| r.peer == from && r.migration_id == c.field && r.decision == want)
                {
                    self.resolutions.swap_remove(pos);
                } else if c.kind == ControlKind::CommitAck {
                    // A durable receiver asking about a commit decided here long ago: without
                    // a journal nothing is pending, so it may forget it.
                    self.send_control(from, ControlKind::Forget, c.field, 0, c.field3);
                }
            }
            ControlKind::CommitNack => self.on_commit_nack(c),
            ControlKind::Forget => self.on_forget(c),
            ControlKind::Drain => self.start_drain(c.field as ZoneId),
            ControlKind::DrainDone => {
                self.stats.drains_done += 1;
                self.drain_done_from |= 1 << from;
                // It holds nothing and refuses everything from now on.
                self.forsake_peer(from);
                // Confirmed only once nothing from `from` is pinned here: until then the
                // drained zone must stay to answer the commit acks with forgets.
                if self.pinned_from(from) == 0 {
                    self.send_control(from, ControlKind::DrainDoneAck, 0, 0, 0);
                }
            }
            ControlKind::DrainDoneAck => {
                if self.drain_to == Some(from) && self.drain_done_sent {
                    self.drain_done_acked = true;
                }
            }
        }
    }

    /// Rolls back every staging slot whose RTO passed without an answer (found by the tick).
    pub(crate) fn expire_staging(&mut self, tick: u64) {
        for n in 0..self.timeouts.len() {
            let i = self.timeouts[n] as usize;
            let (peer, id, gid) = (self.slots.peer[i], self.slots.mig_id[i], self.slots.gid[i]);
            let sent = self.slots.mig_tick[i];
            self.rollback(i);
            self.stats.rollbacks_timeout += 1;
            self.resolutions.push(Resolution {
                decision: Decision::Abort,
                peer,
                migration_id: id,
                peer_slot: NO_SLOT,
                global_id: gid,
                intent_tick: sent,
                last_sent: tick,
                sends: 1,
            });
            self.send_control(peer, ControlKind::Abort, id, NO_SLOT, 0);
        }
        self.timeouts.clear();
    }

    /// Resends commits and aborts not acknowledged within RTO (doubling, at most 8 x RTO).
    pub(crate) fn resend_resolutions(&mut self, tick: u64, rto: &[u64; MAX_ZONES]) {
        for n in 0..self.resolutions.len() {
            let r = self.resolutions[n];
            let wait = rto[r.peer as usize % MAX_ZONES] << r.sends.saturating_sub(1).min(3);
            if tick.saturating_sub(r.last_sent) >= wait {
                let kind = match r.decision {
                    Decision::Commit => ControlKind::Commit,
                    Decision::Abort => ControlKind::Abort,
                };
                // A durable commit names its entity (the receiver may have restarted).
                let gid = if self.durable_handoffs() {
                    r.global_id
                } else {
                    0
                };
                self.send_control(r.peer, kind, r.migration_id, r.peer_slot, gid);
                self.resolutions[n].last_sent = tick;
                self.resolutions[n].sends += 1;
                self.stats.resends += 1;
            }
        }
    }

    /// Starts up to `max_migrations_per_tick` migrations for the tick's candidates.
    pub(crate) fn begin_migrations(&mut self, tick: u64) {
        let me = self.cfg.zone_id;
        let latency = self.cfg.latency.effective_ticks(self.cfg.tick_hz);
        let mut started = 0;
        for n in 0..self.candidates.len() {
            if started == self.cfg.max_migrations_per_tick {
                break;
            }
            // Every staging slot becomes one resolution at most: keep room for all of them.
            if self.staging + self.resolutions.len() >= self.resolutions.capacity() {
                break;
            }
            let i = self.candidates[n] as usize;
            let target = match self.drain_to {
                Some(t) if t != me => t,
                _ => self.cfg.layout.zone_of(self.slots.code[i]),
            };
            if !self.valid_peer(target) || self.departed & (1 << target) != 0 {
                continue;
            }
            let id = self.next_mig_id[target as usize];
            self.next_mig_id[target as usize] = id.wrapping_add(1).max(1);
            let sender_hlc = self.clock.send(tick);
            let arrival_hlc = Hlc::at_tick(sender_hlc.l + latency);
            let s = &mut self.slots;
            s.state[i] = SlotState::Staging;
            s.peer[i] = target;
            s.mig_id[i] = id;
            s.mig_tick[i] = tick;
            s.arrival[i] = arrival_hlc.to_u64();
            let mut entity = s.entity(i);
            entity.hlc = sender_hlc.to_row_u32();
            let intent = MigrationIntent {
                from_zone: me,
                to_zone: target,
                migration_id: id,
                sender_slot: i as u16,
                sent_tick: tick,
                sender_hlc,
                arrival_hlc,
                ownership: self.carry.outgoing(entity.global_id),
                entity,
            };
            self.outbox.push(target, &intent.to_bytes());
            self.staging += 1;
            self.stats.intents_sent += 1;
            started += 1;
        }
    }

    /// Sends every owned entity toward `target` (50 per tick) and refuses arrivals; a drain-done
    /// notice goes to `target` once the zone is empty (repeated every second). Draining toward
    /// itself does nothing.
    pub fn start_drain(&mut self, target: ZoneId) {
        if target != self.cfg.zone_id && (target as usize) < self.cfg.layout.count() {
            self.drain_to = Some(target);
        }
    }

    /// Once drained (no slot in use, no decision unanswered, no forget owed), tells the target,
    /// and repeats every second until the target confirms (the notice is idempotent and may be
    /// lost like any packet).
    pub(crate) fn check_drain_done(&mut self) {
        let Some(target) = self.drain_to else {
            return;
        };
        // Forgets owed wait for this zone's journal: the target keeps those arrivals pinned
        // (and cannot hand them on) until they are sent.
        if self.slots.used() != 0 || !self.resolutions.is_empty() || self.forgets_owed() != 0 {
            return;
        }
        let again = self.now.saturating_sub(self.drain_done_last) >= self.cfg.tick_hz as u64;
        if self.drain_done_sent && !again {
            return;
        }
        self.drain_done_sent = true;
        self.drain_done_last = self.now;
        self.drained = self.stats.commits as u32;
        let drained = self.drained;
        self.send_control(target, ControlKind::DrainDone, drained, 0, 0);
    }

    /// Queues a ping to `peer` (its pong gives a round-trip sample).
    pub fn ping(&mut self, peer: ZoneId) {
        if self.valid_peer(peer) {
            self.ping_seq = self.ping_seq.wrapping_add(1);
            let (seq, tick) = (self.ping_seq, self.now as u32);
            self.send_control(peer, ControlKind::Ping, seq, tick, 0);
        }
    }

    /// Whether a drain-done notice has been sent.
    pub fn drain_done(&self) -> bool {
        self.drain_done_sent
    }

    /// Whether the drain target confirmed the drain-done notice (DRAK): it holds nothing
    /// pinned from this zone, so nothing here is needed any more.
    pub fn drain_done_acked(&self) -> bool {
        self.drain_done_acked
    }
}
