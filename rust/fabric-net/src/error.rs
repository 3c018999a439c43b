//! Errors of the network crate, worded for the person reading a log.
//!
//! Causes are typed: our own ([`IdentityError`], [`RotationProblem`], [`ConnectStep`]) or the
//! underlying library's error, kept as its own type in a [`Cause`] (`source()` reaches it and
//! [`Cause::downcast_ref`] names it), so nothing has to read an error's text to know what it is.

use std::sync::Arc;

use thiserror::Error;

/// An underlying library's error (an I/O error, a TLS or QUIC error, ...) kept as its own type
/// and shared by the clones of the error that carries it. Two causes are equal when they say
/// the same thing.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Keeps `err` as a cause.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// The cause as the type it was made from, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }

    /// The kind of an I/O cause (`None` for other causes).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// Which step of opening a session failed (the words before its cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStep {
    /// The WebTransport handshake (QUIC and HTTP/3).
    WebTransport,
    /// The TCP connection of a WebSocket session.
    Tcp,
    /// The TLS handshake of a `wss://` session.
    Tls,
    /// The WebSocket upgrade.
    WebSocket,
}

impl std::fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectStep::WebTransport => "",
            ConnectStep::Tcp => "TCP connect failed: ",
            ConnectStep::Tls => "TLS handshake failed: ",
            ConnectStep::WebSocket => "WebSocket handshake failed: ",
        })
    }
}

/// Why certificate rotation settings are refused ([`crate::CertRotation::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RotationProblem {
    /// The certificates' validity is not 1 to 14 days.
    #[error("validity of {0} days is not in 1..=14")]
    ValidityDays(u32),
    /// The interval is shorter than the least allowed or longer than half the validity.
    #[error(
        "interval of {every_s} s must be at least {min_s} s and at most half the validity of \
         {validity_days} days"
    )]
    Interval {
        /// The interval asked for, seconds.
        every_s: u64,
        /// The least interval, seconds.
        min_s: u64,
        /// The certificates' validity, days.
        validity_days: u32,
    },
    /// No host name for the new certificates.
    #[error("no host names for the new certificates")]
    NoNames,
}

/// Why a server identity (certificate and key) could not be made, loaded or installed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The certificate could not be generated.
    #[error("cannot generate the certificate: {0}")]
    Generate(#[source] Cause),
    /// A validity bound is outside what a certificate can hold.
    #[error("certificate time out of range: {0}")]
    TimeOutOfRange(#[source] Cause),
    /// The PEM files could not be read or parsed.
    #[error("{cert} / {key}: {cause}")]
    Load {
        /// The certificate chain's file.
        cert: String,
        /// The private key's file.
        key: String,
        /// Why.
        #[source]
        cause: Cause,
    },
    /// The certificate's validity period cannot be read.
    #[error("{0}")]
    Validity(#[source] crate::ValidityProblem),
    /// The TLS configuration of `wss://` or of a pinned client refuses the certificate or key.
    #[error("TLS set-up: {0}")]
    Tls(#[source] Cause),
    /// The QUIC endpoint refused the new certificate (rotation).
    #[error("cannot install the new certificate: {0}")]
    Install(#[source] Cause),
    /// The rotation settings are not usable.
    #[error("certificate rotation: {0}")]
    Rotation(#[from] RotationProblem),
    /// The file of certificate hashes could not be written.
    #[error("cannot write {path}: {cause}")]
    WriteHashes {
        /// The file.
        path: String,
        /// Why.
        #[source]
        cause: Cause,
    },
}

/// What went wrong in an endpoint or session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetError {
    /// A certificate hash string could not be parsed.
    #[error("invalid certificate hash `{0}`: expected 32 bytes as base64 or hex (colons allowed)")]
    BadCertHash(String),
    /// The server identity could not be created, loaded or installed.
    #[error("cannot create the server identity: {0}")]
    Identity(#[from] IdentityError),
    /// A socket could not be bound or set up.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// What was tried: `UDP host:port`, `TCP host:port`.
        addr: String,
        /// The operating system's reason (an [`std::io::Error`]: see [`Cause::io_kind`]).
        #[source]
        cause: Cause,
    },
    /// The idle timeout is out of QUIC's range.
    #[error("bad idle timeout: {0}")]
    IdleTimeout(#[source] Cause),
    /// A server was asked to listen on neither WebTransport nor WebSocket.
    #[error("cannot listen on {0}: neither WebTransport nor WebSocket is enabled")]
    NoTransport(String),
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
    #[error("cannot open a session to {url}: {step}{cause}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Which step failed.
        step: ConnectStep,
        /// The library's error (e.g. a `wtransport::error::ConnectingError`, an
        /// [`std::io::Error`], a `tokio_tungstenite` error).
        #[source]
        cause: Cause,
    },
    /// The peer does not accept datagrams (it did not negotiate them); nothing was sent.
    #[error("session closed: the peer does not accept datagrams")]
    DatagramsUnsupported,
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

/// Turns a `wtransport` connect error into a [`NetError`] that keeps it as the cause. A
/// refused certificate is not among them: the client's own pin check reports it, typed, with
/// the presented certificate's hash.
pub fn describe_connect_error(url: &str, err: wtransport::error::ConnectingError) -> NetError {
    match err {
        wtransport::error::ConnectingError::InvalidUrl(_) => NetError::BadUrl(url.to_owned()),
        other => NetError::Connect {
            url: url.to_owned(),
            step: ConnectStep::WebTransport,
            cause: Cause::new(other),
        },
    }
}

impl NetError {
    /// A socket error of binding `addr`.
    pub(crate) fn bind(addr: impl std::fmt::Display, err: std::io::Error) -> Self {
        Self::Bind {
            addr: addr.to_string(),
            cause: Cause::new(err),
        }
    }

    /// A failed `step` of opening a session to `url`.
    pub(crate) fn connect(
        url: &str,
        step: ConnectStep,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Connect {
            url: url.to_owned(),
            step,
            cause: Cause::new(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn causes_keep_their_type_and_the_message_its_words() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = NetError::bind("UDP 0.0.0.0:443", io);
        assert_eq!(
            e.to_string(),
            "cannot listen on UDP 0.0.0.0:443: Permission denied"
        );
        let NetError::Bind { cause, .. } = &e else {
            panic!("a bind error: {e:?}")
        };
        assert_eq!(cause.io_kind(), Some(std::io::ErrorKind::PermissionDenied));
        let source = e.source().expect("the cause is the source");
        assert_eq!(source.to_string(), "Permission denied");
        assert_eq!(e.clone(), e, "clones are equal");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let c = NetError::connect("wss://h:1/ws", ConnectStep::Tcp, refused);
        assert!(
            c.to_string()
                .starts_with("cannot open a session to wss://h:1/ws: TCP connect failed: "),
            "{c}"
        );
        assert!(matches!(
            &c,
            NetError::Connect { step: ConnectStep::Tcp, cause, .. }
                if cause.io_kind() == Some(std::io::ErrorKind::ConnectionRefused)
        ));
        let r = NetError::from(IdentityError::Rotation(RotationProblem::NoNames));
        assert_eq!(
            r.to_string(),
            "cannot create the server identity: certificate rotation: no host names for the new \
             certificates"
        );
    }
}
