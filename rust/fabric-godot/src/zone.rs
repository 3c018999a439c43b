//! `FabricZone`: the zone server node (first cut for cycle 1).
//!
//! Listens for WebTransport sessions (from the gateway or directly from clients), counts
//! simulation ticks at `tick_hz`, and greets every new session with a `welcome` control datagram
//! carrying its zone id and tick. Datagrams can be lost, so the welcome is robust: it is sent when
//! the session opens, answered again on every `hello` from the client, and resent every
//! [`WELCOME_RESEND_MSEC`] until the client acknowledges it with `welcome_ack`.
//!
//! Settings come from exported properties, overridden by user arguments after `--`:
//! `--zone-id N`, `--port P`, `--bind ADDR`, `--cert-hash-file PATH`, `--tick-hz HZ`.

use std::collections::HashMap;
use std::path::PathBuf;

use fabric_core::session_control::ControlMessage;
use fabric_net::{Server, ServerConfig, ServerEvent, ServerIdentity, SessionId};
use godot::classes::{INode, Node, Os};
use godot::prelude::*;

/// Milliseconds between resends of an unacknowledged welcome.
pub const WELCOME_RESEND_MSEC: f64 = 200.0;
/// Give up resending a welcome after this many tries (the session stays open).
pub const WELCOME_MAX_SENDS: u32 = 50;

struct Greeting {
    sends: u32,
    since_last_ms: f64,
    acked: bool,
}

/// A zone server: listens for WebTransport sessions and runs the zone's tick.
///
/// Prints `FABRIC_ZONE_READY zone_id=<id> addr=<ip:port> cert_hash=<base64>` once listening.
#[derive(GodotClass)]
#[class(base = Node)]
pub struct FabricZone {
    base: Base<Node>,
    /// This zone's id.
    #[export]
    zone_id: i32,
    /// UDP port to listen on (0 = any free port).
    #[export]
    port: i32,
    /// Address to bind (`"*"` = all interfaces).
    #[export]
    bind_address: GString,
    /// Simulation ticks per second.
    #[export]
    tick_hz: i32,
    /// Start listening in `_ready` (otherwise call `start()`).
    #[export]
    autostart: bool,
    /// The current simulation tick.
    #[var(no_set, pub)]
    tick: i64,
    /// The certificate hash clients and gateways pin (base64), set once listening.
    #[var(no_set, pub)]
    cert_hash: GString,
    server: Option<Server>,
    greetings: HashMap<SessionId, Greeting>,
    accumulator: f64,
    hash_file: Option<PathBuf>,
}

#[godot_api]
impl INode for FabricZone {
    fn init(base: Base<Node>) -> Self {
        Self {
            base,
            zone_id: 0,
            port: 7443,
            bind_address: "*".into(),
            tick_hz: 20,
            autostart: true,
            tick: 0,
            cert_hash: GString::new(),
            server: None,
            greetings: HashMap::new(),
            accumulator: 0.0,
            hash_file: None,
        }
    }

    fn ready(&mut self) {
        self.apply_user_args();
        if self.autostart {
            let err = self.start();
            if err != godot::global::Error::OK {
                godot_error!(
                    "FabricZone {}: could not start; see the error above",
                    self.zone_id
                );
            }
        }
    }

    fn process(&mut self, delta: f64) {
        if self.server.is_none() {
            return;
        }
        let step = 1.0 / f64::from(self.tick_hz.max(1));
        self.accumulator += delta;
        while self.accumulator >= step {
            self.accumulator -= step;
            self.tick += 1;
        }
        self.pump(delta * 1000.0);
    }

    fn exit_tree(&mut self) {
        self.stop();
    }
}

#[godot_api]
impl FabricZone {
    /// A session opened (its zone-local number).
    #[signal]
    fn session_opened(session: i64);
    /// A session ended, with the reason in words.
    #[signal]
    fn session_closed(session: i64, reason: GString);
    /// A client acknowledged its welcome.
    #[signal]
    fn welcome_acknowledged(session: i64);

    /// Starts listening. Returns `ERR_ALREADY_IN_USE` when running, `ERR_CANT_CREATE` when the
    /// port cannot be bound (the error names the address and the reason).
    #[func]
    pub fn start(&mut self) -> godot::global::Error {
        use godot::global::Error;
        if self.server.is_some() {
            return Error::ERR_ALREADY_IN_USE;
        }
        let Some(addr) = crate::bind_addr(&self.bind_address.to_string(), self.port) else {
            godot_error!(
                "FabricZone: bad bind address `{}` or port {}",
                self.bind_address,
                self.port
            );
            return Error::ERR_INVALID_PARAMETER;
        };
        let identity = match ServerIdentity::self_signed_local() {
            Ok(i) => i,
            Err(e) => {
                godot_error!("FabricZone: {e}");
                return Error::ERR_CANT_CREATE;
            }
        };
        if let Some(path) = &self.hash_file
            && let Err(e) = identity.write_hash_file(path)
        {
            godot_error!("FabricZone: cannot write {}: {e}", path.display());
            return Error::ERR_CANT_CREATE;
        }
        match Server::start(ServerConfig::new(addr, identity)) {
            Ok(server) => {
                self.cert_hash = GString::from(&server.cert_hash().to_base64());
                godot_print!(
                    "FABRIC_ZONE_READY zone_id={} addr={} cert_hash={} precision={}",
                    self.zone_id,
                    server.local_addr(),
                    self.cert_hash,
                    if cfg!(feature = "double") {
                        "double"
                    } else {
                        "single"
                    }
                );
                self.server = Some(server);
                Error::OK
            }
            Err(e) => {
                godot_error!("FabricZone {}: {e}", self.zone_id);
                Error::ERR_CANT_CREATE
            }
        }
    }

