//! In-memory multi-zone simulation: a seeded PRNG, a link conditioner and a scenario runner.
//!
//! Used by the tests and benchmarks to step N zones and move their packets deterministically:
//! the same seed gives the same bytes.

pub mod harness;
pub mod link;
pub mod replication;
pub mod rng;
