//! The session bookkeeping of a `MultiplayerPeer` as a sans-IO state machine: which session is
//! which peer, the join handshake and its deadline, the incoming packet queue and the sequence
//! numbers of unreliable-ordered packets, per-peer targeting and broadcast.
//!
//! [`PeerCore`] touches no socket, no clock and no Godot type. The glue
//! (`FabricMMOGTransportPeer` in `fabric-godot`) feeds it what happened — a session opened or
//! closed ([`session_opened`](PeerCore::session_opened), [`session_closed`](PeerCore::session_closed),
//! [`client_connected`](PeerCore::client_connected), [`client_closed`](PeerCore::client_closed)),
//! bytes received ([`receive`](PeerCore::receive)), local calls (`put_packet` through
//! [`prepare_send`](PeerCore::prepare_send), `set_target_peer`, `disconnect_peer`, `close`) and
//! the time ([`handle_timeout`](PeerCore::handle_timeout)) — and carries out what it asks:
//! [`poll_transmit`](PeerCore::poll_transmit) (control messages to send, sessions to close with
//! their close code) and [`poll_event`](PeerCore::poll_event) (peer connected / disconnected,
//! control messages for GDScript, bad packets to report). Godot polls the incoming queue
//! ([`front`](PeerCore::front), [`pop_packet`](PeerCore::pop_packet),
//! [`available_packets`](PeerCore::available_packets)).
//!
//! Files: [`server`] (sessions, peers, the join and its deadline), [`client`] (the client's join),
//! [`incoming`] (the queue and sequence numbers), [`stats`] (traffic counters). The protocol is in
//! `docs/session-protocol.md`; `tests/peer_core_pair.rs` wires a server core and client cores in
//! memory.

mod client;
mod incoming;
mod server;
mod stats;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::packet_frame::{PacketHeader, TransferMode};

pub use incoming::Packet;
pub use server::Targets;
pub use stats::PeerStats;

use client::ClientState;
use incoming::Incoming;
use server::ServerState;

/// A session of the server's transport (the transport's own number for it).
pub type SessionId = u64;

/// The `session` of every [`Transmit`] a client core asks for: a client has one session, to the
/// server.
pub const SERVER_SESSION: SessionId = 0;

/// The peer id of the server, on every peer.
pub const SERVER_PEER: i32 = 1;

/// Something the glue sends or closes on the core's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A control message (JSON) on the session's reliable path (its first stream).
    Message {
        /// The session ([`SERVER_SESSION`] on clients).
        session: SessionId,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// A control message as a datagram.
    Datagram {
        /// The session ([`SERVER_SESSION`] on clients).
        session: SessionId,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Close a session with an application close code (`session_control::close_code`).
    Close {
        /// The session.
        session: SessionId,
        /// The close code.
        code: u32,
        /// Why, in words (sent to the other side).
        reason: String,
    },
}

/// Something the glue reports to the game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A peer joined (servers: a client's join was accepted; clients: the server confirmed
    /// the join, as peer [`SERVER_PEER`]).
    PeerConnected(i32),
    /// A joined peer is gone.
    PeerDisconnected(i32),
    /// A valid JSON control message arrived from `from` (servers: 0 while that session has not
    /// joined; clients: [`SERVER_PEER`]).
    ControlReceived {
        /// The message as received.
        text: String,
        /// The sender's peer id.
        from: i32,
    },
    /// Clients: a packet from the server that is not valid was dropped (the server is trusted,
    /// so its session stays open).
    Dropped {
        /// Why, in words.
        reason: String,
    },
}

/// Why `put_packet` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    /// Neither a server nor a client with an open session.
    #[error("not connected")]
    NotOpen,
    /// A client whose join the server has not confirmed yet.
    #[error("not connected yet; wait for connected_to_server")]
    NotJoined,
    /// The target peer is not a joined peer of this server.
    #[error("no peer with id {0}")]
    UnknownPeer(i32),
}

/// Why `disconnect_peer` did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DisconnectError {
    /// Only a server has peers to disconnect (a client closes its session).
    #[error("disconnect_peer is for servers; use close()")]
    NotServer,
    /// No joined peer has this id.
    #[error("disconnect_peer: no peer with id {0}")]
    UnknownPeer(i32),
}

/// Where [`PeerCore::prepare_send`]'s frame goes.
#[derive(Debug)]
pub enum Route<'a> {
    /// Clients: to the server, on the one session.
    ToServer,
    /// Servers: to each of these sessions.
    ToSessions(Targets<'a>),
}

