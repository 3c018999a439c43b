//! Conversions between Godot's packet vocabulary and the wire's, and the send path shared by
//! both transports (errors become Godot `Error`s with a message that says what to do).

use fabric_core::packet_frame::TransferMode as WireMode;
use godot::classes::multiplayer_peer::TransferMode;
use godot::global::{Error, godot_error};

pub(super) fn send_one(
    mode: WireMode,
    datagram: impl FnOnce(&[u8]) -> Result<(), fabric_net::NetError>,
    message: impl FnOnce(Vec<u8>) -> Result<(), fabric_net::NetError>,
    frame: &[u8],
) -> Result<(), fabric_net::NetError> {
    // Reliable frames go on their channel's own stream (the caller binds the channel).
    match mode {
        WireMode::Reliable => message(frame.to_vec()),
        _ => datagram(frame),
    }
}

pub(super) fn to_godot(r: Result<(), fabric_net::NetError>) -> Error {
    match r {
        Ok(()) => Error::OK,
        Err(e @ fabric_net::NetError::DatagramTooLarge { .. }) => {
            godot_error!(
                "FabricMMOGTransportPeer: {e}; send it with TRANSFER_MODE_RELIABLE instead"
            );
            Error::ERR_INVALID_PARAMETER
        }
        Err(e) => {
            godot_error!("FabricMMOGTransportPeer: {e}");
            Error::ERR_CONNECTION_ERROR
        }
    }
}

/// 64 random bits for a client's peer id (`peer_core::peer_id_from_random`), from the OS's
/// randomness without a new dependency: a fresh `RandomState`'s hash.
pub(super) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

pub(super) fn wire_mode(m: TransferMode) -> WireMode {
    if m == TransferMode::UNRELIABLE {
        WireMode::Unreliable
    } else if m == TransferMode::UNRELIABLE_ORDERED {
        WireMode::UnreliableOrdered
    } else {
        WireMode::Reliable
    }
}

pub(super) fn godot_mode(m: WireMode) -> TransferMode {
    match m {
        WireMode::Unreliable => TransferMode::UNRELIABLE,
        WireMode::UnreliableOrdered => TransferMode::UNRELIABLE_ORDERED,
        WireMode::Reliable => TransferMode::RELIABLE,
    }
}
