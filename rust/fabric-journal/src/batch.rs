//! One tick's mutations: the unit the zone hands to the journal, written in one transaction.

use crate::mutation::Mutation;

/// The mutations of one tick (or of several ticks, when the queue was full and the zone kept
/// adding to the batch it could not submit: see [`crate::writer`]).
///
/// The zone reuses batches: [`TickBatch::clear`] keeps the allocation, so once a batch has grown
/// to the largest tick it never allocates again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickBatch {
    /// The (last) tick whose mutations the batch holds. A commit reports it back: every
    /// mutation of this tick and of earlier ticks is durable once it is reported.
    pub tick: u64,
    mutations: Vec<Mutation>,
}

impl TickBatch {
    /// An empty batch with room for `capacity` mutations.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tick: 0,
            mutations: Vec::with_capacity(capacity),
        }
    }

    /// Adds a mutation (allocates only when the batch is larger than it ever was).
    pub fn push(&mut self, mutation: Mutation) {
        self.mutations.push(mutation);
    }

    /// The mutations, in the order they happened.
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// Whether the batch holds no mutation.
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// Removes every mutation, keeping the allocation; the tick is left as it was.
    pub fn clear(&mut self) {
        self.mutations.clear();
    }
}
