//! Scenario runner: N zones in memory, stepped in lockstep, packets moved through a [`Link`].
//!
//! One [`Scenario::step`] is: deliver every packet due this tick (in delivery order), tick every
//! zone (in zone order), optionally queue interest rows, then hand every zone's outbox to the
//! link. All randomness comes from one [`SimRng`], so a scenario is a pure function of its seed;
//! [`Scenario::output_hash`] is an FNV-1a hash of every emitted packet (tick, sender, receiver,
//! bytes) to prove it.
//!
//! [`Scenario::check_ownership`] is the invariant the acceptance tests assert every tick: every
//! entity is held exactly once (owned, staging at its sender, arriving at its receiver, or
//! committed and in flight), and no reservation is left without a sender that will resolve it.

use super::link::{Link, LinkConfig};
use super::rng::SimRng;
use crate::config::ZoneConfig;
use crate::entity::Entity;
use crate::hilbert;
use crate::slots::SlotState;
use crate::zone::{Decision, SpawnError, Zone};
use crate::zones::ZoneId;
use std::collections::{BTreeMap, BTreeSet};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Where the entities are, counted over all zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    /// Entities owned by a zone.
    pub owned: usize,
    /// Entities staging at their sender.
    pub staging: usize,
    /// Committed arrivals waiting for their arrival HLC.
    pub arriving: usize,
    /// Committed migrations whose commit has not reached the receiver yet.
    pub in_flight: usize,
    /// Tentative reservations (not counted as holding the entity).
    pub tentative: usize,
}

impl Census {
    /// Entities inside a staging window (staging, in flight or arriving).
    pub fn in_window(&self) -> usize {
        self.staging + self.arriving + self.in_flight
    }
}

/// N zones, a link, a seed.
#[derive(Debug)]
pub struct Scenario {
    zones: Vec<Zone>,
    link: Link,
    rng: SimRng,
    tick: u64,
    hash: u64,
    emit_rows: bool,
    packets: u64,
}

