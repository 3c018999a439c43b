//! A WebTransport server (and optionally its WebSocket fallback) whose sessions are reported as
//! events.
//!
//! [`Server::start`] binds the UDP socket (and, with [`ServerConfig::websocket`], a TCP socket on
//! the same port number for `ws://host:port/ws`) before returning, so a busy port is an
//! immediate, clear error, and accepts sessions on the background runtime. Sessions of both
//! transports share one numbering and one event queue: the owner does not care which is which. Each session gets a
//! [`SessionId`]; datagrams and reliable messages arrive as [`ServerEvent`]s that the owner drains
//! without blocking ([`Server::try_next_event`]) or awaits ([`Server::next_event`]). Sending goes
//! straight to the QUIC connection from any thread through a [`ServerSender`].
//!
//! One broken or hostile session only ever ends itself: its errors close that connection and
//! are reported as its `Closed` event.
//!
//! The certificate can be replaced while the server runs ([`Server::rotate_identity`], or on a
//! schedule with [`ServerConfig::rotation`], which also announces the next certificate's hash a
//! period ahead): new handshakes of both transports get the new one, open sessions go on, and
//! the owner is told the new hashes ([`ServerEvent::CertRotated`]).
//!
//! Limits (all [`ServerConfig`] settings): a session slot is reserved before the handshake
//! ([`crate::admission`]); every queue is bounded in bytes ([`crate::budget`]): the send queue
//! of each reliable channel and of a WebSocket link ([`ServerLimits::send_budget`], beyond it the
//! session is closed with [`SLOW_READER`]), the events a session waits to hand over
//! ([`ServerLimits::session_event_budget`]: datagrams beyond it are dropped, reliable streams
//! stop being read) and the bytes of reliable messages still arriving
//! ([`ServerLimits::partial_message_budget`]).
//!
//! By job: this file holds the configuration, the events, the session table and sending;
//! `bind` binds the sockets, `accept_wt` and `accept_ws` accept sessions of each transport,
//! `rotate` replaces the certificate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{Instrument, info_span};
use wtransport::{Endpoint, VarInt};

use crate::NetError;
use crate::admission::{Admission, Slot};
pub use crate::budget::SLOW_READER;
use crate::budget::{Charge, ReadLimits};
use crate::cert::{CertHash, ServerIdentity};
use crate::close::CloseReason;
use crate::congestion::CongestionControl;
pub use crate::limits::ServerLimits;
use crate::link::Link;
use crate::rotation::CertRotation;
use crate::ws::Incoming;

mod accept_ws;
mod accept_wt;
mod bind;
mod rotate;

/// A server's number for one of its sessions (1, 2, 3, ... in accept order).
pub type SessionId = u64;

/// Path of WebSocket fallback sessions.
pub const WS_PATH: &str = "/ws";

/// Application close codes sent to peers (defined by the session protocol in `fabric-core`).
pub use crate::close::close_code;

/// How a server listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP address to bind (use port 0 for any free port).
    pub bind: SocketAddr,
    /// Certificate and key to present.
    pub identity: ServerIdentity,
    /// A session with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval, well under `idle_timeout`.
    pub keep_alive: Duration,
    /// Listen for WebTransport on UDP (default `true`).
    pub webtransport: bool,
    /// Also listen for the WebSocket fallback on TCP, same port number, path [`WS_PATH`]
    /// (default `false`). One port serves `wss://` (TLS with this server's certificate, which
    /// clients pin by the same hash) and plain `ws://` (loopback clients only, see
    /// [`Self::allow_insecure_websocket`]).
    pub websocket: bool,
    /// Accept unencrypted `ws://` from non-loopback clients (default `false`: they are answered
    /// `403` and dropped; `wss://` is always accepted).
    pub allow_insecure_websocket: bool,
    /// Replace the certificate on this schedule with the next one, announced a period ahead
    /// ([`Server::next_cert_hash`]) (default `None`: keep `identity` until
    /// [`Server::rotate_identity`] is called).
    pub rotation: Option<CertRotation>,
    /// Congestion controller of WebTransport sessions (default BBR, see [`crate::congestion`]).
    pub congestion: CongestionControl,
    /// Budgets in bytes, admission caps and the handshake deadline (default
    /// [`ServerLimits::DEFAULT`]; each one is described in [`crate::limits`]).
    pub limits: ServerLimits,
}

pub use crate::limits::{DEFAULT_EVENT_BUDGET, DEFAULT_PARTIAL_BUDGET, DEFAULT_SEND_BUDGET};

