//! Neighbours that left: nothing is handed to them, and nothing waits for their answer.
//!
//! A neighbour **departs** when
//!
//! - its drain-done notice comes (DRND): it holds nothing (no reservation, no arrival) and
//!   refuses every intent from now on, so it will never reserve one of ours; or
//! - with durable hand-offs, its link goes down: when the link comes up again the neighbour
//!   drops every reservation it holds for this zone ([`Zone::peer_relinked`] on its side, or a
//!   restart, which forgets reservations), so none of ours needs an abort.
//!
//! On departure the zone rolls back its unsealed staging slots toward that neighbour (their
//! intents are refused or lost), drops its abort decisions toward it (nothing there to free),
//! and starts no new hand-off toward it: entities in its range stay here, simulated, counted
//! as outside, until the link comes up again ([`Zone::peer_relinked`]). Without this, a zone
//! whose neighbour finished a graceful shutdown kept resending aborts into the void and never
//! reported its own drain (CI, 3 December: 23 aborts toward a zone that had exited).
//!
//! Sealed hand-offs and pinned arrivals stay: only the other side can settle them, and their
//! commits and commit acks are resent when the link is back. Without durable hand-offs a
//! dropped link only stops new hand-offs (a neighbour that comes back without restarting
//! still holds its reservations and needs the aborts).

use crate::slots::SlotState;
use crate::zone::{Decision, Zone};
use crate::zones::{MAX_ZONES, ZoneId, ZoneMask};

impl Zone {
    /// The link to `peer` went down. Nothing new is handed to it until it comes up again; with
    /// durable hand-offs its unsealed hand-offs end here as well (see the module docs).
    pub fn peer_unlinked(&mut self, peer: ZoneId) {
        if !self.valid_peer(peer) {
            return;
        }
        if self.durable_handoffs() {
            self.forsake_peer(peer);
        } else {
            self.departed |= 1 << peer;
        }
    }

    /// Neighbours nothing is handed to now (drained, or unlinked; see the module docs).
    pub fn departed_peers(&self) -> ZoneMask {
        ZoneMask(self.departed)
    }

    /// `peer` holds nothing of this zone's and never will (drained, or unlinked with durable
    /// hand-offs): ends every hand-off toward it that only waited for its answer.
    pub(crate) fn forsake_peer(&mut self, peer: ZoneId) {
        self.departed |= 1 << peer;
        for i in 0..self.slots.capacity() {
            if self.slots.state[i] == SlotState::Staging
                && self.slots.peer[i] == peer
                && self.slots.mark[i] == 0
            {
                self.slots.state[i] = SlotState::Owned;
                self.slots.outside[i] = 0;
                self.staging -= 1;
                self.stats.rollbacks_departed += 1;
            }
        }
        let durable = self.durable_handoffs();
        // An abort frees a reservation the peer does not hold. Without durable hand-offs a
        // commit only waits for an ack the peer owes nothing for either: a drained peer holds
        // no reservation, so whatever it did with ours is done. A durable commit belongs to a
        // sealed entity, which only the peer's answer settles.
        self.resolutions
            .retain(|r| r.peer != peer || (durable && r.decision == Decision::Commit));
    }

    /// The link to `peer` is up (again): hand-offs toward it may start.
    pub(crate) fn peer_returned(&mut self, peer: ZoneId) {
        if (peer as usize) < MAX_ZONES {
            self.departed &= !(1 << peer);
        }
    }
}
