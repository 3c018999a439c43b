//! A WebTransport client session reported as events.
//!
//! [`Client::connect`] returns at once; the handshake runs on the background runtime and ends in
//! [`ClientEvent::Connected`] or [`ClientEvent::Failed`] (with a [`NetError`] that says what went
//! wrong: timeout, certificate mismatch, refused ...). The server certificate is always pinned by
//! hash; there is no "accept anything" mode.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span};
use wtransport::error::ConnectionError;
use wtransport::{Connection, Endpoint, VarInt};

use crate::cert::CertHash;
use crate::reliable::{self, MAX_MESSAGE_LEN};
use crate::server::{STREAM_PREAMBLE, close_code, send_datagram};
use crate::{NetError, describe_connect_error};

/// Where and how a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:port/path`.
    pub url: String,
    /// The server certificate hash to pin.
    pub pin: CertHash,
    /// Give up when the session is not open after this long.
    pub connect_timeout: Duration,
    /// Close the session after this long without traffic.
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: 5 s connect timeout, 10 s idle timeout.
    pub fn new(url: impl Into<String>, pin: CertHash) -> Self {
        Self {
            url: url.into(),
            pin,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
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
    /// A reliable message arrived (in order).
    Message(Vec<u8>),
    /// The open session ended; no more events follow.
    Closed {
        /// Why, in words.
        reason: String,
        /// The server's application close code, when it closed the session itself.
        code: Option<u32>,
    },
}

struct Link {
    conn: Connection,
    reliable: UnboundedSender<Vec<u8>>,
}

/// A client session.
pub struct Client {
    events: UnboundedReceiver<ClientEvent>,
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
        let task = handle.spawn(run_client(cfg, tx, link.clone()).instrument(span));
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
        self.events.try_recv().ok()
    }

    /// Waits for the next event; `None` once the session is over and every event was read.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// Sends one datagram. Too large for the path: an error, never a silent drop.
    pub fn send_datagram(&self, data: &[u8]) -> Result<(), NetError> {
        let link = self.link.lock().expect("client link lock");
        let link = link.as_ref().ok_or(NetError::NotConnected)?;
        send_datagram(&link.conn, Bytes::copy_from_slice(data))
    }

    /// Queues one reliable message (delivered in order).
    pub fn send_message(&self, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(data.len()));
        }
        let link = self.link.lock().expect("client link lock");
        let link = link.as_ref().ok_or(NetError::NotConnected)?;
        link.reliable.send(data).map_err(|_| NetError::NotConnected)
    }

    /// Largest datagram the path takes now (0 when not connected).
    pub fn max_datagram_size(&self) -> usize {
        self.link
            .lock()
            .expect("client link lock")
            .as_ref()
            .and_then(|l| l.conn.max_datagram_size())
            .unwrap_or(0)
    }

    /// Smoothed round-trip time, when connected.
    pub fn rtt(&self) -> Option<Duration> {
        self.link
            .lock()
            .expect("client link lock")
            .as_ref()
            .map(|l| l.conn.rtt())
    }

    /// Closes the session (or abandons the attempt).
    pub fn close(&self, reason: &str) {
        if let Some(l) = self.link.lock().expect("client link lock").take() {
            l.conn
                .close(VarInt::from_u32(close_code::NORMAL), reason.as_bytes());
        }
        self.task.abort();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close("client dropped");
    }
}

/// Describes why a connection ended, in words (the peer's reason text when it gave one).
pub fn describe_close(err: &ConnectionError) -> String {
    match err {
        ConnectionError::ApplicationClosed(c) => {
            let text = String::from_utf8_lossy(c.reason());
            if text.is_empty() {
                format!("closed by peer (code {})", c.code().into_inner())
            } else {
                format!("closed by peer: {text}")
            }
        }
        ConnectionError::LocallyClosed => "closed locally".to_owned(),
        ConnectionError::TimedOut => "timed out: no traffic from the peer".to_owned(),
        other => other.to_string(),
    }
}

async fn run_client(
    cfg: ClientConfig,
    events: UnboundedSender<ClientEvent>,
    link: Arc<Mutex<Option<Link>>>,
) {
    let conn = match tokio::time::timeout(cfg.connect_timeout, open(&cfg)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let _ = events.send(ClientEvent::Failed(e));
            return;
        }
        Err(_) => {
            let _ = events.send(ClientEvent::Failed(NetError::ConnectTimeout {
                url: cfg.url.clone(),
                millis: cfg.connect_timeout.as_millis() as u64,
            }));
            return;
        }
    };
    let (mut send, mut recv) = match open_stream(&conn).await {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(ClientEvent::Failed(NetError::Connect {
                url: cfg.url.clone(),
                reason: format!("cannot open the reliable stream: {e}"),
            }));
            return;
        }
    };
    let (rel_tx, mut rel_rx) = unbounded_channel::<Vec<u8>>();
    *link.lock().expect("client link lock") = Some(Link {
        conn: conn.clone(),
        reliable: rel_tx,
    });
    let _ = events.send(ClientEvent::Connected {
        max_datagram_size: conn.max_datagram_size().unwrap_or(0),
    });
    debug!("connected");

    let writer = tokio::spawn(
        async move {
            while let Some(m) = rel_rx.recv().await {
                if reliable::write_message(&mut send, &m).await.is_err() {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    let reader = tokio::spawn({
        let events = events.clone();
        async move {
            while let Ok(Some(m)) = reliable::read_message(&mut recv).await {
                if events.send(ClientEvent::Message(m)).is_err() {
                    break;
                }
            }
        }
        .in_current_span()
    });
    let datagrams = tokio::spawn({
        let (events, conn) = (events.clone(), conn.clone());
        async move {
            while let Ok(d) = conn.receive_datagram().await {
                if events.send(ClientEvent::Datagram(d.payload())).is_err() {
                    break;
                }
            }
        }
        .in_current_span()
    });
    let err = conn.closed().await;
    // Let the reader hand over what already arrived before reporting the close.
    let _ = tokio::time::timeout(Duration::from_millis(50), reader).await;
    writer.abort();
    datagrams.abort();
    link.lock().expect("client link lock").take();
    let code = match &err {
        ConnectionError::ApplicationClosed(c) => u32::try_from(c.code().into_inner()).ok(),
        _ => None,
    };
    let _ = events.send(ClientEvent::Closed {
        reason: describe_close(&err),
        code,
    });
}

async fn open(cfg: &ClientConfig) -> Result<Connection, NetError> {
    let wt_cfg = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([cfg.pin.digest()])
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .max_idle_timeout(Some(cfg.idle_timeout))
        .map_err(|e| NetError::Connect {
            url: cfg.url.clone(),
            reason: format!("bad idle timeout: {e}"),
        })?
        .build();
    let endpoint = Endpoint::client(wt_cfg).map_err(|e| NetError::Bind {
        addr: "0.0.0.0:0".into(),
        reason: e.to_string(),
    })?;
    endpoint
        .connect(cfg.url.as_str())
        .await
        .map_err(|e| describe_connect_error(&cfg.url, &cfg.pin.to_base64(), &e))
}

async fn open_stream(
    conn: &Connection,
) -> Result<(wtransport::SendStream, wtransport::RecvStream), String> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    tokio::io::AsyncWriteExt::write_all(&mut send, &STREAM_PREAMBLE)
        .await
        .map_err(|e| e.to_string())?;
    Ok((send, recv))
}
