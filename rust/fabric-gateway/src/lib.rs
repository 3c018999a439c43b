//! The gateway: a WebTransport server that clients reach first.
//!
//! It answers `{"action":"ping",...}` control datagrams itself and bridges everything else of
//! each client session to its own upstream session with a zone, so several sessions at once each
//! get their own replies. When the zone cannot be reached, the client gets an `error` control
//! datagram and its session is closed with the reason (code
//! [`fabric_net::server::close_code::UPSTREAM`]); other sessions are not affected.
//!
//! What a client sends waits for its zone session in a queue bounded in bytes
//! ([`GatewayConfig::session_budget`]), before the zone session opens and after: a datagram
//! that does not fit is dropped (datagrams may be lost), a reliable message that does not fit
//! closes the client session with [`fabric_net::server::close_code::UPSTREAM`] and a reason
//! saying so; a reliable message is never dropped silently.
//!
//! When the zone hands the client's avatar to another zone and says `avatar_moved`, the bridge
//! follows it ([`follow`]): it opens a session to the new zone, claims the avatar there with the
//! ticket, tells the client `zone_changed` and carries on with the new zone, closing the old
//! session; the client keeps its one gateway session.
#![warn(missing_docs)]

mod bridge;
pub mod follow;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_core::zone_directory::ZoneDirectory;
use fabric_net::budget::{Budget, Charge};
use fabric_net::server::close_code;
use fabric_net::{Cause, IdentityError};
use fabric_net::{
    CertHash, CertRotation, NetError, Server, ServerConfig, ServerEvent, ServerIdentity,
    ServerLimits,
};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tracing::{debug, info, warn};

pub use bridge::Inbound;

/// Where the gateway finds the zone's certificate hashes.
#[derive(Debug, Clone)]
pub enum ZonePin {
    /// Fixed hashes (one or more).
    Hash(Vec<CertHash>),
    /// A file holding the hashes, one per line (the zone writes its current and its announced
    /// next hash there), read again for every new session, so rotations and restarts of the
    /// zone are picked up.
    File(PathBuf),
}

impl ZonePin {
    /// The hashes to pin now (at least one).
    pub fn current(&self) -> Result<Vec<CertHash>, String> {
        match self {
            Self::Hash(h) if h.is_empty() => Err("no zone certificate hash given".into()),
            Self::Hash(h) => Ok(h.clone()),
            Self::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    format!("cannot read the zone's cert hash file {}: {e}", p.display())
                })?;
                CertHash::parse_list(&text)
                    .map_err(|e| format!("the zone's cert hash file {}: {e}", p.display()))
            }
        }
    }
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The zone's WebTransport address.
    pub zone: SocketAddr,
    /// The zone's certificate hash.
    pub zone_pin: ZonePin,
    /// How long to wait for the zone when a session opens.
    pub zone_connect_timeout: Duration,
    /// The listening server's budgets, admission caps and handshake deadline (`--max-sessions`,
    /// `--send-budget`, ...: [`fabric_net::limits`]).
    pub limits: ServerLimits,
    /// Also accept clients over the WebSocket fallback (`wss://host:port/ws`, TCP, same port).
    pub websocket: bool,
    /// Replace the gateway's own self-signed certificate on this schedule (`None`: never).
    pub rotation: Option<CertRotation>,
    /// Keep the current certificate hash (and the announced next one, on a second line) in
    /// this file, rewritten after every rotation.
    pub cert_hash_file: Option<PathBuf>,
    /// Bytes one client session may have waiting for its zone session (before it opens and
    /// while it is slower than the client); default [`DEFAULT_SESSION_BUDGET`].
    pub session_budget: usize,
    /// Follow a client's avatar when its zone says `avatar_moved` (off: the message is passed
    /// to the client, which may reconnect by itself).
    pub follow: bool,
    /// Where the fabric's zones are, for following avatars.
    pub zones: Zones,
    /// Keep a standby session to each other zone of [`GatewayConfig::zones`] per client
    /// session (opened after the client's `hello`), so following costs one round trip.
    pub standby: bool,
}

/// Where the gateway finds the fabric's zones (`zone@host:port#hash` entries,
/// [`fabric_core::zone_directory`]).
#[derive(Debug, Clone, Default)]
pub enum Zones {
    /// None listed: the address `avatar_moved` names is used.
    #[default]
    None,
    /// A fixed list.
    Listed(ZoneDirectory),
    /// A file, read again each time an avatar is followed.
    File(PathBuf),
}

impl Zones {
    /// The zones known now (none when the file cannot be read or parsed; logged).
    pub fn current(&self) -> ZoneDirectory {
        match self {
            Self::None => ZoneDirectory::default(),
            Self::Listed(d) => d.clone(),
            Self::File(p) => match std::fs::read_to_string(p).map(|t| ZoneDirectory::parse(&t)) {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    warn!("zone list {}: {e}", p.display());
                    ZoneDirectory::default()
                }
                Err(e) => {
                    warn!("zone list {}: {e}", p.display());
                    ZoneDirectory::default()
                }
            },
        }
    }
}

/// Default [`GatewayConfig::session_budget`]: 1 MiB.
pub const DEFAULT_SESSION_BUDGET: usize = 1 << 20;

