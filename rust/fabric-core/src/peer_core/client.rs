//! The client's side of [`PeerCore`]: the join handshake with the server and the packets it
//! relays.
//!
//! Once the transport is open ([`client_connected`](PeerCore::client_connected)) the client
//! sends `{"action":"join","peer_id":N}` on its reliable path; the server's `joined` with the
//! same id makes it connected ([`PeerEvent::PeerConnected`] of peer 1). Packets that arrive
//! before it are queued but not readable (a reliable packet may overtake the `joined` on another
//! stream). The server is trusted: a bad packet from it is dropped and reported, the session
//! stays open.

use crate::packet_frame::PacketHeader;
use crate::session_control::ControlMessage;

use super::{PeerCore, PeerEvent, Role, SERVER_PEER, SERVER_SESSION, Transmit};

/// Where a client is in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientState {
    /// The transport is still opening.
    Connecting,
    /// The transport is open and the join sent; waiting for `joined`.
    Joining,
    /// The server confirmed the join.
    Joined,
}

impl ClientState {
    pub fn is_joined(self) -> bool {
        self == Self::Joined
    }
}

impl PeerCore {
    /// Clients: the transport is open; the join goes out ([`Transmit::Message`]).
    pub fn client_connected(&mut self) {
        let Role::Client(state @ ClientState::Connecting) = &mut self.role else {
            return;
        };
        *state = ClientState::Joining;
        self.transmits.push_back(Transmit::Message {
            session: SERVER_SESSION,
            bytes: ControlMessage::Join {
                peer_id: self.unique_id as u32,
            }
            .encode(),
        });
    }

    /// Clients: the session ended (closed by either side). Back to idle; a joined client sees
    /// the server leave ([`PeerEvent::PeerDisconnected`] of peer 1). Packets already queued stay
    /// readable.
    pub fn client_closed(&mut self) {
        let Role::Client(state) = self.role else {
            return;
        };
        self.role = Role::Idle;
        if state.is_joined() {
            self.events
                .push_back(PeerEvent::PeerDisconnected(SERVER_PEER));
        }
    }

    /// Clients: the transport failed (it could not open, or broke). Back to idle without an
    /// event: the glue reports the failure itself.
    pub fn client_failed(&mut self) {
        if matches!(self.role, Role::Client(_)) {
            self.role = Role::Idle;
        }
    }

    pub(super) fn client_receive(&mut self, data: &[u8]) {
        if ControlMessage::is_control(data) {
            match ControlMessage::decode(data) {
                Ok(msg) => {
                    self.report_control(data, SERVER_PEER);
                    if let ControlMessage::Joined { peer_id } = msg {
                        self.joined(peer_id as i32);
                    }
                }
                Err(e) => self.dropped(&e),
            }
            return;
        }
        match PacketHeader::decode(data) {
            // The server writes the source peer into the header.
            Ok((h, payload)) => {
                self.incoming.accept(h.peer, &h, payload, &mut self.stats);
            }
            Err(e) => self.dropped(&e),
        }
    }

    fn joined(&mut self, peer_id: i32) {
        if peer_id != self.unique_id {
            return;
        }
        if let Role::Client(state @ ClientState::Joining) = &mut self.role {
            *state = ClientState::Joined;
            self.events.push_back(PeerEvent::PeerConnected(SERVER_PEER));
        }
    }

    fn dropped(&mut self, e: &dyn std::fmt::Display) {
        self.events.push_back(PeerEvent::Dropped {
            reason: format!("dropped a bad packet from the server: {e}"),
        });
    }
}