impl ServerConfig {
    /// Defaults: WebTransport only, 10 s idle timeout, 2 s keep-alive, the default limits
    /// (4096 sessions, 128 per address, the budgets above).
    pub fn new(bind: SocketAddr, identity: ServerIdentity) -> Self {
        Self {
            bind,
            identity,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            webtransport: true,
            websocket: false,
            allow_insecure_websocket: false,
            rotation: None,
            congestion: CongestionControl::default(),
            limits: ServerLimits::DEFAULT,
        }
    }
}

/// Something that happened on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A session completed its handshake.
    Opened {
        /// The session.
        session: SessionId,
        /// The client's address (UDP for WebTransport, TCP for WebSocket).
        remote: SocketAddr,
        /// The path of the request: e.g. `/wt` for WebTransport, always [`WS_PATH`] for WebSocket.
        path: String,
    },
    /// A datagram arrived.
    Datagram {
        /// The session.
        session: SessionId,
        /// Its bytes.
        data: Bytes,
    },
    /// A reliable message arrived (in order within its channel).
    Message {
        /// The session.
        session: SessionId,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A session ended; no more events will name it.
    Closed {
        /// The session.
        session: SessionId,
        /// Why (its close code and cause; `Display` gives it in words).
        reason: CloseReason,
    },
    /// The server now presents another certificate (rotation): new clients must pin `hash`
    /// (and `next`, to keep connecting across the following rotation).
    CertRotated {
        /// Hash of the new certificate.
        hash: CertHash,
        /// Hash of the certificate that will follow it (scheduled rotation only).
        next: Option<CertHash>,
        /// When the new certificate expires.
        not_after: SystemTime,
    },
}

struct Entry {
    link: Link,
    /// The session's admission slot, given back when the entry goes.
    _slot: Slot,
}

/// An event and the bytes it holds in its session's event budget (given back when the owner
/// takes it).
type Metered = (ServerEvent, Option<Charge>);

struct Shared {
    sessions: Mutex<HashMap<SessionId, Entry>>,
    events: UnboundedSender<Metered>,
    next_id: AtomicU64,
    admission: Arc<Admission>,
    send_budget: usize,
    event_budget: usize,
    partial_budget: usize,
    handshake_timeout: Duration,
    /// Datagrams dropped because their session's event budget was full.
    dropped_datagrams: Arc<AtomicU64>,
    /// TLS of `wss://` (with the WebSocket fallback only); replaced on rotation.
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    /// Hash of the certificate presented to new handshakes.
    hash: Mutex<CertHash>,
    /// The certificate the next scheduled rotation installs (announced by its hash).
    next: Mutex<Option<ServerIdentity>>,
    rotation: Option<CertRotation>,
    allow_insecure_websocket: bool,
    keep_alive: Duration,
    idle_timeout: Duration,
    bind: SocketAddr,
    congestion: CongestionControl,
}

impl Shared {
    fn emit(&self, ev: ServerEvent) {
        // The receiver is gone only while the server shuts down.
        let _ = self.events.send((ev, None));
    }

    fn emit_charged(&self, ev: ServerEvent, charge: Charge) {
        let _ = self.events.send((ev, Some(charge)));
    }

    /// The read budgets of a new session.
    fn read_limits(&self) -> ReadLimits {
        ReadLimits::new(
            self.partial_budget,
            self.event_budget,
            self.dropped_datagrams.clone(),
        )
    }

    /// What session `id`'s datagrams and messages become (either transport).
    fn deliver_for(
        self: &Arc<Self>,
        session: SessionId,
    ) -> impl Fn(Incoming, Charge) + Clone + Send + Sync + 'static {
        let shared = self.clone();
        move |m, charge| {
            let ev = match m {
                Incoming::Datagram(data) => ServerEvent::Datagram { session, data },
                Incoming::Message(data) => ServerEvent::Message { session, data },
            };
            shared.emit_charged(ev, charge);
        }
    }
}

/// A handle that sends to a server's sessions from any thread or task.
#[derive(Clone)]
pub struct ServerSender {
    shared: Arc<Shared>,
}

impl ServerSender {
    fn with_link<T>(
        &self,
        session: SessionId,
        f: impl FnOnce(&Link) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let sessions = self.shared.sessions.lock().expect("session map lock");
        let entry = sessions.get(&session).ok_or(NetError::NotConnected)?;
        f(&entry.link)
    }

    /// Sends one datagram. Too large for the path: an error, never a silent drop.
    pub fn send_datagram(&self, session: SessionId, data: &[u8]) -> Result<(), NetError> {
        self.with_link(session, |l| l.send_datagram(data))
    }

