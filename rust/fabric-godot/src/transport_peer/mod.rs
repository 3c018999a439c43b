//! `FabricMMOGTransportPeer`: a `MultiplayerPeer` over WebTransport with a WebSocket fallback.
//!
//! Godot's high-level multiplayer (`SceneMultiplayer`, RPCs, spawner, synchronizer) talks to this
//! class through the `MultiplayerPeerExtension` virtuals. All networking runs on the `fabric-net`
//! runtime; [`poll`](IMultiplayerPeerExtension::poll) drains its events on the main thread, so
//! no Godot object is touched off the main thread.
//!
//! Wire: unreliable and unreliable-ordered packets are QUIC datagrams, reliable packets ride the
//! stream of their channel (one per channel, so channels never block each other); on the
//! WebSocket fallback both are binary messages. Everything carries the packet frame of
//! `fabric_core::packet_frame`.
//!
//! This class is glue. The session bookkeeping — which session is which peer, the join
//! handshake and its deadline, the incoming queue, sequence numbers, targeting — is the sans-IO
//! [`fabric_core::peer_core::PeerCore`]: `fabric-net` events go into it, and what it asks
//! (transmits, session closes, events) goes out to `fabric-net` and to Godot's signals.
//! Files: [`transport`] (which transport, which URLs: pure), [`attempt`] (the
//! WebTransport/WebSocket race), [`client_side`] and [`server_side`] (feeding each role's
//! events to the core), [`glue`] (carrying out the core's transmits and events, typed
//! signals), [`wire`] (mode conversions, the send path), [`stats`]. JSON
//! control messages (`join`/`joined`, `ping`, the zone's `welcome`) share the same paths and are
//! surfaced to GDScript through [`send_control`](FabricMMOGTransportPeer::send_control) and the
//! `control_received` signal.

mod attempt;
mod client_side;
mod glue;
mod server_side;
mod stats;
mod transport;
mod wire;

use std::time::Duration;

use attempt::{Attempt, ConnectSettings};

use fabric_core::peer_core::{PeerCore, PeerStats, Route, SendError, peer_id_from_random};
use fabric_core::session_control::ControlMessage;
use fabric_net::{
    CertHash, CertRotation, Client, CongestionControl, Server, ServerConfig, ServerIdentity,
};
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::classes::{IMultiplayerPeerExtension, MultiplayerPeerExtension};
use godot::global::Error;
use godot::prelude::*;
use godot_core::meta::RawPtr;

pub use transport::TransportChoice;
use wire::{godot_mode, random_u64, send_one, to_godot, wire_mode};

/// Largest packet accepted by `put_packet` (reliable path), in bytes.
pub const MAX_PACKET_SIZE: i32 = fabric_net::reliable::MAX_MESSAGE_LEN as i32 - 64;

#[derive(Default)]
enum Role {
    #[default]
    Idle,
    /// Opening the transport (WebTransport, the WebSocket fallback, or both raced).
    Connecting {
        attempt: Attempt,
        settings: ConnectSettings,
    },
    /// The transport is open (joined once the core says so).
    Client { client: Client },
    /// Listening; the core knows the sessions and peers.
    Server { server: Server },
}

