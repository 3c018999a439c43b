//! `FabricZone` and `FabricSnapshot`: writing what a zone holds, and reloading at start the
//! entities of a snapshot whose Hilbert code falls in this zone's range.
//!
//! These are the two ends of the graceful shutdown (issue 12, part 4): once every zone has
//! drained into zone 0, zone 0 writes the snapshot; at restart each zone reloads only its range,
//! under the zone layout it starts with (so a fabric may restart with another zone count). The
//! drain itself is the core's (`Zone::start_drain`). A reload checks everything before it spawns
//! anything: a zone never starts with part of its range.

use std::time::{SystemTime, UNIX_EPOCH};

use fabric_core::entity::Entity;
use fabric_core::slots::SlotState;
use fabric_core::snapshot::{Snapshot, SnapshotError};
use godot::global::Error;
use godot::prelude::*;

use super::FabricZone;
use crate::snapshot::{SnapshotFileError, file};

/// Why a snapshot was not reloaded into a zone (nothing was spawned).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// The zone has not been started.
    #[error("the zone is not running")]
    NotRunning,
    /// The file is missing, unreadable or invalid.
    #[error(transparent)]
    File(#[from] SnapshotFileError),
    /// The snapshot cannot be split for this zone.
    #[error("snapshot file `{path}`: {problem}")]
    Split {
        /// The file.
        path: String,
        /// The problem.
        problem: SnapshotError,
    },
    /// The zone has too few free slots for its share.
    #[error(
        "snapshot file `{path}`: zone {zone}'s range holds {count} entities but only {free} slots are free; nothing was loaded"
    )]
    NoRoom {
        /// The file.
        path: String,
        /// This zone.
        zone: i32,
        /// Entities of its range.
        count: usize,
        /// Slots free for spawns (capacity - headroom - used).
        free: usize,
    },
    /// An entity of the snapshot is already held here.
    #[error("snapshot file `{path}`: entity {id} is already held by this zone; nothing was loaded")]
    AlreadyHeld {
        /// The file.
        path: String,
        /// The entity.
        id: u32,
    },
}

impl FabricZone {
    /// What the zone holds now, as a sealed snapshot: owned entities, those it is handing over
    /// (the sender answers for them until the receiver commits) and committed arrivals; `None`
    /// when the zone is not running.
    pub fn snapshot_now(&self) -> Option<Snapshot> {
        let rt = self.runtime.as_ref()?;
        let z = rt.zone();
        let held: Vec<Entity> = z
            .holdings()
            .filter(|h| {
                matches!(
                    h.state,
                    SlotState::Owned | SlotState::Staging | SlotState::Arriving
                )
            })
            .filter_map(|h| z.entity(h.slot))
            .collect();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Some(
            Snapshot::from_entities(
                &self.fabric_name.to_string(),
                z.config().layout.count() as u32,
                rt.last_tick_number(),
                created,
                &held,
            )
            .with_hlc(z.clock().now()),
        )
    }

    /// Reloads the entities of the snapshot at `path` that fall in this zone's range, keeping
    /// their ids and exact state, and starts the zone's clock no earlier than the snapshot's
    /// ([`Snapshot::clock_floor`]); returns how many, and the digest
    /// ([`fabric_core::snapshot::entity_digest`]) of their state as the zone now holds it.
    /// Checks the file, the room and the ids first: on any error nothing is spawned.
    pub fn restore_from(&mut self, path: &str) -> Result<(usize, u64), RestoreError> {
        let rt = self.runtime.as_mut().ok_or(RestoreError::NotRunning)?;
        let snap = file::load(path)?.bind().to_core();
        let cfg = *rt.zone().config();
        let mine = snap
            .entities_in_zone(&cfg.bounds, &cfg.layout, cfg.zone_id)
            .map_err(|problem| RestoreError::Split {
                path: path.to_owned(),
                problem,
            })?;
        let slots = rt.zone().slots();
        let free = (slots.capacity() - slots.headroom()).saturating_sub(slots.used());
        if mine.len() > free {
            return Err(RestoreError::NoRoom {
                path: path.to_owned(),
                zone: i32::from(cfg.zone_id),
                count: mine.len(),
                free,
            });
        }
        if let Some(e) = mine
            .iter()
            .find(|e| rt.zone().holdings().any(|h| h.global_id == e.global_id))
        {
            return Err(RestoreError::AlreadyHeld {
                path: path.to_owned(),
                id: e.global_id,
            });
        }
        // The clock never goes back across the stop, and tick numbers go on after the saved one.
        rt.resume_after(u64::try_from(snap.tick).unwrap_or(0), snap.clock_floor());
        for e in &mine {
            // Room was checked above, so a spawn cannot be refused.
            if let Err(err) = rt.restore(*e) {
                tracing::error!(path, "restoring entity {}: {err}", e.global_id);
            }
        }
        // What the zone now holds of them, read back from its slots (before any tick).
        let held: Vec<_> = mine
            .iter()
            .filter_map(|e| rt.owned_slot(e.global_id))
            .filter_map(|slot| rt.zone().entity(slot))
            .collect();
        let digest = fabric_core::snapshot::entity_digest(&held);
        self.flush_events();
        tracing::info!(path, entities = mine.len(), "zone reloaded its range");
        Ok((mine.len(), digest))
    }
}

