//! A client session (WebTransport, or the WebSocket fallback) reported as events.
//!
//! [`Client::connect`] returns at once; the handshake runs on the background runtime and ends in
//! [`ClientEvent::Connected`] or [`ClientEvent::Failed`] (with a [`NetError`] that says what went
//! wrong: timeout, certificate mismatch, refused ...). The URL's scheme picks the transport:
//! `https://host:port/wt` is WebTransport, whose server certificate is always pinned by hash
//! (there is no "accept anything" mode); `wss://host:port/ws` is the WebSocket fallback over
//! TLS, pinned by the same hash; `ws://host:port/ws` is the unencrypted fallback, refused for
//! non-loopback hosts unless [`ClientConfig::allow_insecure_websocket`] is set. All give the
//! same events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span};
use wtransport::error::ConnectionError;
use wtransport::{Connection, Endpoint};

use crate::budget::{Charge, ReadLimits};
use crate::cert::CertHash;
use crate::client_endpoints::{ClientEndpoints, EndpointKey, SharedEndpoint};
use crate::close::{CloseReason, close_code};
use crate::error::{Cause, ConnectStep};
use crate::lanes;
use crate::limits::{DEFAULT_EVENT_BUDGET, DEFAULT_PARTIAL_BUDGET, DEFAULT_SEND_BUDGET};
use crate::link::{self, Link};
use crate::nosigpipe::NoSigPipe;
use crate::reliable::MAX_MESSAGE_LEN;

/// Describes why a connection ended (kept here, where it always was; see [`crate::close`]).
pub use crate::close::describe_close;
use crate::ws::{self, Incoming};
use crate::{NetError, describe_connect_error};

/// How long [`ClientConfig::new`] lets a session take to open before it gives up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`ClientConfig::new`] lets a WebTransport handshake run alone before it starts
/// another one beside it (see [`ClientConfig::handshake_stagger`]).
pub const DEFAULT_HANDSHAKE_STAGGER: Duration = Duration::from_millis(2500);

/// Where and how a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:port/path` (WebTransport) or `ws://host:port/ws` (WebSocket fallback).
    pub url: String,
    /// The server certificate hash to pin (WebTransport and `wss://`; `ws://` is not encrypted).
    pub pin: CertHash,
    /// More hashes to accept besides `pin`: typically the server's announced next certificate,
    /// so a client keeps connecting across a rotation (see [`crate::rotation`]).
    pub also_pin: Vec<CertHash>,
    /// Give up when the session is not open after this long (WebTransport: the QUIC and HTTP/3
    /// handshakes; WebSocket: TCP connect, TLS and the upgrade), with
    /// [`NetError::ConnectTimeout`].
    pub connect_timeout: Duration,
    /// A WebTransport handshake that has not finished after this long gets another one beside
    /// it (default [`DEFAULT_HANDSHAKE_STAGGER`], 2.5 s), up to three in all; the first to
    /// finish is the session, the others are dropped. A handshake can stall for good: wtransport
    /// 0.7.2 may lose the first bytes of a SETTINGS frame split across packets (see
    /// [`is_h3_handshake_race`]) and then waits for bytes that never come, which under CPU load
    /// showed as a 5 s connect timeout on loopback.
    pub handshake_stagger: Duration,
    /// Close the session after this long without traffic.
    pub idle_timeout: Duration,
    /// Allow an unencrypted `ws://` session to a non-loopback host (default `false`).
    pub allow_insecure_websocket: bool,
    /// Congestion controller of a WebTransport session (default BBR, see
    /// [`crate::congestion`]).
    pub congestion: crate::CongestionControl,
    /// Bytes that may wait to be sent per reliable channel (WebTransport) or in all (WebSocket)
    /// (default 4 MiB); a send beyond it returns [`NetError::SlowReader`] and closes the
    /// session with [`crate::budget::SLOW_READER`].
    pub send_budget: usize,
    /// Bytes of datagrams and messages that may wait for [`Client::try_next_event`] (default
    /// 4 MiB): datagrams beyond it are dropped, reliable streams wait.
    pub event_budget: usize,
    /// Bytes of reliable messages that may be partly received (default 32 MiB); beyond it the
    /// session is closed as a protocol violation.
    pub partial_budget: usize,
    /// Share QUIC endpoints (UDP sockets) with the other sessions of this pool instead of
    /// binding one for this session (default `None`: its own). For processes that hold many
    /// sessions at once; see [`ClientEndpoints`]. Not used by the WebSocket fallback.
    pub endpoints: Option<ClientEndpoints>,
}