/// A `MultiplayerPeer` over WebTransport (QUIC datagrams and streams), with certificate pinning,
/// and a WebSocket fallback for networks that block UDP.
///
/// ```gdscript
/// var peer := FabricMMOGTransportPeer.new()
/// peer.create_client("https://127.0.0.1:4433/wt", cert_hash)   # server: peer.create_server(4433)
/// multiplayer.multiplayer_peer = peer
/// ```
///
/// Transports: a server listens for WebTransport on UDP `port` (path `/wt`) and for WebSocket on
/// TCP, same port number (path `/ws`, TLS with the same certificate). A client tries
/// WebTransport first and, when it has not reached the server within `primary_timeout_msec`,
/// also tries `wss://host:port/ws`, pinned by the same hash
/// (`STATE_TRYING_PRIMARY` -> `STATE_TRYING_FALLBACK` -> `STATE_CONNECTED`); it never falls back
/// after a certificate mismatch. Set `transport` to force one. Each transport gives up when its
/// session has not opened within `connect_timeout_msec` (default 5000; `connection_error` then
/// says "no answer from URL within N s"). Reliable packets of different
/// channels never block each other (one QUIC stream per channel); unreliable-ordered packets
/// drop stale ones on both transports alike.
///
/// **Certificates:** a server presents a fresh self-signed certificate valid 14 days (the most a
/// pinned certificate may be) and replaces it every `cert_rotation_sec` (7 days by default), or
/// when `rotate_certificate()` is called, by the certificate it announced a period before
/// (`get_next_cert_hash()`). Open sessions go on; clients that pin both hashes
/// (`create_client(url, "current,next")`) keep connecting across the rotation; signal
/// `cert_rotated` gives the new pair to publish. Clients refuse an expired certificate.
///
/// **Security:** both transports are encrypted and pinned by the certificate hash. Plain,
/// unencrypted `ws://` is only used when you pass a `ws://` URL yourself, and then only towards
/// (and accepted from) loopback addresses unless `allow_insecure_websocket` is set.
///
/// Signals: `connection_state_changed(state)`, `connection_error(reason)` (why the session could
/// not open or ended), `control_received(text, peer_id)` (JSON control messages such as the
/// gateway's pong or the zone's welcome), `cert_rotated(cert_hash)` (servers), plus
/// `MultiplayerPeer`'s `peer_connected(id)` and
/// `peer_disconnected(id)`, emitted from `poll()` on the main thread.
#[derive(GodotClass)]
#[class(base = MultiplayerPeerExtension, tool)]
pub struct FabricMMOGTransportPeer {
    base: Base<MultiplayerPeerExtension>,
    role: Role,
    /// The session bookkeeping (peers, join, incoming queue, sequence numbers, target).
    core: PeerCore,
    status: ConnectionStatus,
    /// Connection state: one of the `STATE_*` constants.
    #[var(no_set, pub)]
    state: i32,
    /// The reason of the last failure or close, empty when none.
    #[var(no_set, pub)]
    last_error: GString,
    /// Which transport `create_client` / `create_server` use: `"auto"` (default: servers listen
    /// on both, clients try WebTransport then WebSocket), `"webtransport"` or `"websocket"`.
    /// Read when `create_client` / `create_server` is called. A new peer takes it from the
    /// project setting `multiplayer_fabric/transport/mode` when the project sets one.
    #[var(pub)]
    transport: GString,
    /// Allow plain, unencrypted `ws://` beyond loopback (default `false`): clients may connect
    /// to a `ws://` URL of another host, servers accept `ws://` from non-loopback clients.
    /// Anyone on the path can read and change `ws://` traffic: only enable it behind your own
    /// TLS-terminating proxy or on a trusted network. (`wss://` is always allowed.)
    #[var(pub)]
    allow_insecure_websocket: bool,
    /// How long a client in `"auto"` mode waits for WebTransport before also trying WebSocket,
    /// in milliseconds (default 3000). WebTransport keeps trying (up to `connect_timeout_msec`)
    /// beside it, and the first transport to connect wins; a WebTransport failure that says the
    /// server cannot be reached starts WebSocket at once.
    #[var(pub)]
    primary_timeout_msec: i32,
    /// Servers: seconds between certificate rotations (default 604800, 7 days; each certificate
    /// is valid 14 days, so this must be shorter); 0 = never (the certificate then expires
    /// after 14 days). Read when `create_server` is called.
    #[var(pub)]
    cert_rotation_sec: i64,
    /// How long a client waits for a transport's session to open (WebTransport: the QUIC and
    /// HTTP/3 handshakes; WebSocket: TCP, TLS and the upgrade) before that transport gives up,
    /// in milliseconds (default 5000). In `"auto"` mode each transport has its own: a server
    /// that answers neither fails after at most `primary_timeout_msec` plus this. Must be
    /// positive: zero or a negative value is refused with an error, and the old value kept.
    /// Read when `create_client` is called. A new peer takes it from the project setting
    /// `multiplayer_fabric/transport/connect_timeout_msec` when the project sets one.
    #[var(pub, set)]
    connect_timeout_msec: i32,
    /// Congestion controller of WebTransport sessions: `"bbr"` (default) or `"cubic"`. BBR keeps
    /// datagrams flowing on links with random loss, where CUBIC's window collapses (measured in
    /// docs/benchmarks.md); quinn calls its BBR experimental, so CUBIC is one setting away. Read
    /// when `create_client` / `create_server` is called; an unknown name is refused there.
    #[var(pub)]
    congestion_control: GString,
    /// Most network events (packets, opened and closed sessions) one `poll()` handles (default
    /// 4096); the rest wait for the next frame, so a flood of packets cannot stall a frame or
    /// fill memory between two frames. Values below 1 count as 1.
    #[var(pub)]
    events_per_poll: i32,
    /// Servers: a session that has not joined (sent its peer id) this many milliseconds after
    /// it opened is closed with close code 1 and the reason (default 10000); 0 = no deadline.
    /// This is the transport's own join; a zone's token admission has its own deadline.
    #[var(pub)]
    join_timeout_msec: i32,
    /// Servers: budgets in bytes, admission caps and the handshake deadline
    /// (`FabricNetLimits`: send, event and partial-message budgets, sessions in all and per
    /// address, TCP connections in TLS per address, handshake deadline). A new peer holds one
    /// with the project's values (`multiplayer_fabric/limits/<name>`, else the defaults); null
    /// means the same. Read when `create_server` is called, which refuses a value below 1.
    #[var(pub)]
    limits: Option<Gd<crate::limits::FabricNetLimits>>,
    /// The payload of the last `get_packet`, alive until the next call.
    current: Vec<u8>,
    /// The frame of the last `put_packet` (reused, so a send allocates nothing).
    scratch: Vec<u8>,
}

