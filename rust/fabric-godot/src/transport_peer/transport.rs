//! Which transport a `FabricMMOGTransportPeer` uses, the URLs it tries and how long each may
//! take: the pure part of "WebTransport first, WebSocket fallback", kept apart from the Godot
//! class so it is tested without an engine.

use std::time::Duration;

/// The `transport` property's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// WebTransport first, WebSocket when WebTransport cannot be reached.
    Auto,
    /// WebTransport only.
    WebTransport,
    /// WebSocket only.
    WebSocket,
}

impl TransportChoice {
    /// Parses `"auto"`, `"webtransport"` / `"wt"` or `"websocket"` / `"ws"` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "webtransport" | "wt" => Some(Self::WebTransport),
            "websocket" | "ws" => Some(Self::WebSocket),
            _ => None,
        }
    }

    /// Whether a server with this choice listens for WebTransport.
    pub fn serves_webtransport(self) -> bool {
        self != Self::WebSocket
    }

    /// Whether a server with this choice listens for WebSocket.
    pub fn serves_websocket(self) -> bool {
        self != Self::WebTransport
    }
}

/// The URLs a client tries, in order: `primary` first, then `fallback` when it cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// First URL (`https://...` for WebTransport, or `wss://...` / `ws://...`).
    pub primary: String,
    /// WebSocket URL to try when the primary cannot be reached.
    pub fallback: Option<String>,
}

/// The WebSocket URL of the same server: `https://host:port/anything` ->
/// `wss://host:port/ws` (TLS, pinned by the same certificate hash).
pub fn websocket_url(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("https://")?;
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())?;
    Some(format!("wss://{authority}/ws"))
}

fn is_ws(url: &str) -> bool {
    let u = url.trim().to_ascii_lowercase();
    u.starts_with("ws://") || u.starts_with("wss://")
}

/// What to try for `url` under `choice`; `Err` says why the combination makes no sense.
pub fn plan(url: &str, choice: TransportChoice) -> Result<Plan, String> {
    let url = url.trim();
    match choice {
        TransportChoice::Auto if is_ws(url) => Ok(Plan {
            primary: url.to_owned(),
            fallback: None,
        }),
        TransportChoice::Auto => Ok(Plan {
            primary: url.to_owned(),
            fallback: websocket_url(url),
        }),
        TransportChoice::WebTransport if is_ws(url) => Err(format!(
            "transport is \"webtransport\" but `{url}` is a WebSocket URL; use https://host:port/wt"
        )),
        TransportChoice::WebTransport => Ok(Plan {
            primary: url.to_owned(),
            fallback: None,
        }),
        TransportChoice::WebSocket if is_ws(url) => Ok(Plan {
            primary: url.to_owned(),
            fallback: None,
        }),
        TransportChoice::WebSocket => websocket_url(url)
            .map(|ws| Plan {
                primary: ws,
                fallback: None,
            })
            .ok_or_else(|| format!("cannot derive a WebSocket URL from `{url}`")),
    }
}

/// The connect timeout that `connect_timeout_msec` stands for; `Err` says why a value is
/// refused (zero or negative: a session can never open in no time).
pub fn connect_timeout(msec: i32) -> Result<Duration, String> {
    match u64::try_from(msec) {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "connect_timeout_msec must be a positive number of milliseconds, got {msec}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_reject_unknown_names() {
        assert_eq!(TransportChoice::parse("AUTO"), Some(TransportChoice::Auto));
        assert_eq!(
            TransportChoice::parse("wt"),
            Some(TransportChoice::WebTransport)
        );
        assert_eq!(
            TransportChoice::parse(" websocket "),
            Some(TransportChoice::WebSocket)
        );
        assert_eq!(TransportChoice::parse("enet"), None);
    }

    #[test]
    fn urls_are_derived_for_each_choice() {
        assert_eq!(
            websocket_url("https://127.0.0.1:4433/wt").as_deref(),
            Some("wss://127.0.0.1:4433/ws")
        );
        assert_eq!(
            websocket_url("https://[::1]:9/x?y").as_deref(),
            Some("wss://[::1]:9/ws")
        );
        assert_eq!(websocket_url("https:///wt"), None, "no host");
        let auto = plan("https://h:1/wt", TransportChoice::Auto).unwrap();
        assert_eq!(auto.primary, "https://h:1/wt");
        assert_eq!(
            auto.fallback.as_deref(),
            Some("wss://h:1/ws"),
            "auto falls back"
        );
        let ws = plan("https://h:1/wt", TransportChoice::WebSocket).unwrap();
        assert_eq!((ws.primary.as_str(), ws.fallback), ("wss://h:1/ws", None));
        let wt = plan("https://h:1/wt", TransportChoice::WebTransport).unwrap();
        assert_eq!(wt.fallback, None, "forced WebTransport has no fallback");
        assert!(plan("ws://h:1/ws", TransportChoice::WebTransport).is_err());
        let direct = plan("ws://h:1/ws", TransportChoice::Auto).unwrap();
        assert_eq!(direct.fallback, None, "a ws:// URL is used as is");
    }

    #[test]
    fn connect_timeouts_must_be_positive() {
        assert_eq!(connect_timeout(250), Ok(Duration::from_millis(250)));
        assert_eq!(
            connect_timeout(i32::MAX),
            Ok(Duration::from_millis(i32::MAX as u64))
        );
        for bad in [0, -1, i32::MIN] {
            let why = connect_timeout(bad).expect_err("refused");
            assert_eq!(
                why,
                format!(
                    "connect_timeout_msec must be a positive number of milliseconds, got {bad}"
                ),
                "the message names the property and the value"
            );
        }
    }
}
