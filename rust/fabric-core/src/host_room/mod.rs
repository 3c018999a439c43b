//! Host-run rooms: a room whose authority is one player's process (a listen server over
//! `FabricMMOGTransportPeer`) instead of a zone, and which survives that player leaving.
//!
//! The same rules as a zone's room apply (the [`crate::ownership::Ownership`] table decides
//! grants and denials, persist modes decide what happens to a departed holder's objects); what
//! differs is who decides and what happens when the decider goes away:
//!
//! - [`presence`]: the presence list ([`PresenceList`]): every player in join order with the
//!   address, port and certificate hash at which it will listen if it becomes host. The host
//!   assigns player ids in join order and never reuses one, so the **oldest presence** is the
//!   smallest id; it publishes the list to everyone whenever it changes.
//! - [`election`]: the deterministic election ([`PresenceList::successor`]) and the follower
//!   side ([`Follower`]): liveness of the host (heartbeats, a silence deadline), the last
//!   baseline, and what to do when the host is lost ([`Decision`]): take over, or connect to
//!   the successor. Every follower holds the same list, so every one picks the same successor
//!   without a vote round; a successor that cannot be reached is skipped by everyone alike.
//! - [`authority`]: the host side ([`RoomAuthority`]): objects, ownership, presences; it
//!   answers messages and publishes the baseline. A successor builds one from its last
//!   baseline ([`RoomAuthority::take_over`]).
//! - [`wire`]: the messages ([`RoomMsg`]) and their validating codec.
//!
//! Sans-IO: no sockets, no clock. Time comes in as milliseconds from the caller; the Godot
//! node `FabricHostRoom` pumps these over SceneMultiplayer's `send_bytes` / `peer_packet`.

pub mod authority;
pub mod election;
pub mod presence;
pub mod wire;

pub use authority::{Outgoing, RoomAuthority};
pub use election::{Decision, Follower, FollowerEvent};
pub use presence::{Presence, PresenceList};
pub use wire::{Baseline, RoomMsg, RoomObject, WireError};

/// Godot peer id of the host in a SceneMultiplayer session (the server is always 1).
pub const HOST_PEER: i32 = 1;