#[godot_api]
impl FabricMMOGTransportPeer {
    /// Not connected and not trying.
    #[constant]
    pub const STATE_IDLE: i32 = 0;
    /// Opening a WebTransport session.
    #[constant]
    pub const STATE_TRYING_PRIMARY: i32 = 1;
    /// Opening the WebSocket session: after WebTransport could not be reached, or at once when
    /// `transport` is `"websocket"`.
    #[constant]
    pub const STATE_TRYING_FALLBACK: i32 = 2;
    /// The session is open.
    #[constant]
    pub const STATE_CONNECTED: i32 = 3;
    /// The session could not be opened, or it ended with an error; see `last_error`.
    #[constant]
    pub const STATE_FAILED: i32 = 4;

    /// The connection state changed (one of the `STATE_*` constants).
    #[signal]
    fn connection_state_changed(state: i32);
    /// The session could not be opened or ended: `reason` says why in words.
    #[signal]
    fn connection_error(reason: GString);
    /// Servers: the certificate announced before is now in use (`cert_hash`) and
    /// `next_cert_hash` is announced (base64; empty when `cert_rotation_sec` is 0).
    #[signal]
    fn cert_rotated(cert_hash: GString, next_cert_hash: GString);
    /// A JSON control message arrived from `peer_id` (1 = the server, for clients).
    #[signal]
    fn control_received(text: GString, peer_id: i64);

    /// Connects to `url` (`https://host:port/wt`; a `wss://` or `ws://` URL means WebSocket
    /// only), pinning the server certificate hash `cert_hash` (base64 or hex SHA-256) on
    /// WebTransport and `wss://`. Several hashes separated by commas are all accepted: pass a
    /// server's `get_cert_hash()` and `get_next_cert_hash()` (a zone's `cert_hash` and
    /// `next_cert_hash` from the registry) to keep connecting across its next rotation. With `transport` `"auto"`, WebTransport is tried first and
    /// `wss://host:port/ws` beside it once it has not connected within `primary_timeout_msec`. Returns `ERR_ALREADY_IN_USE` when open (call `close()` first) and
    /// `ERR_INVALID_PARAMETER` for a malformed hash, an unknown `transport` or a URL that does not
    /// fit it; the outcome of the handshake comes later, from `poll()`, as
    /// `connection_state_changed` / `connection_error`.
    #[func]
    pub fn create_client(&mut self, url: GString, cert_hash: GString) -> Error {
        if !matches!(self.role, Role::Idle) {
            godot_error!("FabricMMOGTransportPeer: already in use; call close() first");
            return Error::ERR_ALREADY_IN_USE;
        }
        let pins = match CertHash::parse_list(&cert_hash.to_string()) {
            Ok(p) => p,
            Err(e) => return self.refuse(e.to_string()),
        };
        let Some(choice) = self.transport_choice() else {
            return self.refuse(format!(
                "unknown transport \"{}\": use \"auto\", \"webtransport\" or \"websocket\"",
                self.transport
            ));
        };
        let plan = match transport::plan(&url.to_string(), choice) {
            Ok(p) => p,
            Err(e) => return self.refuse(e),
        };
        let timeout = match transport::connect_timeout(self.connect_timeout_msec) {
            Ok(t) => t,
            Err(e) => return self.refuse(e),
        };
        let congestion = match self.congestion_choice() {
            Ok(c) => c,
            Err(e) => return self.refuse(e),
        };
        let settings = ConnectSettings {
            pins,
            congestion,
            allow_insecure_websocket: self.allow_insecure_websocket,
            timeout,
        };
        self.last_error = GString::new();
        self.core.start_client(peer_id_from_random(random_u64()));
        let client = settings.connect(&plan.primary);
        let first_state = if client.is_websocket() {
            Self::STATE_TRYING_FALLBACK
        } else {
            Self::STATE_TRYING_PRIMARY
        };
        let delay = Duration::from_millis(u64::try_from(self.primary_timeout_msec).unwrap_or(0));
        self.role = Role::Connecting {
            attempt: Attempt::new(client, plan.fallback, delay),
            settings,
        };
        self.status = ConnectionStatus::CONNECTING;
        self.set_state(first_state);
        Error::OK
    }