#[derive(Debug, Default)]
enum Role {
    #[default]
    Idle,
    Client(ClientState),
    Server(ServerState),
}

/// The session bookkeeping of one peer (see the module documentation).
#[derive(Debug)]
pub struct PeerCore {
    role: Role,
    unique_id: i32,
    incoming: Incoming,
    /// Newest unreliable-ordered sequence number sent, per channel.
    out_seq: [u32; 256],
    target_peer: i32,
    transfer_mode: TransferMode,
    transfer_channel: u8,
    refuse_new: bool,
    join_timeout: Option<Duration>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
    stats: PeerStats,
}

impl Default for PeerCore {
    fn default() -> Self {
        Self::new()
    }
}

/// A client's peer id from 64 random bits: in 2..=2^31-1, as `MultiplayerPeer` wants (0 and 1
/// are "everyone" and the server). The glue supplies the randomness; the core reads none.
pub fn peer_id_from_random(random: u64) -> i32 {
    ((random & 0x7fff_ffff) as i32).max(2)
}

impl PeerCore {
    /// An idle peer: reliable transfer mode, channel 0, a join deadline of 10 s.
    pub fn new() -> Self {
        Self {
            role: Role::Idle,
            unique_id: 0,
            incoming: Incoming::default(),
            out_seq: [0; 256],
            target_peer: 0,
            transfer_mode: TransferMode::Reliable,
            transfer_channel: 0,
            refuse_new: false,
            join_timeout: Some(Duration::from_secs(10)),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: PeerStats::default(),
        }
    }

    /// Becomes a client that will join as `unique_id` (see [`peer_id_from_random`]) once its
    /// transport is open ([`client_connected`](Self::client_connected)).
    pub fn start_client(&mut self, unique_id: i32) {
        self.reset();
        self.unique_id = unique_id;
        self.role = Role::Client(ClientState::Connecting);
    }

    /// Becomes a server (peer id [`SERVER_PEER`]) with no session yet.
    pub fn start_server(&mut self) {
        self.reset();
        self.unique_id = SERVER_PEER;
        self.role = Role::Server(ServerState::default());
    }

    /// `close()`: back to idle, peer id 0, queue, sequence numbers and target cleared. Nothing
    /// is transmitted: the glue closes its transport itself.
    pub fn close(&mut self) {
        self.reset();
        self.unique_id = 0;
    }

    fn reset(&mut self) {
        self.role = Role::Idle;
        self.incoming.clear();
        self.out_seq = [0; 256];
        self.target_peer = 0;
        self.transmits.clear();
        self.events.clear();
    }

    /// This peer's id: 0 before `create_*`, 1 on a server, the chosen id on a client (kept after
    /// its session ended, until [`close`](Self::close)).
    pub fn unique_id(&self) -> i32 {
        self.unique_id
    }

    /// Whether this is a server.
    pub fn is_server(&self) -> bool {
        matches!(self.role, Role::Server(_))
    }

    /// Joined peers: a server's clients, or 1 for a client the server confirmed, else 0.
    pub fn peer_count(&self) -> usize {
        match &self.role {
            Role::Server(s) => s.peer_count(),
            Role::Client(c) => usize::from(c.is_joined()),
            Role::Idle => 0,
        }
    }

    /// Servers: the session of a joined peer.
    pub fn session_of(&self, peer: i32) -> Option<SessionId> {
        match &self.role {
            Role::Server(s) => s.session_of(peer),
            _ => None,
        }
    }

    /// Servers: the peer a session joined as (`None`: unknown or not joined).
    pub fn peer_of(&self, session: SessionId) -> Option<i32> {
        match &self.role {
            Role::Server(s) => s.peer_of(session),
            _ => None,
        }
    }

    /// `set_refuse_new_connections`: sessions opened from now on are closed at once.
    pub fn set_refuse_new(&mut self, refuse: bool) {
        self.refuse_new = refuse;
    }

    /// Whether new sessions are refused.
    pub fn refuses_new(&self) -> bool {
        self.refuse_new
    }

    /// Servers: how long a session may stay open without joining (`None`: forever).
    pub fn set_join_timeout(&mut self, timeout: Option<Duration>) {
        self.join_timeout = timeout;
    }

    /// `set_target_peer`: 0 = everyone, `n` > 0 = peer `n`, `-n` = everyone but `n`.
    pub fn set_target_peer(&mut self, peer: i32) {
        self.target_peer = peer;
    }

    /// The target of the next packets.
    pub fn target_peer(&self) -> i32 {
        self.target_peer
    }

