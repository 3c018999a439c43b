//! The load generator of Multiplayer Fabric: thousands of simulated players from one process on
//! one tokio runtime, speaking the real client protocol (WebTransport or the WebSocket fallback)
//! to zones on loopback, each measuring what a player experiences; and the scenario report.
//!
//! - [`path`]: where a player walks (sans-IO).
//! - [`target`]: the zones under load, the Hilbert layout, join tokens.
//! - [`player`]: one player as a task.
//! - [`stats`]: what players measure, histograms, the live counters.
//! - [`run`]: many players, the progress line each second, the [`run::Summary`].
//! - [`report`]: the Markdown report with PNG plots of a scenario.
//! - [`relay`]: a conditioned link (delay, loss) between the players and a zone.
//! - [`desync`]: the players' views compared with the zones' `/state`.
//! - [`original`]: observers of the original scheme, the benchmark's baseline.
//! - [`stall`]: players that stop reading their session (the slow reader).
//! - [`windows`]: what players saw before a fault and after it.
#![warn(missing_docs)]

pub mod desync;
pub mod original;
pub mod path;
pub mod player;
pub mod relay;
pub mod report;
pub mod run;
pub mod stall;
pub mod stats;
pub mod target;
pub mod windows;
