//! [`ZoneLinks`]: a zone's authenticated WebTransport sessions to its neighbouring zones.
//!
//! One link listener (its own port, path [`LINK_PATH`]) takes the sessions of lower zones; one
//! dialer task per higher neighbour keeps a session to it, reconnecting with [`Backoff`] and at
//! once when the membership changes its address or certificate. Everything runs on
//! `fabric-net`'s runtime; the zone's tick only calls [`ZoneLinks::send`] (a bounded queue push,
//! never blocking) and [`ZoneLinks::drain`] (the inbound queue, bounded in bytes). The handshake
//! and its checks are described in [`crate::session`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use fabric_auth::{LinkCredentialError, LinkCredentialIssuer, LinkCredentialVerifier, LinkProof};
use fabric_core::zones::{MAX_ZONES, ZoneId, ZoneLayout, ZoneMask};
use fabric_net::server::ServerSender;
use fabric_net::{
    CertHash, Client, ClientConfig, ClientEvent, NetError, Server, ServerConfig, ServerEvent,
    ServerIdentity, SessionId,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::backoff::Backoff;
use crate::delivery::{Delivery, from_zone};
use crate::membership::{LINK_PATH, Member, dials, linked};
use crate::session::{LINK_CHANNEL, REFUSED_CLOSE_CODE, accept_message, parse_accept, unix_now};
use crate::stats::{EndpointCells, LinkCells, LinkCounters, LinkStats};

/// How a zone's links are set up.
pub struct LinkConfig {
    /// The fabric's name (credentials name it).
    pub fabric: String,
    /// This zone.
    pub zone: ZoneId,
    /// The fabric's zones.
    pub layout: ZoneLayout,
    /// UDP address of the link listener (port 0: any free port).
    pub bind: SocketAddr,
    /// Certificate of the link listener (dialers pin its hash).
    pub identity: ServerIdentity,
    /// This zone's link credential (binary, see [`fabric_auth::link_credential`]).
    pub credential: Vec<u8>,
    /// The link key the credential names.
    pub link_key: SigningKey,
    /// Checks the credentials of dialing zones.
    pub verifier: LinkCredentialVerifier,
    /// The fabric's members at start ([`ZoneLinks::set_members`] replaces them).
    pub members: Vec<Member>,
    /// Most bytes queued toward one neighbour; datagram sends beyond are refused (default
    /// 4 MiB); reliable sends (hand-offs, control) are refused only beyond twice this.
    pub out_queue_bytes: usize,
    /// Most received bytes waiting for [`ZoneLinks::drain`]; datagrams beyond are dropped
    /// (default 8 MiB); reliable packets only beyond twice this.
    pub in_queue_bytes: usize,
    /// Reconnect delays of dialers.
    pub backoff: Backoff,
    /// A dialing session must present its proof (and a dialer get its answer) within this.
    pub proof_timeout: Duration,
    /// A link with no traffic for this long is dropped (keep-alives run at a third of it).
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("fabric", &self.fabric)
            .field("zone", &self.zone)
            .field("bind", &self.bind)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl LinkConfig {
    /// A configuration with the defaults above for an already issued credential.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fabric: &str,
        zone: ZoneId,
        layout: ZoneLayout,
        bind: SocketAddr,
        identity: ServerIdentity,
        credential: Vec<u8>,
        link_key: SigningKey,
        verifier: LinkCredentialVerifier,
    ) -> Self {
        Self {
            fabric: fabric.to_owned(),
            zone,
            layout,
            bind,
            identity,
            credential,
            link_key,
            verifier,
            members: Vec::new(),
            out_queue_bytes: 4 << 20,
            in_queue_bytes: 8 << 20,
            backoff: Backoff::default(),
            proof_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(6),
        }
    }

    /// Registry mode: the credential comes from the registration, which needs the link
    /// listener's port and certificate first. Start with this, register with
    /// [`ZoneLinks::fabric_membership`], then hand the grant to [`ZoneLinks::set_credential`];
    /// until then no session is accepted or dialed.
    pub fn awaiting_credential(
        fabric: &str,
        zone: ZoneId,
        layout: ZoneLayout,
        bind: SocketAddr,
        identity: ServerIdentity,
        link_key: SigningKey,
    ) -> Self {
        let verifier = LinkCredentialVerifier::new(fabric, layout.count() as u8, []);
        Self::new(
            fabric,
            zone,
            layout,
            bind,
            identity,
            Vec::new(),
            link_key,
            verifier,
        )
    }

    /// Static mode (no registry): every zone of the fabric holds the fabric key (from a file,
    /// [`load_fabric_key`]) and signs its own credential with it for a fresh link key; it
    /// trusts credentials signed by that key. Valid for a week.
    pub fn with_fabric_key(
        fabric: &str,
        zone: ZoneId,
        layout: ZoneLayout,
        bind: SocketAddr,
        fabric_key: &SigningKey,
    ) -> Result<Self, LinkError> {
        let zones = layout.count() as u8;
        let link_key = SigningKey::generate(&mut rand::rngs::OsRng);
        let issuer = LinkCredentialIssuer::new(fabric_key.clone(), 7 * 24 * 3600);
        let credential =
            issuer.issue_bytes(fabric, zone, zones, &link_key.verifying_key(), unix_now())?;
        let verifier = LinkCredentialVerifier::new(fabric, zones, [fabric_key.verifying_key()]);
        let identity = ServerIdentity::self_signed_local()?;
        Ok(Self::new(
            fabric, zone, layout, bind, identity, credential, link_key, verifier,
        ))
    }
}

/// Reads a fabric key file: the base64url Ed25519 seed on its first line.
pub fn load_fabric_key(path: &std::path::Path) -> Result<SigningKey, LinkError> {
    let text = std::fs::read_to_string(path).map_err(|e| LinkError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    fabric_auth::keys::signing_key_from_b64(text.lines().next().unwrap_or("")).map_err(|e| {
        LinkError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    })
}

/// Why links could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The link listener could not start (port taken, bad certificate).
    #[error("link listener: {0}")]
    Net(#[from] NetError),
    /// The credential could not be issued.
    #[error("link credential: {0}")]
    Credential(#[from] LinkCredentialError),
    /// The zone is not in the layout.
    #[error("zone {zone} is not one of the {count} zones")]
    Zone {
        /// The zone.
        zone: ZoneId,
        /// Zones in the layout.
        count: usize,
    },
    /// The fabric key file could not be read.
    #[error("fabric key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why a send was refused (counted in [`LinkStats::refused`]; the core's resend and rollback
/// handle what was not sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkSendError {
    /// No session to that zone is up (or it is not a neighbour).
    #[error("no link to zone {0}")]
    NotLinked(ZoneId),
    /// The link's queue is over its byte bound.
    #[error("link to zone {zone} has {queued} bytes queued (bound {limit})")]
    Full {
        /// The zone.
        zone: ZoneId,
        /// Bytes queued.
        queued: usize,
        /// The bound.
        limit: usize,
    },
}

/// Something [`ZoneLinks::drain`] hands the tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// A packet from a neighbour, already checked: it decodes and its `from_zone` is `from`.
    Packet {
        /// The proven sender.
        from: ZoneId,
        /// The packet (a `fabric-core` zone packet).
        bytes: &'a [u8],
    },
    /// A session to `zone` came up (authenticated).
    Linked {
        /// The neighbour.
        zone: ZoneId,
    },
    /// The session to `zone` ended.
    Unlinked {
        /// The neighbour.
        zone: ZoneId,
    },
}

enum Incoming {
    Packet(ZoneId, Vec<u8>),
    Linked(ZoneId),
    Unlinked(ZoneId),
}

/// The inbound queues: link events and reliable packets (`urgent`), handed out before the
/// datagrams (interest row batches), and the packet bytes both hold.
#[derive(Default)]
struct InQueue {
    urgent: VecDeque<Incoming>,
    rows: VecDeque<Incoming>,
    bytes: usize,
}

impl InQueue {
    fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.rows.is_empty()
    }

    fn pop(&mut self) -> Option<Incoming> {
        let ev = self.urgent.pop_front().or_else(|| self.rows.pop_front())?;
        if let Incoming::Packet(_, b) = &ev {
            self.bytes -= b.len();
        }
        Some(ev)
    }
}

/// The byte bound a packet of `delivery` may fill a queue to: datagrams (interest rows, which
/// the next tick replaces) up to `bound`; reliable packets (hand-offs and control: few and
/// small, and one lost costs a resend timeout) a second bound's worth above it, so a backlog
/// of rows never costs a hand-off.
fn bound_for(delivery: Delivery, bound: usize) -> usize {
    match delivery {
        Delivery::Datagram => bound,
        Delivery::Reliable => bound.saturating_mul(2),
    }
}

struct Out {
    delivery: Delivery,
    bytes: Vec<u8>,
}

struct Peer {
    generation: u64,
    /// Reliable packets; the session task forwards them before any waiting row.
    out: UnboundedSender<Out>,
    /// Datagrams (interest rows).
    out_rows: UnboundedSender<Out>,
    queued: Arc<AtomicUsize>,
    kill: Arc<Notify>,
    rtt_us: Arc<AtomicU64>,
}

/// What a session task gets when its link is installed.
struct Installed {
    generation: u64,
    rx: UnboundedReceiver<Out>,
    rx_rows: UnboundedReceiver<Out>,
    queued: Arc<AtomicUsize>,
    kill: Arc<Notify>,
    rtt_us: Arc<AtomicU64>,
}

struct Shared {
    me: ZoneId,
    linked: ZoneMask,
    out_bound: usize,
    in_bound: usize,
    inbound: Mutex<InQueue>,
    wake: Condvar,
    peers: Mutex<Vec<Option<Peer>>>,
    cells: Vec<LinkCells>,
    sessions: Vec<AtomicU64>,
    endpoint: EndpointCells,
    blackhole: Mutex<[Option<Instant>; MAX_ZONES]>,
    next_generation: AtomicU64,
    /// Woken when a link drops: registry member polling goes fast again (the neighbour may be
    /// restarting at a new address).
    members_wake: Arc<tokio::sync::Notify>,
    /// This zone's credential (empty until granted) and the verifier of neighbours'.
    auth: std::sync::RwLock<(Vec<u8>, LinkCredentialVerifier)>,
}

impl Shared {
    fn push(&self, ev: Incoming) {
        let (len, delivery) = match &ev {
            Incoming::Packet(_, b) => (b.len(), Delivery::of(b)),
            _ => (0, Delivery::Reliable),
        };
        let mut q = self.inbound.lock().expect("inbound lock");
        if len > 0 && q.bytes + len > bound_for(delivery, self.in_bound) {
            if let Incoming::Packet(z, _) = ev {
                LinkCells::add(&self.cells[z as usize].dropped, 1);
            }
            LinkCells::add(&self.endpoint.inbound_full, 1);
            return;
        }
        q.bytes += len;
        match delivery {
            Delivery::Datagram => q.rows.push_back(ev),
            Delivery::Reliable => q.urgent.push_back(ev),
        }
        self.wake.notify_all();
    }

    fn blackholed(&self, zone: ZoneId) -> bool {
        let mut b = self.blackhole.lock().expect("blackhole lock");
        match b[zone as usize] {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                b[zone as usize] = None;
                false
            }
            None => false,
        }
    }

    /// A packet received on the link proven to be `zone`.
    fn receive(&self, zone: ZoneId, bytes: &[u8]) {
        let cells = &self.cells[zone as usize];
        if self.blackholed(zone) {
            LinkCells::add(&cells.dropped, 1);
            return;
        }
        match from_zone(bytes) {
            Ok(z) if z == zone => {
                LinkCells::add(&cells.packets_in, 1);
                LinkCells::add(&cells.bytes_in, bytes.len() as u64);
                self.push(Incoming::Packet(zone, bytes.to_vec()));
            }
            Ok(z) => {
                debug!(link = zone, claimed = z, "forged from_zone: dropped");
                LinkCells::add(&cells.dropped, 1);
                LinkCells::add(&self.endpoint.forged_from_zone, 1);
            }
            Err(e) => {
                debug!(link = zone, "undecodable packet dropped: {e}");
                LinkCells::add(&cells.dropped, 1);
                LinkCells::add(&self.endpoint.bad_packets, 1);
            }
        }
    }

    /// Makes the session just authenticated with `zone` its link, replacing an older one.
    fn install(&self, zone: ZoneId) -> Installed {
        let (out, rx) = unbounded_channel();
        let (out_rows, rx_rows) = unbounded_channel();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let peer = Peer {
            generation,
            out,
            out_rows,
            queued: Arc::new(AtomicUsize::new(0)),
            kill: Arc::new(Notify::new()),
            rtt_us: Arc::new(AtomicU64::new(0)),
        };
        let installed = Installed {
            generation,
            rx,
            rx_rows,
            queued: peer.queued.clone(),
            kill: peer.kill.clone(),
            rtt_us: peer.rtt_us.clone(),
        };
        let old = self.peers.lock().expect("peers lock")[zone as usize].replace(peer);
        if let Some(old) = old {
            old.kill.notify_one();
            self.push(Incoming::Unlinked(zone));
        }
        self.sessions[zone as usize].fetch_add(1, Ordering::Relaxed);
        info!(link = zone, "linked");
        self.push(Incoming::Linked(zone));
        installed
    }

    /// The session `generation` of `zone` ended.
    fn remove(&self, zone: ZoneId, generation: u64) {
        let mut peers = self.peers.lock().expect("peers lock");
        if peers[zone as usize]
            .as_ref()
            .is_some_and(|p| p.generation == generation)
        {
            peers[zone as usize] = None;
            drop(peers);
            info!(link = zone, "unlinked");
            self.members_wake.notify_one();
            self.push(Incoming::Unlinked(zone));
        }
    }

    fn wait(&self, timeout: Duration) -> bool {
        let q = self.inbound.lock().expect("inbound lock");
        if !q.is_empty() {
            return true;
        }
        let (q, _) = self.wake.wait_timeout(q, timeout).expect("inbound lock");
        !q.is_empty()
    }

    fn refuse(&self, counter: &AtomicU64) {
        LinkCells::add(counter, 1);
        LinkCells::add(&self.endpoint.sessions_refused, 1);
    }
}

