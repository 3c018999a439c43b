//! The server side of `FabricMMOGTransportPeer`: sessions of both transports become peers once
//! they join; packets, pings and hostile input are handled here, on the main thread.

use fabric_core::session_control::ControlMessage;
use fabric_net::server::close_code;
use fabric_net::{ServerEvent, SessionId};
use godot::prelude::*;

use super::{FabricMMOGTransportPeer, Role};

impl FabricMMOGTransportPeer {
    pub(super) fn poll_server(&mut self) {
        self.close_late_joiners();
        for _ in 0..self.events_per_poll.max(1) {
            let Role::Server { server, .. } = &mut self.role else {
                return;
            };
            let Some(ev) = server.try_next_event() else {
                return;
            };
            match ev {
                ServerEvent::Opened { session, .. } => {
                    if let Role::Server {
                        server,
                        sessions,
                        unjoined,
                        ..
                    } = &mut self.role
                    {
                        if self.refuse_new {
                            server.sender().close_session(
                                session,
                                close_code::REFUSED,
                                "server is refusing new connections",
                            );
                        } else {
                            sessions.insert(session, None);
                            unjoined.insert(session, std::time::Instant::now());
                        }
                    }
                }
                ServerEvent::Datagram { session, data } => self.server_bytes(session, &data),
                ServerEvent::CertRotated { hash, next, .. } => {
                    let next = next.map(|n| n.to_base64()).unwrap_or_default();
                    self.base_mut().emit_signal(
                        "cert_rotated",
                        &[
                            GString::from(&hash.to_base64()).to_variant(),
                            GString::from(&next).to_variant(),
                        ],
                    );
                }
                ServerEvent::Message { session, data } => self.server_bytes(session, &data),
                ServerEvent::Closed { session, .. } => {
                    let gone = if let Role::Server {
                        sessions,
                        peers,
                        unjoined,
                        ..
                    } = &mut self.role
                    {
                        unjoined.remove(&session);
                        let id = sessions.remove(&session).flatten();
                        if let Some(id) = id {
                            peers.remove(&id);
                        }
                        id
                    } else {
                        None
                    };
                    if let Some(id) = gone {
                        self.in_seq.retain(|(p, _), _| *p != id);
                        // SceneMultiplayer drains the queue after poll(): a packet of this peer
                        // still queued would reach it after `peer_disconnected` and fail its
                        // `connected_peers.has(sender)` check (an engine error per packet).
                        self.incoming.retain(|p| p.from != id);
                        self.base_mut()
                            .emit_signal("peer_disconnected", &[i64::from(id).to_variant()]);
                    }
                }
            }
        }
    }

    /// Closes the sessions that opened more than `join_timeout_msec` ago and have not joined.
    fn close_late_joiners(&mut self) {
        let Ok(ms) = u64::try_from(self.join_timeout_msec) else {
            return;
        };
        let Role::Server {
            server, unjoined, ..
        } = &mut self.role
        else {
            return;
        };
        if ms == 0 || unjoined.is_empty() {
            return;
        }
        let deadline = std::time::Duration::from_millis(ms);
        let now = std::time::Instant::now();
        unjoined.retain(|&session, opened| {
            let late = now.duration_since(*opened) >= deadline;
            if late {
                server.sender().close_session(
                    session,
                    close_code::PROTOCOL,
                    &format!("no join within {ms} ms of opening the session"),
                );
            }
            !late
        });
    }

    pub(super) fn server_bytes(&mut self, session: SessionId, data: &[u8]) {
        let Role::Server { sessions, .. } = &self.role else {
            return;
        };
        let Some(known) = sessions.get(&session).copied() else {
            return;
        };
        let from = known.unwrap_or(0);
        if known.is_none() && !ControlMessage::is_control(data) {
            // Packets before the join are not attributable to a peer: drop them.
            return;
        }
        match self.accept_bytes(from, data) {
            Ok(Some(ControlMessage::Join { peer_id })) if known.is_none() => {
                let id = peer_id as i32;
                let Role::Server {
                    server,
                    sessions,
                    peers,
                    unjoined,
                } = &mut self.role
                else {
                    return;
                };
                unjoined.remove(&session);
                if peers.contains_key(&id) {
                    server.sender().close_session(
                        session,
                        close_code::PROTOCOL,
                        "peer id already in use; reconnect to pick another",
                    );
                    return;
                }
                sessions.insert(session, Some(id));
                peers.insert(id, session);
                let _ = server
                    .sender()
                    .send_message(session, ControlMessage::Joined { peer_id }.encode());
                self.base_mut()
                    .emit_signal("peer_connected", &[i64::from(id).to_variant()]);
            }
            Ok(Some(ControlMessage::Ping { id })) => {
                if let Role::Server { server, .. } = &self.role {
                    let _ = server.send_datagram(session, &ControlMessage::pong(&id).encode());
                }
            }
            Ok(_) => {}
            Err(e) => {
                // A peer that sends garbage ends its own session, nobody else's.
                if let Role::Server { server, .. } = &self.role {
                    server.sender().close_session(
                        session,
                        close_code::PROTOCOL,
                        &format!("malformed packet: {e}"),
                    );
                }
            }
        }
    }
}