impl ClientConfig {
    /// Defaults: [`DEFAULT_CONNECT_TIMEOUT`] (5 s), 10 s idle timeout, `ws://` to loopback only.
    pub fn new(url: impl Into<String>, pin: CertHash) -> Self {
        Self {
            url: url.into(),
            pin,
            also_pin: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_stagger: DEFAULT_HANDSHAKE_STAGGER,
            idle_timeout: Duration::from_secs(10),
            allow_insecure_websocket: false,
            congestion: crate::CongestionControl::default(),
            send_budget: DEFAULT_SEND_BUDGET,
            event_budget: DEFAULT_EVENT_BUDGET,
            partial_budget: DEFAULT_PARTIAL_BUDGET,
            endpoints: None,
        }
    }

    /// [`Self::new`] pinning every hash of `pins` (the first is `pin`, the rest `also_pin`);
    /// `None` when `pins` is empty.
    pub fn pinning(url: impl Into<String>, pins: &[CertHash]) -> Option<Self> {
        let (first, rest) = pins.split_first()?;
        let mut cfg = Self::new(url, *first);
        cfg.also_pin = rest.to_vec();
        Some(cfg)
    }

    /// Every accepted hash: `pin`, then `also_pin`.
    pub fn pins(&self) -> impl Iterator<Item = CertHash> + '_ {
        std::iter::once(self.pin).chain(self.also_pin.iter().copied())
    }

    /// The accepted hashes as text for error messages (base64, comma-separated).
    pub(crate) fn pins_text(&self) -> String {
        self.pins()
            .map(|p| p.to_base64())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the URL names the WebSocket fallback (`ws://` or `wss://`).
    pub fn is_websocket(&self) -> bool {
        let u = self.url.trim_start().to_ascii_lowercase();
        u.starts_with("ws://") || u.starts_with("wss://")
    }
}

/// Something that happened to the client session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The session is open.
    Connected {
        /// Largest datagram the path takes now.
        max_datagram_size: usize,
    },
    /// The session could not be opened; no more events follow.
    Failed(NetError),
    /// A datagram arrived.
    Datagram(Bytes),
    /// A reliable message arrived (in order within its channel).
    Message(Vec<u8>),
    /// The open session ended; no more events follow.
    Closed {
        /// Why: the close code ([`CloseReason::code`], the server's application close code when
        /// it closed the session itself) and its cause; `Display` gives it in words.
        reason: CloseReason,
    },
}

/// An event and the bytes it holds in the event budget (given back when it is taken).
type Metered = (ClientEvent, Option<Charge>);
type Events = UnboundedSender<Metered>;

/// Sends an event that holds no budget; the receiver is gone only when the client was dropped.
fn emit(events: &Events, ev: ClientEvent) {
    let _ = events.send((ev, None));
}

/// A client session.
pub struct Client {
    events: UnboundedReceiver<Metered>,
    link: Arc<Mutex<Option<Link>>>,
    task: JoinHandle<()>,
    url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.url)
    }
}

