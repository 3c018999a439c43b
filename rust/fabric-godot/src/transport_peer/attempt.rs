//! A client's connection attempt: WebTransport first, then the WebSocket fallback, raced.
//!
//! The WebTransport attempt keeps its full connect timeout; when it has not connected after the
//! fallback delay (or failed because the server could not be reached), the WebSocket attempt
//! starts beside it and the first to connect wins (the other is closed). A certificate mismatch
//! ends the whole attempt at once: it would not get better over an unpinned transport. No
//! Godot types here: the peer turns [`Step`]s into states and signals.

use std::time::{Duration, Instant};

use fabric_net::{CertHash, Client, ClientConfig, ClientEvent, NetError};

/// What every transport of one attempt connects with: read from the peer's properties once,
/// when `create_client` is called, so the fallback uses the same values as the first try.
#[derive(Debug, Clone)]
pub(super) struct ConnectSettings {
    /// The accepted server certificate hashes (WebTransport and `wss://`), at least one.
    pub pins: Vec<CertHash>,
    /// Allow `ws://` beyond loopback.
    pub allow_insecure_websocket: bool,
    /// How long each transport may take to open its session.
    pub timeout: Duration,
    /// Congestion controller of a WebTransport session.
    pub congestion: fabric_net::CongestionControl,
}

impl ConnectSettings {
    /// Starts connecting to `url` with these settings.
    pub fn connect(&self, url: &str) -> Client {
        let mut cfg = ClientConfig::pinning(url, &self.pins).expect("at least one pin");
        cfg.allow_insecure_websocket = self.allow_insecure_websocket;
        cfg.connect_timeout = self.timeout;
        cfg.congestion = self.congestion;
        Client::connect(cfg)
    }
}

/// What a poll of the attempt produced.
pub(super) enum Step {
    /// Still connecting, nothing new.
    Pending,
    /// The WebSocket attempt started beside (or instead of) WebTransport.
    FallbackStarted,
    /// The WebSocket attempt failed while WebTransport is still trying.
    FallbackFailed,
    /// This client connected (its `Connected` event was consumed).
    Connected(Client),
    /// Every attempt failed; the reason names each.
    Failed(String),
}

/// A connection attempt in progress.
pub(super) struct Attempt {
    primary: Option<Client>,
    backup: Option<Client>,
    fallback: Option<String>,
    fallback_at: Instant,
    errors: Vec<String>,
}

fn label(c: &Client) -> &'static str {
    if c.is_websocket() {
        "WebSocket"
    } else {
        "WebTransport"
    }
}

/// Errors that say the server could not be reached (a fallback may help).
fn unreachable(e: &NetError) -> bool {
    matches!(
        e,
        NetError::ConnectTimeout { .. } | NetError::Connect { .. }
    )
}

impl Attempt {
    /// Starts with `primary`; `fallback` (a WebSocket URL) starts after `delay` at the latest.
    pub(super) fn new(primary: Client, fallback: Option<String>, delay: Duration) -> Self {
        Self {
            primary: Some(primary),
            backup: None,
            fallback,
            fallback_at: Instant::now() + delay,
            errors: Vec::new(),
        }
    }

    /// Whether the attempt currently running (the newest) is a WebSocket one.
    pub(super) fn is_websocket(&self) -> bool {
        self.backup
            .as_ref()
            .or(self.primary.as_ref())
            .is_some_and(Client::is_websocket)
    }

    /// Abandons every attempt.
    pub(super) fn close(&mut self, reason: &str) {
        for c in [self.primary.take(), self.backup.take()]
            .into_iter()
            .flatten()
        {
            c.close(reason);
        }
    }

    fn start_fallback(&mut self, connect: &dyn Fn(&str) -> Client) -> bool {
        match self.fallback.take() {
            Some(url) => {
                self.backup = Some(connect(&url));
                true
            }
            None => false,
        }
    }

    fn failed(&mut self) -> Step {
        self.close("connection attempt failed");
        Step::Failed(self.errors.join("; "))
    }

