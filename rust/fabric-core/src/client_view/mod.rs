//! Replication to clients: what each client sees of the zone, in as few bytes as possible.
//!
//! Sans-IO and deterministic like the rest of the core: no sockets, no clock; the same ticks,
//! candidates and acks give the same bytes. After [`ClientView::new`] nothing is allocated per
//! tick (every buffer is sized from the [`ReplicationConfig`]).
//!
//! - [`wire`]: the packet and ack formats (`docs/protocol.md`, "Client replication, version 1"),
//!   the encoder and the validating decoder.
//! - [`view`]: [`ClientView`], the server side of one client: interest radius with hysteresis,
//!   enter/leave records resent in every packet until a packet carrying them is acked, updates
//!   coded against the last state the client acked, the byte budget and the 20 Hz ceiling.
//! - [`priority`]: the priority accumulator (near and moving entities first, far and idle ones
//!   downshift).
//! - [`baseline`]: quantisation (1 mm, 1/256 mm per tick), the prediction both sides share, the
//!   record of unacked packets.
//! - [`mirror`]: [`ClientMirror`], the client side: validates, applies, acks.
//!
//! # How the zone drives it
//!
//! One [`ClientView`] per connected client, created with the fabric's [`ReplicationConfig`]:
//!
//! ```
//! use fabric_core::client_view::{Ack, Candidate, ClientMirror, ClientView, ReplicationConfig};
//! use fabric_core::coords::{ZERO3, metres};
//!
//! let cfg = ReplicationConfig::with_radius(50_000); // 50 m
//! let mut view = ClientView::new(cfg).unwrap();
//! let mut mirror = ClientMirror::new(cfg.max_entities, cfg.mtu);
//! let mut buf = vec![0u8; cfg.mtu];
//! for tick in 1..=3u64 {
//!     // 1. Acks that arrived from the client since the last tick (8-byte datagrams).
//!     if let Some(ack) = mirror.ack() {
//!         view.on_ack(&Ack::decode(&ack.encode()).unwrap());
//!     }
//!     // 2. After the zone's tick: its own entities and the neighbours' ghost rows it keeps.
//!     let candidates = [Candidate {
//!         global_id: 7,
//!         position: [metres(3), ZERO3[1], metres(-4)],
//!         velocity: ZERO3,
//!         zone: 0,
//!         class_word: 5 << 24,
//!     }];
//!     // 3. The viewer (the client's avatar); one packet or none (budget, 20 Hz ceiling).
//!     let viewer = ZERO3;
//!     if let Some(len) = view.write_tick(tick, &viewer, &candidates, &mut buf) {
//!         // 4. Send buf[..len] as one unreliable datagram; the client applies it.
//!         mirror.apply(&buf[..len]).unwrap();
//!     }
//! }
//! assert_eq!(mirror.position(7), Some([metres(3), ZERO3[1], metres(-4)]));
//! ```
//!
//! A client that connects to another zone gets a new view there (and a new mirror).

pub mod baseline;
pub mod config;
pub mod id_hash;
pub mod mirror;
pub mod priority;
pub mod view;
pub mod wire;

pub use config::{ConfigError, ReplicationConfig};
pub use mirror::{Applied, ClientMirror, MirrorEntity, MirrorError};
pub use view::{Candidate, ClientView, ViewStats};
pub use wire::{Ack, ReplWireError};