/// Waits for a [`ZoneLinks`]' inbound events ([`ZoneLinks::waiter`]).
#[derive(Clone)]
pub struct LinkWaiter(Arc<Shared>);

impl std::fmt::Debug for LinkWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkWaiter(zone {})", self.0.me)
    }
}

impl LinkWaiter {
    /// As [`ZoneLinks::wait`].
    pub fn wait(&self, timeout: Duration) -> bool {
        self.0.wait(timeout)
    }
}

/// A zone's links to its neighbours.
pub struct ZoneLinks {
    shared: Arc<Shared>,
    members: Arc<watch::Sender<Vec<Member>>>,
    fabric: String,
    link_public_key: ed25519_dalek::VerifyingKey,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    cert_hash: CertHash,
    zones: u8,
}

impl std::fmt::Debug for ZoneLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ZoneLinks(zone {} at {})",
            self.shared.me, self.local_addr
        )
    }
}

impl ZoneLinks {
    /// Binds the link listener and starts dialing (on `fabric-net`'s runtime). Works from
    /// plain threads and inside a tokio runtime.
    pub fn start(cfg: LinkConfig) -> Result<ZoneLinks, LinkError> {
        let count = cfg.layout.count();
        if cfg.zone as usize >= count {
            return Err(LinkError::Zone {
                zone: cfg.zone,
                count,
            });
        }
        let mut scfg = ServerConfig::new(cfg.bind, cfg.identity.clone());
        scfg.idle_timeout = cfg.idle_timeout;
        scfg.keep_alive = cfg.idle_timeout / 3;
        scfg.limits.max_sessions = 4 * MAX_ZONES;
        let server = Server::start(scfg)?;
        let local_addr = server.local_addr();
        let cert_hash = server.cert_hash();
        let me = cfg.zone;
        let shared = Arc::new(Shared {
            me,
            linked: linked(&cfg.layout, me),
            out_bound: cfg.out_queue_bytes,
            in_bound: cfg.in_queue_bytes,
            inbound: Mutex::new(InQueue::default()),
            wake: Condvar::new(),
            peers: Mutex::new((0..MAX_ZONES).map(|_| None).collect()),
            cells: (0..MAX_ZONES).map(|_| LinkCells::default()).collect(),
            sessions: (0..MAX_ZONES).map(|_| AtomicU64::new(0)).collect(),
            endpoint: EndpointCells::default(),
            blackhole: Mutex::new([None; MAX_ZONES]),
            next_generation: AtomicU64::new(1),
            members_wake: Arc::default(),
            auth: std::sync::RwLock::new((cfg.credential, cfg.verifier)),
        });
        let zones = count as u8;
        let (members, members_rx) = watch::channel(only_fabric(cfg.members, zones));
        let handle = fabric_net::current_or_shared();
        let span = info_span!("zone_links", zone = me);
        let mut tasks = vec![
            handle
                .spawn(listen(server, shared.clone(), cfg.proof_timeout).instrument(span.clone())),
        ];
        let link_public_key = cfg.link_key.verifying_key();
        let dialer = Arc::new(DialerCfg {
            link_key: cfg.link_key,
            backoff: cfg.backoff,
            proof_timeout: cfg.proof_timeout,
            idle_timeout: cfg.idle_timeout,
        });
        for peer in shared.linked.iter().filter(|&p| dials(me, p)) {
            tasks.push(
                handle.spawn(
                    dial(shared.clone(), peer, members_rx.clone(), dialer.clone())
                        .instrument(info_span!(parent: &span, "dial", peer)),
                ),
            );
        }
        Ok(ZoneLinks {
            shared,
            members: Arc::new(members),
            fabric: cfg.fabric,
            link_public_key,
            tasks,
            local_addr,
            cert_hash,
            zones,
        })
    }