    /// Queues one reliable message on channel 0 (see [`Self::send_message_on`]).
    pub fn send_message(&self, session: SessionId, data: Vec<u8>) -> Result<(), NetError> {
        self.send_message_on(session, 0, data)
    }

    /// Queues one reliable message on `channel`: delivered once, in order with the other
    /// messages of that channel, never held back by another channel (WebTransport: one stream
    /// per channel; WebSocket: one ordered connection).
    pub fn send_message_on(
        &self,
        session: SessionId,
        channel: u8,
        data: Vec<u8>,
    ) -> Result<(), NetError> {
        self.with_link(session, |l| l.send_message(channel, data))
    }

    /// Closes one session with an application code and a reason the client will see.
    pub fn close_session(&self, session: SessionId, code: u32, reason: &str) {
        if let Some(e) = self
            .shared
            .sessions
            .lock()
            .expect("session map lock")
            .get(&session)
        {
            e.link.close(code, reason);
        }
    }

    /// Largest datagram the session's path takes now.
    pub fn max_datagram_size(&self, session: SessionId) -> Option<usize> {
        self.with_link(session, |l| Ok(l.max_datagram_size()))
            .ok()
            .flatten()
    }

    /// Smoothed round-trip time of a session (WebTransport sessions only).
    pub fn rtt(&self, session: SessionId) -> Option<Duration> {
        self.with_link(session, |l| Ok(l.rtt())).ok().flatten()
    }

    /// Whether `session` is a WebSocket fallback session (`None`: no such session).
    pub fn is_websocket(&self, session: SessionId) -> Option<bool> {
        self.with_link(session, |l| Ok(l.is_websocket())).ok()
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.lock().expect("session map lock").len()
    }

    /// Sessions admitted now, handshakes in progress included (what [`ServerLimits::max_sessions`]
    /// and [`ServerLimits::max_sessions_per_address`] limit).
    pub fn admitted_count(&self) -> usize {
        self.shared.admission.sessions()
    }

    /// The bytes one session holds in the server's queues now (`None`: no such session).
    pub fn buffered(&self, session: SessionId) -> Option<Buffered> {
        let sessions = self.shared.sessions.lock().expect("session map lock");
        let link = &sessions.get(&session)?.link;
        Some(Buffered {
            send: link.queued_bytes(),
            events: link.limits().events.used(),
            partial: link.limits().partial.used(),
        })
    }

    /// Datagrams dropped so far because their session's event budget was full (WebTransport
    /// and WebSocket sessions together).
    pub fn dropped_datagrams(&self) -> u64 {
        self.shared.dropped_datagrams.load(Ordering::Relaxed)
    }
}

/// Bytes one session holds in a server's queues, from the server's own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered {
    /// Waiting to be sent (all reliable channels, or the WebSocket link).
    pub send: usize,
    /// Received and waiting for the owner.
    pub events: usize,
    /// Of reliable messages still arriving.
    pub partial: usize,
}

type WtEndpoint = Endpoint<wtransport::endpoint::endpoint_side::Server>;

/// A listening server: WebTransport, WebSocket fallback, or both on one port number.
pub struct Server {
    sender: ServerSender,
    events: UnboundedReceiver<Metered>,
    endpoint: Option<Arc<WtEndpoint>>,
    tasks: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({}, {})", self.local_addr, self.cert_hash())
    }
}

