//! The server side of `FabricMMOGTransportPeer`: the server's events (sessions opened and
//! closed, datagrams, messages) go into the `PeerCore`, on the main thread; the join deadline
//! is checked at each `poll()`. Certificate rotations become the `cert_rotated` signal.

use std::time::{Duration, Instant};

use fabric_net::ServerEvent;
use godot::prelude::*;

use super::{FabricMMOGTransportPeer, Role};

impl FabricMMOGTransportPeer {
    pub(super) fn poll_server(&mut self) {
        let now = Instant::now();
        // Read at each poll: GDScript may change it at any time; 0 or negative = no deadline.
        let timeout = u64::try_from(self.join_timeout_msec)
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        self.core.set_join_timeout(timeout);
        self.core.handle_timeout(now);
        self.flush_core();
        for _ in 0..self.events_per_poll.max(1) {
            let Role::Server { server } = &mut self.role else {
                return;
            };
            let Some(ev) = server.try_next_event() else {
                return;
            };
            match ev {
                ServerEvent::Opened { session, .. } => self.core.session_opened(now, session),
                ServerEvent::Datagram { session, data } => self.core.receive(session, &data),
                ServerEvent::Message { session, data } => self.core.receive(session, &data),
                ServerEvent::Closed { session, .. } => self.core.session_closed(session),
                ServerEvent::CertRotated { hash, next, .. } => {
                    let next = next.map(|n| n.to_base64()).unwrap_or_default();
                    self.keep_alive();
                    self.signals()
                        .cert_rotated()
                        .emit(&GString::from(&hash.to_base64()), &GString::from(&next));
                }
            }
            self.flush_core();
        }
    }
}
