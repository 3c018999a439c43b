//! Reliable channels over WebTransport: one QUIC unidirectional stream per channel and direction.
//!
//! A sender opens the stream of a channel the first time it sends on it and writes a 5-byte
//! header, [`LANE_MAGIC`] then the channel number; after that, the stream carries
//! length-prefixed messages ([`crate::reliable`]). Because every channel has its own stream,
//! a lost packet or a half-sent large message on one channel never holds back another channel
//! (QUIC retransmits per stream); messages of one channel stay in order.
//!
//! A receiver accepts any number of such streams. A stream with a wrong header, or a message
//! longer than [`MAX_MESSAGE_LEN`], ends the whole session with
//! [`close_code::PROTOCOL`](crate::close::close_code::PROTOCOL) and a reason that says which.
//!
//! Budgets ([`crate::budget`]): each channel's send queue holds at most `send_budget` bytes; a send beyond it closes the session with
//! [`SLOW_READER`] and returns [`NetError::SlowReader`]. On the receiving side a message's bytes
//! count against the session's partial-message budget while they arrive (over it: a protocol
//! close), then against its event budget until the owner takes the message; a full event
//! budget stops the stream's reader, so QUIC flow control slows the sender.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{Instrument, debug, warn};
use wtransport::{Connection, VarInt};

use crate::NetError;
use crate::budget::{Budget, Charge, ReadLimits, SLOW_READER};
use crate::close::close_code;
use crate::reliable::{self, MAX_MESSAGE_LEN, StreamError};

/// First bytes of every reliable channel stream (magic and version 1); the channel byte follows.
pub const LANE_MAGIC: [u8; 4] = *b"FBC1";

/// Most unidirectional streams a peer may have open at once: 256 channels plus HTTP/3's own.
pub(crate) const MAX_UNI_STREAMS: u32 = 300;

/// How long a new stream may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

struct Lane {
    tx: UnboundedSender<(Vec<u8>, Charge)>,
    queued: Arc<Budget>,
}

/// The sending side: a queue per channel, each drained in order by its own task and holding at
/// most `send_budget` bytes.
pub(crate) struct Lanes {
    conn: Connection,
    handle: Handle,
    send_budget: usize,
    lanes: Mutex<HashMap<u8, Lane>>,
    /// Told once when the session is closed as a slow reader: the writers reset their streams.
    abort: Arc<tokio::sync::Notify>,
}

impl Lanes {
    pub(crate) fn new(conn: Connection, send_budget: usize) -> Self {
        Self {
            conn,
            handle: crate::current_or_shared(),
            send_budget,
            lanes: Mutex::new(HashMap::new()),
            abort: Arc::default(),
        }
    }

    /// Queues `msg` on `channel`, opening the channel's stream on first use. Over the channel's
    /// send budget, the session is closed with [`SLOW_READER`].
    pub(crate) fn send(&self, channel: u8, msg: Vec<u8>) -> Result<(), NetError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(msg.len()));
        }
        let mut lanes = self.lanes.lock().expect("lane map lock");
        let lane = lanes.entry(channel).or_insert_with(|| {
            let (tx, rx) = unbounded_channel();
            self.handle.spawn(
                write_lane(self.conn.clone(), channel, rx, self.abort.clone())
                    .instrument(tracing::debug_span!("lane", channel)),
            );
            Lane {
                tx,
                queued: Budget::new(self.send_budget),
            }
        });
        let Some(charge) = lane.queued.try_charge(msg.len()) else {
            let queued = lane.queued.used();
            warn!(
                queued,
                channel, "slow reader: send budget exceeded, closing the session"
            );
            let reason = format!(
                "slow reader: {queued} bytes waiting on channel {channel}, budget {}",
                self.send_budget
            );
            self.handle.spawn(close_slow_reader(
                self.conn.clone(),
                self.abort.clone(),
                reason,
            ));
            return Err(NetError::SlowReader {
                queued,
                budget: self.send_budget,
            });
        };
        lane.tx
            .send((msg, charge))
            .map_err(|_| NetError::NotConnected)
    }

    /// Bytes waiting in the send queues of every channel.
    pub(crate) fn queued_bytes(&self) -> usize {
        let lanes = self.lanes.lock().expect("lane map lock");
        lanes.values().map(|l| l.queued.used()).sum()
    }
}

