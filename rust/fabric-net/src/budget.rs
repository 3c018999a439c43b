//! Byte budgets: every place where data waits (a channel's send queue, the events a session
//! handed to its owner, the bytes of reliable messages still arriving) counts its bytes against a
//! [`Budget`], so one slow or hostile peer can hold at most its own budget in memory.
//!
//! A [`Charge`] is the bytes one item holds: it is returned to its budget when the item is
//! dropped (sent, handed to the owner, or discarded), so a budget can never leak.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Application close code of a session closed because its peer does not read what it is sent
/// fast enough: its send queue went over [`crate::limits::ServerLimits::send_budget`] (or the client's
/// [`crate::ClientConfig::send_budget`]). Documented in `docs/session-protocol.md`.
pub const SLOW_READER: u32 = 5;

/// Bytes counted for every item taken with [`Budget::try_charge`] or [`Budget::charge`] beside
/// its data (its bookkeeping in a queue), so a flood of empty datagrams or messages is bounded
/// too.
pub const ITEM_OVERHEAD: usize = 64;

/// A number of bytes that may wait somewhere, and how many do now.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl Budget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes an item of `n` bytes (plus [`ITEM_OVERHEAD`]) when it fits; an empty budget always
    /// takes one item, however large (a message may be larger than a budget, but nothing else
    /// may wait beside it).
    pub fn try_charge(self: &Arc<Self>, n: usize) -> Option<Charge> {
        let n = n.saturating_add(ITEM_OVERHEAD);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(n) <= self.limit).then_some(used + n)
            })
            .ok()
            .map(|_| Charge {
                budget: self.clone(),
                n,
            })
    }

    /// Waits until `n` bytes fit, then takes them (the reader of a reliable stream waits here,
    /// which stops reading the stream: QUIC or TCP flow control then slows the sender).
    pub async fn charge(self: &Arc<Self>, n: usize) -> Charge {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register before checking, so a release between the check and the wait is seen.
            freed.as_mut().enable();
            if let Some(c) = self.try_charge(n) {
                return c;
            }
            freed.await;
        }
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    n: usize,
}

impl Charge {
    /// An empty charge on `budget`, to grow with [`Self::try_grow`].
    pub fn empty(budget: &Arc<Budget>) -> Self {
        Self {
            budget: budget.clone(),
            n: 0,
        }
    }

    /// Takes `more` bytes into this charge when they fit under the limit (no exception for an
    /// empty budget: this is for data that grows piece by piece).
    pub fn try_grow(&mut self, more: usize) -> bool {
        let limit = self.budget.limit;
        let ok = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used.saturating_add(more) <= limit).then_some(used + more)
            })
            .is_ok();
        if ok {
            self.n += more;
        }
        ok
    }

    /// Bytes held by this charge.
    pub fn bytes(&self) -> usize {
        self.n
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.n);
    }
}

/// The receiving side's budgets of one session.
#[derive(Clone)]
pub(crate) struct ReadLimits {
    /// Bytes of reliable messages still arriving, all channels together.
    pub partial: Arc<Budget>,
    /// Bytes of events handed to the owner and not taken yet (datagrams and messages).
    pub events: Arc<Budget>,
    /// Datagrams dropped because `events` was full (shared by the sessions of one endpoint).
    pub dropped: Arc<AtomicU64>,
    /// Why this side closed the session, when a reader closed it (a protocol violation).
    pub local_close: Arc<std::sync::OnceLock<String>>,
}

impl ReadLimits {
    pub(crate) fn new(partial: usize, events: usize, dropped: Arc<AtomicU64>) -> Self {
        Self {
            partial: Budget::new(partial),
            events: Budget::new(events),
            dropped,
            local_close: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_returned_on_drop() {
        let b = Budget::new(100 + 2 * ITEM_OVERHEAD);
        let big = b
            .try_charge(500)
            .expect("an empty budget takes one large item");
        assert_eq!(b.used(), 500 + ITEM_OVERHEAD);
        assert!(
            b.try_charge(0).is_none(),
            "nothing beside an over-limit item"
        );
        drop(big);
        assert_eq!(b.used(), 0, "dropping a charge returns its bytes");
        let a = b.try_charge(60).unwrap();
        assert!(b.try_charge(41).is_none(), "60 + 41 > 100");
        let c = b.try_charge(40).unwrap();
        assert_eq!(b.used(), 100 + 2 * ITEM_OVERHEAD);
        drop(a);
        assert!(
            b.try_charge(0).is_some(),
            "an empty item fits in 60 + overhead"
        );
        assert!(
            Budget::new(ITEM_OVERHEAD - 1).try_charge(0).is_some(),
            "alone, anything goes"
        );
        drop(c);
        let mut g = Charge::empty(&b);
        assert!(g.try_grow(b.limit()));
        assert!(!g.try_grow(1), "growth never passes the limit");
        assert_eq!(g.bytes(), b.limit());
        drop(g);
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_waiting_charge_goes_through_once_bytes_are_freed() {
        let b = Budget::new(10 + ITEM_OVERHEAD);
        let held = b.try_charge(10).unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.charge(5).await.bytes() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while the budget is full");
        drop(held);
        assert_eq!(waiter.await.unwrap(), 5 + ITEM_OVERHEAD);
    }
}
