//! Sans-IO deterministic core of Multiplayer Fabric.
//!
//! Nothing in this crate opens a socket, reads a clock, touches Godot or SQLite: time and input
//! come in as arguments, bytes go out as return values (the quinn-proto model). The network crate
//! (`fabric-net`), the Godot extension (`fabric-godot`) and the binaries drive it.
#![warn(missing_docs)]

pub mod adjacency;
pub mod admission;
pub mod packet_frame;
pub mod peer_core;
pub mod session_control;

pub mod aoi;
pub mod asset_placement;
pub mod avatars;
pub mod client_view;
pub mod command_gate;
pub mod config;
pub mod coords;
pub mod durable_acks;
pub mod durable_handoff;
pub mod entity;
pub mod entity_row;
pub mod ghost;
pub mod hilbert;
pub mod hlc;
pub mod host_room;
pub mod latency;
pub mod manifest;
pub mod migration;
pub mod migration_intent;
pub mod original_scheme;
pub mod outbox;
pub mod ownership;
pub mod pacer;
pub mod peer_departure;
pub mod player_command;
pub mod replay;
pub mod room_save;
pub mod rto;
pub mod sim;
pub mod slots;
pub mod snapshot;
pub mod tick;
pub mod timing;
pub mod unclaimed;
pub mod wanderers;
pub mod wire;
pub mod zone;
pub mod zone_control;
pub mod zone_directory;
pub mod zone_entities;
pub mod zones;