/// One bridge's queue: its sender and the budget of its bytes.
struct BridgeQueue {
    tx: UnboundedSender<(Inbound, Charge)>,
    budget: std::sync::Arc<Budget>,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    server: Server,
    cfg: GatewayConfig,
}

impl Gateway {
    /// Binds the listening socket with `identity`.
    pub fn bind(cfg: GatewayConfig, identity: ServerIdentity) -> Result<Self, NetError> {
        let mut scfg = ServerConfig::new(cfg.listen, identity);
        scfg.limits = cfg.limits;
        scfg.websocket = cfg.websocket;
        scfg.rotation = cfg.rotation.clone();
        let server = Server::start(scfg)?;
        if let Some(p) = &cfg.cert_hash_file {
            let pins: Vec<CertHash> = std::iter::once(server.cert_hash())
                .chain(server.next_cert_hash())
                .collect();
            fabric_net::cert::write_pins(p, &pins).map_err(|e| IdentityError::WriteHashes {
                path: p.display().to_string(),
                cause: Cause::new(e),
            })?;
        }
        Ok(Self { server, cfg })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The hash clients pin.
    pub fn cert_hash(&self) -> CertHash {
        self.server.cert_hash()
    }

    /// The hash of the certificate the next rotation installs (clients may pin it as well).
    pub fn next_cert_hash(&self) -> Option<CertHash> {
        self.server.next_cert_hash()
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let sender = self.server.sender();
        let mut bridges: HashMap<u64, BridgeQueue> = HashMap::new();
        tokio::pin!(shutdown);
        loop {
            let ev = tokio::select! {
                ev = self.server.next_event() => ev,
                () = &mut shutdown => break,
            };
            let Some(ev) = ev else { break };
            match ev {
                ServerEvent::Opened {
                    session, remote, ..
                } => {
                    info!(session, %remote, "client session opened");
                    let (tx, rx) = unbounded_channel();
                    let budget = Budget::new(self.cfg.session_budget);
                    bridges.insert(session, BridgeQueue { tx, budget });
                    tokio::spawn(bridge::run(session, sender.clone(), rx, self.cfg.clone()));
                }
                ServerEvent::Datagram { session, data } => {
                    if let Some(reply) = answer_locally(&data) {
                        if let Err(e) = sender.send_datagram(session, &reply) {
                            debug!(session, "cannot send pong: {e}");
                        }
                    } else if let Some(q) = bridges.get(&session) {
                        // A datagram that does not fit is dropped, as the network may do.
                        if let Some(c) = q.budget.try_charge(data.len()) {
                            let _ = q.tx.send((Inbound::Datagram(data), c));
                        }
                    }
                }
                ServerEvent::Message { session, data } => {
                    if let Some(reply) = answer_locally(&data) {
                        let _ = sender.send_message(session, reply);
                    } else if let Some(q) = bridges.get(&session) {
                        match q.budget.try_charge(data.len()) {
                            Some(c) => {
                                let _ = q.tx.send((Inbound::Message(data), c));
                            }
                            None => {
                                let why = format!(
                                    "the zone does not take this session's messages fast enough: \
                                     {} bytes wait (budget {})",
                                    q.budget.used(),
                                    q.budget.limit()
                                );
                                warn!(session, "{why}");
                                sender.close_session(session, close_code::UPSTREAM, &why);
                            }
                        }
                    }
                }
                ServerEvent::Closed { session, reason } => {
                    info!(session, %reason, "client session closed");
                    // Dropping the sender ends the bridge, which closes the upstream session.
                    bridges.remove(&session);
                }
                ServerEvent::CertRotated { hash, next, .. } => {
                    let pins: Vec<CertHash> = std::iter::once(hash).chain(next).collect();
                    if let Some(p) = &self.cfg.cert_hash_file
                        && let Err(e) = fabric_net::cert::write_pins(p, &pins)
                    {
                        warn!(
                            "cannot write the new certificate hash to {}: {e}",
                            p.display()
                        );
                    }
                    info!(%hash, "certificate rotated; new clients must pin the new hash");
                    let next = next.map(|n| n.to_base64()).unwrap_or_default();
                    println!("FABRIC_GATEWAY_CERT_ROTATED cert_hash={hash} next_cert_hash={next}");
                }
            }
        }
        info!("gateway shutting down");
        self.server.shutdown("gateway shutting down");
    }
}

/// The gateway's own answer to a control message, if it answers it itself (pings).
pub fn answer_locally(data: &[u8]) -> Option<Vec<u8>> {
    if !ControlMessage::is_control(data) {
        return None;
    }
    match ControlMessage::decode(data) {
        Ok(ControlMessage::Ping { id }) => Some(ControlMessage::pong(&id).encode()),
        Ok(_) => None,
        Err(e) if data.windows(6).any(|w| w == b"\"ping\"") => {
            // A malformed ping gets a precise error instead of silence.
            warn!("malformed ping: {e}");
            Some(
                ControlMessage::Reply {
                    id: String::new(),
                    result: Err(format!("bad ping: {e}")),
                }
                .encode(),
            )
        }
        Err(_) => None,
    }
}