impl Client {
    /// Starts connecting; never blocks. Works from plain threads and inside a tokio runtime.
    pub fn connect(cfg: ClientConfig) -> Self {
        let handle = crate::current_or_shared();
        let (tx, events) = unbounded_channel();
        let link = Arc::new(Mutex::new(None));
        let url = cfg.url.clone();
        let span = info_span!("client", url = %cfg.url);
        let task = if cfg.is_websocket() {
            handle.spawn(run_ws_client(cfg, tx, link.clone()).instrument(span))
        } else {
            handle.spawn(run_client(cfg, tx, link.clone()).instrument(span))
        };
        Self {
            events,
            link,
            task,
            url,
        }
    }

    /// The URL this client connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next event, if one is waiting (never blocks).
    pub fn try_next_event(&mut self) -> Option<ClientEvent> {
        self.events.try_recv().ok().map(|(ev, _charge)| ev)
    }

    /// Waits for the next event; `None` once the session is over and every event was read.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await.map(|(ev, _charge)| ev)
    }

    /// Sends one datagram. Too large for the path: an error, never a silent drop.
    pub fn send_datagram(&self, data: &[u8]) -> Result<(), NetError> {
        let link = self.link.lock().expect("client link lock");
        link.as_ref()
            .ok_or(NetError::NotConnected)?
            .send_datagram(data)
    }

    /// Queues one reliable message on channel 0 (see [`Self::send_message_on`]).
    pub fn send_message(&self, data: Vec<u8>) -> Result<(), NetError> {
        self.send_message_on(0, data)
    }

    /// Queues one reliable message on `channel`: delivered once, in order with the other
    /// messages of that channel, never held back by another channel.
    pub fn send_message_on(&self, channel: u8, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(data.len()));
        }
        let link = self.link.lock().expect("client link lock");
        link.as_ref()
            .ok_or(NetError::NotConnected)?
            .send_message(channel, data)
    }

    /// Largest datagram the path takes now (0 when not connected).
    pub fn max_datagram_size(&self) -> usize {
        let link = self.link.lock().expect("client link lock");
        link.as_ref().and_then(Link::max_datagram_size).unwrap_or(0)
    }

    /// Smoothed round-trip time, when connected over WebTransport.
    pub fn rtt(&self) -> Option<Duration> {
        let link = self.link.lock().expect("client link lock");
        link.as_ref().and_then(Link::rtt)
    }

    /// Whether this client's session runs over the WebSocket fallback.
    pub fn is_websocket(&self) -> bool {
        let u = self.url.trim_start().to_ascii_lowercase();
        u.starts_with("ws://") || u.starts_with("wss://")
    }

    /// Closes the session (or abandons the attempt).
    pub fn close(&self, reason: &str) {
        let link = self.link.lock().expect("client link lock").take();
        match link {
            // The link's writer sends the close frame; the link task then ends by itself.
            Some(link) if link.is_websocket() => link.close(close_code::NORMAL, reason),
            Some(link) => {
                link.close(close_code::NORMAL, reason);
                self.task.abort();
            }
            None => self.task.abort(),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close("client dropped");
    }
}

async fn run_client(cfg: ClientConfig, events: Events, link: Arc<Mutex<Option<Link>>>) {
    let conn = match tokio::time::timeout(cfg.connect_timeout, open(&cfg)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            emit(&events, ClientEvent::Failed(e));
            return;
        }
        Err(_) => {
            let e = NetError::ConnectTimeout {
                url: cfg.url.clone(),
                millis: cfg.connect_timeout.as_millis() as u64,
            };
            emit(&events, ClientEvent::Failed(e));
            return;
        }
    };
    let limits = ReadLimits::new(cfg.partial_budget, cfg.event_budget, Arc::default());
    *link.lock().expect("client link lock") =
        Some(Link::webtransport(&conn, cfg.send_budget, limits.clone()));
    let connected = ClientEvent::Connected {
        max_datagram_size: conn.max_datagram_size().unwrap_or(0),
    };
    emit(&events, connected);
    debug!("connected");

    // After the close, the readers get a moment to hand over what already arrived.
    let reason =
        link::read_webtransport(&conn, &limits, Duration::from_millis(20), deliver(&events)).await;
    link.lock().expect("client link lock").take();
    emit(&events, ClientEvent::Closed { reason });
}

