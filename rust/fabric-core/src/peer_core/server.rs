//! The server's side of [`PeerCore`]: sessions become peers when they join; the session-to-peer
//! map and its inverse, the join deadline, pings, and what a hostile session can do (only end
//! its own session).
//!
//! A session is known from [`session_opened`](PeerCore::session_opened) to
//! [`session_closed`](PeerCore::session_closed). Until it joins, its packets are dropped (they
//! are not attributable to a peer) and its control messages are reported from peer 0. A `join`
//! with a peer id already in use, or bytes that do not decode, close it with code 1; so does the
//! join deadline. A session that has not joined and that the core closes is forgotten at once:
//! nothing it sends until the close takes effect counts (it cannot join in that window), and
//! its close brings no event. A second `join` of a joined session is ignored.

use std::collections::hash_map;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::packet_frame::PacketHeader;
use crate::session_control::{ControlMessage, close_code};

use super::{DisconnectError, PeerCore, PeerEvent, Role, SessionId, Transmit};

/// A server's sessions and peers. `sessions[s] == Some(p)` exactly when `peers[p] == s`.
#[derive(Debug, Default)]
pub(super) struct ServerState {
    /// Every open session, with the peer it joined as.
    sessions: FxHashMap<SessionId, Option<i32>>,
    /// Joined peers and their session.
    peers: FxHashMap<i32, SessionId>,
    /// Sessions that have not joined yet, and when they opened.
    unjoined: FxHashMap<SessionId, Instant>,
}

/// The sessions a server's packet goes to: the joined peers its target selects (0 = all,
/// `n` = peer `n`, `-n` = all but `n`).
#[derive(Debug)]
pub struct Targets<'a> {
    peers: hash_map::Iter<'a, i32, SessionId>,
    target: i32,
}

impl Iterator for Targets<'_> {
    type Item = SessionId;

    fn next(&mut self) -> Option<SessionId> {
        let target = self.target;
        self.peers.by_ref().find_map(|(&id, &session)| {
            let wanted = target == 0 || target == id || (target < 0 && id != -target);
            wanted.then_some(session)
        })
    }
}

impl ServerState {
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn session_of(&self, peer: i32) -> Option<SessionId> {
        self.peers.get(&peer).copied()
    }

    pub fn peer_of(&self, session: SessionId) -> Option<i32> {
        self.sessions.get(&session).copied().flatten()
    }

    pub fn targets(&self, target: i32) -> Targets<'_> {
        Targets {
            peers: self.peers.iter(),
            target,
        }
    }

    /// Forgets a session that has not joined and that the core closes: whatever it sends
    /// until the close takes effect is ignored (it cannot join in that window).
    fn forget_unjoined(&mut self, session: SessionId) {
        self.unjoined.remove(&session);
        self.sessions.remove(&session);
    }

    pub fn earliest_open(&self) -> Option<Instant> {
        self.unjoined.values().min().copied()
    }

    pub fn close_late_joiners(
        &mut self,
        now: Instant,
        timeout: Duration,
        transmits: &mut std::collections::VecDeque<Transmit>,
    ) {
        let Self {
            sessions, unjoined, ..
        } = self;
        unjoined.retain(|&session, opened| {
            let late = now.saturating_duration_since(*opened) >= timeout;
            if late {
                sessions.remove(&session);
                transmits.push_back(Transmit::Close {
                    session,
                    code: close_code::PROTOCOL,
                    reason: format!(
                        "no join within {} ms of opening the session",
                        timeout.as_millis()
                    ),
                });
            }
            !late
        });
    }

    /// Whether the map and its inverse agree, and every unjoined session is a known session
    /// without a peer (for tests and debug checks).
    pub fn is_consistent(&self) -> bool {
        self.peers
            .iter()
            .all(|(&p, s)| self.sessions.get(s) == Some(&Some(p)))
            && self
                .sessions
                .iter()
                .all(|(s, p)| p.is_none_or(|p| self.peers.get(&p) == Some(s)))
            && self
                .unjoined
                .keys()
                .all(|s| self.sessions.get(s) == Some(&None))
    }
}

impl PeerCore {
    /// Servers: a session opened at `now`. Refused at once (code 2) while refusing new
    /// connections; otherwise it has the join timeout to join.
    pub fn session_opened(&mut self, now: Instant, session: SessionId) {
        let Role::Server(s) = &mut self.role else {
            return;
        };
        if self.refuse_new {
            self.transmits.push_back(Transmit::Close {
                session,
                code: close_code::REFUSED,
                reason: "server is refusing new connections".into(),
            });
            return;
        }
        s.sessions.insert(session, None);
        s.unjoined.insert(session, now);
    }

