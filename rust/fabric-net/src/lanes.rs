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
//! [`close_code::PROTOCOL`](crate::server::close_code::PROTOCOL) and a reason that says which.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{Instrument, debug, warn};
use wtransport::{Connection, VarInt};

use crate::NetError;
use crate::reliable::{self, MAX_MESSAGE_LEN, StreamError};
use crate::server::close_code;

/// First bytes of every reliable channel stream (magic and version 1); the channel byte follows.
pub const LANE_MAGIC: [u8; 4] = *b"FBC1";

/// Most unidirectional streams a peer may have open at once: 256 channels plus HTTP/3's own.
pub(crate) const MAX_UNI_STREAMS: u32 = 300;

/// How long a new stream may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending side: a queue per channel, each drained in order by its own task.
pub(crate) struct Lanes {
    conn: Connection,
    handle: Handle,
    lanes: Mutex<HashMap<u8, UnboundedSender<Vec<u8>>>>,
}

impl Lanes {
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            conn,
            handle: crate::current_or_shared(),
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `msg` on `channel`, opening the channel's stream on first use.
    pub(crate) fn send(&self, channel: u8, msg: Vec<u8>) -> Result<(), NetError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(NetError::MessageTooLarge(msg.len()));
        }
        let mut lanes = self.lanes.lock().expect("lane map lock");
        let tx = lanes.entry(channel).or_insert_with(|| {
            let (tx, rx) = unbounded_channel();
            self.handle.spawn(
                write_lane(self.conn.clone(), channel, rx)
                    .instrument(tracing::debug_span!("lane", channel)),
            );
            tx
        });
        tx.send(msg).map_err(|_| NetError::NotConnected)
    }
}

async fn write_lane(conn: Connection, channel: u8, mut rx: UnboundedReceiver<Vec<u8>>) {
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
    while let Some(m) = rx.recv().await {
        if reliable::write_message(&mut stream, &m).await.is_err() {
            return;
        }
    }
}

/// Accepts the peer's channel streams until the connection ends; every complete message is
/// handed to `deliver` (in order per channel).
pub(crate) async fn accept_lanes<F>(conn: Connection, deliver: F)
where
    F: Fn(Vec<u8>) + Clone + Send + Sync + 'static,
{
    while let Ok(recv) = conn.accept_uni().await {
        tokio::spawn(read_lane(conn.clone(), recv, deliver.clone()).in_current_span());
    }
}

async fn read_lane<F>(conn: Connection, mut recv: wtransport::RecvStream, deliver: F)
where
    F: Fn(Vec<u8>),
{
    let mut header = [0u8; 5];
    let read = tokio::time::timeout(HEADER_TIMEOUT, recv.read_exact(&mut header)).await;
    if !matches!(read, Ok(Ok(_))) || header[..4] != LANE_MAGIC {
        warn!("bad reliable stream header {header:?}: closing the session");
        conn.close(
            VarInt::from_u32(close_code::PROTOCOL),
            b"bad reliable stream header (expected FBC1 and a channel byte)",
        );
        return;
    }
    let channel = header[4];
    loop {
        match reliable::read_message(&mut recv).await {
            Ok(Some(m)) => deliver(m),
            Ok(None) => return,
            Err(StreamError::TooLong(n)) => {
                warn!(n, channel, "oversize reliable message: closing the session");
                conn.close(
                    VarInt::from_u32(close_code::PROTOCOL),
                    format!("reliable message of {n} bytes on channel {channel} exceeds the limit of {MAX_MESSAGE_LEN}")
                        .as_bytes(),
                );
                return;
            }
            Err(StreamError::Io(_)) => return,
        }
    }
}