impl Scenario {
    /// Zones built from `configs` (zone ids must be `0..configs.len()`), links with `link`,
    /// randomness from `seed`.
    pub fn new(configs: &[ZoneConfig], link: LinkConfig, seed: u64) -> Result<Self, String> {
        let mut zones = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            if c.zone_id as usize != i {
                return Err(format!("config {i} has zone id {}", c.zone_id));
            }
            zones.push(Zone::new(*c).map_err(|e| e.to_string())?);
        }
        Ok(Self {
            zones,
            link: Link::new(link),
            rng: SimRng::new(seed),
            tick: 0,
            hash: FNV_OFFSET,
            emit_rows: false,
            packets: 0,
        })
    }

    /// Also queue AOI interest rows every tick (more bytes through the link and the hash).
    pub fn set_emit_rows(&mut self, on: bool) {
        self.emit_rows = on;
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// One zone, mutably (to spawn, drain, ...).
    pub fn zone_mut(&mut self, z: ZoneId) -> &mut Zone {
        &mut self.zones[z as usize]
    }

    /// The link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The link, mutably (to change impairments mid-run).
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// The scenario's random generator (for spawning entities deterministically).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// The last tick run.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Hash of every packet emitted so far.
    pub fn output_hash(&self) -> u64 {
        self.hash
    }

    /// Packets emitted so far.
    pub fn packets_emitted(&self) -> u64 {
        self.packets
    }

    /// Spawns `e` in the zone that owns its position. Returns that zone.
    pub fn spawn(&mut self, e: Entity) -> Result<ZoneId, SpawnError> {
        let z0 = &self.zones[0];
        let code = hilbert::encode_position(&z0.config().bounds, &e.position);
        let zone = z0.config().layout.zone_of(code);
        self.zones[zone as usize].spawn(e)?;
        Ok(zone)
    }

    /// Runs one tick.
    pub fn step(&mut self) {
        self.tick += 1;
        let now = self.tick;
        for d in self.link.deliver_due(now) {
            if let Some(z) = self.zones.get_mut(d.to as usize) {
                // Bad packets are counted by the zone; nothing here can produce one.
                let _ = z.handle(now, &d.bytes);
            }
        }
        for z in &mut self.zones {
            z.tick(now);
            if self.emit_rows {
                z.emit_interest_rows();
            }
        }
        for z in &mut self.zones {
            let from = z.id();
            for (to, bytes) in z.outbox().iter() {
                self.hash = fnv(self.hash, &now.to_le_bytes());
                self.hash = fnv(self.hash, &[from, to]);
                self.hash = fnv(self.hash, &(bytes.len() as u32).to_le_bytes());
                self.hash = fnv(self.hash, bytes);
                self.packets += 1;
                self.link.send(&mut self.rng, now, from, to, bytes);
            }
            z.clear_outbox();
        }
    }

    /// Runs `ticks` ticks, checking [`Self::check_ownership`] after each one when `expected`
    /// is given (the ids that must exist). Stops at the first violation.
    pub fn run(&mut self, ticks: u64, expected: Option<&BTreeSet<u32>>) -> Result<(), String> {
        for _ in 0..ticks {
            self.step();
            if let Some(ids) = expected {
                self.check_ownership(ids)
                    .map_err(|e| format!("tick {}: {e}", self.tick))?;
            }
        }
        Ok(())
    }

    /// Checks that every id in `expected` is held exactly once and no other id exists, and
    /// that every tentative reservation still has a sender that will resolve it.
    pub fn check_ownership(&self, expected: &BTreeSet<u32>) -> Result<Census, String> {
        // (sender, receiver, migration id) -> decision still being sent.
        let mut decided: BTreeMap<(ZoneId, ZoneId, u32), Decision> = BTreeMap::new();
        // (sender, receiver, migration id) of every staging slot.
        let mut staging: BTreeSet<(ZoneId, ZoneId, u32)> = BTreeSet::new();
        for z in &self.zones {
            for r in z.resolutions() {
                decided.insert((z.id(), r.peer, r.migration_id), r.decision);
            }
            for h in z.holdings() {
                if h.state == SlotState::Staging {
                    staging.insert((z.id(), h.peer, h.migration_id));
                }
            }
        }
        let mut held: BTreeMap<u32, Vec<(ZoneId, usize, SlotState)>> = BTreeMap::new();
        let mut census = Census::default();
        for z in &self.zones {
            for h in z.holdings() {
                let place = (z.id(), h.slot, h.state);
                match h.state {
                    SlotState::Owned => census.owned += 1,
                    SlotState::Staging => census.staging += 1,
                    SlotState::Arriving => census.arriving += 1,
                    SlotState::Incoming => {
                        census.tentative += 1;
                        let key = (h.peer, z.id(), h.migration_id);
                        match decided.get(&key) {
                            Some(Decision::Commit) => census.in_flight += 1,
                            Some(Decision::Abort) => continue,
                            None if staging.contains(&key) => continue,
                            None => {
                                return Err(format!(
                                    "orphan reservation for entity {} at zone {} slot {} (from zone {}, migration {})",
                                    h.global_id, place.0, place.1, h.peer, h.migration_id
                                ));
                            }
                        }
                    }
                    SlotState::Free => continue,
                }
                held.entry(h.global_id).or_default().push(place);
            }
        }
        for id in expected {
            match held.get(id).map(Vec::len) {
                Some(1) => {}
                None => return Err(format!("entity {id} is lost")),
                Some(_) => {
                    return Err(format!(
                        "entity {id} is duplicated: (zone, slot, state) {:?}",
                        held[id]
                    ));
                }
            }
        }
        if let Some(extra) = held.keys().find(|id| !expected.contains(id)) {
            return Err(format!(
                "unexpected entity {extra}: (zone, slot, state) {:?}",
                held[extra]
            ));
        }
        Ok(census)
    }
}
