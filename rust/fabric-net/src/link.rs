//! One open session, WebTransport or WebSocket, as both ends use it: sending datagrams and
//! reliable messages, closing, the session's read budgets, and reading a WebTransport session
//! until it ends.
//!
//! Below the client and the server (which only say what an arriving datagram or message
//! becomes), above the channel streams ([`crate::lanes`]), the WebSocket link ([`crate::ws`])
//! and the close report ([`crate::close`]). A transport concern (the message size check, the
//! datagram limit, how a close is remembered for this side's report) is written here once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;
use wtransport::error::{ConnectionError, SendDatagramError};
use wtransport::{Connection, VarInt};

use crate::NetError;
use crate::budget::{Charge, ReadLimits};
use crate::close::{CloseReason, close_report};
use crate::lanes::{self, Lanes};
use crate::reliable::MAX_MESSAGE_LEN;
use crate::ws::{self, Incoming};

/// How one session's bytes travel.
enum Transport {
    /// WebTransport: datagrams on the QUIC connection, one stream per reliable channel.
    Wt { conn: Connection, lanes: Lanes },
    /// The WebSocket fallback: everything through the link's writer.
    Ws { tx: ws::WsSender },
}

/// An open session: its transport and the budgets of what it receives.
pub(crate) struct Link {
    transport: Transport,
    limits: ReadLimits,
}

impl Link {
    /// A WebTransport session whose reliable channels each queue at most `send_budget` bytes.
    pub(crate) fn webtransport(conn: &Connection, send_budget: usize, limits: ReadLimits) -> Self {
        let lanes = Lanes::new(conn.clone(), send_budget);
        Self {
            transport: Transport::Wt {
                conn: conn.clone(),
                lanes,
            },
            limits,
        }
    }

    /// A WebSocket session sending through `tx`.
    pub(crate) fn websocket(tx: ws::WsSender, limits: ReadLimits) -> Self {
        Self {
            transport: Transport::Ws { tx },
            limits,
        }
    }

    /// The budgets of what the session receives.
    pub(crate) fn limits(&self) -> &ReadLimits {
        &self.limits
    }

    /// Sends one datagram. Too large for the path: an error, never a silent drop.
    pub(crate) fn send_datagram(&self, data: &[u8]) -> Result<(), NetError> {
        match &self.transport {
            Transport::Wt { conn, .. } => send_datagram(conn, Bytes::copy_from_slice(data)),
            Transport::Ws { tx } => tx.send_datagram(data),
        }
    }

    /// Queues one reliable message on `channel` (WebSocket: one ordered connection for all).
    pub(crate) fn send_message(&self, channel: u8, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(data.len()));
        }
        match &self.transport {
            Transport::Wt { lanes, .. } => lanes.send(channel, data),
            Transport::Ws { tx } => tx.send_message(&data),
        }
    }

    /// Closes the session with an application code and a reason the peer will see. A
    /// WebTransport close is remembered as this side's reason; a WebSocket link's writer sends
    /// the close frame after what is queued, and the link then ends by itself.
    pub(crate) fn close(&self, code: u32, reason: &str) {
        match &self.transport {
            Transport::Wt { conn, .. } => {
                let _ = self
                    .limits
                    .local_close
                    .set(format!("{reason} (code {code})"));
                conn.close(VarInt::from_u32(code), reason.as_bytes());
            }
            Transport::Ws { tx } => tx.close(code, reason),
        }
    }

    /// Largest datagram the path takes now (`None`: WebTransport datagrams are unusable).
    pub(crate) fn max_datagram_size(&self) -> Option<usize> {
        match &self.transport {
            Transport::Wt { conn, .. } => conn.max_datagram_size(),
            Transport::Ws { .. } => Some(ws::WS_MAX_DATAGRAM),
        }
    }

    /// Smoothed round-trip time (WebTransport only).
    pub(crate) fn rtt(&self) -> Option<Duration> {
        match &self.transport {
            Transport::Wt { conn, .. } => Some(conn.rtt()),
            Transport::Ws { .. } => None,
        }
    }

    /// Whether this is a WebSocket fallback session.
    pub(crate) fn is_websocket(&self) -> bool {
        matches!(self.transport, Transport::Ws { .. })
    }

    /// Bytes waiting to be sent (all reliable channels, or the WebSocket link).
    pub(crate) fn queued_bytes(&self) -> usize {
        match &self.transport {
            Transport::Wt { lanes, .. } => lanes.queued_bytes(),
            Transport::Ws { tx } => tx.queued_bytes(),
        }
    }
}

/// Sends one datagram on a WebTransport session; too large for the path is an error.
pub(crate) fn send_datagram(conn: &Connection, data: Bytes) -> Result<(), NetError> {
    let size = data.len();
    conn.send_datagram(data).map_err(|e| match e {
        SendDatagramError::TooLarge => NetError::DatagramTooLarge {
            size,
            limit: conn.max_datagram_size().unwrap_or(0),
        },
        SendDatagramError::NotConnected => NetError::NotConnected,
        SendDatagramError::UnsupportedByPeer => NetError::DatagramsUnsupported,
    })
}

/// Reads a WebTransport session until it ends: datagrams (over the event budget of `limits`:
/// dropped and counted, like a datagram lost on the way) and the messages of every reliable
/// channel go to `deliver` with their charge. After the connection closes, the readers get
/// `settle` to hand over what already arrived. Returns why the session ended
/// ([`close_report`]).
pub(crate) async fn read_webtransport<F>(
    conn: &Connection,
    limits: &ReadLimits,
    settle: Duration,
    deliver: F,
) -> CloseReason
where
    F: Fn(Incoming, Charge) + Clone + Send + Sync + 'static,
{
    let mut streams = tokio::spawn({
        let deliver = deliver.clone();
        lanes::accept_lanes(conn.clone(), limits.clone(), move |m, c| {
            deliver(Incoming::Message(m), c)
        })
        .in_current_span()
    });
    let datagrams = tokio::spawn({
        let (conn, events, dropped) = (conn.clone(), limits.events.clone(), limits.dropped.clone());
        async move {
            while let Ok(d) = conn.receive_datagram().await {
                let data = d.payload();
                match events.try_charge(data.len()) {
                    Some(c) => deliver(Incoming::Datagram(data), c),
                    None => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        .in_current_span()
    });
    let err = conn.closed().await;
    if !settle.is_zero() {
        tokio::time::sleep(settle).await;
    }
    datagrams.abort();
    // QUIC says only "closed locally" when this side's HTTP/3 layer ended the session (the
    // peer closed its CONNECT stream, or broke HTTP/3): the stream acceptor has the reason.
    let session_end = if matches!(err, ConnectionError::LocallyClosed) {
        tokio::time::timeout(Duration::from_millis(200), &mut streams)
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    streams.abort();
    close_report(&err, session_end, limits.local_close.get())
}
