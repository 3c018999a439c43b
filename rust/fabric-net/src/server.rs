//! A WebTransport server whose sessions are reported as events.
//!
//! [`Server::start`] binds the UDP socket before returning (so a busy port is an immediate,
//! clear error) and accepts sessions on the background runtime. Each session gets a
//! [`SessionId`]; datagrams and reliable messages arrive as [`ServerEvent`]s that the owner drains
//! without blocking ([`Server::try_next_event`]) or awaits ([`Server::next_event`]). Sending goes
//! straight to the QUIC connection from any thread through a [`ServerSender`].
//!
//! One broken or hostile session only ever ends itself: its errors close that connection and
//! are reported as its `Closed` event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, Endpoint, VarInt};

use crate::NetError;
use crate::cert::{CertHash, ServerIdentity};
use crate::reliable::{self, MAX_MESSAGE_LEN, StreamError};

/// A server's number for one of its sessions (1, 2, 3, ... in accept order).
pub type SessionId = u64;

/// First bytes a client writes on its reliable stream: magic and version 1.
pub const STREAM_PREAMBLE: [u8; 4] = *b"FBR1";

/// Application close codes sent to peers (defined by the session protocol in `fabric-core`).
pub use fabric_core::session_control::close_code;

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
    /// Sessions above this count are refused.
    pub max_sessions: usize,
}

impl ServerConfig {
    /// Defaults: 10 s idle timeout, 2 s keep-alive, 4096 sessions.
    pub fn new(bind: SocketAddr, identity: ServerIdentity) -> Self {
        Self {
            bind,
            identity,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            max_sessions: 4096,
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
        /// The client's UDP address.
        remote: SocketAddr,
        /// The path of the WebTransport request (e.g. `/wt`).
        path: String,
    },
    /// A datagram arrived.
    Datagram {
        /// The session.
        session: SessionId,
        /// Its bytes.
        data: Bytes,
    },
    /// A reliable message arrived (in order).
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
        /// Why, in words.
        reason: String,
    },
}

struct Entry {
    conn: Connection,
    reliable: UnboundedSender<Vec<u8>>,
}

struct Shared {
    sessions: Mutex<HashMap<SessionId, Entry>>,
    events: UnboundedSender<ServerEvent>,
}

impl Shared {
    fn emit(&self, ev: ServerEvent) {
        // The receiver is gone only while the server shuts down.
        let _ = self.events.send(ev);
    }
}

/// A handle that sends to a server's sessions from any thread or task.
#[derive(Clone)]
pub struct ServerSender {
    shared: Arc<Shared>,
}

impl ServerSender {
    fn with_conn<T>(
        &self,
        session: SessionId,
        f: impl FnOnce(&Entry) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let sessions = self.shared.sessions.lock().expect("session map lock");
        let entry = sessions.get(&session).ok_or(NetError::NotConnected)?;
        f(entry)
    }

    /// Sends one datagram. Too large for the path: an error, never a silent drop.
    pub fn send_datagram(&self, session: SessionId, data: &[u8]) -> Result<(), NetError> {
        self.with_conn(session, |e| {
            send_datagram(&e.conn, Bytes::copy_from_slice(data))
        })
    }

    /// Queues one reliable message (delivered in order).
    pub fn send_message(&self, session: SessionId, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(data.len()));
        }
        self.with_conn(session, |e| {
            e.reliable.send(data).map_err(|_| NetError::NotConnected)
        })
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
            e.conn.close(VarInt::from_u32(code), reason.as_bytes());
        }
    }

    /// Largest datagram the session's path takes now.
    pub fn max_datagram_size(&self, session: SessionId) -> Option<usize> {
        self.with_conn(session, |e| Ok(e.conn.max_datagram_size()))
            .ok()
            .flatten()
    }

    /// Smoothed round-trip time of a session.
    pub fn rtt(&self, session: SessionId) -> Option<Duration> {
        self.with_conn(session, |e| Ok(e.conn.rtt())).ok()
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.lock().expect("session map lock").len()
    }
}

pub(crate) fn send_datagram(conn: &Connection, data: Bytes) -> Result<(), NetError> {
    let size = data.len();
    conn.send_datagram(data).map_err(|e| match e {
        wtransport::error::SendDatagramError::TooLarge => NetError::DatagramTooLarge {
            size,
            limit: conn.max_datagram_size().unwrap_or(0),
        },
        wtransport::error::SendDatagramError::NotConnected => NetError::NotConnected,
        wtransport::error::SendDatagramError::UnsupportedByPeer => {
            NetError::Closed("peer does not accept datagrams".into())
        }
    })
}

/// A listening WebTransport server.
pub struct Server {
    sender: ServerSender,
    events: UnboundedReceiver<ServerEvent>,
    endpoint: Arc<Endpoint<wtransport::endpoint::endpoint_side::Server>>,
    accept_task: JoinHandle<()>,
    local_addr: SocketAddr,
    hash: CertHash,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({}, {})", self.local_addr, self.hash)
    }
}

