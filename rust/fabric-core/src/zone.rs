//! A zone: slots, clock, migration bookkeeping and outbox, driven by ticks and packets.
//!
//! The sans-IO surface of the zone layer. The driver calls, in any interleaving it likes:
//!
//! * [`Zone::handle`] for each packet from a neighbour,
//! * [`Zone::tick`] once per simulation tick with the tick number ([`crate::tick`]),
//! * [`Zone::outbox`] / [`Zone::clear_outbox`] to take the packets to send.
//!
//! No clock is read and nothing is allocated after construction (while the outbox is drained
//! every tick). The migration protocol itself is in [`crate::migration`].

use crate::aoi::BandTable;
use crate::config::{ConfigError, ZoneConfig};
use crate::entity::Entity;
use crate::hlc::HybridClock;
use crate::outbox::Outbox;
use crate::replay::ReplayWindow;
use crate::rto::RttEstimator;
use crate::slots::{SlotState, Slots};
use crate::zones::{MAX_ZONES, ZoneId};
use thiserror::Error;

/// Why a spawn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SpawnError {
    /// The zone is at `capacity - headroom`: the rest is kept for arrivals.
    #[error(
        "zone is at its spawn limit ({used} of {capacity} slots, {headroom} kept for arrivals)"
    )]
    Full {
        /// Slots in use.
        used: usize,
        /// Slots.
        capacity: usize,
        /// Headroom.
        headroom: usize,
    },
}

/// What a sender must still tell a receiver after deciding a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The sender freed its slot: the receiver owns the entity.
    Commit,
    /// The sender rolled back: the receiver frees its reservation.
    Abort,
}

/// A decided migration, resent until the receiver acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Commit or abort.
    pub decision: Decision,
    /// The receiver.
    pub peer: ZoneId,
    /// Migration id.
    pub migration_id: u32,
    /// Receiver's slot, or [`crate::zone_control::NO_SLOT`].
    pub peer_slot: u32,
    /// The entity.
    pub global_id: u32,
    /// Tick the intent was sent.
    pub intent_tick: u64,
    pub(crate) last_sent: u64,
    pub(crate) sends: u32,
}

/// Counters a zone keeps (for tests, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZoneStats {
    /// Intents sent.
    pub intents_sent: u64,
    /// Intents accepted here (slot reserved).
    pub intents_accepted: u64,
    /// Intents refused here (full or draining).
    pub intents_refused: u64,
    /// Duplicate or stale intents dropped.
    pub intents_duplicate: u64,
    /// Migrations this zone committed as sender (slot freed after an ack).
    pub commits: u64,
    /// Arrivals that became owned here.
    pub arrivals: u64,
    /// Rollbacks after a refusal.
    pub rollbacks_refused: u64,
    /// Rollbacks after an RTO without an answer.
    pub rollbacks_timeout: u64,
    /// Hand-offs rolled back because the receiver departed (drained, or unlinked with durable
    /// hand-offs; see [`crate::peer_departure`]).
    pub rollbacks_departed: u64,
    /// Reservations freed by an abort.
    pub reservations_aborted: u64,
    /// Commit/abort retransmissions.
    pub resends: u64,
    /// Packets that failed to decode or were misrouted (counted and dropped).
    pub bad_packets: u64,
    /// Row batches received from neighbours.
    pub row_batches: u64,
    /// Drain-done notices received (copies included; see [`Zone::drain_done_from`]).
    pub drains_done: u64,
    /// Sealed hand-offs the receiver refused (CMNK): owned here again.
    pub commit_nacks: u64,
    /// Commits refused here (CMNK sent): no reservation and no arrival for them.
    pub commit_nacks_sent: u64,
}

/// How an entity is held by a zone (for invariant checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// Slot index.
    pub slot: usize,
    /// Global id.
    pub global_id: u32,
    /// Slot state (never `Free`).
    pub state: SlotState,
    /// Migration peer (for staging, incoming and arriving).
    pub peer: ZoneId,
    /// Migration id (for staging, incoming and arriving).
    pub migration_id: u32,
}

/// One zone's simulation state.
#[derive(Debug, Clone)]
pub struct Zone {
    pub(crate) cfg: ZoneConfig,
    pub(crate) slots: Slots,
    pub(crate) clock: HybridClock,
    pub(crate) rtt: [RttEstimator; MAX_ZONES],
    pub(crate) next_mig_id: [u32; MAX_ZONES],
    pub(crate) replay: [ReplayWindow; MAX_ZONES],
    pub(crate) resolutions: Vec<Resolution>,
    pub(crate) staging: usize,
    pub(crate) candidates: Vec<u16>,
    pub(crate) timeouts: Vec<u16>,
    pub(crate) bands: BandTable,
    pub(crate) outbox: Outbox,
    pub(crate) drain_to: Option<ZoneId>,
    pub(crate) drain_done_sent: bool,
    pub(crate) drained: u32,
    pub(crate) drain_done_last: u64,
    pub(crate) drain_done_from: u32,
    /// The drain target confirmed the drain-done notice (DRAK).
    pub(crate) drain_done_acked: bool,
    /// Neighbours nothing is handed to ([`crate::peer_departure`]).
    pub(crate) departed: u32,
    pub(crate) ping_seq: u32,
    pub(crate) stats: ZoneStats,
    pub(crate) tick: u64,
    /// The tick input is being handled for (the last `tick` or a later `handle`).
    pub(crate) now: u64,
    /// Ownership records carried through hand-offs.
    pub(crate) carry: crate::ownership::OwnershipCarry,
    /// Durable hand-offs ([`crate::durable_handoff`]), on when the zone has a journal.
    pub(crate) durable: crate::durable_handoff::Durable,
}

