//! The WebSocket fallback link: the same datagrams and reliable messages as a WebTransport
//! session, carried as WebSocket binary messages over one TCP connection.
//!
//! Every WebSocket message is one binary message whose first byte says what it carries:
//! [`ENVELOPE_DATAGRAM`] (an unreliable datagram, at most [`WS_MAX_DATAGRAM`] bytes, so a
//! game that fits WebTransport's datagram limit behaves the same here) or [`ENVELOPE_MESSAGE`]
//! (a reliable message, at most [`MAX_MESSAGE_LEN`]). Anything else (a text message, an empty
//! or unknown envelope, an oversize message) is a protocol violation: the link closes with
//! WebSocket close code `4000 + `[`close_code::PROTOCOL`] and a reason, and nothing else is
//! affected. Application close codes travel as `4000 + code`.
//!
//! The fallback is **unencrypted** (`ws://`): the endpoints refuse it on non-loopback addresses
//! unless explicitly allowed (see `allow_insecure_websocket` on the configs).
//!
//! Both sides send a ping every keep-alive interval and close the link when nothing arrives for
//! the idle timeout, like the QUIC side.
//!
//! Budgets ([`crate::budget`]): the frames waiting for the writer hold at most a send budget of
//! bytes ([`WsSender`]); a send beyond it closes the link with `4000 + `[`SLOW_READER`] (sent
//! as soon as the socket takes it; the link ends a second later either way). Incoming
//! datagrams over the session's event budget are dropped; an incoming message waits for room,
//! which stops reading the socket (TCP flow control then slows the sender).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Instrument, debug, warn};

use crate::NetError;
use crate::budget::{Budget, Charge, ReadLimits, SLOW_READER};
use crate::close::{CloseReason, close_code};
use crate::reliable::MAX_MESSAGE_LEN;

/// Envelope byte of a datagram.
pub const ENVELOPE_DATAGRAM: u8 = 0x00;
/// Envelope byte of a reliable message.
pub const ENVELOPE_MESSAGE: u8 = 0x01;
/// Largest datagram on the WebSocket path, in bytes (a typical WebTransport path limit).
pub const WS_MAX_DATAGRAM: usize = 1400;
/// WebSocket close codes of the application are `WS_CLOSE_BASE + code`.
pub const WS_CLOSE_BASE: u16 = 4000;

/// A command for a link's writer task.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Send this (already enveloped) message; the charge is its bytes in the send budget.
    Frame(Bytes, Charge),
    /// Send a close frame with this application code and reason, then stop.
    Close(u32, String),
}

/// The sending half of a link, shared by its owner's threads: a command queue bounded in bytes.
#[derive(Clone)]
pub(crate) struct WsSender {
    tx: UnboundedSender<Cmd>,
    queued: Arc<Budget>,
    /// Set when the link must close at once (slow reader): the writer stops waiting for the
    /// socket and sends the close frame it holds in `urgent_reason`.
    urgent: Arc<Notify>,
    urgent_reason: Arc<Mutex<Option<(u32, String)>>>,
}

impl WsSender {
    /// A sender and the receiver its link's writer reads, holding at most `send_budget` bytes.
    pub(crate) fn new(send_budget: usize) -> (Self, UnboundedReceiver<Cmd>) {
        let (tx, rx) = unbounded_channel();
        let s = Self {
            tx,
            queued: Budget::new(send_budget),
            urgent: Arc::default(),
            urgent_reason: Arc::default(),
        };
        (s, rx)
    }

    /// Queues one datagram.
    pub(crate) fn send_datagram(&self, data: &[u8]) -> Result<(), NetError> {
        if data.len() > WS_MAX_DATAGRAM {
            return Err(NetError::DatagramTooLarge {
                size: data.len(),
                limit: WS_MAX_DATAGRAM,
            });
        }
        self.send_frame(envelope(ENVELOPE_DATAGRAM, data))
    }

    /// Queues one reliable message.
    pub(crate) fn send_message(&self, data: &[u8]) -> Result<(), NetError> {
        self.send_frame(envelope(ENVELOPE_MESSAGE, data))
    }

    fn send_frame(&self, frame: Bytes) -> Result<(), NetError> {
        let Some(charge) = self.queued.try_charge(frame.len()) else {
            let (queued, budget) = (self.queued.used(), self.queued.limit());
            warn!(
                queued,
                "slow reader: WebSocket send budget exceeded, closing the link"
            );
            *self.urgent_reason.lock().expect("urgent close lock") = Some((
                SLOW_READER,
                format!("slow reader: {queued} bytes waiting, budget {budget}"),
            ));
            self.urgent.notify_one();
            return Err(NetError::SlowReader { queued, budget });
        };
        self.tx
            .send(Cmd::Frame(frame, charge))
            .map_err(|_| NetError::NotConnected)
    }

