//! How sessions end: the application close codes both sides send, and the words and code a
//! side reports when a WebTransport session ends.
//!
//! Sits at the bottom of the crate with [`crate::budget`] and [`crate::reliable`]: the
//! channel streams ([`crate::lanes`]), the WebSocket link ([`crate::ws`]), the link
//! ([`crate::link`]), the client and the server all use it; it uses none of them.

use wtransport::error::ConnectionError;

/// Application close codes sent to peers (defined by the session protocol in `fabric-core`).
pub use fabric_core::session_control::close_code;

/// Why a session ended, as the side that reports it saw it: the close code and its cause.
/// [`Display`](std::fmt::Display) gives the words (the same on both transports where the
/// cause is the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the session.
    ByPeer {
        /// Its application close code (WebSocket: the frame's code less
        /// [`crate::ws::WS_CLOSE_BASE`]; `None` when there was none or it was not one of ours).
        code: Option<u32>,
        /// The code as it travelled (QUIC application code, or WebSocket close code), named
        /// in the words when the peer gave no text; `None`: a WebSocket close without a frame.
        wire: Option<u64>,
        /// The peer's words (may be empty).
        text: String,
    },
    /// This side closed the session: its owner, or a reader that found the peer breaking the
    /// protocol; `why` says which, when known.
    Locally {
        /// This side's words (e.g. `bad reliable stream header ...`, or the owner's reason and
        /// code).
        why: Option<String>,
    },
    /// The peer broke the WebSocket link's protocol (a text message, an unknown envelope, an
    /// oversize message): this side closed it with [`close_code::PROTOCOL`].
    PeerViolation {
        /// What was wrong.
        why: String,
    },
    /// The peer broke the HTTP/3 session under WebTransport, and this side's HTTP/3 layer
    /// closed it.
    BrokeHttp3 {
        /// The HTTP/3 error.
        error: String,
    },
    /// Nothing arrived from the peer for the idle timeout.
    TimedOut,
    /// The connection ended without a close from either side's application (reset, lost
    /// socket, a QUIC transport error).
    Lost {
        /// What the transport said.
        why: String,
    },
}

impl CloseReason {
    /// The application close code the session ended with, as reported to the owner: the
    /// peer's, or [`close_code::PROTOCOL`] when this side closed a WebSocket link for a
    /// protocol violation.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::ByPeer { code, .. } => *code,
            Self::PeerViolation { .. } => Some(close_code::PROTOCOL),
            _ => None,
        }
    }

    /// The end of a QUIC connection, in these terms.
    pub(crate) fn of_quic(err: &ConnectionError) -> Self {
        match err {
            ConnectionError::ApplicationClosed(c) => {
                let raw = c.code().into_inner();
                Self::ByPeer {
                    code: u32::try_from(raw).ok(),
                    wire: Some(raw),
                    text: String::from_utf8_lossy(c.reason()).into_owned(),
                }
            }
            ConnectionError::LocallyClosed => Self::Locally { why: None },
            ConnectionError::TimedOut => Self::TimedOut,
            other => Self::Lost {
                why: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ByPeer { text, .. } if !text.is_empty() => write!(f, "closed by peer: {text}"),
            Self::ByPeer { code, wire, .. } => match code.map(u64::from).or(*wire) {
                Some(n) => write!(f, "closed by peer (code {n})"),
                None => f.write_str("closed by peer"),
            },
            Self::Locally { why: Some(why) } => write!(f, "closed locally: {why}"),
            Self::Locally { why: None } => f.write_str("closed locally"),
            Self::PeerViolation { why } => write!(f, "protocol violation by the peer: {why}"),
            Self::BrokeHttp3 { error } => {
                write!(
                    f,
                    "closed locally: the peer broke the HTTP/3 session ({error})"
                )
            }
            Self::TimedOut => f.write_str("timed out: no traffic from the peer"),
            Self::Lost { why } => f.write_str(why),
        }
    }
}

/// Describes why a connection ended, in words (the peer's reason text when it gave one).
pub fn describe_close(err: &ConnectionError) -> String {
    CloseReason::of_quic(err).to_string()
}

/// Why a WebTransport session ended: the QUIC connection's close, unless this side closed it,
/// where the reader that closed it (`local`) or the HTTP/3 layer (`session_end`) knows why.
pub(crate) fn close_report(
    quic: &ConnectionError,
    session_end: Option<ConnectionError>,
    local: Option<&String>,
) -> CloseReason {
    if !matches!(quic, ConnectionError::LocallyClosed) {
        return CloseReason::of_quic(quic);
    }
    if let Some(why) = local {
        return CloseReason::Locally {
            why: Some(why.clone()),
        };
    }
    match session_end {
        Some(e @ ConnectionError::ApplicationClosed(_)) => CloseReason::of_quic(&e),
        Some(ConnectionError::LocalH3Error(h3)) => CloseReason::BrokeHttp3 {
            error: h3.to_string(),
        },
        _ => CloseReason::of_quic(quic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_those_of_each_cause() {
        let peer = |code, wire, text: &str| CloseReason::ByPeer {
            code,
            wire,
            text: text.to_owned(),
        };
        let cases = [
            (
                peer(Some(3), Some(3), "zone unavailable"),
                "closed by peer: zone unavailable",
            ),
            (peer(Some(3), Some(3), ""), "closed by peer (code 3)"),
            (peer(None, Some(1000), ""), "closed by peer (code 1000)"),
            (peer(None, None, ""), "closed by peer"),
            (
                CloseReason::Locally {
                    why: Some("bye (code 0)".into()),
                },
                "closed locally: bye (code 0)",
            ),
            (CloseReason::Locally { why: None }, "closed locally"),
            (
                CloseReason::PeerViolation {
                    why: "text message".into(),
                },
                "protocol violation by the peer: text message",
            ),
            (CloseReason::TimedOut, "timed out: no traffic from the peer"),
            (
                CloseReason::Lost {
                    why: "connection closed".into(),
                },
                "connection closed",
            ),
        ];
        for (reason, words) in cases {
            assert_eq!(reason.to_string(), words, "{reason:?}");
        }
    }

    #[test]
    fn the_code_is_the_peers_or_protocol_for_a_violation() {
        let by_peer = CloseReason::ByPeer {
            code: Some(5),
            wire: Some(5),
            text: String::new(),
        };
        assert_eq!(by_peer.code(), Some(5), "the peer's code");
        let violation = CloseReason::PeerViolation { why: "x".into() };
        assert_eq!(
            violation.code(),
            Some(close_code::PROTOCOL),
            "protocol close"
        );
        assert_eq!(
            CloseReason::TimedOut.code(),
            None,
            "no code without a close"
        );
    }
}
