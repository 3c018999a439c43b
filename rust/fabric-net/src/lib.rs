//! Multiplayer Fabric networking: WebTransport endpoints on `tokio` + `wtransport`, with a
//! WebSocket fallback (`tokio-tungstenite`) that gives the same events.
//!
//! This is glue, not logic: it moves bytes between sockets and the sans-IO core. Everything async
//! runs on one background runtime ([`runtime_handle`]); the owner of a [`Server`] or [`Client`] (a Godot
//! node on the main thread, say) only calls non-blocking methods and drains events in its poll.
//!
//! - [`cert`]: server identities (self-signed ECDSA P-256, at most 14 days) and pinned hashes.
//! - [`server`]: a WebTransport server whose sessions are reported as [`ServerEvent`]s.
//! - [`client`]: a WebTransport client session reported as [`ClientEvent`]s.
//! - [`client_endpoints`]: QUIC endpoints shared by many client sessions of one process.
//! - [`limits`]: the server's budgets and caps as settings (one list, exposed by the peer,
//!   the zone and the gateway).
//! - [`close`]: close codes and how a session's end is reported (used by both ends).
//! - [`reliable`]: length-prefixed message framing on a stream.
//! - [`lanes`]: one QUIC stream per reliable channel, so channels never block each other.
//! - [`ws`]: the WebSocket fallback link (`wss://host:port/ws`, pinned by the same hash as
//!   WebTransport, or plain `ws://` on loopback; same events, same semantics).
#![warn(missing_docs)]

mod admission;
pub mod budget;
pub mod cert;
pub mod client;
pub mod client_endpoints;
pub mod close;
pub mod congestion;
pub mod error;
pub mod http;
pub mod lanes;
pub mod limits;
mod link;
mod nosigpipe;
pub mod registry;
pub mod registry_keys;
pub mod registry_watch;
pub mod reliable;
pub mod rotation;
pub mod runtime;
pub mod server;
mod tls;
pub mod udp;
pub mod ws;

pub use cert::{CertHash, ServerIdentity, Validity, ValidityProblem};
pub use client::{Client, ClientConfig, ClientEvent};
pub use client_endpoints::ClientEndpoints;
pub use close::CloseReason;
pub use congestion::CongestionControl;
pub use error::{
    Cause, ConnectStep, IdentityError, NetError, RotationProblem, describe_connect_error,
};
pub use limits::ServerLimits;
pub use rotation::CertRotation;
pub use runtime::{current_or_shared, handle as runtime_handle, shutdown as shutdown_runtime};
pub use server::{Server, ServerConfig, ServerEvent, SessionId};