    /// Listens on `port` of `bind_address` (`"*"` = all interfaces) with a fresh self-signed
    /// certificate; read its hash with `get_cert_hash()`. With `transport` `"auto"` it listens
    /// for WebTransport on UDP and for WebSocket on TCP, same port number (port 0: a free number
    /// for both, see `get_bound_port()`). The WebSocket port speaks `wss://` (same certificate)
    /// to everyone and plain `ws://` to loopback clients only, unless
    /// `allow_insecure_websocket` is set. Returns
    /// `ERR_ALREADY_IN_USE` when open, `ERR_INVALID_PARAMETER` for a bad address or `transport`,
    /// and `ERR_CANT_CREATE` when a port cannot be bound.
    #[func]
    pub fn create_server(&mut self, port: i32, bind_address: GString) -> Error {
        if !matches!(self.role, Role::Idle) {
            godot_error!("FabricMMOGTransportPeer: already in use; call close() first");
            return Error::ERR_ALREADY_IN_USE;
        }
        let Some(addr) = crate::bind_addr(&bind_address.to_string(), port) else {
            godot_error!(
                "FabricMMOGTransportPeer: bad bind address `{bind_address}` or port {port}"
            );
            return Error::ERR_INVALID_PARAMETER;
        };
        let identity = match ServerIdentity::self_signed_local() {
            Ok(i) => i,
            Err(e) => {
                godot_error!("FabricMMOGTransportPeer: {e}");
                return Error::ERR_CANT_CREATE;
            }
        };
        let Some(choice) = self.transport_choice() else {
            return self.refuse(format!("unknown transport \"{}\"", self.transport));
        };
        let congestion = match self.congestion_choice() {
            Ok(c) => c,
            Err(e) => return self.refuse(e),
        };
        let limits = match crate::limits::server_limits(self.limits.as_ref()) {
            Ok(l) => l,
            Err(e) => return self.refuse(format!("limits: {e}")),
        };
        let mut cfg = ServerConfig::new(addr, identity);
        cfg.limits = limits;
        cfg.congestion = congestion;
        cfg.webtransport = choice.serves_webtransport();
        cfg.websocket = choice.serves_websocket();
        cfg.allow_insecure_websocket = self.allow_insecure_websocket;
        cfg.rotation = (self.cert_rotation_sec > 0).then(|| CertRotation {
            every: Duration::from_secs(self.cert_rotation_sec.unsigned_abs()),
            ..CertRotation::weekly(&ServerIdentity::LOCAL_NAMES)
        });
        match Server::start(cfg) {
            Ok(server) => {
                self.last_error = GString::new();
                self.core.start_server();
                self.role = Role::Server { server };
                self.status = ConnectionStatus::CONNECTED;
                self.set_state(Self::STATE_CONNECTED);
                Error::OK
            }
            Err(e) => {
                godot_error!("FabricMMOGTransportPeer: {e}");
                self.last_error = GString::from(&e.to_string());
                Error::ERR_CANT_CREATE
            }
        }
    }