    /// Servers: a session closed (either side). Its peer, if it had joined, is disconnected:
    /// its queued packets are dropped and [`PeerEvent::PeerDisconnected`] follows.
    pub fn session_closed(&mut self, session: SessionId) {
        let Role::Server(s) = &mut self.role else {
            return;
        };
        s.unjoined.remove(&session);
        let Some(id) = s.sessions.remove(&session).flatten() else {
            return;
        };
        s.peers.remove(&id);
        self.incoming.forget(id);
        self.events.push_back(PeerEvent::PeerDisconnected(id));
    }

    /// Servers: `disconnect_peer(peer, force)`. Closes the peer's session (code 0); its
    /// [`PeerEvent::PeerDisconnected`] follows when the session has closed. With `force` the peer
    /// is forgotten at once and no event follows (ENet's behaviour, which SceneMultiplayer
    /// expects: it removes the peer itself).
    pub fn disconnect_peer(&mut self, peer: i32, force: bool) -> Result<(), DisconnectError> {
        let Role::Server(s) = &mut self.role else {
            return Err(DisconnectError::NotServer);
        };
        let Some(session) = s.session_of(peer) else {
            return Err(DisconnectError::UnknownPeer(peer));
        };
        self.transmits.push_back(Transmit::Close {
            session,
            code: close_code::NORMAL,
            reason: "disconnected by the server".into(),
        });
        if force {
            s.peers.remove(&peer);
            s.sessions.insert(session, None);
            self.incoming.forget(peer);
        }
        Ok(())
    }

    /// Whether the server's session-to-peer map and its inverse agree (always true on clients).
    pub fn is_consistent(&self) -> bool {
        match &self.role {
            Role::Server(s) => s.is_consistent(),
            _ => true,
        }
    }

    pub(super) fn server_receive(&mut self, session: SessionId, data: &[u8]) {
        let Role::Server(s) = &self.role else {
            return;
        };
        let Some(known) = s.sessions.get(&session).copied() else {
            return;
        };
        let is_control = ControlMessage::is_control(data);
        let Some(from) = known else {
            if is_control {
                self.unjoined_control(session, data);
            }
            // Packets before the join are not attributable to a peer: dropped.
            return;
        };
        if !is_control {
            match PacketHeader::decode(data) {
                Ok((h, payload)) => {
                    self.incoming.accept(from, &h, payload, &mut self.stats);
                }
                Err(e) => self.close_malformed(session, &e),
            }
            return;
        }
        match ControlMessage::decode(data) {
            Ok(msg) => {
                self.report_control(data, from);
                if let ControlMessage::Ping { id } = msg {
                    self.pong(session, &id);
                }
            }
            Err(e) => self.close_malformed(session, &e),
        }
    }

    /// A control message from a session that has not joined: the join, a ping, or anything the
    /// game handles itself (reported from peer 0).
    fn unjoined_control(&mut self, session: SessionId, data: &[u8]) {
        let msg = match ControlMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                if let Role::Server(s) = &mut self.role {
                    s.forget_unjoined(session);
                }
                return self.close_malformed(session, &e);
            }
        };
        self.report_control(data, 0);
        match msg {
            ControlMessage::Join { peer_id } => self.join(session, peer_id as i32),
            ControlMessage::Ping { id } => self.pong(session, &id),
            _ => {}
        }
    }

    fn join(&mut self, session: SessionId, id: i32) {
        let Role::Server(s) = &mut self.role else {
            return;
        };
        s.unjoined.remove(&session);
        if s.peers.contains_key(&id) {
            s.sessions.remove(&session);
            self.transmits.push_back(Transmit::Close {
                session,
                code: close_code::PROTOCOL,
                reason: "peer id already in use; reconnect to pick another".into(),
            });
            return;
        }
        s.sessions.insert(session, Some(id));
        s.peers.insert(id, session);
        self.transmits.push_back(Transmit::Message {
            session,
            bytes: ControlMessage::Joined { peer_id: id as u32 }.encode(),
        });
        self.events.push_back(PeerEvent::PeerConnected(id));
    }

    fn pong(&mut self, session: SessionId, id: &str) {
        self.transmits.push_back(Transmit::Datagram {
            session,
            bytes: ControlMessage::pong(id).encode(),
        });
    }

    /// A peer that sends garbage ends its own session, nobody else's.
    fn close_malformed(&mut self, session: SessionId, e: &dyn std::fmt::Display) {
        self.transmits.push_back(Transmit::Close {
            session,
            code: close_code::PROTOCOL,
            reason: format!("malformed packet: {e}"),
        });
    }

    pub(super) fn report_control(&mut self, data: &[u8], from: i32) {
        self.events.push_back(PeerEvent::ControlReceived {
            text: String::from_utf8_lossy(data).into_owned(),
            from,
        });
    }
}
