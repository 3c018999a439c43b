//! Multiplayer Fabric's GDExtension: the Godot classes and the main-thread bridge, nothing else.
//!
//! - [`transport_peer::FabricMMOGTransportPeer`]: a `MultiplayerPeer` over WebTransport.
//! - [`zone::FabricZone`]: the zone server node.
//! - [`snapshot::FabricSnapshot`]: the saved world, a `Resource` (compressed binary `.res`).
//! - [`host_room::FabricHostRoom`]: a room run by one player's process, that elects a new host
//!   when it leaves.
//! - [`world::FabricWorld`]: a player's client node (joins, mirrors what is near, commands).
//! - [`manifest::FabricReplicationManifest`]: how entity properties reach the players, a
//!   `Resource` given to the zone and to the client.
//! - [`assets::FabricAssetFetcher`]: fetches an uploaded asset, verified, off the main thread.
//! - [`registry_request::FabricRegistryRequest`]: one pinned-HTTPS request to the registry
//!   backend (the addon's `FabricRegistry` uses it for `https://`).
//! - `test_runner::FabricTestRunner` (only with the cargo feature `itest`, which the project's
//!   test harness turns on and the addon users ship leaves off): runs the Rust tests that need a
//!   live engine (used by the runner scene `res://scenes/tests/test_runner.tscn`).
//!
//! Networking runs on `fabric-net`'s background runtime; these classes only drain its events on
//! the main thread. Logs of background threads go to standard error through `tracing`
//! (`RUST_LOG` filters them); their warnings and errors are also queued and printed by the main
//! thread with Godot's own functions ([`log_bridge`]), so they show in the editor's Output.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use godot::prelude::*;

pub mod assets;
pub mod host_room;
#[cfg(feature = "itest")]
pub mod itests;
pub mod limits;
pub mod log_bridge;
pub mod manifest;
pub mod registry_request;
pub mod snapshot;
#[cfg(feature = "itest")]
pub mod test_runner;
pub mod transport_peer;
pub mod world;
pub mod zone;

struct MultiplayerFabric;

#[gdextension]
unsafe impl ExtensionLibrary for MultiplayerFabric {
    fn on_stage_init(stage: InitStage) {
        if stage == InitStage::Scene {
            init_logging();
        }
    }

    fn on_stage_deinit(stage: InitStage) {
        if stage == InitStage::Scene {
            // Objects are freed by now; stop the network threads before Godot unloads this
            // library, or they would run unmapped code (a crash at exit).
            fabric_net::shutdown_runtime();
        }
    }
}

fn init_logging() {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    use tracing_subscriber::prelude::*;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialisation (hot reload) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(log_bridge::GodotBridge)
        .try_init();
}

/// Parses a Godot-style bind address (`"*"` = all interfaces) and port.
pub(crate) fn bind_addr(address: &str, port: i32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    let ip: IpAddr = match address.trim() {
        "*" | "" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        a => a.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}