/// What arriving datagrams and messages become: events holding their charge.
fn deliver(events: &Events) -> impl Fn(Incoming, Charge) + Clone + Send + Sync + 'static {
    let events = events.clone();
    move |m, c| {
        let ev = match m {
            Incoming::Datagram(d) => ClientEvent::Datagram(d),
            Incoming::Message(m) => ClientEvent::Message(m),
        };
        let _ = events.send((ev, Some(c)));
    }
}

async fn run_ws_client(cfg: ClientConfig, events: Events, link: Arc<Mutex<Option<Link>>>) {
    let timed_out = || {
        ClientEvent::Failed(NetError::ConnectTimeout {
            url: cfg.url.clone(),
            millis: cfg.connect_timeout.as_millis() as u64,
        })
    };
    let target = match ws_target(&cfg) {
        Ok(t) => t,
        Err(e) => {
            emit(&events, ClientEvent::Failed(e));
            return;
        }
    };
    if target.tls {
        match tokio::time::timeout(cfg.connect_timeout, open_wss(&cfg, &target)).await {
            Ok(Ok(s)) => drive_ws(&cfg, s, events, link).await,
            Ok(Err(e)) => emit(&events, ClientEvent::Failed(e)),
            Err(_) => emit(&events, timed_out()),
        }
    } else {
        match tokio::time::timeout(cfg.connect_timeout, open_ws(&cfg, &target)).await {
            Ok(Ok(s)) => drive_ws(&cfg, s, events, link).await,
            Ok(Err(e)) => emit(&events, ClientEvent::Failed(e)),
            Err(_) => emit(&events, timed_out()),
        }
    }
}

async fn drive_ws<S>(
    cfg: &ClientConfig,
    stream: tokio_tungstenite::WebSocketStream<S>,
    events: Events,
    link: Arc<Mutex<Option<Link>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = ws::WsSender::new(cfg.send_budget);
    let limits = ReadLimits::new(cfg.partial_budget, cfg.event_budget, Arc::default());
    *link.lock().expect("client link lock") = Some(Link::websocket(tx.clone(), limits.clone()));
    let connected = ClientEvent::Connected {
        max_datagram_size: ws::WS_MAX_DATAGRAM,
    };
    emit(&events, connected);
    debug!("connected over WebSocket");
    let reason = ws::run_link(
        stream,
        tx,
        rx,
        Duration::from_secs(2),
        cfg.idle_timeout,
        &limits,
        deliver(&events),
    )
    .await;
    link.lock().expect("client link lock").take();
    emit(&events, ClientEvent::Closed { reason });
}

/// Where a WebSocket URL points.
struct WsTarget {
    host: String,
    port: u16,
    tls: bool,
}

/// Host and port of a `ws://` or `wss://` URL; `ws://` is checked against the loopback rule.
fn ws_target(cfg: &ClientConfig) -> Result<WsTarget, NetError> {
    use tokio_tungstenite::tungstenite::http::Uri;
    let bad = || NetError::BadUrl(cfg.url.clone());
    let uri: Uri = cfg.url.trim().parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad()),
    };
    let host = uri
        .host()
        .ok_or_else(bad)?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if tls {
        return Ok(WsTarget { host, port, tls });
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !cfg.allow_insecure_websocket {
        return Err(NetError::InsecureWebSocket(cfg.url.clone()));
    }
    Ok(WsTarget { host, port, tls })
}

async fn tcp_connect(
    cfg: &ClientConfig,
    t: &WsTarget,
) -> Result<NoSigPipe<tokio::net::TcpStream>, NetError> {
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| NetError::connect(&cfg.url, ConnectStep::Tcp, e))?;
    let _ = tcp.set_nodelay(true);
    Ok(NoSigPipe(tcp))
}

