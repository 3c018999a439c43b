//! `FabricZone`: the zone server node.
//!
//! Listens for WebTransport sessions (from the gateway or directly from clients), counts
//! simulation ticks at `tick_hz`, and admits sessions through `fabric_core::admission`: a
//! `welcome` control datagram (zone id and tick) pushed and resent until acknowledged, and, when
//! the zone is registered with a registry backend, a valid join token required first.
//!
//! With `backend_url` set, the zone registers on start with its certificate hash, heartbeats
//! every `heartbeat_sec` (re-registering when the backend forgot it), verifies join tokens
//! offline with the backend's public key, and deregisters when it stops.
//!
//! Settings come from exported properties, overridden by user arguments after `--` (see
//! [`crate::zone_args`]).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fabric_auth::JoinTokenVerifier;
use fabric_core::admission::{Action, Admission, AdmissionConfig, TokenVerdict};
use fabric_core::session_control::ControlMessage;
use fabric_net::registry::{Registration, RegistrationConfig, RegistryEvent};
use fabric_net::{CertRotation, Server, ServerConfig, ServerEvent, ServerIdentity, SessionId};
use godot::classes::{INode, Node};
use godot::global::Error;
use godot::prelude::*;

/// A zone server: listens for WebTransport sessions and runs the zone's tick.
///
/// Prints `FABRIC_ZONE_READY zone_id=<id> addr=<ip:port> cert_hash=<base64>
/// next_cert_hash=<base64> precision=<p>` once listening, and `FABRIC_ZONE_REGISTERED
/// shard_id=<uuid>` once the registry accepted it.
///
/// Its self-signed certificate (valid 14 days, what pinning clients accept) is replaced every
/// `cert_rotation_sec` (7 days by default) by the certificate announced a period before as
/// `next_cert_hash`, so clients pinning both hashes keep connecting across a rotation. It then
/// prints `FABRIC_ZONE_CERT_ROTATED cert_hash=<base64> next_cert_hash=<base64>`, emits
/// `cert_rotated`, rewrites `--cert-hash-file` (current hash, then the next one, one per line)
/// and publishes both to the registry at once (`FABRIC_ZONE_CERT_PUBLISHED ...`). Open sessions
/// keep going.
#[derive(GodotClass)]
#[class(base = Node)]
pub struct FabricZone {
    base: Base<Node>,
    /// This zone's id.
    #[export]
    pub(crate) zone_id: i32,
    /// UDP port to listen on (0 = any free port).
    #[export]
    pub(crate) port: i32,
    /// Address to bind (`"*"` = all interfaces).
    #[export]
    pub(crate) bind_address: GString,
    /// Simulation ticks per second.
    #[export]
    pub(crate) tick_hz: i32,
    /// Start listening in `_ready` (otherwise call `start()`).
    #[export]
    pub(crate) autostart: bool,
    /// Registry backend (`http://host:port`); empty = do not register, admit without tokens.
    #[export]
    pub(crate) backend_url: GString,
    /// Address clients should use to reach this zone, as registered (empty = the backend takes
    /// the address the registration came from).
    #[export]
    pub(crate) public_address: GString,
    /// Map name, as registered.
    #[export]
    pub(crate) map_name: GString,
    /// Display name, as registered.
    #[export]
    pub(crate) zone_name: GString,
    /// Seconds between registry heartbeats (the registry lists zones heard from in the last 30 s).
    #[export]
    pub(crate) heartbeat_sec: f64,
    /// Require a join token even without a registry (tokens then never validate: for tests).
    #[export]
    pub(crate) require_token: bool,
    /// Also accept the WebSocket fallback (`wss://host:port/ws`, TCP, same port number, pinned
    /// by the same certificate hash) for clients that cannot use WebTransport.
    #[export]
    pub(crate) websocket_fallback: bool,
    /// Seconds between certificate rotations (each certificate is valid 14 days; must be
    /// shorter than that); 0 = never rotate (the certificate then expires after 14 days).
    #[export]
    pub(crate) cert_rotation_sec: i64,
    /// The current simulation tick.
    #[var(no_set, pub)]
    tick: i64,
    /// The certificate hash clients and gateways pin (base64), set once listening.
    #[var(no_set, pub)]
    cert_hash: GString,
    /// The hash of the certificate the next rotation installs (base64; empty without
    /// rotation): clients pin it beside `cert_hash`.
    #[var(no_set, pub)]
    next_cert_hash: GString,
    /// The registry's id for this zone, set once registered (join tokens name it).
    #[var(no_set, pub)]
    shard_id: GString,
    /// The operator API key used to register (from `--backend-api-key` or the environment
    /// variable `FABRIC_BACKEND_API_KEY`); never shown.
    pub(crate) api_key: String,
    pub(crate) hash_file: Option<PathBuf>,
    server: Option<Server>,
    registration: Option<Registration>,
    verifier: Option<JoinTokenVerifier>,
    admission: Admission,
    actions: Vec<Action>,
    accumulator: f64,
    clock: Instant,
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
            backend_url: GString::new(),
            public_address: GString::new(),
            map_name: "default".into(),
            zone_name: GString::new(),
            heartbeat_sec: 25.0,
            require_token: false,
            websocket_fallback: true,
            cert_rotation_sec: 7 * 24 * 3600,
            tick: 0,
            cert_hash: GString::new(),
            next_cert_hash: GString::new(),
            shard_id: GString::new(),
            api_key: std::env::var("FABRIC_BACKEND_API_KEY").unwrap_or_default(),
            hash_file: None,
            server: None,
            registration: None,
            verifier: None,
            admission: Admission::new(AdmissionConfig::new(0)),
            actions: Vec::new(),
            accumulator: 0.0,
            clock: Instant::now(),
        }
    }

    fn ready(&mut self) {
        crate::zone_args::apply(self);
        if self.autostart {
            let err = self.start();
            if err != Error::OK {
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
        self.pump();
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
    /// A session was admitted; `subject` is the account its join token named (empty without tokens).
    #[signal]
    fn session_admitted(session: i64, subject: GString);
    /// A client acknowledged its welcome.
    #[signal]
    fn welcome_acknowledged(session: i64);
    /// The registry accepted this zone (again, after a backend restart) under `shard_id`.
    #[signal]
    fn registered(shard_id: GString);
    /// Registering or heartbeating failed; the zone retries by itself.
    #[signal]
    fn registry_problem(reason: GString);
    /// The zone replaced its certificate with the one announced as `next_cert_hash` before:
    /// `cert_hash` is now in use, `next_cert_hash` the one that will follow (base64).
    #[signal]
    fn cert_rotated(cert_hash: GString, next_cert_hash: GString);

    /// Starts listening (and registering, with `backend_url`). Returns `ERR_ALREADY_IN_USE` when
    /// running, `ERR_CANT_CREATE` when the port cannot be bound (the error names the address and
    /// the reason), `ERR_UNCONFIGURED` when `backend_url` is set without an API key.
    #[func]
    pub fn start(&mut self) -> Error {
        if self.server.is_some() {
            return Error::ERR_ALREADY_IN_USE;
        }
        let registering = !self.backend_url.is_empty();
        if registering && self.api_key.is_empty() {
            godot_error!(
                "FabricZone: backend_url is set but no operator API key: pass --backend-api-key or set FABRIC_BACKEND_API_KEY"
            );
            return Error::ERR_UNCONFIGURED;
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
        let mut scfg = ServerConfig::new(addr, identity);
        scfg.websocket = self.websocket_fallback;
        scfg.rotation = (self.cert_rotation_sec > 0).then(|| CertRotation {
            every: Duration::from_secs(self.cert_rotation_sec.unsigned_abs()),
            ..CertRotation::weekly(&ServerIdentity::LOCAL_NAMES)
        });
        let server = match Server::start(scfg) {
            Ok(s) => s,
            Err(e) => {
                godot_error!("FabricZone {}: {e}", self.zone_id);
                return Error::ERR_CANT_CREATE;
            }
        };
        let mut cfg = AdmissionConfig::new(self.zone_id as u32);
        cfg.require_token = registering || self.require_token;
        self.admission = Admission::new(cfg);
        self.clock = Instant::now();
        let next = server.next_cert_hash();
        if let Err(e) = self.publish_hashes(server.cert_hash(), next) {
            godot_error!("FabricZone: {e}");
            return Error::ERR_CANT_CREATE;
        }
        godot_print!(
            "FABRIC_ZONE_READY zone_id={} addr={} cert_hash={} next_cert_hash={} precision={}",
            self.zone_id,
            server.local_addr(),
            self.cert_hash,
            self.next_cert_hash,
            if cfg!(feature = "double") {
                "double"
            } else {
                "single"
            }
        );
        if registering {
            let name = if self.zone_name.is_empty() {
                format!("zone {}", self.zone_id)
            } else {
                self.zone_name.to_string()
            };
            let public = self.public_address.to_string();
            self.registration = Some(Registration::start(RegistrationConfig {
                backend: self.backend_url.to_string(),
                api_key: self.api_key.clone(),
                address: (!public.is_empty()).then_some(public),
                port: server.local_addr().port(),
                map: self.map_name.to_string(),
                name,
                cert_hash: self.cert_hash.to_string(),
                next_cert_hash: next.map(|n| n.to_base64()),
                max_users: 32,
                public: true,
                heartbeat: Duration::from_secs_f64(self.heartbeat_sec.clamp(0.05, 3600.0)),
            }));
        }
        self.server = Some(server);
        Error::OK
    }

    /// Stops listening, closes every session and leaves the registry.
    #[func]
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown("zone shutting down");
        }
        if let Some(r) = self.registration.take() {
            r.stop();
        }
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

    /// Number of admitted sessions (players).
    #[func]
    pub fn get_admitted_count(&self) -> i32 {
        self.admission.admitted_count() as i32
    }

    #[cfg(feature = "itest")]
    pub(crate) fn configure_for_test(&mut self, port: i32, zone_id: i32) {
        self.port = port;
        self.zone_id = zone_id;
        self.bind_address = "127.0.0.1".into();
    }

    #[cfg(feature = "itest")]
    pub(crate) fn pump_for_test(&mut self) {
        self.pump();
    }

    #[cfg(feature = "itest")]
    pub(crate) fn is_acknowledged(&self, session: SessionId) -> bool {
        self.admission.is_acknowledged(session)
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn pump(&mut self) {
        crate::log_bridge::drain_to_godot();
        self.pump_registry();
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = server.try_next_event() {
            events.push(ev);
        }
        let now = self.now_ms();
        let tick = self.tick as u64;
        let mut actions = std::mem::take(&mut self.actions);
        for ev in events {
            match ev {
                ServerEvent::Opened {
                    session, remote, ..
                } => {
                    godot_print!(
                        "FabricZone {}: session {session} opened from {remote}",
                        self.zone_id
                    );
                    self.admission.open(session, now, tick, &mut actions);
                    self.base_mut()
                        .emit_signal("session_opened", &[(session as i64).to_variant()]);
                }
                ServerEvent::Datagram { session, data } => {
                    self.on_bytes(session, &data, false, now, &mut actions)
                }
                ServerEvent::Message { session, data } => {
                    self.on_bytes(session, &data, true, now, &mut actions)
                }
                ServerEvent::CertRotated { hash, next, .. } => self.on_cert_rotated(hash, next),
                ServerEvent::Closed { session, reason } => {
                    self.admission.close(session);
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
        self.admission.poll(now, tick, &mut actions);
        self.run_actions(&mut actions);
        self.actions = actions;
        if let Some(r) = &self.registration {
            r.set_current_users(self.admission.admitted_count() as u32);
        }
    }

    fn on_bytes(
        &mut self,
        session: SessionId,
        data: &[u8],
        reliable: bool,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        if !ControlMessage::is_control(data) {
            return; // Game packets come with later cycles.
        }
        let msg = match ControlMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                actions.push(Action::Send {
                    session,
                    bytes: ControlMessage::Reply {
                        id: String::new(),
                        result: Err(e.to_string()),
                    }
                    .encode(),
                    reliable,
                });
                return;
            }
        };
        let shard = self.shard_id.to_string();
        let verifier = self.verifier.as_ref();
        let mut check = |token: &str| match verifier {
            None => TokenVerdict::NotReady,
            Some(v) => {
                let now_s = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match v.verify(token, &shard, now_s) {
                    Ok(claims) => TokenVerdict::Admit(claims.sub),
                    Err(e) => TokenVerdict::Refuse(format!("{}: {e}", e.code())),
                }
            }
        };
        let tick = self.tick as u64;
        self.admission
            .control(session, &msg, reliable, now, tick, &mut check, actions);
    }

    fn run_actions(&mut self, actions: &mut Vec<Action>) {
        let Some(server) = self.server.as_ref() else {
            actions.clear();
            return;
        };
        let tx = server.sender();
        for a in actions.drain(..) {
            match a {
                Action::Send {
                    session,
                    bytes,
                    reliable,
                } => {
                    let _ = if reliable {
                        tx.send_message(session, bytes)
                    } else {
                        tx.send_datagram(session, &bytes)
                    };
                }
                Action::Close {
                    session,
                    code,
                    reason,
                } => {
                    godot_print!(
                        "FabricZone {}: refusing session {session}: {reason}",
                        self.zone_id
                    );
                    tx.close_session(session, code, &reason);
                }
                Action::Admitted { session, subject } => {
                    let subject = subject.unwrap_or_default();
                    godot_print!(
                        "FabricZone {}: session {session} admitted{}",
                        self.zone_id,
                        if subject.is_empty() {
                            String::new()
                        } else {
                            format!(" as {subject}")
                        }
                    );
                    self.base_mut().emit_signal(
                        "session_admitted",
                        &[
                            (session as i64).to_variant(),
                            GString::from(&subject).to_variant(),
                        ],
                    );
                }
                Action::Acknowledged { session } => {
                    self.base_mut()
                        .emit_signal("welcome_acknowledged", &[(session as i64).to_variant()]);
                }
            }
        }
    }

    /// Records the hashes in use and announced, and writes them to `--cert-hash-file`.
    fn publish_hashes(
        &mut self,
        hash: fabric_net::CertHash,
        next: Option<fabric_net::CertHash>,
    ) -> Result<(), String> {
        self.cert_hash = GString::from(&hash.to_base64());
        self.next_cert_hash = next.map_or_else(GString::new, |n| GString::from(&n.to_base64()));
        if let Some(path) = &self.hash_file {
            let pins: Vec<_> = std::iter::once(hash).chain(next).collect();
            fabric_net::cert::write_pins(path, &pins)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn on_cert_rotated(&mut self, hash: fabric_net::CertHash, next: Option<fabric_net::CertHash>) {
        if let Err(e) = self.publish_hashes(hash, next) {
            godot_error!("FabricZone: {e}");
        }
        let (now, following) = (self.cert_hash.clone(), self.next_cert_hash.clone());
        if let Some(r) = &self.registration {
            let following = following.to_string();
            r.set_cert_hash(
                &now.to_string(),
                (!following.is_empty()).then_some(&following[..]),
            );
        }
        godot_print!("FABRIC_ZONE_CERT_ROTATED cert_hash={now} next_cert_hash={following}");
        self.base_mut()
            .emit_signal("cert_rotated", &[now.to_variant(), following.to_variant()]);
    }

    fn pump_registry(&mut self) {
        let mut events = Vec::new();
        if let Some(r) = self.registration.as_mut() {
            while let Some(ev) = r.try_next_event() {
                events.push(ev);
            }
        }
        for ev in events {
            match ev {
                RegistryEvent::Registered {
                    shard_id,
                    join_keys,
                } => {
                    let keys: Vec<_> = join_keys
                        .iter()
                        .filter_map(|k| fabric_auth::keys::public_key_from_b64(k).ok())
                        .collect();
                    if keys.is_empty() {
                        godot_error!(
                            "FabricZone {}: the registry's join keys are unreadable",
                            self.zone_id
                        );
                    }
                    self.verifier = Some(JoinTokenVerifier::new(keys));
                    self.shard_id = GString::from(&shard_id);
                    godot_print!("FABRIC_ZONE_REGISTERED shard_id={shard_id}");
                    self.base_mut()
                        .emit_signal("registered", &[GString::from(&shard_id).to_variant()]);
                }
                RegistryEvent::HeartbeatOk => {}
                RegistryEvent::CertHashPublished {
                    cert_hash,
                    next_cert_hash,
                } => {
                    godot_print!(
                        "FABRIC_ZONE_CERT_PUBLISHED cert_hash={cert_hash} next_cert_hash={}",
                        next_cert_hash.unwrap_or_default()
                    );
                }
                RegistryEvent::RelationshipChanged { object } => {
                    let subjects = self.admission.admitted_subjects();
                    godot_print!(
                        "FabricZone {}: relationships of {object} changed; re-checking {} player(s)",
                        self.zone_id,
                        subjects.len()
                    );
                    if let Some(r) = &self.registration {
                        r.recheck(subjects);
                    }
                }
                RegistryEvent::JoinRevoked { subject } => {
                    let mut actions = std::mem::take(&mut self.actions);
                    self.admission.revoke(&subject, &mut actions);
                    self.run_actions(&mut actions);
                    self.actions = actions;
                }
                RegistryEvent::Problem(p) => {
                    godot_warn!("FabricZone {}: registry: {p}", self.zone_id);
                    self.base_mut()
                        .emit_signal("registry_problem", &[GString::from(&p).to_variant()]);
                }
            }
        }
    }
}