    /// Sets `connect_timeout_msec`; a value that is not positive is refused with an error and
    /// the old value kept.
    #[func]
    pub fn set_connect_timeout_msec(&mut self, msec: i32) {
        match transport::connect_timeout(msec) {
            Ok(_) => self.connect_timeout_msec = msec,
            Err(e) => godot_error!(
                "FabricMMOGTransportPeer: {e}; keeping {} ms",
                self.connect_timeout_msec
            ),
        }
    }

    /// The server's certificate hash (base64), for clients to pin; empty on clients.
    #[func]
    pub fn get_cert_hash(&self) -> GString {
        match &self.role {
            Role::Server { server, .. } => GString::from(&server.cert_hash().to_base64()),
            _ => GString::new(),
        }
    }

    /// Servers: the hash of the certificate the next rotation installs (base64), for clients
    /// to pin beside `get_cert_hash()`; empty on clients and when `cert_rotation_sec` is 0.
    #[func]
    pub fn get_next_cert_hash(&self) -> GString {
        match &self.role {
            Role::Server { server, .. } => server
                .next_cert_hash()
                .map_or_else(GString::new, |h| GString::from(&h.to_base64())),
            _ => GString::new(),
        }
    }

    /// Servers: rotates now, as the schedule would: the announced next certificate goes into
    /// use and a fresh one is announced (without a schedule, a fresh certificate). Open sessions
    /// go on; `cert_rotated` is emitted from `poll()`. Returns `ERR_UNCONFIGURED` when not a
    /// server.
    #[func]
    pub fn rotate_certificate(&mut self) -> Error {
        let Role::Server { server, .. } = &self.role else {
            godot_error!("FabricMMOGTransportPeer.rotate_certificate: not a server");
            return Error::ERR_UNCONFIGURED;
        };
        match server.rotate_now() {
            Ok(_) => Error::OK,
            Err(e) => {
                godot_error!("FabricMMOGTransportPeer.rotate_certificate: {e}");
                Error::ERR_CANT_CREATE
            }
        }
    }

    /// The port number the server listens on, UDP and TCP alike (useful after
    /// `create_server(0)`); 0 otherwise.
    #[func]
    pub fn get_bound_port(&self) -> i32 {
        match &self.role {
            Role::Server { server, .. } => i32::from(server.local_addr().port()),
            _ => 0,
        }
    }

    /// Sends a JSON control message as a datagram to `peer_id` (clients: the server; servers:
    /// a connected peer). Control messages are unreliable: resend until answered.
    #[func]
    pub fn send_control(&mut self, text: GString, peer_id: i32) -> Error {
        let bytes = text.to_string().into_bytes();
        if !ControlMessage::is_control(&bytes) {
            godot_error!("FabricMMOGTransportPeer.send_control: the text must be a JSON object");
            return Error::ERR_INVALID_PARAMETER;
        }
        let r = match &self.role {
            Role::Client { client } => client.send_datagram(&bytes),
            Role::Server { server } => match self.core.session_of(peer_id) {
                Some(s) => server.send_datagram(s, &bytes),
                None => return Error::ERR_INVALID_PARAMETER,
            },
            Role::Idle | Role::Connecting { .. } => return Error::ERR_UNCONFIGURED,
        };
        match r {
            Ok(()) => Error::OK,
            Err(e) => {
                godot_error!("FabricMMOGTransportPeer.send_control: {e}");
                Error::ERR_CANT_CONNECT
            }
        }
    }

    /// The transport of the client's current session or attempt: `"webtransport"`,
    /// `"websocket"`, or `""` when idle or on a server (a server serves both at once).
    #[func]
    pub fn get_active_transport(&self) -> GString {
        match &self.role {
            Role::Client { client, .. } if client.is_websocket() => "websocket".into(),
            Role::Client { .. } => "webtransport".into(),
            Role::Connecting { attempt, .. } if attempt.is_websocket() => "websocket".into(),
            Role::Connecting { .. } => "webtransport".into(),
            _ => GString::new(),
        }
    }

    /// Smoothed round-trip time to the server in milliseconds (WebTransport clients), or -1.
    #[func]
    pub fn get_rtt_msec(&self) -> f64 {
        match &self.role {
            Role::Client { client, .. } => client.rtt().map_or(-1.0, |d| d.as_secs_f64() * 1e3),
            _ => -1.0,
        }
    }