#[godot_api(secondary)]
impl FabricZone {
    /// Saves every entity this zone holds (owned, being handed over, or arrived) to `path` as a
    /// `FabricSnapshot` (see `FabricSnapshot.save_to`). Returns `OK`, or an error code after
    /// printing the problem.
    #[func]
    pub fn save_snapshot(&self, path: GString) -> Error {
        let Some(snap) = self.snapshot_now() else {
            godot_error!("FabricZone.save_snapshot: the zone is not running");
            return Error::ERR_UNCONFIGURED;
        };
        match file::save(&snap, &path.to_string()) {
            Ok(()) => Error::OK,
            Err(e) => {
                godot_error!("FabricZone.save_snapshot: {e}");
                e.code()
            }
        }
    }

    /// Spawns the entities of the snapshot at `path` whose Hilbert code falls in this zone's
    /// range (ids, positions, motion and payloads as saved; emits `spawned` for each). Returns
    /// how many, or -1 after printing the problem (missing or bad file, not enough free slots,
    /// an id already here): then nothing was spawned.
    #[func]
    pub fn load_snapshot(&mut self, path: GString) -> i64 {
        match self.restore_from(&path.to_string()) {
            Ok((n, _)) => n as i64,
            Err(e) => {
                godot_error!("FabricZone.load_snapshot: {e}");
                -1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fabric_core::hlc::Hlc;
    use fabric_core::migration::MAX_HLC_AHEAD_TICKS;
    use fabric_core::snapshot::{SNAPSHOT_FORMAT_V1, Snapshot};

    use crate::zone::runtime::tests::zone_of_three;

    /// A zone restarted from a snapshot (no journal) starts its clock at the saved clock, even
    /// one running ahead of the zone's ticks, numbers its ticks after the saved tick, and its
    /// clock does not go back when it ticks. Without the clock in the snapshot, the restarted
    /// zone's clock would start at tick 0.
    #[test]
    fn a_zone_restarted_from_a_snapshot_never_takes_its_clock_back() {
        let mut before = zone_of_three("snapshot-clock-before", 0);
        for _ in 0..40 {
            before.run_tick();
        }
        // An arrival stamped by a neighbour 100 ticks ahead moved the clock past the ticks.
        let ahead = Hlc { l: 140, c: 3 };
        before.zone_mut().restore_clock(ahead);
        let saved = before.zone().clock().now();
        assert_eq!(saved, ahead);
        let snap =
            Snapshot::from_entities("w", 3, before.last_tick_number(), 0, &[]).with_hlc(saved);
        assert_eq!(snap.verify(), Ok(0));

        let mut after = zone_of_three("snapshot-clock-after", 0);
        assert_eq!(after.zone().clock().now(), Hlc::default(), "a fresh zone");
        after.resume_after(snap.tick as u64, snap.clock_floor());
        assert_eq!(
            after.zone().clock().now(),
            saved,
            "restored at the saved clock"
        );
        for _ in 0..20 {
            after.run_tick();
            assert!(
                after.zone().clock().now() >= saved,
                "tick {}: clock {:?} behind {saved:?}",
                after.zone().current_tick(),
                after.zone().clock().now()
            );
        }
        assert_eq!(after.zone().current_tick(), 60, "ticks go on after tick 40");

        // A version-1 snapshot has no clock: the floor is its tick plus the horizon.
        let mut old = Snapshot::from_entities("w", 3, 40, 0, &[]);
        old.format_version = SNAPSHOT_FORMAT_V1;
        old.seal();
        let mut from_old = zone_of_three("snapshot-clock-v1", 0);
        from_old.resume_after(old.tick as u64, old.clock_floor());
        assert_eq!(
            from_old.zone().clock().now(),
            Hlc::at_tick(40 + MAX_HLC_AHEAD_TICKS)
        );
        assert!(from_old.zone().clock().now() >= saved);
    }
}