async fn open_wss(
    cfg: &ClientConfig,
    t: &WsTarget,
) -> Result<
    tokio_tungstenite::WebSocketStream<
        tokio_rustls::client::TlsStream<NoSigPipe<tokio::net::TcpStream>>,
    >,
    NetError,
> {
    let tcp = tcp_connect(cfg, t).await?;
    let name = rustls::pki_types::ServerName::try_from(t.host.clone())
        .map_err(|_| NetError::BadUrl(cfg.url.clone()))?;
    let (tls_cfg, verdict) = crate::tls::client_config(cfg.pins().collect())?;
    let tls = tokio_rustls::TlsConnector::from(tls_cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            verdict
                .error(&cfg.url, &cfg.pins_text())
                .unwrap_or_else(|| NetError::connect(&cfg.url, ConnectStep::Tls, e))
        })?;
    let (stream, _) =
        tokio_tungstenite::client_async_with_config(cfg.url.trim(), tls, Some(ws::config()))
            .await
            .map_err(|e| NetError::connect(&cfg.url, ConnectStep::WebSocket, e))?;
    Ok(stream)
}

async fn open_ws(
    cfg: &ClientConfig,
    t: &WsTarget,
) -> Result<tokio_tungstenite::WebSocketStream<NoSigPipe<tokio::net::TcpStream>>, NetError> {
    let tcp = tcp_connect(cfg, t).await?;
    let (stream, _) =
        tokio_tungstenite::client_async_with_config(cfg.url.trim(), tcp, Some(ws::config()))
            .await
            .map_err(|e| NetError::connect(&cfg.url, ConnectStep::WebSocket, e))?;
    Ok(stream)
}

async fn open(cfg: &ClientConfig) -> Result<Connection, NetError> {
    let endpoint = match &cfg.endpoints {
        Some(pool) => pool.get(
            EndpointKey {
                url: cfg.url.clone(),
                pins: cfg.pins().collect(),
                idle_timeout: cfg.idle_timeout,
                congestion: cfg.congestion,
            },
            || bind_endpoint(cfg),
        )?,
        None => bind_endpoint(cfg)?,
    };
    staggered_handshakes(cfg, &endpoint.0, &endpoint.1).await
}

/// A client QUIC endpoint on a new UDP socket, configured as `cfg` asks: the pinned TLS check,
/// the idle timeout, room for every reliable channel's stream and the congestion controller.
fn bind_endpoint(cfg: &ClientConfig) -> Result<SharedEndpoint, NetError> {
    let (tls, verdict) = crate::tls::webtransport_client_config(cfg.pins().collect())?;
    let mut wt_cfg = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_custom_tls(tls)
        .build();
    // One stream per reliable channel: room for all 256 of them.
    let mut transport = wtransport::quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .max_idle_timeout(Some(
            wtransport::quinn::IdleTimeout::try_from(cfg.idle_timeout)
                .map_err(|e| NetError::IdleTimeout(Cause::new(e)))?,
        ))
        .max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(lanes::MAX_UNI_STREAMS));
    cfg.congestion.apply(&mut transport);
    wt_cfg
        .quic_config_mut()
        .transport_config(Arc::new(transport));
    let endpoint = Endpoint::client(wt_cfg).map_err(|e| NetError::bind("UDP 0.0.0.0:0", e))?;
    Ok(Arc::new((endpoint, verdict)))
}

