//! An in-memory network of one server [`PeerCore`] and N client cores, in the way quinn-proto
//! tests its connections: no sockets, no clock. The harness moves each core's transmits into
//! the other side's inputs and keeps every event for the tests to assert on. Delivery is
//! immediate and in order unless a test holds bytes back itself.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use fabric_core::packet_frame::TransferMode;
use fabric_core::peer_core::{Packet, PeerCore, PeerEvent, Route, SendError, SessionId, Transmit};

/// One client: its core, its session on the server, and whether that session is open.
pub struct ClientEnd {
    pub core: PeerCore,
    pub session: SessionId,
    pub open: bool,
    pub events: Vec<PeerEvent>,
    /// Close codes and reasons of this client's session, as the server closed it.
    pub closed_with: Option<(u32, String)>,
}

/// The server, its clients and simulated time.
pub struct Net {
    pub now: Instant,
    pub server: PeerCore,
    pub server_events: Vec<PeerEvent>,
    pub clients: Vec<ClientEnd>,
    /// Frames of the server's last `put_packet`, per session (cleared by each send).
    frame: Vec<u8>,
}

impl Net {
    /// A server and `n` idle client cores with peer ids `ids`.
    pub fn new(ids: &[i32]) -> Self {
        let mut server = PeerCore::new();
        server.start_server();
        let clients = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let mut core = PeerCore::new();
                core.start_client(id);
                ClientEnd {
                    core,
                    session: 100 + i as SessionId,
                    open: false,
                    events: Vec::new(),
                    closed_with: None,
                }
            })
            .collect();
        Self {
            now: Instant::now(),
            server,
            server_events: Vec::new(),
            clients,
            frame: Vec::new(),
        }
    }

    /// Client `i`'s transport opens: the server sees the session, the client sends its join;
    /// everything is delivered.
    pub fn connect(&mut self, i: usize) {
        self.open_session(i);
        self.clients[i].core.client_connected();
        self.pump();
    }

    /// Only the server sees client `i`'s session open (a client that never joins).
    pub fn open_session(&mut self, i: usize) {
        let session = self.clients[i].session;
        self.clients[i].open = true;
        self.server.session_opened(self.now, session);
        self.pump();
    }

    /// Client `i` sends raw bytes, as if its core had (a hostile or broken client).
    pub fn client_raw(&mut self, i: usize, bytes: &[u8]) {
        if self.clients[i].open {
            let session = self.clients[i].session;
            self.server.receive(session, bytes);
            self.pump();
        }
    }

    /// The server sends raw bytes to client `i`.
    pub fn server_raw(&mut self, i: usize, bytes: &[u8]) {
        if self.clients[i].open {
            self.clients[i].core.receive(0, bytes);
            self.pump();
        }
    }

    /// Client `i` closes its session (the application called `close()`, or the link broke).
    pub fn client_closes(&mut self, i: usize) {
        if self.clients[i].open {
            self.clients[i].open = false;
            self.clients[i].core.client_closed();
            let session = self.clients[i].session;
            self.server.session_closed(session);
            self.pump();
        }
    }

    /// Time passes; the server's timeouts run.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now);
        self.pump();
    }

    /// Client `i`'s `put_packet` with `mode`, `channel`, `target`.
    pub fn client_send(
        &mut self,
        i: usize,
        target: i32,
        mode: TransferMode,
        channel: u8,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let c = &mut self.clients[i];
        c.core.set_target_peer(target);
        c.core.set_transfer_mode(mode);
        c.core.set_transfer_channel(channel);
        let mut frame = std::mem::take(&mut self.frame);
        let r = match c.core.prepare_send(payload, &mut frame) {
            Ok(Route::ToServer) => Ok(()),
            Ok(Route::ToSessions(_)) => panic!("a client core routed to sessions"),
            Err(e) => Err(e),
        };
        c.core.stats_mut().sent(payload.len(), r.is_ok());
        if r.is_ok() && c.open {
            let session = c.session;
            self.server.receive(session, &frame);
        }
        self.frame = frame;
        self.pump();
        r
    }

    /// The server's `put_packet`: the sessions the frame went to, as client indices.
    pub fn server_send(
        &mut self,
        target: i32,
        mode: TransferMode,
        channel: u8,
        payload: &[u8],
    ) -> Result<Vec<usize>, SendError> {
        self.server.set_target_peer(target);
        self.server.set_transfer_mode(mode);
        self.server.set_transfer_channel(channel);
        let mut frame = std::mem::take(&mut self.frame);
        let sessions: Result<Vec<SessionId>, SendError> =
            match self.server.prepare_send(payload, &mut frame) {
                Ok(Route::ToSessions(t)) => Ok(t.collect()),
                Ok(Route::ToServer) => panic!("a server core routed to the server"),
                Err(e) => Err(e),
            };
        self.server
            .stats_mut()
            .sent(payload.len(), sessions.is_ok());
        let mut reached = Vec::new();
        if let Ok(sessions) = &sessions {
            for &s in sessions {
                let i = self.index_of(s);
                if self.clients[i].open {
                    self.clients[i].core.receive(0, &frame);
                    reached.push(i);
                }
            }
        }
        self.frame = frame;
        self.pump();
        reached.sort_unstable();
        sessions.map(|_| reached)
    }

    fn index_of(&self, session: SessionId) -> usize {
        self.clients
            .iter()
            .position(|c| c.session == session)
            .expect("a session of this net")
    }

    /// Moves transmits across and collects events until every core is quiet.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Message { session, bytes }
                    | Transmit::Datagram { session, bytes } => {
                        let i = self.index_of(session);
                        if self.clients[i].open {
                            self.clients[i].core.receive(0, &bytes);
                        }
                    }
                    Transmit::Close {
                        session,
                        code,
                        reason,
                    } => {
                        let i = self.index_of(session);
                        if self.clients[i].open {
                            self.clients[i].open = false;
                            self.clients[i].closed_with = Some((code, reason));
                            self.clients[i].core.client_closed();
                            self.server.session_closed(session);
                        }
                    }
                }
            }
            for i in 0..self.clients.len() {
                while let Some(t) = self.clients[i].core.poll_transmit() {
                    moved = true;
                    let session = self.clients[i].session;
                    match t {
                        Transmit::Message { bytes, .. } | Transmit::Datagram { bytes, .. } => {
                            if self.clients[i].open {
                                self.server.receive(session, &bytes);
                            }
                        }
                        Transmit::Close { .. } => panic!("a client core never closes a session"),
                    }
                }
                while let Some(e) = self.clients[i].core.poll_event() {
                    self.clients[i].events.push(e);
                }
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Every readable packet of client `i` (or of the server with `None`), taken in order.
    pub fn drain(&mut self, who: Option<usize>) -> Vec<Packet> {
        let core = match who {
            Some(i) => &mut self.clients[i].core,
            None => &mut self.server,
        };
        std::iter::from_fn(|| core.pop_packet()).collect()
    }

    /// The peer-connected / disconnected events of the server, in order, leaving control ones.
    pub fn server_peer_events(&self) -> Vec<PeerEvent> {
        peer_events(&self.server_events)
    }

    pub fn client_peer_events(&self, i: usize) -> Vec<PeerEvent> {
        peer_events(&self.clients[i].events)
    }
}

fn peer_events(events: &[PeerEvent]) -> Vec<PeerEvent> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                PeerEvent::PeerConnected(_) | PeerEvent::PeerDisconnected(_)
            )
        })
        .cloned()
        .collect()
}
