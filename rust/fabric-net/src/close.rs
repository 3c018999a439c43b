//! How sessions end: the application close codes both sides send, and the words and code a
//! side reports when a WebTransport session ends.
//!
//! Sits at the bottom of the crate with [`crate::budget`] and [`crate::reliable`]: the
//! channel streams ([`crate::lanes`]), the WebSocket link ([`crate::ws`]), the link
//! ([`crate::link`]), the client and the server all use it; it uses none of them.

use wtransport::error::ConnectionError;

/// Application close codes sent to peers (defined by the session protocol in `fabric-core`).
pub use fabric_core::session_control::close_code;

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

/// The reason and code of a session's end: the QUIC connection's close, unless this side
/// closed it, where the reader that closed it (`local`) or the HTTP/3 layer (`session_end`)
/// knows why.
pub(crate) fn close_report(
    quic: &ConnectionError,
    session_end: Option<ConnectionError>,
    local: Option<&String>,
) -> (String, Option<u32>) {
    let code_of = |e: &ConnectionError| match e {
        ConnectionError::ApplicationClosed(c) => u32::try_from(c.code().into_inner()).ok(),
        _ => None,
    };
    if !matches!(quic, ConnectionError::LocallyClosed) {
        return (describe_close(quic), code_of(quic));
    }
    if let Some(why) = local {
        return (format!("closed locally: {why}"), None);
    }
    match session_end {
        Some(e @ ConnectionError::ApplicationClosed(_)) => (describe_close(&e), code_of(&e)),
        Some(ConnectionError::LocalH3Error(h3)) => (
            format!("closed locally: the peer broke the HTTP/3 session ({h3})"),
            None,
        ),
        _ => (describe_close(quic), None),
    }
}