    /// Queues `bytes` for zone `to` (never blocks; bounded in bytes per link).
    pub fn send(&self, to: ZoneId, delivery: Delivery, bytes: &[u8]) -> Result<(), LinkSendError> {
        let z = to as usize;
        let Some(cells) = self.shared.cells.get(z) else {
            return Err(LinkSendError::NotLinked(to));
        };
        let peers = self.shared.peers.lock().expect("peers lock");
        let Some(p) = peers[z].as_ref() else {
            LinkCells::add(&cells.refused, 1);
            return Err(LinkSendError::NotLinked(to));
        };
        if self.shared.blackholed(to) {
            // A fault drill: the packet is lost on the way, as on a cut cable.
            LinkCells::add(&cells.dropped, 1);
            return Ok(());
        }
        let queued = p.queued.load(Ordering::Relaxed);
        let limit = bound_for(delivery, self.shared.out_bound);
        if queued + bytes.len() > limit {
            LinkCells::add(&cells.refused, 1);
            return Err(LinkSendError::Full {
                zone: to,
                queued,
                limit,
            });
        }
        p.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let out = Out {
            delivery,
            bytes: bytes.to_vec(),
        };
        let channel = match delivery {
            Delivery::Reliable => &p.out,
            Delivery::Datagram => &p.out_rows,
        };
        if channel.send(out).is_err() {
            LinkCells::add(&cells.refused, 1);
            return Err(LinkSendError::NotLinked(to));
        }
        LinkCells::add(&cells.packets_out, 1);
        LinkCells::add(&cells.bytes_out, bytes.len() as u64);
        Ok(())
    }

