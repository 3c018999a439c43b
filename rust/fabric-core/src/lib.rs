//! Sans-IO deterministic core of Multiplayer Fabric.
//!
//! Nothing in this crate opens a socket, reads a clock, touches Godot or SQLite: time and input
//! come in as arguments, bytes go out as return values (the quinn-proto model). The network crate
//! (`fabric-net`), the Godot extension (`fabric-godot`) and the binaries drive it.
#![warn(missing_docs)]

pub mod packet_frame;
pub mod session_control;
