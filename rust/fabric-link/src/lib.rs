//! Zone links: how the zones of one fabric find each other and exchange the packets of the
//! sans-IO zone core (`fabric-core`) across processes.
//!
//! - [`membership`]: who is in the fabric ([`Member`]: zone, link URL, certificate hashes), from
//!   a static list or the registry backend, and which pairs link ([`membership::linked`]: the
//!   zones whose ranges overlap a zone's AOI band, in either direction).
//! - [`registry`]: the member list from the registry backend, followed by [`ZoneLinks`].
//! - [`delivery`]: which channel a core packet takes ([`Delivery`]: interest rows as datagrams,
//!   migration and control reliable) and the `from_zone` a packet claims.
//! - [`links`]: [`ZoneLinks`], one authenticated WebTransport session per neighbouring pair on
//!   `fabric-net`'s runtime; the tick only calls non-blocking methods.
//! - [`session`]: the link handshake (a link proof, then an accept) and its checks.
//! - [`backoff`]: reconnect delays (exponential, capped at 30 s).
//! - [`drive`]: [`drive::Driver`], the loop step a zone host (a test, a bench, the Godot node)
//!   calls: drain links into the zone, tick it, hand its outbox to the links.
//! - [`handoff`]: hand-off latency (intent sent to acknowledgement) measured by the driver.
#![warn(missing_docs)]

pub mod backoff;
pub mod delivery;
pub mod drive;
pub mod handoff;
pub mod links;
pub mod membership;
pub mod registry;
pub mod session;
pub mod stats;

pub use delivery::Delivery;
pub use links::{LinkConfig, LinkError, LinkEvent, LinkSendError, LinkWaiter, ZoneLinks};
pub use membership::Member;
pub use stats::{LinkCounters, LinkStats};