impl Server {
    /// Binds and starts accepting. Works from plain threads (it uses [`crate::runtime_handle`]) and from
    /// inside a tokio runtime (it uses that one).
    pub fn start(cfg: ServerConfig) -> Result<Self, NetError> {
        let handle = crate::current_or_shared();
        let _guard = handle.enter();
        if !cfg.webtransport && !cfg.websocket {
            return Err(NetError::NoTransport(cfg.bind.to_string()));
        }
        let tls = if cfg.websocket {
            Some(crate::tls::server_config(&cfg.identity)?)
        } else {
            None
        };
        let next = match &cfg.rotation {
            Some(r) => {
                r.validate()?;
                Some(rotate::fresh_identity(r)?)
            }
            None => None,
        };
        let hash = cfg.identity.hash();
        let (endpoint, listener, port) = bind::bind_sockets(&cfg)?;
        let local_addr = SocketAddr::new(cfg.bind.ip(), port);
        let (tx, events) = unbounded_channel();
        let shared = Arc::new(Shared {
            sessions: Mutex::new(HashMap::new()),
            events: tx,
            next_id: AtomicU64::new(1),
            admission: Admission::new(
                cfg.limits.max_sessions,
                cfg.limits.max_sessions_per_address,
                cfg.limits.max_pending_per_address,
            ),
            send_budget: cfg.limits.send_budget,
            event_budget: cfg.limits.session_event_budget,
            partial_budget: cfg.limits.partial_message_budget,
            handshake_timeout: cfg.limits.handshake_timeout(),
            dropped_datagrams: Arc::default(),
            tls: RwLock::new(tls),
            hash: Mutex::new(hash),
            next: Mutex::new(next),
            rotation: cfg.rotation.clone(),
            allow_insecure_websocket: cfg.allow_insecure_websocket,
            keep_alive: cfg.keep_alive,
            idle_timeout: cfg.idle_timeout,
            bind: cfg.bind,
            congestion: cfg.congestion,
        });
        let mut tasks = Vec::new();
        let endpoint = endpoint.map(Arc::new);
        if let Some(e) = &endpoint {
            tasks.push(handle.spawn(accept_wt::accept_loop(e.clone(), shared.clone())));
        }
        if let Some(l) = listener {
            let bind_err = |e: std::io::Error| NetError::bind(format_args!("TCP {local_addr}"), e);
            l.set_nonblocking(true).map_err(bind_err)?;
            let l = tokio::net::TcpListener::from_std(l).map_err(bind_err)?;
            tasks.push(handle.spawn(accept_ws::ws_accept_loop(l, shared.clone())));
        }
        if let Some(rotation) = cfg.rotation.clone() {
            // The caller's certificate may run out before the first scheduled rotation.
            let not_after = cfg
                .identity
                .validity()
                .map(|v| v.not_after)
                .unwrap_or_else(|_| SystemTime::now());
            let span = info_span!("cert_rotation", addr = %local_addr);
            tasks.push(
                handle.spawn(
                    rotate::rotation_loop(endpoint.clone(), shared.clone(), rotation, not_after)
                        .instrument(span),
                ),
            );
        }
        Ok(Self {
            sender: ServerSender { shared },
            events,
            endpoint,
            tasks,
            local_addr,
        })
    }

    /// Presents `identity` to every new handshake from now on (WebTransport and `wss://`);
    /// open sessions keep going. Emits [`ServerEvent::CertRotated`] and returns the new hash.
    /// Nothing changes when the new identity cannot be applied. (The announced next
    /// certificate stays announced: clients that pinned it are caught out by this call; see
    /// [`Self::rotate_now`].)
    pub fn rotate_identity(&self, identity: ServerIdentity) -> Result<CertHash, NetError> {
        rotate::apply_identity(self.endpoint.as_deref(), &self.sender.shared, &identity)
    }

    /// Rotates now as the schedule would: installs the announced next certificate and
    /// announces a fresh one (without a schedule: installs a fresh local 14-day certificate).
    pub fn rotate_now(&self) -> Result<CertHash, NetError> {
        rotate::rotate_to_next(self.endpoint.as_deref(), &self.sender.shared).map(|v| v.0)
    }

    /// Hash of the certificate the next scheduled rotation installs (`None` without a
    /// schedule). Clients pinning it beside [`Self::cert_hash`] keep connecting across it.
    pub fn next_cert_hash(&self) -> Option<CertHash> {
        self.sender
            .shared
            .next
            .lock()
            .expect("next lock")
            .as_ref()
            .map(ServerIdentity::hash)
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hash of the certificate this server presents to new handshakes now.
    pub fn cert_hash(&self) -> CertHash {
        *self.sender.shared.hash.lock().expect("hash lock")
    }

    /// A cloneable handle for sending.
    pub fn sender(&self) -> ServerSender {
        self.sender.clone()
    }

    /// The next event, if one is waiting (never blocks). Taking it gives its bytes back to
    /// its session's event budget.
    pub fn try_next_event(&mut self) -> Option<ServerEvent> {
        self.events.try_recv().ok().map(|(ev, _charge)| ev)
    }

    /// Waits for the next event.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        self.events.recv().await.map(|(ev, _charge)| ev)
    }

    /// Sends one datagram (see [`ServerSender::send_datagram`]).
    pub fn send_datagram(&self, session: SessionId, data: &[u8]) -> Result<(), NetError> {
        self.sender.send_datagram(session, data)
    }

    /// Closes every session and the sockets.
    pub fn shutdown(&self, reason: &str) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(e) = &self.endpoint {
            e.close(VarInt::from_u32(close_code::NORMAL), reason.as_bytes());
        }
        for e in self
            .sender
            .shared
            .sessions
            .lock()
            .expect("session map lock")
            .values()
        {
            // WebTransport sessions went with the endpoint.
            if e.link.is_websocket() {
                e.link.close(close_code::NORMAL, reason);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown("server shutting down");
    }
}