    /// Advances the attempt; `connect` opens a client for a URL.
    pub(super) fn poll(&mut self, connect: &dyn Fn(&str) -> Client) -> Step {
        let mut step = Step::Pending;
        if let Some(p) = &mut self.primary {
            match p.try_next_event() {
                Some(ClientEvent::Connected { .. }) => {
                    if let Some(b) = self.backup.take() {
                        b.close("another transport connected first");
                    }
                    return Step::Connected(self.primary.take().expect("primary"));
                }
                Some(ClientEvent::Failed(e)) => {
                    let name = label(p);
                    self.primary = None;
                    let with_name = self.fallback.is_some() || self.backup.is_some();
                    self.errors.push(if with_name {
                        format!("{name}: {e}")
                    } else {
                        e.to_string()
                    });
                    if !unreachable(&e) {
                        self.errors.truncate(0);
                        self.errors.push(e.to_string());
                        return self.failed();
                    }
                    if self.backup.is_none() && self.start_fallback(connect) {
                        step = Step::FallbackStarted;
                    }
                }
                _ => {}
            }
        }
        if self.primary.is_some()
            && self.backup.is_none()
            && Instant::now() >= self.fallback_at
            && self.start_fallback(connect)
        {
            step = Step::FallbackStarted;
        }
        if matches!(step, Step::FallbackStarted) {
            // Report the start on its own: a fallback refused at once (a closed TCP port on
            // loopback fails within microseconds) is reported by the next poll, so the caller
            // sees TRYING_FALLBACK before it goes back to TRYING_PRIMARY.
            return step;
        }
        if let Some(b) = &mut self.backup {
            match b.try_next_event() {
                Some(ClientEvent::Connected { .. }) => {
                    if let Some(p) = self.primary.take() {
                        p.close("another transport connected first");
                    }
                    return Step::Connected(self.backup.take().expect("backup"));
                }
                Some(ClientEvent::Failed(e)) => {
                    self.errors.push(format!("{}: {e}", label(b)));
                    self.backup = None;
                    if self.primary.is_some() {
                        step = Step::FallbackFailed;
                    }
                }
                _ => {}
            }
        }
        if self.primary.is_none() && self.backup.is_none() {
            return self.failed();
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use fabric_net::{Server, ServerConfig, ServerIdentity};

    use super::*;

    fn server(webtransport: bool, websocket: bool) -> Server {
        let mut cfg = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ServerIdentity::self_signed_local().unwrap(),
        );
        cfg.webtransport = webtransport;
        cfg.websocket = websocket;
        Server::start(cfg).unwrap()
    }

    fn run(attempt: &mut Attempt, pin: CertHash) -> (Vec<&'static str>, Option<Client>, String) {
        let connect = move |url: &str| Client::connect(ClientConfig::new(url, pin));
        let mut steps = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match attempt.poll(&connect) {
                Step::Pending => {}
                Step::FallbackStarted => steps.push("fallback_started"),
                Step::FallbackFailed => steps.push("fallback_failed"),
                Step::Connected(c) => return (steps, Some(c), String::new()),
                Step::Failed(why) => return (steps, None, why),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("attempt still pending after 10 s: {steps:?}");
    }

    /// An attempt on `s`: WebTransport pinned to `pin` first, `ws://` on the same port after
    /// `delay`.
    fn attempt_to(s: &Server, pin: CertHash, delay: Duration) -> Attempt {
        let port = s.local_addr().port();
        let primary = Client::connect(ClientConfig::new(
            format!("https://127.0.0.1:{port}/wt"),
            pin,
        ));
        Attempt::new(primary, Some(format!("ws://127.0.0.1:{port}/ws")), delay)
    }

    #[test]
    fn a_slow_webtransport_still_wins_when_the_fallback_is_refused() {
        // The gateway case: WebTransport only. The fallback starts at once (delay 0), is refused
        // (no TCP listener), and WebTransport, which kept trying, connects.
        let s = server(true, false);
        let mut a = attempt_to(&s, s.cert_hash(), Duration::ZERO);
        let (steps, client, why) = run(&mut a, s.cert_hash());
        let client = client.unwrap_or_else(|| panic!("connected, not failed: {why}"));
        assert!(!client.is_websocket(), "WebTransport won");
        assert_eq!(steps.first(), Some(&"fallback_started"), "{steps:?}");
    }

    #[test]
    fn webtransport_without_an_answer_falls_back_to_websocket() {
        let s = server(false, true);
        let mut a = attempt_to(&s, s.cert_hash(), Duration::from_millis(200));
        let (steps, client, why) = run(&mut a, s.cert_hash());
        let client = client.unwrap_or_else(|| panic!("connected, not failed: {why}"));
        assert!(client.is_websocket(), "the fallback won");
        assert_eq!(steps, ["fallback_started"]);
    }

    #[test]
    fn a_certificate_mismatch_never_falls_back() {
        let s = server(true, true);
        let wrong = CertHash([9; 32]);
        let mut a = attempt_to(&s, wrong, Duration::from_secs(60));
        let (steps, client, why) = run(&mut a, wrong);
        assert!(client.is_none(), "no connection");
        assert!(steps.is_empty(), "no fallback: {steps:?}");
        assert!(why.contains("does not match the pinned hash"), "{why}");
    }
}
