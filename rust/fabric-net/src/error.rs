//! Errors of the network crate, worded for the person reading a log.

use thiserror::Error;

/// What went wrong in an endpoint or session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetError {
    /// A certificate hash string could not be parsed.
    #[error("invalid certificate hash `{0}`: expected 32 bytes as base64 or hex (colons allowed)")]
    BadCertHash(String),
    /// The server identity could not be created or loaded.
    #[error("cannot create the server identity: {0}")]
    Identity(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP {addr}: {reason}")]
    Bind {
        /// Address that was tried.
        addr: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The URL is not a valid `https://host:port/path` URL.
    #[error("invalid URL `{0}`: expected https://host:port/path")]
    BadUrl(String),
    /// No answer within the connect timeout.
    #[error("no answer from {url} within {} s (is the server running and reachable?)", *millis as f64 / 1000.0)]
    ConnectTimeout {
        /// The URL tried.
        url: String,
        /// The timeout in milliseconds.
        millis: u64,
    },
    /// The server's certificate is not the pinned one (or not one WebTransport can pin).
    #[error(
        "TLS handshake with {url} failed: the server presented the certificate {presented}, which \
         does not match the pinned hash {pinned} (or is not a self-signed certificate valid at \
         most 14 days)"
    )]
    CertMismatch {
        /// The URL tried.
        url: String,
        /// The pinned hash or hashes (base64, comma-separated).
        pinned: String,
        /// The SHA-256 hash (base64) of the certificate the server presented.
        presented: String,
    },
    /// The server's certificate has expired or is not valid yet.
    #[error(
        "TLS handshake with {url} failed: the server certificate {presented} is expired or not \
         yet valid"
    )]
    CertExpired {
        /// The URL tried.
        url: String,
        /// The SHA-256 hash (base64) of the certificate the server presented.
        presented: String,
    },
    /// Any other handshake failure.
    #[error("cannot open a session to {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The session ended.
    #[error("session closed: {0}")]
    Closed(String),
    /// A datagram is larger than the path allows; it was not sent.
    #[error(
        "datagram of {size} bytes exceeds the session's limit of {limit} bytes; it was not sent"
    )]
    DatagramTooLarge {
        /// Size of the refused datagram.
        size: usize,
        /// Current limit.
        limit: usize,
    },
    /// The session or endpoint is not connected (any more).
    #[error("not connected")]
    NotConnected,
    /// An unencrypted `ws://` session to a non-loopback host was asked for.
    #[error(
        "refusing unencrypted WebSocket (ws://) to the non-loopback address {0}: \
         use wss:// (pinned), or allow it explicitly (allow_insecure_websocket) if you accept that"
    )]
    InsecureWebSocket(String),
    /// The peer does not read what it is sent: the send queue holds `queued` bytes and this
    /// message does not fit its budget. The session was closed with
    /// [`crate::budget::SLOW_READER`]; nothing was sent.
    #[error(
        "the peer reads too slowly: {queued} bytes already wait to be sent (budget {budget}); \
         the session was closed"
    )]
    SlowReader {
        /// Bytes waiting in the queue.
        queued: usize,
        /// The queue's budget in bytes.
        budget: usize,
    },
    /// A reliable message is larger than [`crate::reliable::MAX_MESSAGE_LEN`].
    #[error("reliable message of {0} bytes exceeds the limit of {max} bytes", max = crate::reliable::MAX_MESSAGE_LEN)]
    MessageTooLarge(usize),
}

/// Turns a `wtransport` connect error into a [`NetError`] that names the cause in plain words.
/// A refused certificate is not among them: the client's own pin check reports it, typed, with
/// the presented certificate's hash.
pub fn describe_connect_error(url: &str, err: &wtransport::error::ConnectingError) -> NetError {
    match err {
        wtransport::error::ConnectingError::InvalidUrl(_) => NetError::BadUrl(url.to_owned()),
        other => NetError::Connect {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}
