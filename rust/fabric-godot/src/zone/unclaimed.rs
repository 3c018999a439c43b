//! Avatars nobody plays, in the zone ([`fabric_core::unclaimed`]): an avatar that arrived by
//! hand-off, or that the zone brought back from its journal or a snapshot, with no session
//! playing it, waits `claim_window_sec` (default 30 s, the follow ticket's lifetime) for its
//! player's `claim` ([`super::follow`]); then it is despawned, counted (`avatars_reaped=` on the
//! stats line) and logged as
//! `FabricZone <k>: avatar <id> was not claimed within <s> s: despawned`.
//!
//! Checked once a frame outside the tick; the table is sized once to the zone's slots.

use fabric_core::slots::SlotState;
use fabric_core::unclaimed::{Unclaimed, is_avatar};
use godot::prelude::*;

use super::FabricZone;

/// The zone's waiting avatars and what it did with them.
#[derive(Debug)]
pub(crate) struct UnclaimedAvatars {
    table: Unclaimed,
    expired: Vec<u32>,
    /// Whether the entities the zone started with were looked at.
    scanned: bool,
    /// Avatars despawned unclaimed since the start.
    pub(crate) reaped: u64,
}

impl Default for UnclaimedAvatars {
    fn default() -> Self {
        Self::new(30.0, 0)
    }
}

impl UnclaimedAvatars {
    /// A window of `window_s` seconds for a zone of `capacity` slots.
    pub(crate) fn new(window_s: f64, capacity: usize) -> Self {
        Self {
            table: Unclaimed::new((window_s.max(0.0) * 1000.0) as u64, capacity),
            expired: Vec::with_capacity(capacity.min(4096)),
            scanned: false,
            reaped: 0,
        }
    }

    /// ` avatars_unclaimed=N avatars_reaped=N` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        format!(
            " avatars_unclaimed={} avatars_reaped={}",
            self.table.len(),
            self.reaped
        )
    }

    /// Avatar `id` has a player, or left this zone.
    pub(crate) fn forget(&mut self, id: u32) {
        self.table.forget(id);
    }
}

impl FabricZone {
    /// Entity `id` arrived by hand-off: an avatar no session plays here starts waiting.
    pub(super) fn unclaimed_arrived(&mut self, id: u32) {
        if self.players.session_of(id).is_some() {
            return;
        }
        let Some(rt) = self.runtime.as_ref() else {
            return;
        };
        let avatar = rt
            .owned_slot(id)
            .is_some_and(|slot| is_avatar(&rt.zone().slots().entity(slot).payload));
        if avatar {
            let now = self.unclaimed_now_ms();
            self.unclaimed.table.waiting(id, now);
        }
    }

    /// Once a frame: the avatars the zone started with (journal, snapshot) start waiting the
    /// first time; those that waited the whole window with still nobody playing them are
    /// despawned.
    pub(super) fn reap_unclaimed(&mut self) {
        let now = self.unclaimed_now_ms();
        let Some(rt) = self.runtime.as_mut() else {
            return;
        };
        if !self.unclaimed.scanned {
            self.unclaimed.scanned = true;
            let slots = rt.zone().slots();
            for i in 0..slots.capacity() {
                if slots.state(i) == SlotState::Owned {
                    let e = slots.entity(i);
                    if is_avatar(&e.payload) && self.players.session_of(e.global_id).is_none() {
                        self.unclaimed.table.waiting(e.global_id, now);
                    }
                }
            }
        }
        if self.unclaimed.table.is_empty() {
            return;
        }
        let mut expired = std::mem::take(&mut self.unclaimed.expired);
        expired.clear();
        self.unclaimed.table.expired(now, &mut expired);
        let window_s = self.unclaimed.table.window_ms() as f64 / 1000.0;
        for &id in &expired {
            if self.players.session_of(id).is_none() && rt.despawn(id) {
                self.unclaimed.reaped += 1;
                godot_print!(
                    "FabricZone {}: avatar {id} was not claimed within {window_s} s: despawned",
                    self.zone_id
                );
            }
        }
        self.unclaimed.expired = expired;
    }

    fn unclaimed_now_ms(&self) -> u64 {
        self.started_at.elapsed().as_millis() as u64
    }
}
