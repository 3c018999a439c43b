//! Carrying out what `PeerCore` asks: its transmits go to `fabric-net` (the client's session or
//! the server's sessions), its events become `FabricMMOGTransportPeer`'s typed signals, emitted
//! on the main thread with the peer kept alive across them.

use fabric_core::peer_core::{PeerEvent, Transmit};
use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::prelude::*;

use super::{FabricMMOGTransportPeer, Role};

impl FabricMMOGTransportPeer {
    /// Keeps this peer alive until Godot's next idle time; called before each signal.
    ///
    /// Signals are emitted from inside `poll()` (and other calls) while Rust borrows the peer. A
    /// handler may drop the application's last reference to it, for example
    /// `multiplayer.multiplayer_peer = null` in `peer_disconnected`; Godot would then free the
    /// peer in the middle of the borrow, which gdext answers by aborting the process. A deferred
    /// call holding a reference moves that last release to after the call returns. Signals are
    /// rare (connections, state changes), so the small callable per emission costs nothing per
    /// frame.
    pub(super) fn keep_alive(&self) {
        let keep = self.to_gd();
        Callable::from_fn("fabric_peer_keep_alive", move |_| {
            let _ = &keep;
        })
        .call_deferred(&[]);
    }

    /// Sends and closes what the core asks, then reports its events, until it has nothing left
    /// (a signal handler may call back into the peer and give the core more to do).
    pub(super) fn flush_core(&mut self) {
        loop {
            while let Some(t) = self.core.poll_transmit() {
                self.transmit(t);
            }
            let Some(event) = self.core.poll_event() else {
                return;
            };
            self.report(event);
        }
    }

    fn transmit(&self, t: Transmit) {
        // Send errors need no handling here: a session that cannot take a control message is
        // ending, and its close reaches the core from `poll()`.
        match (&self.role, t) {
            (Role::Server { server }, Transmit::Message { session, bytes }) => {
                let _ = server.sender().send_message(session, bytes);
            }
            (Role::Server { server }, Transmit::Datagram { session, bytes }) => {
                let _ = server.send_datagram(session, &bytes);
            }
            (
                Role::Server { server },
                Transmit::Close {
                    session,
                    code,
                    reason,
                },
            ) => server.sender().close_session(session, code, &reason),
            (Role::Client { client }, Transmit::Message { bytes, .. }) => {
                let _ = client.send_message(bytes);
            }
            (Role::Client { client }, Transmit::Datagram { bytes, .. }) => {
                let _ = client.send_datagram(&bytes);
            }
            // A client core closes nothing (the client's close is `close()`), and nothing is
            // left to send on once the transport is gone.
            _ => {}
        }
    }

    /// One core event as a signal (or, for a bad packet from the server, a warning).
    pub(super) fn report(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::PeerConnected(id) => {
                if matches!(self.role, Role::Client { .. }) {
                    self.status = ConnectionStatus::CONNECTED;
                }
                self.keep_alive();
                self.signals().peer_connected().emit(i64::from(id));
            }
            PeerEvent::PeerDisconnected(id) => {
                self.keep_alive();
                self.signals().peer_disconnected().emit(i64::from(id));
            }
            PeerEvent::ControlReceived { text, from } => {
                self.keep_alive();
                self.signals()
                    .control_received()
                    .emit(&GString::from(&text), i64::from(from));
            }
            PeerEvent::Dropped { reason } => {
                godot_warn!("FabricMMOGTransportPeer: {reason}");
            }
        }
    }
}