    /// `set_transfer_mode`.
    pub fn set_transfer_mode(&mut self, mode: TransferMode) {
        self.transfer_mode = mode;
    }

    /// The transfer mode of the next packets.
    pub fn transfer_mode(&self) -> TransferMode {
        self.transfer_mode
    }

    /// `set_transfer_channel`.
    pub fn set_transfer_channel(&mut self, channel: u8) {
        self.transfer_channel = channel;
    }

    /// The channel of the next packets.
    pub fn transfer_channel(&self) -> u8 {
        self.transfer_channel
    }

    /// The traffic counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// The traffic counters, for the glue to count what the transport refused
    /// ([`PeerStats::sent`]) or to reset them.
    pub fn stats_mut(&mut self) -> &mut PeerStats {
        &mut self.stats
    }

    /// Packets Godot may read now. A client's packets wait until the server confirmed the join
    /// (reliable channels are independent streams, so a packet may overtake the `joined`).
    pub fn available_packets(&self) -> usize {
        match &self.role {
            Role::Client(c) if !c.is_joined() => 0,
            _ => self.incoming.len(),
        }
    }

    /// The packet `get_packet` would return next (its sender, channel and mode).
    pub fn front(&self) -> Option<&Packet> {
        if self.available_packets() == 0 {
            return None;
        }
        self.incoming.front()
    }

    /// Every queued packet, readable or not (a client's wait for the join), oldest first.
    pub fn queued_packets(&self) -> impl Iterator<Item = &Packet> {
        self.incoming.iter()
    }

    /// `get_packet`: takes the next packet, in the order they were accepted.
    pub fn pop_packet(&mut self) -> Option<Packet> {
        if self.available_packets() == 0 {
            return None;
        }
        self.incoming.pop()
    }

    /// `put_packet`: writes the packet frame of `payload` (current target, mode and channel)
    /// into `frame` and says where it goes. The caller sends `frame` on each route and then
    /// counts the outcome with [`PeerStats::sent`] (nothing is counted here). Nothing is
    /// allocated once `frame` has grown to the largest packet.
    ///
    /// Servers: with a positive target that is not a joined peer, `Err(UnknownPeer)`.
    pub fn prepare_send(
        &mut self,
        payload: &[u8],
        frame: &mut Vec<u8>,
    ) -> Result<Route<'_>, SendError> {
        let mode = self.transfer_mode;
        let channel = self.transfer_channel;
        let target = self.target_peer;
        let peer = match &self.role {
            Role::Idle | Role::Client(ClientState::Connecting) => return Err(SendError::NotOpen),
            Role::Client(c) if !c.is_joined() => return Err(SendError::NotJoined),
            // Clients write the target, servers the source (always themselves).
            Role::Client(_) => target,
            Role::Server(s) => {
                if target > 0 && s.session_of(target).is_none() {
                    return Err(SendError::UnknownPeer(target));
                }
                SERVER_PEER
            }
        };
        let seq = if mode == TransferMode::UnreliableOrdered {
            let s = &mut self.out_seq[usize::from(channel)];
            *s = s.wrapping_add(1).max(1);
            *s
        } else {
            0
        };
        PacketHeader {
            mode,
            channel,
            peer,
            seq,
        }
        .encode_into(payload, frame);
        Ok(match &self.role {
            Role::Server(s) => Route::ToSessions(s.targets(target)),
            _ => Route::ToServer,
        })
    }

    /// The next thing to send or close, in the order the core decided them.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the game, in order.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do (servers: the
    /// earliest join deadline), or `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (&self.role, self.join_timeout) {
            (Role::Server(s), Some(t)) => s.earliest_open().map(|opened| opened + t),
            _ => None,
        }
    }

    /// The time is `now`: servers close the sessions that have not joined within the join
    /// timeout (code 1).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(timeout) = self.join_timeout else {
            return;
        };
        if let Role::Server(s) = &mut self.role {
            s.close_late_joiners(now, timeout, &mut self.transmits);
        }
    }

    /// Bytes arrived (a datagram or a reliable message): from `session` on a server, from the
    /// server on a client (`session` is then ignored). Packets are queued, control messages
    /// reported and acted on (join, joined, ping); a session that sends bytes that are not
    /// valid is closed (code 1), on a server; a client drops them.
    pub fn receive(&mut self, session: SessionId, data: &[u8]) {
        match self.role {
            Role::Server(_) => self.server_receive(session, data),
            Role::Client(_) => self.client_receive(data),
            Role::Idle => {}
        }
    }
}
