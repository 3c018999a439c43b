//! Acknowledged means durable: the zone's table of acknowledgements waiting for the journal.
//!
//! A state-changing command (an asset instance) applied while the zone's last tick is `t` is
//! journaled with tick `t + 1`; its acknowledgement may go to the client only once the journal's
//! durable tick is `>= t + 1` (`docs/persistence.md`). The zone pushes a [`PendingAck`] when it
//! applies the command and calls [`PendingAcks::release`] once a frame with the durable tick;
//! each released entry is sent (`placed`).
//!
//! The table is a ring of fixed capacity, allocated once: [`PendingAcks::push`] never grows it
//! and refuses with [`AckTableFull`] when it is full (the zone then refuses the command, counted
//! as `ack_backlog`, and the tick never waits). Ticks are pushed in non-decreasing order, so
//! the entries due are always at the front: a release is O(due).

use std::collections::VecDeque;

use thiserror::Error;

/// An acknowledgement waiting for its tick to become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAck {
    /// The session to answer.
    pub session: u64,
    /// The client's request number.
    pub request: u32,
    /// The entity the command made.
    pub entity: u32,
    /// The asset it instances.
    pub asset: u64,
    /// The zone's last tick when the command was applied: durable at `tick + 1`.
    pub tick: u64,
}

/// The table is full: the command must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{0} acknowledgements already wait for the journal")]
pub struct AckTableFull(pub usize);

/// The bounded, pre-allocated table of pending acknowledgements of one zone.
#[derive(Debug, Clone)]
pub struct PendingAcks {
    ring: VecDeque<PendingAck>,
    capacity: usize,
}

/// Default capacity: a second of 60 placements a second from each of 64 players.
pub const DEFAULT_CAPACITY: usize = 4096;

impl PendingAcks {
    /// An empty table holding at most `capacity` entries (allocated now, at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `ack`; refused when the table is full. A tick lower than the last entry's is
    /// raised to it (ticks never go backwards in a zone; this keeps the ring ordered anyway).
    pub fn push(&mut self, mut ack: PendingAck) -> Result<(), AckTableFull> {
        if self.ring.len() >= self.capacity {
            return Err(AckTableFull(self.ring.len()));
        }
        if let Some(last) = self.ring.back() {
            ack.tick = ack.tick.max(last.tick);
        }
        self.ring.push_back(ack);
        Ok(())
    }

    /// Hands every entry whose tick is durable (`tick + 1 <= durable`) to `send`, oldest
    /// first, and removes it. `None` (nothing committed yet) releases nothing.
    pub fn release(&mut self, durable: Option<u64>, mut send: impl FnMut(&PendingAck)) {
        let Some(durable) = durable else {
            return;
        };
        while let Some(front) = self.ring.front() {
            if front.tick.saturating_add(1) > durable {
                break;
            }
            send(front);
            self.ring.pop_front();
        }
    }

    /// Hands every entry to `send` at once (a zone without a journal: an acknowledgement then
    /// means applied, not durable).
    pub fn release_all(&mut self, send: impl FnMut(&PendingAck)) {
        self.ring.iter().for_each(send);
        self.ring.clear();
    }

    /// Forgets the entries of a closed session (its instances stay; nobody waits for the
    /// answer). No allocation.
    pub fn drop_session(&mut self, session: u64) {
        self.ring.retain(|a| a.session != session);
    }
}

impl Default for PendingAcks {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(session: u64, request: u32, tick: u64) -> PendingAck {
        PendingAck {
            session,
            request,
            entity: 100 + request,
            asset: 9,
            tick,
        }
    }

    fn released(t: &mut PendingAcks, durable: Option<u64>) -> Vec<u32> {
        let mut out = Vec::new();
        t.release(durable, |a| out.push(a.request));
        out
    }

    #[test]
    fn an_ack_waits_until_the_next_tick_is_durable() {
        let mut t = PendingAcks::with_capacity(8);
        t.push(ack(1, 1, 10)).unwrap();
        t.push(ack(2, 2, 10)).unwrap();
        t.push(ack(1, 3, 12)).unwrap();
        assert_eq!(released(&mut t, None), [] as [u32; 0], "nothing committed");
        assert_eq!(
            released(&mut t, Some(10)),
            [] as [u32; 0],
            "tick 10 durable: a command applied after tick 10 is not"
        );
        assert_eq!(released(&mut t, Some(11)), [1, 2], "tick 11 holds them");
        assert_eq!(t.len(), 1);
        assert_eq!(released(&mut t, Some(12)), [] as [u32; 0]);
        assert_eq!(released(&mut t, Some(20)), [3]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_refuses_without_growing() {
        let mut t = PendingAcks::with_capacity(2);
        let cap = t.ring.capacity();
        t.push(ack(1, 1, 1)).unwrap();
        t.push(ack(1, 2, 1)).unwrap();
        assert_eq!(t.push(ack(1, 3, 1)), Err(AckTableFull(2)), "full");
        assert_eq!(t.ring.capacity(), cap, "never grown");
        assert_eq!(released(&mut t, Some(2)), [1, 2]);
        t.push(ack(1, 4, 2)).unwrap();
        assert_eq!(t.len(), 1, "room again after a release");
        assert_eq!(PendingAcks::with_capacity(0).capacity(), 1);
    }

    #[test]
    fn closed_sessions_are_forgotten_and_order_is_kept() {
        let mut t = PendingAcks::with_capacity(8);
        t.push(ack(1, 1, 5)).unwrap();
        t.push(ack(2, 2, 5)).unwrap();
        t.push(ack(1, 3, 4)).unwrap();
        t.drop_session(2);
        assert_eq!(released(&mut t, Some(5)), [] as [u32; 0], "raised to 5");
        assert_eq!(released(&mut t, Some(6)), [1, 3], "session 2's is gone");
        t.push(ack(3, 7, 1)).unwrap();
        let mut all = Vec::new();
        t.release_all(|a| all.push((a.session, a.request, a.entity)));
        assert_eq!(all, [(3, 7, 107)]);
        assert!(t.is_empty());
    }
}