    /// Servers: smoothed round-trip time to `peer_id` in milliseconds (WebTransport sessions),
    /// or -1 (unknown peer, WebSocket session, or not a server).
    #[func]
    pub fn get_peer_rtt_msec(&self, peer_id: i32) -> f64 {
        match &self.role {
            Role::Server { server } => self
                .core
                .session_of(peer_id)
                .and_then(|s| server.sender().rtt(s))
                .map_or(-1.0, |d| d.as_secs_f64() * 1e3),
            _ => -1.0,
        }
    }

    /// Traffic since creation or `reset_stats()`, as a Dictionary: `packets_sent`,
    /// `bytes_sent`, `packets_received`, `bytes_received` (payload bytes, one count per
    /// `put_packet` / `get_packet` packet), `stale_dropped` (unreliable-ordered packets older
    /// than one already received), `send_errors` (refused `put_packet` calls), `peers`
    /// (joined peers; clients: 1 once joined), `transport` (`"webtransport"`, `"websocket"` or
    /// `""`) and `rtt_msec` (clients over WebTransport, else -1). For `Performance` monitors,
    /// see the addon's `FabricMonitors` node.
    #[func]
    pub fn get_stats(&self) -> VarDictionary {
        let transport = match &self.role {
            Role::Server { .. } => GString::from("server"),
            _ => self.get_active_transport(),
        };
        stats::to_dictionary(
            self.core.stats(),
            &[
                ("peers", (self.peer_count() as i64).to_variant()),
                ("transport", transport.to_variant()),
                ("rtt_msec", self.get_rtt_msec().to_variant()),
            ],
        )
    }

    /// Sets every counter of `get_stats()` back to zero.
    #[func]
    pub fn reset_stats(&mut self) {
        *self.core.stats_mut() = PeerStats::default();
    }

    #[cfg(feature = "itest")]
    pub(crate) fn is_server_peer(&self) -> bool {
        matches!(self.role, Role::Server { .. })
    }

    /// Number of joined peers (servers) or 1/0 (clients joined or not).
    pub(crate) fn peer_count(&self) -> usize {
        self.core.peer_count()
    }

    fn congestion_choice(&self) -> Result<CongestionControl, String> {
        CongestionControl::parse(&self.congestion_control.to_string()).ok_or_else(|| {
            format!(
                "unknown congestion_control \"{}\": use \"bbr\" or \"cubic\"",
                self.congestion_control
            )
        })
    }

    fn transport_choice(&self) -> Option<TransportChoice> {
        TransportChoice::parse(&self.transport.to_string())
    }

    fn refuse(&mut self, reason: String) -> Error {
        godot_error!("FabricMMOGTransportPeer: {reason}");
        self.last_error = GString::from(&reason);
        Error::ERR_INVALID_PARAMETER
    }

    fn set_state(&mut self, state: i32) {
        if self.state != state {
            self.state = state;
            self.keep_alive();
            self.signals().connection_state_changed().emit(state);
        }
    }

    fn fail(&mut self, reason: String) {
        self.end(reason, false);
    }

    /// The session is over: `last_error`, `STATE_FAILED` and `connection_error` as for any
    /// end; logged as an error unless the server closed it in order (`orderly`).
    fn end(&mut self, reason: String, orderly: bool) {
        if orderly {
            godot_print!("FabricMMOGTransportPeer: {reason}");
        } else {
            godot_error!("FabricMMOGTransportPeer: {reason}");
        }
        self.last_error = GString::from(&reason);
        self.status = ConnectionStatus::DISCONNECTED;
        self.set_state(Self::STATE_FAILED);
        self.keep_alive();
        self.signals()
            .connection_error()
            .emit(&GString::from(&reason));
    }

