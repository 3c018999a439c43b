//! The client side of `FabricMMOGTransportPeer`: advancing the connection attempt (WebTransport,
//! the WebSocket fallback, or both raced) and turning the session's events into packets,
//! states and signals on the main thread.

use fabric_core::session_control::ControlMessage;
use fabric_net::ClientEvent;
use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::prelude::*;

use super::attempt::Step;
use super::{FabricMMOGTransportPeer, Role};

impl FabricMMOGTransportPeer {
    /// Advances a connection attempt; once a transport is open, the peer becomes a client.
    pub(super) fn poll_connecting(&mut self) {
        let Role::Connecting { attempt, settings } = &mut self.role else {
            return;
        };
        let settings = settings.clone();
        let connect = move |url: &str| {
            godot_warn!(
                "FabricMMOGTransportPeer: WebTransport not connected yet; also trying {url}"
            );
            settings.connect(url)
        };
        match attempt.poll(&connect) {
            Step::Pending => {}
            Step::FallbackStarted => self.set_state(Self::STATE_TRYING_FALLBACK),
            Step::FallbackFailed => self.set_state(Self::STATE_TRYING_PRIMARY),
            Step::Connected(client) => {
                let join = ControlMessage::Join {
                    peer_id: self.unique_id as u32,
                };
                let _ = client.send_message(join.encode());
                self.role = Role::Client {
                    client,
                    server_joined: false,
                };
                self.set_state(Self::STATE_CONNECTED);
            }
            Step::Failed(reason) => {
                self.role = Role::Idle;
                self.fail(reason);
            }
        }
    }

    pub(super) fn poll_client(&mut self) {
        for _ in 0..self.events_per_poll.max(1) {
            let Role::Client { client, .. } = &mut self.role else {
                return;
            };
            let Some(ev) = client.try_next_event() else {
                return;
            };
            match ev {
                // Only an attempt's first event; the attempt consumed it.
                ClientEvent::Connected { .. } => {}
                ClientEvent::Failed(e) => {
                    self.role = Role::Idle;
                    self.fail(e.to_string());
                    return;
                }
                ClientEvent::Closed { reason, .. } => {
                    let was_joined = matches!(
                        self.role,
                        Role::Client {
                            server_joined: true,
                            ..
                        }
                    );
                    self.role = Role::Idle;
                    self.fail(format!("session closed: {reason}"));
                    if was_joined {
                        self.base_mut()
                            .emit_signal("peer_disconnected", &[1i64.to_variant()]);
                    }
                    return;
                }
                ClientEvent::Datagram(d) => self.client_bytes(&d),
                ClientEvent::Message(m) => self.client_bytes(&m),
            }
        }
    }

    pub(super) fn client_bytes(&mut self, data: &[u8]) {
        match self.accept_bytes(1, data) {
            Ok(Some(ControlMessage::Joined { peer_id })) if peer_id as i32 == self.unique_id => {
                if let Role::Client { server_joined, .. } = &mut self.role
                    && !*server_joined
                {
                    *server_joined = true;
                    self.status = ConnectionStatus::CONNECTED;
                    self.base_mut()
                        .emit_signal("peer_connected", &[1i64.to_variant()]);
                }
            }
            Ok(_) => {}
            Err(e) => {
                godot_warn!("FabricMMOGTransportPeer: dropped a bad packet from the server: {e}")
            }
        }
    }
}
