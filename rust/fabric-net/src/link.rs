//! A WebTransport or WebSocket session as both ends use it: sending datagrams and reliable
//! messages, closing.
//!
//! Below the client and the server, above the channel streams ([`crate::lanes`]) and the
//! WebSocket link ([`crate::ws`]).

use bytes::Bytes;
use wtransport::Connection;
use wtransport::error::SendDatagramError;

use crate::NetError;

/// Sends one datagram on a WebTransport session; too large for the path is an error.
pub(crate) fn send_datagram(conn: &Connection, data: Bytes) -> Result<(), NetError> {
    let size = data.len();
    conn.send_datagram(data).map_err(|e| match e {
        SendDatagramError::TooLarge => NetError::DatagramTooLarge {
            size,
            limit: conn.max_datagram_size().unwrap_or(0),
        },
        SendDatagramError::NotConnected => NetError::NotConnected,
        SendDatagramError::UnsupportedByPeer => NetError::DatagramsUnsupported,
    })
}