    fn send_frame(&mut self, payload: &[u8]) -> Error {
        let mode = self.core.transfer_mode();
        let channel = self.core.transfer_channel();
        let mut frame = std::mem::take(&mut self.scratch);
        let result = match (self.core.prepare_send(payload, &mut frame), &self.role) {
            (Err(SendError::NotOpen), _) => Error::ERR_UNCONFIGURED,
            (Err(e @ SendError::NotJoined), _) => {
                godot_error!("FabricMMOGTransportPeer: {e}");
                Error::ERR_UNCONFIGURED
            }
            (Err(e @ SendError::UnknownPeer(_)), _) => {
                godot_error!("FabricMMOGTransportPeer: {e}");
                Error::ERR_INVALID_PARAMETER
            }
            (Ok(Route::ToServer), Role::Client { client }) => to_godot(send_one(
                mode,
                |d| client.send_datagram(d),
                |m| client.send_message_on(channel, m),
                &frame,
            )),
            (Ok(Route::ToSessions(targets)), Role::Server { server }) => {
                let tx = server.sender();
                let mut result = Error::OK;
                for session in targets {
                    let r = send_one(
                        mode,
                        |d| tx.send_datagram(session, d),
                        |m| tx.send_message_on(session, channel, m),
                        &frame,
                    );
                    match r {
                        // The session already ended on the network thread; its
                        // `peer_disconnected` comes with the next poll(). Until then
                        // SceneMultiplayer still sends to it (relay notices, sync): drop
                        // those quietly, as ENet does, instead of an error per packet.
                        Ok(()) | Err(fabric_net::NetError::NotConnected) => {}
                        Err(e) => result = to_godot(Err(e)),
                    }
                }
                result
            }
            // The core's role follows this one's; never reached.
            (Ok(_), _) => Error::ERR_UNCONFIGURED,
        };
        self.scratch = frame;
        self.core
            .stats_mut()
            .sent(payload.len(), result == Error::OK);
        result
    }
}

#[godot_api]
impl IMultiplayerPeerExtension for FabricMMOGTransportPeer {
    fn init(base: Base<MultiplayerPeerExtension>) -> Self {
        let mut peer = Self {
            base,
            role: Role::Idle,
            core: PeerCore::new(),
            status: ConnectionStatus::DISCONNECTED,
            state: Self::STATE_IDLE,
            last_error: GString::new(),
            transport: "auto".into(),
            allow_insecure_websocket: false,
            primary_timeout_msec: 3000,
            cert_rotation_sec: 7 * 24 * 3600,
            congestion_control: CongestionControl::default().name().into(),
            connect_timeout_msec: i32::try_from(
                fabric_net::client::DEFAULT_CONNECT_TIMEOUT.as_millis(),
            )
            .unwrap_or(i32::MAX),
            events_per_poll: 4096,
            join_timeout_msec: 10_000,
            limits: Some(crate::limits::FabricNetLimits::new_gd()),
            current: Vec::new(),
            scratch: Vec::new(),
        };
        apply_project_settings(&mut peer);
        peer
    }

    unsafe fn get_packet_rawptr(
        &mut self,
        r_buffer: RawPtr<*mut RawPtr<*const u8>>,
        r_buffer_size: RawPtr<*mut i32>,
    ) -> Error {
        let Some(p) = self.core.pop_packet() else {
            return Error::ERR_UNAVAILABLE;
        };
        // Godot reads the buffer before the next call; keep it alive in `current`.
        self.current = p.data;
        // SAFETY: Godot passes valid out-pointers for the duration of this call.
        unsafe {
            *r_buffer.ptr() = RawPtr::new(self.current.as_ptr());
            *r_buffer_size.ptr() = self.current.len() as i32;
        }
        Error::OK
    }

    unsafe fn put_packet_rawptr(
        &mut self,
        p_buffer: RawPtr<*const u8>,
        p_buffer_size: i32,
    ) -> Error {
        if !(0..=MAX_PACKET_SIZE).contains(&p_buffer_size) {
            godot_error!(
                "FabricMMOGTransportPeer: packet of {p_buffer_size} bytes exceeds the maximum of {MAX_PACKET_SIZE}"
            );
            return Error::ERR_INVALID_PARAMETER;
        }
        let payload = if p_buffer_size == 0 {
            &[][..]
        } else {
            // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
            unsafe { std::slice::from_raw_parts(p_buffer.ptr(), p_buffer_size as usize) }
        };
        self.send_frame(payload)
    }

    fn get_available_packet_count(&self) -> i32 {
        // A client's packets wait until the server confirmed the join (reliable channels are
        // independent streams, so a packet may overtake the `joined` message).
        i32::try_from(self.core.available_packets()).unwrap_or(i32::MAX)
    }

    fn get_max_packet_size(&self) -> i32 {
        MAX_PACKET_SIZE
    }

    fn get_packet_channel(&self) -> i32 {
        self.core.front().map_or(0, |p| i32::from(p.channel))
    }