/// Closes a slow reader's session so that it hears why. quinn 0.11 sends a close subject to
/// congestion control while stream data is pending, and ignores acknowledgements once closing:
/// a close made while the window is full of unread data is never sent, and the peer sees a
/// stateless reset instead of the code. So the writers first reset their streams (dropping
/// the pending data) and the close follows once the data in flight had time to be
/// acknowledged (two round trips, at least 50 ms).
async fn close_slow_reader(conn: Connection, abort: Arc<tokio::sync::Notify>, reason: String) {
    abort.notify_waiters();
    let wait = (conn.rtt() * 2).max(Duration::from_millis(50));
    tokio::time::sleep(wait).await;
    conn.close(VarInt::from_u32(SLOW_READER), reason.as_bytes());
}

async fn write_lane(
    conn: Connection,
    channel: u8,
    mut rx: UnboundedReceiver<(Vec<u8>, Charge)>,
    abort: Arc<tokio::sync::Notify>,
) {
    let aborted = abort.notified();
    tokio::pin!(aborted);
    aborted.as_mut().enable();
    let opened = async {
        let mut s = conn
            .open_uni()
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let mut header = [0u8; 5];
        header[..4].copy_from_slice(&LANE_MAGIC);
        header[4] = channel;
        tokio::io::AsyncWriteExt::write_all(&mut s, &header)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(s)
    }
    .await;
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => {
            debug!("cannot open the stream of channel {channel}: {e}");
            return;
        }
    };
    // The charge is given back once the message is in QUIC's send buffer (itself bounded by
    // the peer's flow control window).
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((m, _charge)) = next else { return };
                tokio::select! {
                    r = reliable::write_message(&mut stream, &m) => if r.is_err() { return },
                    () = aborted.as_mut() => break,
                }
            }
            () = aborted.as_mut() => break,
        }
    }
    let _ = stream.reset(VarInt::from_u32(SLOW_READER));
}

/// Accepts the peer's channel streams until the connection ends; every complete message is
/// handed to `deliver` (in order per channel) with its charge on the event budget. Returns
/// the session's end as the WebTransport layer saw it: unlike the QUIC connection's own
/// reason, it keeps the code of a session closed on its CONNECT stream (and names an
/// HTTP/3 error that made this side close).
pub(crate) async fn accept_lanes<F>(
    conn: Connection,
    limits: ReadLimits,
    deliver: F,
) -> wtransport::error::ConnectionError
where
    F: Fn(Vec<u8>, Charge) + Clone + Send + Sync + 'static,
{
    loop {
        match conn.accept_uni().await {
            Ok(recv) => {
                tokio::spawn(
                    read_lane(conn.clone(), recv, limits.clone(), deliver.clone())
                        .in_current_span(),
                );
            }
            Err(e) => return e,
        }
    }
}

/// Closes the session for a protocol violation, remembering why for this side's report.
fn close_for(conn: &Connection, limits: &ReadLimits, reason: String) {
    warn!("{reason}: closing the session");
    let _ = limits.local_close.set(reason.clone());
    conn.close(VarInt::from_u32(close_code::PROTOCOL), reason.as_bytes());
}

async fn read_lane<F>(
    conn: Connection,
    mut recv: wtransport::RecvStream,
    limits: ReadLimits,
    deliver: F,
) where
    F: Fn(Vec<u8>, Charge),
{
    let mut header = [0u8; 5];
    let read = tokio::time::timeout(HEADER_TIMEOUT, recv.read_exact(&mut header)).await;
    if !matches!(read, Ok(Ok(_))) || header[..4] != LANE_MAGIC {
        close_for(
            &conn,
            &limits,
            format!("bad reliable stream header {header:?} (expected FBC1 and a channel byte)"),
        );
        return;
    }
    let channel = header[4];
    loop {
        match reliable::read_message_within(&mut recv, Some(&limits.partial)).await {
            Ok(Some((m, partial))) => {
                // Hold the partial charge until the event budget takes the message.
                let charge = limits.events.charge(m.len()).await;
                drop(partial);
                deliver(m, charge);
            }
            Ok(None) => return,
            Err(StreamError::TooLong(n)) => {
                close_for(
                    &conn,
                    &limits,
                    format!(
                        "reliable message of {n} bytes on channel {channel} exceeds the limit of {MAX_MESSAGE_LEN}"
                    ),
                );
                return;
            }
            Err(e @ StreamError::PartialBudget(_)) => {
                close_for(&conn, &limits, format!("channel {channel}: {e}"));
                return;
            }
            Err(StreamError::Io(_)) => return,
        }
    }
}