    /// Asks the writer to send a close frame after what is queued, then stop.
    pub(crate) fn close(&self, code: u32, reason: &str) {
        let _ = self.tx.send(Cmd::Close(code, reason.to_owned()));
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.used()
    }
}

/// What arrived on a link (see [`decode`]).
pub enum Incoming {
    /// An unreliable datagram (the envelope byte removed).
    Datagram(Bytes),
    /// A reliable message (the envelope byte removed).
    Message(Vec<u8>),
}

impl Incoming {
    fn len(&self) -> usize {
        match self {
            Incoming::Datagram(d) => d.len(),
            Incoming::Message(m) => m.len(),
        }
    }
}

/// The WebSocket settings of both sides: messages up to the reliable limit plus the envelope.
pub(crate) fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_LEN + 1))
        .max_frame_size(Some(MAX_MESSAGE_LEN + 1))
}

/// `kind` followed by `data`, as one message.
pub(crate) fn envelope(kind: u8, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(kind);
    v.extend_from_slice(data);
    v.into()
}

/// Decodes one binary WebSocket message; the error text says what was wrong (public for the
/// fuzz targets, `fuzz/fuzz_targets/ws_envelope.rs`).
pub fn decode(b: Bytes) -> Result<Incoming, String> {
    match b.first() {
        Some(&ENVELOPE_DATAGRAM) if b.len() - 1 <= WS_MAX_DATAGRAM => {
            Ok(Incoming::Datagram(b.slice(1..)))
        }
        Some(&ENVELOPE_DATAGRAM) => Err(format!(
            "datagram of {} bytes exceeds the limit of {WS_MAX_DATAGRAM}",
            b.len() - 1
        )),
        Some(&ENVELOPE_MESSAGE) => Ok(Incoming::Message(b[1..].to_vec())),
        Some(k) => Err(format!("unknown WebSocket envelope byte 0x{k:02x}")),
        None => Err("empty WebSocket message".to_owned()),
    }
}

fn close_frame(code: u32, reason: &str) -> CloseFrame {
    // A close reason is at most 123 bytes; cut on a character boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let code = u16::try_from(code)
        .unwrap_or(0)
        .saturating_add(WS_CLOSE_BASE);
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }
}

/// How long a link waits for the peer's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs a link until it ends: incoming messages go to `deliver` with their charge on the event
/// budget of `limits`, commands come from `rx` (`tx` is the sender of the same queue, used to
/// close on a protocol violation).
pub(crate) async fn run_link<S>(
    ws: WebSocketStream<S>,
    tx: WsSender,
    rx: UnboundedReceiver<Cmd>,
    keep_alive: Duration,
    idle_timeout: Duration,
    limits: &ReadLimits,
    mut deliver: impl FnMut(Incoming, Charge),
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let local_close: Arc<Mutex<Option<String>>> = Arc::default();
    let mut writer = tokio::spawn(
        write_loop(sink, rx, keep_alive, local_close.clone(), tx.clone()).in_current_span(),
    );
    let mut writer_done = false;
    let violation = |why: String| {
        // After this side sent its close, a peer that drops the socket without answering
        // is not a violation worth reporting: the link ended for this side's reason.
        if let Some(reason) = local_close.lock().expect("close flag lock").clone() {
            debug!("after the local close: {why}");
            return CloseReason::Locally { why: Some(reason) };
        }
        warn!("protocol violation on the WebSocket link: {why}");
        tx.close(close_code::PROTOCOL, &format!("protocol violation: {why}"));
        CloseReason::PeerViolation { why }
    };
    let closed_here = |fallback: String| {
        local_close
            .lock()
            .expect("close flag lock")
            .clone()
            .map_or(CloseReason::Lost { why: fallback }, |why| {
                CloseReason::Locally { why: Some(why) }
            })
    };
    let ended = loop {
        let wait = if writer_done {
            CLOSE_GRACE
        } else {
            idle_timeout
        };
        let next = tokio::select! {
            next = tokio::time::timeout(wait, stream.next()) => next,
            _ = &mut writer, if !writer_done => {
                // The writer stopped (a close was sent, or the socket failed): give the peer a
                // moment to answer, then end.
                writer_done = true;
                continue;
            }
        };
        let Ok(next) = next else {
            if writer_done {
                break closed_here("connection closed".to_owned());
            }
            tx.close(close_code::NORMAL, "idle timeout");
            break CloseReason::TimedOut;
        };
        match next {
            Some(Ok(Message::Binary(b))) => match decode(b) {
                Ok(m @ Incoming::Datagram(_)) => match limits.events.try_charge(m.len()) {
                    Some(c) => deliver(m, c),
                    None => {
                        limits.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Ok(m) => {
                    let c = limits.events.charge(m.len()).await;
                    deliver(m, c);
                }
                Err(why) => break violation(why),
            },
            Some(Ok(Message::Text(_))) => {
                break violation("text message (only binary messages are allowed)".into());
            }
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(f) => {
                        let raw = u16::from(f.code);
                        CloseReason::ByPeer {
                            code: raw.checked_sub(WS_CLOSE_BASE).map(u32::from),
                            wire: Some(raw.into()),
                            text: f.reason.as_str().to_owned(),
                        }
                    }
                    None => CloseReason::ByPeer {
                        code: None,
                        wire: None,
                        text: String::new(),
                    },
                };
            }
            Some(Ok(_)) => {} // ping, pong
            Some(Err(WsError::Capacity(e))) => break violation(e.to_string()),
            Some(Err(WsError::Protocol(e))) => break violation(e.to_string()),
            Some(Err(e)) => {
                break closed_here(format!("connection lost: {e}"));
            }
            None => {
                break closed_here("connection closed".to_owned());
            }
        }
    };
    // Let the writer send a close frame it was asked for, then stop it.
    if !writer_done {
        let _ = tokio::time::timeout(Duration::from_millis(200), &mut writer).await;
    }
    writer.abort();
    debug!(reason = %ended, "WebSocket link ended");
    ended
}

