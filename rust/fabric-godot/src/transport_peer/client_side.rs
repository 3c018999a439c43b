//! The client side of `FabricMMOGTransportPeer`: advancing the connection attempt (WebTransport,
//! the WebSocket fallback, or both raced) and feeding the session's events to the `PeerCore`
//! (which sends the join and waits for `joined`), on the main thread.

use fabric_net::ClientEvent;
use fabric_net::server::close_code;
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
                self.role = Role::Client { client };
                // The core sends the join.
                self.core.client_connected();
                self.flush_core();
                self.set_state(Self::STATE_CONNECTED);
            }
            Step::Failed(reason) => {
                self.role = Role::Idle;
                self.core.client_failed();
                self.fail(reason);
            }
        }
    }

    pub(super) fn poll_client(&mut self) {
        for _ in 0..self.events_per_poll.max(1) {
            let Role::Client { client } = &mut self.role else {
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
                    self.core.client_failed();
                    self.fail(e.to_string());
                    return;
                }
                ClientEvent::Closed { reason } => {
                    self.role = Role::Idle;
                    self.core.client_closed();
                    // The failure first, then the server's `peer_disconnected` (when joined);
                    // taken now, since a handler of the failure may `close()` the peer.
                    let gone = self.core.poll_event();
                    // A server that closed the session in order (its `close()`, a shutdown)
                    // is not an error in the game's log; the state and signal are the same.
                    let orderly = reason.code() == Some(close_code::NORMAL);
                    self.end(format!("session closed: {reason}"), orderly);
                    if let Some(event) = gone {
                        self.report(event);
                    }
                    return;
                }
                ClientEvent::Datagram(d) => self.core.receive(0, &d),
                ClientEvent::Message(m) => self.core.receive(0, &m),
            }
            self.flush_core();
        }
    }
}
