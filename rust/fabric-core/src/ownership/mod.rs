//! Ownership of entities: who may change an entity, and what happens to it when its holder
//! leaves. Sans-IO: the zone that owns the entity keeps one [`Ownership`] table and feeds it
//! requests, releases, take-backs and departures; the table answers with what to tell clients
//! and what to do with the entity. No clock and no sockets: ticks come in as arguments.
//!
//! - [`persist`]: the persist mode of an entity ([`PersistMode`]).
//! - [`table`]: the state machine ([`Ownership`]): request / granted / denied / released /
//!   revoked, one holder at a time, the fairness rule, counts per reason.
//! - [`record`]: the 12-byte ownership record that travels with an entity in a hand-off.
//! - [`handoff`]: how the zone core carries records through hand-offs ([`OwnershipCarry`]).
//!
//! A *holder* is named by its avatar's global id, not by a session number: avatar ids are
//! global and travel with the avatar across zones, so a record moved to another zone still
//! names the same player there. The zone maps sessions to avatars
//! ([`crate::avatars::Avatars`]). The wire messages (`request_ownership`, `release_ownership`,
//! `ownership`) are in [`crate::session_control`] and `docs/session-protocol.md`.

pub mod handoff;
pub mod persist;
pub mod record;
pub mod table;

#[cfg(test)]
mod contention_tests;

pub use handoff::OwnershipCarry;
pub use persist::PersistMode;
pub use record::{OwnershipRecord, RECORD_LEN, RecordError};
pub use table::{DENIAL_COUNT, Denial, Departure, Grant, Ownership, OwnershipConfig, ReleaseCause};