    /// Stops listening and closes every session.
    #[func]
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown("zone shutting down");
        }
        self.greetings.clear();
    }

    /// The UDP port actually bound (useful with `port = 0`), or 0 when not listening.
    #[func]
    pub fn get_bound_port(&self) -> i32 {
        self.server
            .as_ref()
            .map_or(0, |s| i32::from(s.local_addr().port()))
    }

    /// Number of open sessions.
    #[func]
    pub fn get_session_count(&self) -> i32 {
        self.server
            .as_ref()
            .map_or(0, |s| s.sender().session_count() as i32)
    }

    pub(crate) fn configure_for_test(&mut self, port: i32, zone_id: i32) {
        self.port = port;
        self.zone_id = zone_id;
        self.bind_address = "127.0.0.1".into();
    }

    pub(crate) fn pump_for_test(&mut self, elapsed_ms: f64) {
        self.pump(elapsed_ms);
    }

    pub(crate) fn is_acknowledged(&self, session: SessionId) -> bool {
        self.greetings.get(&session).is_some_and(|g| g.acked)
    }

    fn apply_user_args(&mut self) {
        let args: Vec<String> = Os::singleton()
            .get_cmdline_user_args()
            .as_slice()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (key, inline) = match a.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| it.next().cloned());
            match key {
                "--zone-id" => parse_into(&mut self.zone_id, value(), key),
                "--port" => parse_into(&mut self.port, value(), key),
                "--tick-hz" => parse_into(&mut self.tick_hz, value(), key),
                "--bind" => {
                    if let Some(v) = value() {
                        self.bind_address = GString::from(&v);
                    }
                }
                "--cert-hash-file" => self.hash_file = value().map(PathBuf::from),
                _ => {}
            }
        }
    }

    fn welcome(&self, session: SessionId) -> Vec<u8> {
        ControlMessage::Welcome {
            zone_id: self.zone_id as u32,
            tick: self.tick as u64,
            session,
        }
        .encode()
    }

    fn pump(&mut self, elapsed_ms: f64) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = server.try_next_event() {
            events.push(ev);
        }
        let tx = server.sender();
        for ev in events {
            match ev {
                ServerEvent::Opened {
                    session, remote, ..
                } => {
                    godot_print!(
                        "FabricZone {}: session {session} opened from {remote}",
                        self.zone_id
                    );
                    let _ = tx.send_datagram(session, &self.welcome(session));
                    self.greetings.insert(
                        session,
                        Greeting {
                            sends: 1,
                            since_last_ms: 0.0,
                            acked: false,
                        },
                    );
                    self.base_mut()
                        .emit_signal("session_opened", &[(session as i64).to_variant()]);
                }
                ServerEvent::Datagram { session, data } => self.control(&tx, session, &data, false),
                ServerEvent::Message { session, data } => self.control(&tx, session, &data, true),
                ServerEvent::Closed { session, reason } => {
                    self.greetings.remove(&session);
                    godot_print!(
                        "FabricZone {}: session {session} closed: {reason}",
                        self.zone_id
                    );
                    self.base_mut().emit_signal(
                        "session_closed",
                        &[
                            (session as i64).to_variant(),
                            GString::from(&reason).to_variant(),
                        ],
                    );
                }
            }
        }
        // Resend unacknowledged welcomes.
        let mut resend = Vec::new();
        for (s, g) in self.greetings.iter_mut().filter(|(_, g)| !g.acked) {
            g.since_last_ms += elapsed_ms;
            if g.since_last_ms >= WELCOME_RESEND_MSEC && g.sends < WELCOME_MAX_SENDS {
                g.since_last_ms = 0.0;
                g.sends += 1;
                resend.push(*s);
            }
        }
        for s in resend {
            let _ = tx.send_datagram(s, &self.welcome(s));
        }
    }

    fn control(
        &mut self,
        tx: &fabric_net::server::ServerSender,
        session: SessionId,
        data: &[u8],
        reliable: bool,
    ) {
        if !ControlMessage::is_control(data) {
            return; // Game packets come with later cycles.
        }
        let reply = match ControlMessage::decode(data) {
            Ok(ControlMessage::Hello { .. }) => Some(self.welcome(session)),
            Ok(ControlMessage::WelcomeAck { session: acked }) if acked == session => {
                if let Some(g) = self.greetings.get_mut(&session)
                    && !g.acked
                {
                    g.acked = true;
                    self.base_mut()
                        .emit_signal("welcome_acknowledged", &[(session as i64).to_variant()]);
                }
                None
            }
            Ok(ControlMessage::Ping { id }) => Some(ControlMessage::pong(&id).encode()),
            Ok(ControlMessage::Join { peer_id }) => {
                Some(ControlMessage::Joined { peer_id }.encode())
            }
            Ok(_) => None,
            Err(e) => Some(
                ControlMessage::Reply {
                    id: String::new(),
                    result: Err(e.to_string()),
                }
                .encode(),
            ),
        };
        if let Some(r) = reply {
            let _ = if reliable {
                tx.send_message(session, r)
            } else {
                tx.send_datagram(session, &r)
            };
        }
    }
}

fn parse_into<T: std::str::FromStr>(slot: &mut T, value: Option<String>, key: &str) {
    match value.as_deref().map(str::parse) {
        Some(Ok(v)) => *slot = v,
        _ => godot_error!("FabricZone: {key} needs a number, got {value:?}"),
    }
}