    /// Hands at most `max_events` waiting events to `f`: link events and reliable packets
    /// first, then datagrams, each oldest first; returns how many. (Rows and hand-offs travel
    /// on different QUIC channels, so their order was never kept; a hand-off no longer waits
    /// behind a backlog of rows.)
    pub fn drain(&mut self, max_events: usize, mut f: impl FnMut(LinkEvent<'_>)) -> usize {
        let mut n = 0;
        while n < max_events {
            let ev = {
                let mut q = self.shared.inbound.lock().expect("inbound lock");
                let Some(ev) = q.pop() else { break };
                ev
            };
            match &ev {
                Incoming::Packet(from, bytes) => f(LinkEvent::Packet { from: *from, bytes }),
                Incoming::Linked(zone) => f(LinkEvent::Linked { zone: *zone }),
                Incoming::Unlinked(zone) => f(LinkEvent::Unlinked { zone: *zone }),
            }
            n += 1;
        }
        n
    }

    /// Waits at most `timeout` for an event to drain; returns whether one is waiting. (For
    /// hosts that sleep between ticks: they wake for a packet at once.)
    pub fn wait(&self, timeout: Duration) -> bool {
        self.shared.wait(timeout)
    }

    /// A handle that waits for inbound events from another thread than the one draining.
    pub fn waiter(&self) -> LinkWaiter {
        LinkWaiter(self.shared.clone())
    }

    /// Per link (every zone this one links with, up or not).
    pub fn stats(&self) -> Vec<LinkStats> {
        let peers = self.shared.peers.lock().expect("peers lock");
        self.shared
            .linked
            .iter()
            .map(|z| {
                let p = peers[z as usize].as_ref();
                let rtt = p
                    .map(|p| p.rtt_us.load(Ordering::Relaxed))
                    .filter(|&us| us > 0)
                    .map(Duration::from_micros);
                LinkStats::read(
                    z,
                    &self.shared.cells[z as usize],
                    p.is_some(),
                    rtt,
                    self.shared.sessions[z as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Sessions refused and packets dropped, over all links.
    pub fn counters(&self) -> LinkCounters {
        self.shared.endpoint.read()
    }

    /// Replaces the fabric's member list (entries of another zone count are ignored). Dialers
    /// whose peer moved reconnect at once; dialers waiting for an address dial now.
    pub fn set_members(&self, members: Vec<Member>) {
        self.members.send_replace(only_fabric(members, self.zones));
    }

    /// Installs the credential granted by the registry and the registry's key that signs
    /// neighbours' credentials ([`LinkConfig::awaiting_credential`]); dialers try at once.
    pub fn set_credential(&self, credential: Vec<u8>, verifier: LinkCredentialVerifier) {
        self.auth_handle()(credential, verifier);
    }

    /// [`Self::set_credential`] as a handle a task can keep.
    pub(crate) fn auth_handle(
        &self,
    ) -> impl Fn(Vec<u8>, LinkCredentialVerifier) + Send + Sync + 'static {
        let (shared, members) = (self.shared.clone(), self.members.clone());
        move |credential, verifier| {
            *shared.auth.write().expect("auth lock") = (credential, verifier);
            members.send_modify(|_| {});
        }
    }

    /// What this zone registers about its links ([`fabric_net::registry::Registration::start_in_fabric`]).
    pub fn fabric_membership(&self) -> fabric_net::registry::FabricMembership {
        fabric_net::registry::FabricMembership {
            name: self.fabric.clone(),
            zone: self.shared.me,
            zones: self.zones,
            link_address: Some(self.local_addr.ip().to_string()),
            link_port: self.local_addr.port(),
            link_cert_hash: self.cert_hash.to_base64(),
            link_next_cert_hash: None,
            link_public_key: fabric_auth::keys::public_key_to_b64(&self.link_public_key),
        }
    }

    /// Follows the registry's member list of this fabric (`GET /fabrics/{fabric}/members`
    /// with `api_key`), relinking when it changes: every `every` while the fabric is changing
    /// (a member missing, the list changed, a link dropped) and for
    /// [`crate::registry::FAST_POLL_FOR`] after, [`crate::registry::STABLE_POLL_FACTOR`] times
    /// less often once it has settled. Problems are logged and retried; the last good list
    /// stays in force.
    pub fn follow_registry(
        &mut self,
        backend: &fabric_net::http::Endpoint,
        api_key: &str,
        every: Duration,
    ) {
        let task = crate::registry::follow(
            backend.clone(),
            api_key.to_owned(),
            self.fabric.clone(),
            self.zones,
            self.members.clone(),
            every,
            self.shared.members_wake.clone(),
        );
        self.tasks.push(
            fabric_net::current_or_shared()
                .spawn(task.instrument(info_span!("members", zone = self.shared.me))),
        );
    }

    /// The zones this one links with.
    pub fn neighbours(&self) -> ZoneMask {
        self.shared.linked
    }

    /// Whether the link to `zone` is up.
    pub fn is_linked(&self, zone: ZoneId) -> bool {
        self.shared
            .peers
            .lock()
            .expect("peers lock")
            .get(zone as usize)
            .is_some_and(Option::is_some)
    }

    /// This zone's own member entry (what a static list or the registry publishes for it).
    pub fn member(&self) -> Member {
        Member {
            zone: self.shared.me,
            zones: self.zones,
            url: format!("https://{}{LINK_PATH}", self.local_addr),
            cert_hashes: vec![self.cert_hash],
        }
    }

    /// The listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Fault drill: drops every packet to and from `zone` for `duration` (the session stays
    /// up, as through a cut cable shorter than the idle timeout). Counted as dropped.
    pub fn blackhole(&self, zone: ZoneId, duration: Duration) {
        if let Some(slot) = self
            .shared
            .blackhole
            .lock()
            .expect("blackhole lock")
            .get_mut(zone as usize)
        {
            *slot = Some(Instant::now() + duration);
        }
    }

    /// Fault drill: closes the session to `zone` (the lower zone redials with backoff).
    pub fn disconnect(&self, zone: ZoneId) {
        if let Some(Some(p)) = self
            .shared
            .peers
            .lock()
            .expect("peers lock")
            .get(zone as usize)
        {
            p.kill.notify_one();
        }
    }
}

impl Drop for ZoneLinks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(crate) fn only_fabric(members: Vec<Member>, zones: u8) -> Vec<Member> {
    members.into_iter().filter(|m| m.zones == zones).collect()
}

enum Conn<'a> {
    Accepted(&'a ServerSender, SessionId),
    Dialed(&'a Client),
}

impl Conn<'_> {
    /// Sends one queued packet (it leaves the link's queue bound).
    fn send(&self, o: Out, queued: &AtomicUsize) {
        queued.fetch_sub(o.bytes.len(), Ordering::Relaxed);
        let r = match (self, o.delivery) {
            (Conn::Accepted(s, id), Delivery::Datagram) => match s.send_datagram(*id, &o.bytes) {
                Err(NetError::DatagramTooLarge { .. }) => {
                    s.send_message_on(*id, LINK_CHANNEL, o.bytes)
                }
                r => r,
            },
            (Conn::Accepted(s, id), Delivery::Reliable) => {
                s.send_message_on(*id, LINK_CHANNEL, o.bytes)
            }
            (Conn::Dialed(c), Delivery::Datagram) => match c.send_datagram(&o.bytes) {
                Err(NetError::DatagramTooLarge { .. }) => c.send_message_on(LINK_CHANNEL, o.bytes),
                r => r,
            },
            (Conn::Dialed(c), Delivery::Reliable) => c.send_message_on(LINK_CHANNEL, o.bytes),
        };
        if let Err(e) = r {
            debug!("link send failed: {e}");
        }
    }

    /// Sends a row batch, after every reliable packet already waiting (so a hand-off never
    /// waits behind rows, whichever branch the session task's `select!` took).
    fn send_row(&self, o: Out, inst: &mut Installed) {
        while let Ok(r) = inst.rx.try_recv() {
            self.send(r, &inst.queued);
        }
        self.send(o, &inst.queued);
    }

    fn rtt_us(&self) -> u64 {
        let rtt = match self {
            Conn::Accepted(s, id) => s.rtt(*id),
            Conn::Dialed(c) => c.rtt(),
        };
        rtt.map(|d| d.as_micros().max(1) as u64).unwrap_or(0)
    }
}

/// The writer of an accepted session: forwards until replaced, killed or closed.
async fn serve_accepted(sender: ServerSender, session: SessionId, mut inst: Installed) {
    let conn = Conn::Accepted(&sender, session);
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            // Reliable packets (hand-offs) first: a backlog of rows never holds them back.
            biased;
            o = inst.rx.recv() => match o {
                Some(o) => conn.send(o, &inst.queued),
                None => break,
            },
            Some(o) = inst.rx_rows.recv() => conn.send_row(o, &mut inst),
            () = inst.kill.notified() => {
                sender.close_session(session, fabric_net::server::close_code::NORMAL, "link replaced or dropped");
                break;
            }
            _ = every.tick() => inst.rtt_us.store(conn.rtt_us(), Ordering::Relaxed),
        }
    }
}

async fn listen(mut server: Server, shared: Arc<Shared>, proof_timeout: Duration) {
    let sender = server.sender();
    let mut previous_hash: Option<CertHash> = None;
    let mut pending: HashMap<SessionId, Instant> = HashMap::new();
    let mut authed: HashMap<SessionId, (ZoneId, u64)> = HashMap::new();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    let refuse = |session: SessionId, counter: &AtomicU64, why: &str| {
        warn!(session, "link session refused: {why}");
        shared.refuse(counter);
        sender.close_session(session, REFUSED_CLOSE_CODE, why);
    };
    loop {
        let ev = tokio::select! {
            ev = server.next_event() => match ev { Some(ev) => ev, None => return },
            _ = every.tick() => {
                let now = Instant::now();
                let late: Vec<SessionId> = pending
                    .iter()
                    .filter(|(_, t)| now.duration_since(**t) > proof_timeout)
                    .map(|(s, _)| *s)
                    .collect();
                for s in late {
                    pending.remove(&s);
                    refuse(s, &shared.endpoint.no_credential, "no link proof in time");
                }
                continue;
            }
        };
        match ev {
            ServerEvent::Opened { session, path, .. } => {
                if path == LINK_PATH {
                    pending.insert(session, Instant::now());
                } else {
                    refuse(session, &shared.endpoint.no_credential, "not the link path");
                }
            }
            ServerEvent::Message { session, data } => {
                if let Some(&(zone, _)) = authed.get(&session) {
                    shared.receive(zone, &data);
                } else if pending.remove(&session).is_some() {
                    let mut hashes = vec![server.cert_hash().0];
                    hashes.extend(server.next_cert_hash().map(|h| h.0));
                    hashes.extend(previous_hash.map(|h| h.0));
                    let verdict = shared.auth.read().expect("auth lock").1.verify_proof(
                        &data,
                        &hashes,
                        unix_now(),
                    );
                    match verdict {
                        Err(e @ LinkCredentialError::Malformed(_)) => {
                            refuse(session, &shared.endpoint.no_credential, &e.to_string())
                        }
                        Err(e) => refuse(session, &shared.endpoint.bad_credential, &e.to_string()),
                        Ok(c) if !shared.linked.contains(c.zone) || !dials(c.zone, shared.me) => {
                            refuse(
                                session,
                                &shared.endpoint.wrong_zone,
                                &format!("zone {} does not dial zone {}", c.zone, shared.me),
                            )
                        }
                        Ok(c) => {
                            if sender
                                .send_message_on(session, LINK_CHANNEL, accept_message(shared.me))
                                .is_ok()
                            {
                                let inst = shared.install(c.zone);
                                authed.insert(session, (c.zone, inst.generation));
                                tokio::spawn(
                                    serve_accepted(sender.clone(), session, inst).in_current_span(),
                                );
                            }
                        }
                    }
                }
            }
            ServerEvent::Datagram { session, data } => match authed.get(&session) {
                Some(&(zone, _)) => shared.receive(zone, &data),
                None => LinkCells::add(&shared.endpoint.bad_packets, 1),
            },
            ServerEvent::Closed { session, reason } => {
                pending.remove(&session);
                if let Some((zone, generation)) = authed.remove(&session) {
                    debug!(link = zone, "link session closed: {reason}");
                    shared.remove(zone, generation);
                }
            }
            ServerEvent::CertRotated { .. } => previous_hash = Some(server.cert_hash()),
        }
    }
}

struct DialerCfg {
    link_key: SigningKey,
    backoff: Backoff,
    proof_timeout: Duration,
    idle_timeout: Duration,
}

/// How a dialed session ended.
enum Ended {
    /// Never accepted (failed to connect, refused, no answer).
    Failed,
    /// Accepted, then closed.
    Closed,
    /// The peer's member entry changed: redial at once.
    Moved,
    /// The links are stopping.
    Stop,
}

async fn dial(
    shared: Arc<Shared>,
    peer: ZoneId,
    mut members: watch::Receiver<Vec<Member>>,
    cfg: Arc<DialerCfg>,
) {
    let mut backoff = cfg.backoff;
    loop {
        let member = members
            .borrow_and_update()
            .iter()
            .find(|m| m.zone == peer)
            .cloned();
        let Some(member) = member else {
            if members.changed().await.is_err() {
                return;
            }
            continue;
        };
        let ended = dial_once(&shared, peer, &member, &mut members, &cfg).await;
        let delay = match ended {
            Ended::Stop => return,
            Ended::Moved => continue,
            Ended::Closed => {
                backoff.reset();
                backoff.next_delay()
            }
            Ended::Failed => backoff.next_delay(),
        };
        debug!(peer, ?delay, "redialing after a delay");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            r = members.changed() => if r.is_err() { return },
        }
    }
}

async fn dial_once(
    shared: &Shared,
    peer: ZoneId,
    member: &Member,
    members: &mut watch::Receiver<Vec<Member>>,
    cfg: &DialerCfg,
) -> Ended {
    let Some(mut ccfg) = ClientConfig::pinning(&member.url, &member.cert_hashes) else {
        return Ended::Failed;
    };
    ccfg.connect_timeout = fabric_net::client::DEFAULT_CONNECT_TIMEOUT;
    ccfg.idle_timeout = cfg.idle_timeout;
    let mut client = Client::connect(ccfg);
    let handshake = async {
        match client.next_event().await {
            Some(ClientEvent::Connected { .. }) => {}
            other => return Err(format!("no session: {other:?}")),
        }
        let credential = shared.auth.read().expect("auth lock").0.clone();
        if credential.is_empty() {
            return Err("no link credential yet".to_owned());
        }
        let proof = LinkProof::make(
            &cfg.link_key,
            &credential,
            &member.cert_hashes[0].0,
            unix_now(),
        );
        client
            .send_message_on(LINK_CHANNEL, proof)
            .map_err(|e| e.to_string())?;
        loop {
            match client.next_event().await {
                // The listener's rows may overtake its answer (datagrams are not ordered with
                // the stream): they are dropped, the next ones will do.
                Some(ClientEvent::Datagram(_)) => continue,
                Some(ClientEvent::Message(m)) if parse_accept(&m) == Some(peer) => return Ok(()),
                other => return Err(format!("not accepted: {other:?}")),
            }
        }
    };
    let limit = fabric_net::client::DEFAULT_CONNECT_TIMEOUT + cfg.proof_timeout;
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(peer, "link to {} failed: {e}", member.url);
            return Ended::Failed;
        }
        Err(_) => return Ended::Failed,
    }
    let mut inst = shared.install(peer);
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let ended = loop {
        tokio::select! {
            ev = client.next_event() => match ev {
                Some(ClientEvent::Datagram(b)) => shared.receive(peer, &b),
                Some(ClientEvent::Message(m)) => shared.receive(peer, &m),
                Some(ClientEvent::Connected { .. }) => {}
                Some(ClientEvent::Closed { reason, .. }) => {
                    debug!(peer, "link closed: {reason}");
                    break Ended::Closed;
                }
                Some(ClientEvent::Failed(_)) | None => break Ended::Closed,
            },
            o = inst.rx.recv() => match o {
                Some(o) => Conn::Dialed(&client).send(o, &inst.queued),
                None => break Ended::Closed,
            },
            Some(o) = inst.rx_rows.recv() => Conn::Dialed(&client).send_row(o, &mut inst),
            () = inst.kill.notified() => break Ended::Closed,
            _ = every.tick() => inst.rtt_us.store(Conn::Dialed(&client).rtt_us(), Ordering::Relaxed),
            r = members.changed() => match r {
                Err(_) => break Ended::Stop,
                Ok(()) => {
                    let now = members.borrow_and_update().iter().find(|m| m.zone == peer).cloned();
                    if now.as_ref() != Some(member) {
                        break Ended::Moved;
                    }
                }
            },
        }
    };
    client.close("link ended");
    shared.remove(peer, inst.generation);
    ended
}