/// Runs WebTransport handshakes on `endpoint` until one opens the session: a second starts
/// when the first has run [`ClientConfig::handshake_stagger`] without finishing, or at once
/// when it ended in an HTTP/3 handshake race ([`is_h3_handshake_race`]); at most
/// [`HANDSHAKE_ATTEMPTS`] in all. Any other failure (a refusal, a certificate that does not
/// match) is the answer: another handshake would end the same way.
async fn staggered_handshakes(
    cfg: &ClientConfig,
    endpoint: &Endpoint<wtransport::endpoint::endpoint_side::Client>,
    verdict: &crate::tls::PinVerdict,
) -> Result<Connection, NetError> {
    use futures_util::StreamExt;
    use std::sync::atomic::Ordering::Relaxed;

    let attempt = |n: u32| async move { (n, endpoint.connect(cfg.url.as_str()).await) };
    let mut running = futures_util::stream::FuturesUnordered::new();
    running.push(attempt(1));
    let mut started = 1;
    let stagger = tokio::time::sleep(cfg.handshake_stagger);
    tokio::pin!(stagger);
    loop {
        tokio::select! {
            Some((n, result)) = running.next() => match result {
                Ok(c) => return Ok(c),
                Err(e) if is_h3_handshake_race(&e) && (started < HANDSHAKE_ATTEMPTS || !running.is_empty()) => {
                    debug!(attempt = n, "HTTP/3 handshake race ({e}): another handshake");
                    if started < HANDSHAKE_ATTEMPTS {
                        HANDSHAKE_RETRIES.fetch_add(1, Relaxed);
                        started += 1;
                        running.push(attempt(started));
                        stagger.as_mut().reset(tokio::time::Instant::now() + cfg.handshake_stagger);
                    }
                }
                Err(e) => {
                    return Err(verdict
                        .error(&cfg.url, &cfg.pins_text())
                        .unwrap_or_else(|| describe_connect_error(&cfg.url, e)));
                }
            },
            () = &mut stagger, if started < HANDSHAKE_ATTEMPTS => {
                debug!(attempt = started, "handshake not done after {:?}: another beside it", cfg.handshake_stagger);
                HANDSHAKES_STAGGERED.fetch_add(1, Relaxed);
                started += 1;
                running.push(attempt(started));
                stagger.as_mut().reset(tokio::time::Instant::now() + cfg.handshake_stagger);
            }
        }
    }
}

static HANDSHAKES_STAGGERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// WebTransport handshakes of this process started beside one that had not finished after
/// [`ClientConfig::handshake_stagger`], for tests and statistics.
pub fn handshakes_staggered() -> u64 {
    HANDSHAKES_STAGGERED.load(std::sync::atomic::Ordering::Relaxed)
}

static HANDSHAKE_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// WebTransport handshakes of this process retried after an HTTP/3 handshake race (see
/// [`is_h3_handshake_race`]), for tests and statistics.
pub fn handshake_retries() -> u64 {
    HANDSHAKE_RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many WebTransport handshakes [`open`] runs at most for one session (see
/// [`staggered_handshakes`]); all share the connect timeout.
const HANDSHAKE_ATTEMPTS: u32 = 3;

/// Whether a failed WebTransport handshake ended in an HTTP/3 protocol error on either side
/// (codes `0x100..=0x110`, e.g. `261`, `H3_FRAME_UNEXPECTED`) rather than in a refusal.
///
/// wtransport 0.7.2 reads the peer's control stream (SETTINGS) and the CONNECT stream inside
/// a `tokio::select!` whose futures are dropped whenever another branch (an accepted stream,
/// a datagram) finishes first; the frame reads are not cancel-safe, and frames are written in
/// three pieces (type, length, payload), so when a SETTINGS frame arrives split across packets
/// at the wrong moment its first bytes are lost and the rest is parsed as frames (a HEADERS
/// or DATA frame on the control stream: `H3_FRAME_UNEXPECTED`). It is a race in the library's
/// driver, not a protocol disagreement, so a fresh handshake succeeds.
pub(crate) fn is_h3_handshake_race(err: &wtransport::error::ConnectingError) -> bool {
    use wtransport::error::ConnectingError;
    const H3_CODES: std::ops::RangeInclusive<u64> = 0x100..=0x110;
    match err {
        ConnectingError::ConnectionError(ConnectionError::ApplicationClosed(c)) => {
            H3_CODES.contains(&c.code().into_inner())
        }
        ConnectingError::ConnectionError(ConnectionError::LocalH3Error(_)) => true,
        _ => false,
    }
}