impl Server {
    /// Binds and starts accepting. Works from plain threads (it uses [`crate::runtime_handle`]) and from
    /// inside a tokio runtime (it uses that one).
    pub fn start(cfg: ServerConfig) -> Result<Self, NetError> {
        let handle = crate::current_or_shared();
        let _guard = handle.enter();
        let hash = cfg.identity.hash();
        let wt_cfg = wtransport::ServerConfig::builder()
            .with_bind_address(cfg.bind)
            .with_identity(cfg.identity.identity)
            .keep_alive_interval(Some(cfg.keep_alive))
            .max_idle_timeout(Some(cfg.idle_timeout))
            .map_err(|e| NetError::Identity(format!("bad idle timeout: {e}")))?
            .build();
        let endpoint = Endpoint::server(wt_cfg).map_err(|e| NetError::Bind {
            addr: cfg.bind.to_string(),
            reason: e.to_string(),
        })?;
        let endpoint = Arc::new(endpoint);
        let local_addr = endpoint.local_addr().map_err(|e| NetError::Bind {
            addr: cfg.bind.to_string(),
            reason: e.to_string(),
        })?;
        let (tx, events) = unbounded_channel();
        let shared = Arc::new(Shared {
            sessions: Mutex::new(HashMap::new()),
            events: tx,
        });
        let accept_task = handle.spawn(accept_loop(
            endpoint.clone(),
            shared.clone(),
            cfg.max_sessions,
        ));
        Ok(Self {
            sender: ServerSender { shared },
            events,
            endpoint,
            accept_task,
            local_addr,
            hash,
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hash of the certificate this server presents.
    pub fn cert_hash(&self) -> CertHash {
        self.hash
    }

    /// A cloneable handle for sending.
    pub fn sender(&self) -> ServerSender {
        self.sender.clone()
    }

    /// The next event, if one is waiting (never blocks).
    pub fn try_next_event(&mut self) -> Option<ServerEvent> {
        self.events.try_recv().ok()
    }

    /// Waits for the next event.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        self.events.recv().await
    }

    /// Sends one datagram (see [`ServerSender::send_datagram`]).
    pub fn send_datagram(&self, session: SessionId, data: &[u8]) -> Result<(), NetError> {
        self.sender.send_datagram(session, data)
    }

    /// Closes every session and the socket.
    pub fn shutdown(&self, reason: &str) {
        self.accept_task.abort();
        self.endpoint
            .close(VarInt::from_u32(close_code::NORMAL), reason.as_bytes());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown("server shutting down");
    }
}

async fn accept_loop(
    endpoint: Arc<Endpoint<wtransport::endpoint::endpoint_side::Server>>,
    shared: Arc<Shared>,
    max_sessions: usize,
) {
    let next = AtomicU64::new(1);
    loop {
        let incoming = endpoint.accept().await;
        if shared.sessions.lock().expect("session map lock").len() >= max_sessions {
            warn!(remote = %incoming.remote_address(), "refusing a session: server full");
            incoming.refuse();
            continue;
        }
        let id = next.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("session", id, remote = %incoming.remote_address());
        tokio::spawn(run_session(shared.clone(), id, incoming).instrument(span));
    }
}

async fn run_session(shared: Arc<Shared>, id: SessionId, incoming: IncomingSession) {
    let request = match tokio::time::timeout(Duration::from_secs(10), incoming).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!("handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!("handshake timed out");
            return;
        }
    };
    let path = request.path().to_owned();
    let remote = request.remote_address();
    let conn = match request.accept().await {
        Ok(c) => c,
        Err(e) => {
            debug!("session request failed: {e}");
            return;
        }
    };
    let (rel_tx, rel_rx) = unbounded_channel();
    shared.sessions.lock().expect("session map lock").insert(
        id,
        Entry {
            conn: conn.clone(),
            reliable: rel_tx,
        },
    );
    debug!(%path, "session opened");
    shared.emit(ServerEvent::Opened {
        session: id,
        remote,
        path,
    });

    let datagrams = tokio::spawn({
        let (conn, shared) = (conn.clone(), shared.clone());
        async move {
            while let Ok(d) = conn.receive_datagram().await {
                shared.emit(ServerEvent::Datagram {
                    session: id,
                    data: d.payload(),
                });
            }
        }
        .in_current_span()
    });
    let stream = tokio::spawn(
        serve_reliable_stream(conn.clone(), shared.clone(), id, rel_rx).in_current_span(),
    );

    let err = conn.closed().await;
    datagrams.abort();
    stream.abort();
    shared
        .sessions
        .lock()
        .expect("session map lock")
        .remove(&id);
    let reason = crate::client::describe_close(&err);
    debug!(%reason, "session closed");
    shared.emit(ServerEvent::Closed {
        session: id,
        reason,
    });
}

async fn serve_reliable_stream(
    conn: Connection,
    shared: Arc<Shared>,
    id: SessionId,
    mut outgoing: UnboundedReceiver<Vec<u8>>,
) {
    let Ok((mut send, mut recv)) = conn.accept_bi().await else {
        return;
    };
    let mut preamble = [0u8; 4];
    let ok = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_exact(&mut recv, &mut preamble),
    )
    .await;
    if !matches!(ok, Ok(Ok(_))) || preamble != STREAM_PREAMBLE {
        warn!("bad reliable stream preamble {preamble:?}: closing the session");
        conn.close(
            VarInt::from_u32(close_code::PROTOCOL),
            b"bad reliable stream preamble (expected FBR1)",
        );
        return;
    }
    tokio::spawn(
        async move {
            while let Some(m) = outgoing.recv().await {
                if reliable::write_message(&mut send, &m).await.is_err() {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    loop {
        match reliable::read_message(&mut recv).await {
            Ok(Some(data)) => shared.emit(ServerEvent::Message { session: id, data }),
            Ok(None) => break,
            Err(StreamError::TooLong(n)) => {
                warn!(n, "oversize reliable message: closing the session");
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL),
                    format!("reliable message of {n} bytes exceeds the limit").as_bytes(),
                );
                break;
            }
            Err(StreamError::Io(_)) => break,
        }
    }
}