async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut rx: UnboundedReceiver<Cmd>,
    keep_alive: Duration,
    local_close: Arc<Mutex<Option<String>>>,
    sender: WsSender,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tick = tokio::time::interval(keep_alive);
    tick.tick().await;
    let urgent = sender.urgent.clone();
    loop {
        let out = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Frame(b, _charge)) => Message::Binary(b),
                Some(Cmd::Close(code, reason)) => {
                    *local_close.lock().expect("close flag lock") = Some(reason.clone());
                    let _ = sink.send(Message::Close(Some(close_frame(code, &reason)))).await;
                    return;
                }
                None => {
                    let _ = sink.close().await;
                    return;
                }
            },
            _ = tick.tick() => Message::Ping(Bytes::new()),
            () = urgent.notified() => break,
        };
        // A send waits for the socket; an urgent close does not wait behind it. (The sink
        // buffers a whole frame before flushing, so a send dropped here tears nothing.)
        tokio::select! {
            r = sink.send(out) => if r.is_err() { return },
            () = urgent.notified() => break,
        }
    }
    let Some((code, reason)) = sender
        .urgent_reason
        .lock()
        .expect("urgent close lock")
        .take()
    else {
        return;
    };
    *local_close.lock().expect("close flag lock") = Some(reason.clone());
    let close = Message::Close(Some(close_frame(code, &reason)));
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_bad_ones_are_named() {
        let d = envelope(ENVELOPE_DATAGRAM, b"abc");
        assert_eq!(&d[..], b"\x00abc", "datagram envelope byte 0");
        assert!(matches!(decode(d), Ok(Incoming::Datagram(b)) if &b[..] == b"abc"));
        let m = envelope(ENVELOPE_MESSAGE, b"xyz");
        assert_eq!(&m[..], b"\x01xyz", "message envelope byte 1");
        assert!(matches!(decode(m), Ok(Incoming::Message(v)) if v == b"xyz"));
        let err = decode(Bytes::from_static(b"\x07"))
            .err()
            .expect("unknown kind");
        assert!(err.contains("0x07"), "{err}");
        let err = decode(Bytes::new()).err().expect("empty");
        assert!(err.contains("empty"), "{err}");
        let big = envelope(ENVELOPE_DATAGRAM, &vec![0; WS_MAX_DATAGRAM + 1]);
        let err = decode(big).err().expect("oversize datagram");
        assert!(err.contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn close_reasons_are_cut_to_fit_a_close_frame() {
        let f = close_frame(1, &"é".repeat(100));
        assert!(f.reason.len() <= 123, "{}", f.reason.len());
        assert_eq!(u16::from(f.code), 4001);
    }
}