    fn get_packet_mode(&self) -> TransferMode {
        self.core
            .front()
            .map_or(TransferMode::RELIABLE, |p| godot_mode(p.mode))
    }

    fn set_transfer_channel(&mut self, channel: i32) {
        match u8::try_from(channel) {
            Ok(c) => self.core.set_transfer_channel(c),
            Err(_) => godot_error!("FabricMMOGTransportPeer: channel {channel} is not in 0..=255"),
        }
    }

    fn get_transfer_channel(&self) -> i32 {
        i32::from(self.core.transfer_channel())
    }

    fn set_transfer_mode(&mut self, mode: TransferMode) {
        self.core.set_transfer_mode(wire_mode(mode));
    }

    fn get_transfer_mode(&self) -> TransferMode {
        godot_mode(self.core.transfer_mode())
    }

    fn set_target_peer(&mut self, peer: i32) {
        self.core.set_target_peer(peer);
    }

    fn get_packet_peer(&self) -> i32 {
        self.core.front().map_or(0, |p| p.from)
    }

    fn is_server(&self) -> bool {
        matches!(self.role, Role::Server { .. })
    }

    fn poll(&mut self) {
        crate::log_bridge::drain_to_godot();
        match self.role {
            Role::Idle => {}
            Role::Connecting { .. } => {
                self.poll_connecting();
                self.poll_client();
            }
            Role::Client { .. } => self.poll_client(),
            Role::Server { .. } => self.poll_server(),
        }
    }

    fn close(&mut self) {
        match std::mem::take(&mut self.role) {
            Role::Client { client } => client.close("closed by the application"),
            Role::Connecting { mut attempt, .. } => attempt.close("closed by the application"),
            Role::Server { server } => server.shutdown("server closed by the application"),
            Role::Idle => {}
        }
        self.last_error = GString::new();
        self.core.close();
        self.status = ConnectionStatus::DISCONNECTED;
        self.set_state(Self::STATE_IDLE);
    }

    fn disconnect_peer(&mut self, peer: i32, force: bool) {
        // Servers only (a client's only peer is the server: use close()). Without `force`,
        // `peer_disconnected` follows from `poll()` once the session is closed; with `force`
        // the peer is forgotten at once and no signal follows (see `PeerCore::disconnect_peer`).
        match self.core.disconnect_peer(peer, force) {
            Ok(()) => self.flush_core(),
            Err(e) => godot_error!("FabricMMOGTransportPeer: {e}"),
        }
    }

    fn get_unique_id(&self) -> i32 {
        self.core.unique_id()
    }

    fn set_refuse_new_connections(&mut self, enable: bool) {
        self.core.set_refuse_new(enable);
    }

    fn is_refusing_new_connections(&self) -> bool {
        self.core.refuses_new()
    }

    fn is_server_relay_supported(&self) -> bool {
        true
    }

    fn get_connection_status(&self) -> ConnectionStatus {
        self.status
    }
}

/// The project's defaults for a new peer: `multiplayer_fabric/transport/mode` (`transport`) and
/// `multiplayer_fabric/transport/connect_timeout_msec`, when the project sets them (the editor
/// plugin registers both). A value the peer would refuse is reported and left out.
fn apply_project_settings(peer: &mut FabricMMOGTransportPeer) {
    let ps = godot::classes::ProjectSettings::singleton();
    let mode_key = "multiplayer_fabric/transport/mode";
    if ps.has_setting(mode_key) {
        let mode = ps.get_setting(mode_key).to_string();
        match TransportChoice::parse(&mode) {
            Some(_) => peer.transport = GString::from(&mode),
            None => godot_error!(
                "FabricMMOGTransportPeer: project setting {mode_key} \"{mode}\" is not \"auto\", \"webtransport\" or \"websocket\""
            ),
        }
    }
    let timeout_key = "multiplayer_fabric/transport/connect_timeout_msec";
    if ps.has_setting(timeout_key) {
        match ps.get_setting(timeout_key).try_to::<i32>() {
            Ok(msec) if transport::connect_timeout(msec).is_ok() => {
                peer.connect_timeout_msec = msec
            }
            _ => godot_error!(
                "FabricMMOGTransportPeer: project setting {timeout_key} must be a positive number of milliseconds"
            ),
        }
    }
}
