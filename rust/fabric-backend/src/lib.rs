//! Zone registry backend of Multiplayer Fabric.
//!
//! Zone servers register (`POST /shards`) and heartbeat (`PUT /shards/{id}`); clients list live
//! zones (`GET /shards`), subscribe to `zone:<id>` over WebSocket (`GET /ws`) for
//! `zone_updated` / `relationship_changed` / `zone_removed` pushes, and obtain short-lived
//! Ed25519 join tokens (`POST /tokens/join`) after a ReBAC check. The API is described in
//! `openapi.json` (served at `GET /openapi.json`) and docs/backend.md.
//!
//! Layout: [`config`] (CLI), [`server`] (start/stop), [`routes`] (HTTP surface, one file per
//! resource), [`extract`] (precise rejections), [`store`] (the storage trait and SQLite),
//! [`hub`] and [`push`] (WebSocket fan-out), [`relay`] (pushes between replicas), [`rate`] (rate limits), [`keyring`] (signing keys and rotation), [`janitor`], [`clock`], [`secrets`], [`model`]
//! (wire shapes), [`client`] (a small HTTP client for zones, tools and the bench).
#![warn(missing_docs)]

pub mod blocking;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod extract;
pub mod hub;
pub mod janitor;
pub mod keyring;
pub mod listen;
pub mod metrics;
pub mod model;
pub mod push;
pub mod rate;
pub mod relay;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;

pub use config::Config;
pub use error::{ApiError, StoreError};
pub use server::{Bound, ServeError};