impl Zone {
    /// A zone with every slot free.
    pub fn new(cfg: ZoneConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let cap = cfg.capacity;
        Ok(Self {
            slots: Slots::new(cap, cfg.headroom),
            clock: HybridClock::new(),
            rtt: [RttEstimator::new(); MAX_ZONES],
            next_mig_id: [1; MAX_ZONES],
            replay: [ReplayWindow::new(); MAX_ZONES],
            resolutions: Vec::with_capacity(cap),
            staging: 0,
            candidates: Vec::with_capacity(cap),
            timeouts: Vec::with_capacity(cap),
            bands: BandTable::with_padding(
                &cfg.layout,
                cfg.zone_id,
                crate::adjacency::radius_in_cells(&cfg.bounds, crate::aoi::INTEREST_RADIUS_MICROS),
            ),
            // Room for a full tick of traffic: every slot's intent, ack and row, plus slack.
            outbox: Outbox::with_capacity(64 * 1024 + cap * 512, 1024 + cap * 4),
            drain_to: None,
            drain_done_sent: false,
            drained: 0,
            drain_done_last: 0,
            drain_done_from: 0,
            drain_done_acked: false,
            departed: 0,
            ping_seq: 0,
            stats: ZoneStats::default(),
            tick: 0,
            now: 0,
            carry: crate::ownership::OwnershipCarry::with_capacity(cap),
            durable: crate::durable_handoff::Durable::with_capacity(cap),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ZoneConfig {
        &self.cfg
    }

    /// This zone's id.
    pub fn id(&self) -> ZoneId {
        self.cfg.zone_id
    }

    /// The last tick run (0 before the first).
    pub fn current_tick(&self) -> u64 {
        self.tick
    }

    /// The slot store (read-only).
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// Counters.
    pub fn stats(&self) -> &ZoneStats {
        &self.stats
    }

    /// The clock.
    pub fn clock(&self) -> &HybridClock {
        &self.clock
    }

    /// Restarts the zone's clock no earlier than `at_least` (see [`HybridClock::restore`]).
    pub fn restore_clock(&mut self, at_least: crate::hlc::Hlc) {
        self.clock.restore(at_least);
    }

    /// Round-trip estimator towards `peer`.
    pub fn rtt(&self, peer: ZoneId) -> &RttEstimator {
        &self.rtt[(peer as usize) % MAX_ZONES]
    }

    /// Decided migrations still waiting for the receiver's acknowledgement.
    pub fn resolutions(&self) -> &[Resolution] {
        &self.resolutions
    }

    /// Entities handed to a neighbour and waiting for its answer.
    pub fn staging_count(&self) -> usize {
        self.staging
    }

    /// Zones that reported their drain finished.
    pub fn drain_done_from(&self) -> crate::zones::ZoneMask {
        crate::zones::ZoneMask(self.drain_done_from)
    }

    /// Whether the zone is draining, and toward which zone.
    pub fn draining_to(&self) -> Option<ZoneId> {
        self.drain_to
    }

    /// Spawns a local entity (refused at `capacity - headroom`). Returns its slot.
    pub fn spawn(&mut self, e: Entity) -> Result<usize, SpawnError> {
        if !self.slots.can_spawn() {
            return Err(SpawnError::Full {
                used: self.slots.used(),
                capacity: self.slots.capacity(),
                headroom: self.slots.headroom(),
            });
        }
        let mut e = e;
        self.sanitize(&mut e);
        let slot = self
            .slots
            .alloc(&e, SlotState::Owned)
            .expect("can_spawn implies a free slot");
        self.slots.code[slot] = crate::hilbert::encode_position(&self.cfg.bounds, &e.position);
        Ok(slot)
    }

    /// Removes the entity in `slot` if this zone owns it. Returns whether it did.
    pub fn despawn(&mut self, slot: usize) -> bool {
        if self.slots.state(slot) == SlotState::Owned {
            self.slots.release(slot);
            true
        } else {
            false
        }
    }

    /// Every non-free slot, in slot order.
    pub fn holdings(&self) -> impl Iterator<Item = Holding> + '_ {
        (0..self.slots.capacity()).filter_map(|i| {
            let state = self.slots.state[i];
            (state != SlotState::Free).then(|| Holding {
                slot: i,
                global_id: self.slots.gid[i],
                state,
                peer: self.slots.peer[i],
                migration_id: self.slots.mig_id[i],
            })
        })
    }

    /// The slot holding `global_id` in state `Owned`, if any (a linear scan, for tests and tools).
    pub fn find_owned(&self, global_id: u32) -> Option<usize> {
        (0..self.slots.capacity())
            .find(|&i| self.slots.state[i] == SlotState::Owned && self.slots.gid[i] == global_id)
    }

    /// The slot of `global_id` while this zone holds it as its own: owned, or staging (handed
    /// to a neighbour that has not answered yet; it stays here if the hand-off rolls back).
    pub fn find_held(&self, global_id: u32) -> Option<usize> {
        (0..self.slots.capacity()).find(|&i| {
            matches!(self.slots.state[i], SlotState::Owned | SlotState::Staging)
                && self.slots.gid[i] == global_id
        })
    }

    /// Packets waiting to be sent.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Forgets the packets in the outbox (call after sending them).
    pub fn clear_outbox(&mut self) {
        self.outbox.clear();
    }
}
