//! `FabricZone`: the zone server node.
//!
//! It runs one zone of a fabric: `fabric_core`'s zone ticked at `tick_hz` by
//! [`runtime::ZoneRuntime`] against a [`network::ZoneNetwork`] (an in-memory hub between
//! zones of one process today; the WebTransport zone links plug into the same seam), a
//! population spawned at start ([`config::Population`]), Prometheus metrics and a state dump
//! ([`metrics`]), Godot Performance monitors ([`monitors`]) and a GDScript API ([`api`]).
//!
//! It also listens for client WebTransport sessions (from the gateway or directly) and admits
//! them ([`sessions`]): a `welcome` control datagram resent until acknowledged and, when the
//! zone is registered with a registry backend, a valid join token first.
//!
//! The tick runs from `_process` with the node's own fixed-step pacer
//! ([`fabric_core::pacer`]), not from `_physics_process`: the physics rate is a project-wide
//! setting (60 Hz by default) with its own catch-up rule, while a zone needs its own rate and
//! a bounded, counted catch-up. Settings: [`config`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fabric_auth::JoinTokenVerifier;
use fabric_core::admission::{Action, Admission, AdmissionConfig};
use fabric_net::registry::{Registration, RegistrationConfig};
use fabric_net::{CertRotation, Server, ServerConfig, ServerIdentity};
use godot::classes::{INode, Node, Os, ProjectSettings};
use godot::global::Error;
use godot::prelude::*;

pub mod api;
mod assets;
pub mod config;
mod follow;
pub mod hosting;
pub mod journal;
pub mod link_guard_metrics;
pub mod link_network;
mod map_assets;
pub mod metrics;
pub mod monitors;
pub mod network;
mod original_scheme;
mod ownership;
pub mod ownership_metrics;
mod players;
mod properties;
mod replication;
mod room;
pub mod runtime;
mod sessions;
pub mod shutdown;
pub mod snapshot;
mod stats;
pub mod tick_profile;
mod unclaimed;

use config::{LinkMode, Population, ZoneSettings};
use runtime::{ZoneEvent, ZoneRuntime};

/// A zone server: runs one zone of a fabric and admits client sessions.
///
/// Prints `FABRIC_ZONE_READY zone_id=<id> addr=<ip:port> cert_hash=<base64>
/// next_cert_hash=<base64> precision=<p> owned=<n>` once running (`addr` is empty with
/// `serve_clients` off), and `FABRIC_ZONE_REGISTERED shard_id=<uuid>` once the registry accepted
/// it. With `stats_every_sec`, prints `FABRIC_ZONE_STATS zone=.. tick=.. owned=.. staging=..
/// incoming=.. tick_p50_ms=.. tick_p99_ms=.. tick_max_ms=.. overruns=.. dropped_ticks=..
/// migrations_in_per_s=.. migrations_out_per_s=.. handoff_p50_ms=.. handoff_p99_ms=.. links=..
/// ghosts=.. players=.. commands_accepted=.. refused_<reason>=.. client_views=..
/// client_bytes_per_s=.. client_packets_per_s=.. client_entities_per_packet=..` lines; with
/// `metrics_address`, serves Prometheus metrics on `/metrics` and the held global ids on `/state`.
///
/// Admitted clients become players by sending `spawn`: the zone makes their avatar and checks
/// every command they send (rate, validity, authority, bounds, speed) before applying it
/// (`player_joined`, `player_left`, `command_refused`, `get_avatar()`; `docs/zone.md`, "Players").
/// Each player is sent the entities within `interest_radius` of its avatar, within
/// `client_budget` bytes per second (`docs/session-protocol.md`, "Replication frame").
///
/// Settings come from project settings `multiplayer_fabric/zone/<property>`, then the node's
/// properties, then the user arguments after `--` (see `docs/zone.md`).
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
    /// This zone's index in its fabric (0-based).
    #[export]
    pub(crate) zone_id: i32,
    /// Zones in the fabric (the Hilbert curve is split among them); 0 = `zone_id + 1`.
    #[export]
    pub(crate) zone_count: i32,
    /// The fabric's name: zones of one fabric link to each other.
    #[export]
    pub(crate) fabric_name: GString,
    /// Half the world's extent on each axis, metres (the world is the cube +-this).
    #[export]
    pub(crate) world_half_extent: f64,
    /// Entity slots.
    #[export]
    pub(crate) capacity: i32,
    /// Slots kept for entities migrating in (local spawns stop at `capacity - headroom`).
    #[export]
    pub(crate) headroom: i32,
    /// Ticks an entity stays outside this zone's range before it migrates (0 = 4 s of ticks).
    #[export]
    pub(crate) hysteresis_ticks: i32,
    /// Seconds an avatar nobody plays (handed over to this zone, or brought back from the
    /// journal or a snapshot) waits for its player's `claim` before it is despawned.
    #[export]
    pub(crate) claim_window_sec: f64,
    /// Radius of a client's interest, metres.
    #[export]
    pub(crate) interest_radius: f64,
    /// Replication bytes per second to each player.
    #[export]
    pub(crate) client_budget: i32,
    /// How neighbours are reached: `"none"`, or `"memory"` (zones of this fabric in this process).
    #[export]
    pub(crate) link_mode: GString,
    /// Port for zone links (0 = any free port).
    #[export]
    pub(crate) link_port: i32,
    /// Directory for the zone's files (empty = none): a graceful shutdown writes the
    /// `FabricSnapshot` there, and the zone reloads its range from it at start.
    #[export]
    pub(crate) data_dir: GString,
    /// Population spawned at start: `"none"` or `"wanderers"` (this zone's share of `entities`).
    #[export]
    pub(crate) population: GString,
    /// Entities of the population in the whole fabric.
    #[export]
    pub(crate) entities: i32,
    /// Seed of the population.
    #[export]
    pub(crate) seed: i64,
    /// Most ticks run in one frame when the zone fell behind; the rest is dropped and counted.
    #[export]
    pub(crate) max_catch_up: i32,
    /// Most network events handled per tick.
    #[export]
    pub(crate) event_budget: i32,
    /// Milliseconds a client session may stay without a valid join token before it is closed,
    /// when tokens are required (default 10000).
    #[export]
    pub(crate) join_timeout_msec: i32,
    /// The client server's budgets in bytes, admission caps and handshake deadline
    /// (`FabricNetLimits`); null = the project settings `multiplayer_fabric/limits/<name>`, else
    /// the defaults. The command line sets them with one flag each (`--max-sessions N`,
    /// `--send-budget 1MiB`, ...; `docs/session-protocol.md`, "Limits"). Read by `start()`.
    #[export]
    pub(crate) limits: Option<Gd<crate::limits::FabricNetLimits>>,
    /// Prometheus endpoint (`IP:PORT`; empty = none).
    #[export]
    pub(crate) metrics_address: GString,
    /// Seconds between `FABRIC_ZONE_STATS` lines (0 = none).
    #[export]
    pub(crate) stats_every_sec: f64,
    /// Quit the engine after this many seconds of running (0 = never), with a last stats line.
    #[export]
    pub(crate) quit_after_sec: f64,
    /// Listen for client sessions (off: the zone only simulates and links).
    #[export]
    pub(crate) serve_clients: bool,
    /// UDP port to listen on for clients (0 = any free port).
    #[export]
    pub(crate) port: i32,
    /// Address to bind (`"*"` = all interfaces).
    #[export]
    pub(crate) bind_address: GString,
    /// Simulation ticks per second.
    #[export]
    pub(crate) tick_hz: i32,
    /// Start in `_ready` (otherwise call `start()`).
    #[export]
    pub(crate) autostart: bool,
    /// Read the user arguments after `--` in `_ready` (over the properties).
    #[export]
    pub(crate) use_command_line: bool,
    /// Registry backend (`http://host:port`, or `https://host:port` with
    /// [member backend_cert_hash]); empty = do not register, admit without tokens.
    #[export]
    pub(crate) backend_url: GString,
    /// SHA-256 of the certificate an `https://` backend presents (base64 or hex; several
    /// comma-separated), as its start-up line prints it: the only certificate accepted.
    #[export]
    pub(crate) backend_cert_hash: GString,
    /// Join-token public keys (base64url) to trust instead of those the backend publishes at
    /// `GET /keys/join` (empty = trust what it publishes).
    #[export]
    pub(crate) join_keys: PackedStringArray,
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
    /// Room whose `placed_saved` objects this zone loads at start and saves (`save_room()`,
    /// graceful shutdown) through `backend_url` with the operator API key; empty = none
    /// (`--room ID` on the command line; see `docs/zone.md`, "Rooms").
    #[export]
    pub(crate) room_id: GString,
    /// How entity properties (payload words 1..13) reach the players: per class, which words
    /// are replicated and how (`docs/manifest.md`). None: players get the class word only.
    /// Takes effect at once, also while running.
    #[export]
    #[var(get = get_replication_manifest, set = set_replication_manifest)]
    pub(crate) replication_manifest: Option<Gd<crate::manifest::FabricReplicationManifest>>,
    /// The property sends of one run, between the replication and the network (reused).
    prop_scratch: Vec<(u64, fabric_core::manifest::PropertySend)>,
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
    /// Fabric key and static members for `--link network` (command line only).
    link_net: link_network::LinkSettings,
    /// The journal's `synchronous` and the asset placement rules (command line only).
    /// Sessions that may ask for the original scheme (command line only:
    /// `--original-scheme-sessions`, a benchmark's baseline).
    original_scheme_sessions: u32,
    durability: (
        fabric_journal::Synchronous,
        fabric_core::asset_placement::PlacementRules,
    ),
    /// World bounds given as six numbers on the command line (not a cube).
    bounds_override: Option<([f64; 3], [f64; 3])>,
    server: Option<Server>,
    registration: Option<Registration>,
    verifier: Option<JoinTokenVerifier>,
    admission: Admission,
    actions: Vec<Action>,
    clock: Instant,
    runtime: Option<ZoneRuntime>,
    published: Option<Arc<metrics::Published>>,
    /// The `/metrics` and `/state` server thread (stopped and joined when dropped).
    metrics_server: Option<metrics::MetricsServer>,
    event_buf: Vec<ZoneEvent>,
    last_frame: Instant,
    started_at: Instant,
    next_stats_at: f64,
    last_catch_up_warning: Option<Instant>,
    monitors: Vec<StringName>,
    /// Avatars and the command gate ([`players`]).
    players: players::Players,
    /// The graceful shutdown in progress, if any ([`shutdown`]).
    shutdown: Option<shutdown::Shutdown>,
    /// A snapshot reloaded at start, marked as reloaded once the journal holds its entities.
    restore_marker: Option<shutdown::RestoreMarker>,
    /// Players following their avatars to other zones ([`follow`]).
    follow: follow::Follow,
    /// Avatars nobody plays, waiting for their claim ([`unclaimed`]).
    unclaimed: unclaimed::UnclaimedAvatars,
    /// `--assets` was given as a list or `any` (`Some(false)`) or as `backend` (`Some(true)`);
    /// `None`: from the backend when registering (command line only).
    assets_from_backend: Option<bool>,
    /// The map's placeable assets, when they come from the backend ([`map_assets`]).
    map_assets: Option<map_assets::MapAssets>,
    /// The room saved and loaded through the backend ([`room`]).
    room: room::ZoneRoom,
    /// A zone of a zone process (from the command line, or hosted beside it by
    /// [`hosting`]): an unusable journal quits the process, and a graceful shutdown quits it
    /// once every such zone is done.
    process_zone: bool,
}

/// The user arguments after `--` on the engine's command line.
pub(crate) fn user_args() -> Vec<String> {
    Os::singleton()
        .get_cmdline_user_args()
        .as_slice()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Reads `multiplayer_fabric/zone/<name>` into `slot` when the project sets it.
fn project_setting<T: FromGodot>(ps: &Gd<ProjectSettings>, name: &str, slot: &mut T) {
    let key = format!("multiplayer_fabric/zone/{name}");
    if ps.has_setting(&key) {
        match ps.get_setting(&key).try_to::<T>() {
            Ok(v) => *slot = v,
            Err(e) => godot_error!("FabricZone: project setting {key}: {e}"),
        }
    }
}

#[godot_api]
impl INode for FabricZone {
    fn init(base: Base<Node>) -> Self {
        let d = ZoneSettings::default();
        let mut z = Self {
            base,
            zone_id: d.zone_index as i32,
            zone_count: d.zone_count as i32,
            fabric_name: GString::from(&d.fabric),
            world_half_extent: d.world_max_m[0],
            capacity: d.capacity as i32,
            headroom: d.headroom as i32,
            hysteresis_ticks: d.hysteresis_ticks as i32,
            claim_window_sec: d.claim_window_s,
            interest_radius: d.interest_radius_m,
            client_budget: d.client_budget_bytes_per_s as i32,
            link_mode: "none".into(),
            link_port: i32::from(d.link_port),
            data_dir: GString::new(),
            population: "none".into(),
            entities: 1000,
            seed: 1,
            max_catch_up: d.max_catch_up as i32,
            event_budget: d.event_budget as i32,
            join_timeout_msec: d.join_timeout_msec as i32,
            limits: None,
            metrics_address: GString::new(),
            stats_every_sec: 0.0,
            quit_after_sec: 0.0,
            serve_clients: true,
            port: i32::from(d.port),
            bind_address: GString::from(&d.bind),
            tick_hz: d.tick_hz as i32,
            autostart: true,
            use_command_line: true,
            backend_url: GString::new(),
            backend_cert_hash: GString::new(),
            join_keys: PackedStringArray::new(),
            public_address: GString::new(),
            map_name: GString::from(&d.map_name),
            zone_name: GString::new(),
            heartbeat_sec: d.heartbeat_sec,
            require_token: false,
            websocket_fallback: true,
            cert_rotation_sec: d.cert_rotation_sec,
            room_id: GString::new(),
            replication_manifest: None,
            prop_scratch: Vec::new(),
            tick: 0,
            cert_hash: GString::new(),
            next_cert_hash: GString::new(),
            shard_id: GString::new(),
            api_key: std::env::var("FABRIC_BACKEND_API_KEY").unwrap_or_default(),
            hash_file: None,
            link_net: Default::default(),
            durability: Default::default(),
            original_scheme_sessions: 0,
            bounds_override: None,
            server: None,
            registration: None,
            verifier: None,
            admission: Admission::new(AdmissionConfig::new(0)),
            actions: Vec::new(),
            clock: Instant::now(),
            runtime: None,
            published: None,
            metrics_server: None,
            event_buf: Vec::new(),
            last_frame: Instant::now(),
            started_at: Instant::now(),
            next_stats_at: 0.0,
            last_catch_up_warning: None,
            monitors: Vec::new(),
            players: Default::default(),
            shutdown: None,
            restore_marker: None,
            follow: Default::default(),
            unclaimed: Default::default(),
            assets_from_backend: None,
            map_assets: None,
            room: Default::default(),
            process_zone: false,
        };
        let ps = ProjectSettings::singleton();
        project_setting(&ps, "zone_index", &mut z.zone_id);
        project_setting(&ps, "zone_count", &mut z.zone_count);
        project_setting(&ps, "fabric_name", &mut z.fabric_name);
        project_setting(&ps, "world_half_extent", &mut z.world_half_extent);
        project_setting(&ps, "capacity", &mut z.capacity);
        project_setting(&ps, "headroom", &mut z.headroom);
        project_setting(&ps, "hysteresis_ticks", &mut z.hysteresis_ticks);
        project_setting(&ps, "claim_window_sec", &mut z.claim_window_sec);
        project_setting(&ps, "interest_radius", &mut z.interest_radius);
        project_setting(&ps, "client_budget", &mut z.client_budget);
        project_setting(&ps, "link_mode", &mut z.link_mode);
        project_setting(&ps, "link_port", &mut z.link_port);
        project_setting(&ps, "data_dir", &mut z.data_dir);
        project_setting(&ps, "population", &mut z.population);
        project_setting(&ps, "entities", &mut z.entities);
        project_setting(&ps, "seed", &mut z.seed);
        project_setting(&ps, "tick_hz", &mut z.tick_hz);
        project_setting(&ps, "max_catch_up", &mut z.max_catch_up);
        project_setting(&ps, "event_budget", &mut z.event_budget);
        project_setting(&ps, "join_timeout_msec", &mut z.join_timeout_msec);
        project_setting(&ps, "metrics_address", &mut z.metrics_address);
        project_setting(&ps, "port", &mut z.port);
        project_setting(&ps, "bind_address", &mut z.bind_address);
        z
    }

    fn ready(&mut self) {
        if self.use_command_line {
            // A zone process: SIGINT/SIGTERM start a graceful shutdown.
            shutdown::install_signal_handlers();
            let args = user_args();
            let parsed = self
                .settings_from_properties()
                .and_then(|base| config::parse_args(base, &args));
            match parsed {
                Ok(s) => {
                    if s.max_fps > 0 {
                        godot::classes::Engine::singleton().set_max_fps(s.max_fps as i32);
                    }
                    if let Err(e) = self.host_zones(&s) {
                        godot_error!("FabricZone: {e}; the command line is ignored");
                    }
                }
                Err(e) => godot_error!("FabricZone: {e}; the command line is ignored"),
            }
        }
        if self.autostart {
            let err = self.start();
            if err != Error::OK {
                godot_error!(
                    "FabricZone {}: could not start; see the error above",
                    self.zone_id
                );
                if self.process_zone && err == Error::ERR_CANT_OPEN {
                    // A zone server whose journal is unusable must not run (nor look alive).
                    godot_print!("FABRIC_ZONE_FAILED zone_id={} reason=journal", self.zone_id);
                    self.base().get_tree().quit_ex().exit_code(1).done();
                }
            }
        }
    }

    fn process(&mut self, _delta: f64) {
        self.poll_room();
        let now = Instant::now();
        if self.room.loading() {
            // Not ticking nor admitting until the room is in (see `room`).
            self.last_frame = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.last_frame);
        self.last_frame = now;
        if self.runtime.is_some() {
            self.run_frame(elapsed);
        }
        self.shutdown_step();
        if self.server.is_some() || self.registration.is_some() {
            self.pump();
        }
    }

    fn exit_tree(&mut self) {
        self.stop();
    }
}

#[godot_api]
impl FabricZone {
    /// The replication manifest in use (`replication_manifest`).
    #[func]
    pub fn get_replication_manifest(
        &self,
    ) -> Option<Gd<crate::manifest::FabricReplicationManifest>> {
        self.replication_manifest.clone()
    }

    /// Sets `replication_manifest`; it applies from the next tick on (an invalid entry is
    /// reported in the Output and the manifest is not used).
    #[func]
    pub fn set_replication_manifest(
        &mut self,
        manifest: Option<Gd<crate::manifest::FabricReplicationManifest>>,
    ) {
        self.replication_manifest = manifest;
        self.apply_manifest();
    }

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
    /// An entity was spawned here (by `spawn()` or the start population); `id` is its global id.
    #[signal]
    fn spawned(id: i64);
    /// An entity owned here was despawned.
    #[signal]
    fn despawned(id: i64);
    /// Entity `id` became owned here, handed over by zone `from_zone`.
    #[signal]
    fn migrated_in(id: i64, from_zone: i64);
    /// Entity `id` was handed to zone `to_zone` (its acceptance was seen; this zone no longer
    /// holds it).
    #[signal]
    fn migrated_out(id: i64, to_zone: i64);
    /// The link to neighbour `zone` is up.
    #[signal]
    fn neighbour_linked(zone: i64);
    /// The link to neighbour `zone` is down (its hand-offs roll back until it returns).
    #[signal]
    fn neighbour_unlinked(zone: i64);
    /// Admitted `session` asked to `spawn` and now plays entity `avatar_id`, made here.
    #[signal]
    pub(crate) fn player_joined(session: i64, avatar_id: i64);
    /// `session` closed; its avatar `avatar_id` was despawned (when still owned here).
    #[signal]
    pub(crate) fn player_left(session: i64, avatar_id: i64);
    /// Commands of `session` were refused for `reason` (`rate`, `malformed`, `not_joined`,
    /// `authority`, `bounds`, `speed`, `not_here`, and for CMD_INSTANCE_ASSET `place_forbidden`, `unknown_asset`,
    /// `not_in_zone`, `too_far`, `no_capacity`, `ack_backlog`); emitted with each error report the client
    /// gets, so at most once a second per session and reason.
    #[signal]
    pub(crate) fn command_refused(session: i64, reason: GString);
    /// A player of `session` placed an instance of asset `asset_id` (CMD_INSTANCE_ASSET): entity
    /// `entity`, made here. Emitted when it is made; the player hears `placed` once the
    /// journal committed it (`docs/persistence.md`).
    #[signal]
    pub(crate) fn asset_placed(session: i64, entity: i64, asset_id: i64);

    /// A room save finished: `ok`, the room's new `version` and the `entities` saved, or the
    /// `error` in words (`ok` false).
    #[signal]
    pub(crate) fn room_saved(ok: bool, version: i64, entities: i64, error: GString);

    /// The room was loaded at start: `entities` restored from `version` (0 for a room never
    /// saved). A load that fails stops the zone; it is reported with `ok` false.
    #[signal]
    pub(crate) fn room_loaded(ok: bool, version: i64, entities: i64, error: GString);

    /// Starts the zone: the simulation (and its population), links, metrics and, with
    /// `serve_clients`, the client listener (and registration, with `backend_url`). Returns
    /// `ERR_ALREADY_IN_USE` when running, `ERR_INVALID_PARAMETER` for unusable settings,
    /// `ERR_CANT_CREATE` when a port cannot be bound or the zone index is taken in this fabric,
    /// `ERR_UNCONFIGURED` when `backend_url` (or `room_id`) is set without an API key,
    /// `ERR_FILE_CORRUPT` when
    /// `data_dir` holds a snapshot that cannot be reloaded (see `load_snapshot`), `ERR_CANT_OPEN`
    /// when the journal in `data_dir` is unusable (the error names the file) or its entities do
    /// not fit.
    #[func]
    pub fn start(&mut self) -> Error {
        if self.runtime.is_some() || self.server.is_some() {
            return Error::ERR_ALREADY_IN_USE;
        }
        let settings = match self.settings_from_properties() {
            Ok(s) => s,
            Err(e) => {
                godot_error!("FabricZone: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        if self.serve_clients {
            let err = self.start_server();
            if err != Error::OK {
                return err;
            }
        }
        let err = self.start_runtime(&settings);
        if err != Error::OK {
            self.stop();
            return err;
        }
        if let Err(e) = self.restore_at_start() {
            godot_error!("FabricZone {}: {e}; not started", self.zone_id);
            self.stop();
            return Error::ERR_FILE_CORRUPT;
        }
        match self.begin_room_load() {
            // `FABRIC_ZONE_READY` once the room is in.
            Ok(true) => return Error::OK,
            Ok(false) => {}
            Err(e) => {
                self.stop();
                return e;
            }
        }
        self.announce_ready();
        Error::OK
    }

    /// Prints `FABRIC_ZONE_READY ...` (the zone runs, its room loaded).
    fn announce_ready(&self) {
        let owned = self.runtime.as_ref().map_or(0, |r| r.counts().owned);
        godot_print!(
            "FABRIC_ZONE_READY zone_id={} addr={} cert_hash={} next_cert_hash={} precision={} owned={owned}",
            self.zone_id,
            self.server
                .as_ref()
                .map_or(String::new(), |s| s.local_addr().to_string()),
            self.cert_hash,
            self.next_cert_hash,
            if cfg!(feature = "double") {
                "double"
            } else {
                "single"
            }
        );
    }

    /// Stops the zone: closes every session, leaves the registry and the fabric, stops serving
    /// metrics.
    #[func]
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown("zone shutting down");
        }
        if let Some(r) = self.registration.take() {
            r.stop();
        }
        self.map_assets = None;
        if let Some(Err(e)) = self.runtime.as_mut().and_then(ZoneRuntime::close_journal) {
            godot_error!("FabricZone {}: {e}", self.zone_id);
        }
        self.runtime = None;
        self.published = None;
        // Joins the server thread: it must not outlive the library (unloaded at exit).
        self.metrics_server = None;
        monitors::remove(&mut self.monitors);
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
}

impl FabricZone {
    /// The settings the properties (and the command line's six-number bounds) describe.
    pub(crate) fn settings_from_properties(&self) -> Result<ZoneSettings, config::ConfigError> {
        let h = self.world_half_extent;
        let (world_min_m, world_max_m) = self.bounds_override.unwrap_or(([-h; 3], [h; 3]));
        let u = |v: i32| u32::try_from(v).unwrap_or(0);
        let base = ZoneSettings {
            zone_index: u(self.zone_id),
            zone_count: u(self.zone_count),
            fabric: self.fabric_name.to_string(),
            world_min_m,
            world_max_m,
            capacity: u(self.capacity),
            headroom: u(self.headroom),
            hysteresis_ticks: u(self.hysteresis_ticks),
            claim_window_s: self.claim_window_sec,
            interest_radius_m: self.interest_radius,
            client_budget_bytes_per_s: u(self.client_budget),
            original_scheme_sessions: self.original_scheme_sessions,
            port: u16::try_from(self.port).unwrap_or(0),
            bind: self.bind_address.to_string(),
            link_port: u16::try_from(self.link_port).unwrap_or(0),
            link: LinkMode::None,
            data_dir: (!self.data_dir.is_empty()).then(|| PathBuf::from(self.data_dir.to_string())),
            // Command line only (`--journal-sync`, `--place-radius`, `--assets`).
            journal_sync: self.durability.0,
            placement: self.durability.1.clone(),
            assets_from_backend: self.assets_from_backend,
            tick_hz: u(self.tick_hz),
            max_catch_up: u(self.max_catch_up),
            event_budget: u(self.event_budget),
            join_timeout_msec: u(self.join_timeout_msec),
            limits: crate::limits::server_limits(self.limits.as_ref())
                .map_err(|e| config::ConfigError::Zone(format!("limits: {e}")))?,
            population: Population::None,
            metrics_addr: None,
            stats_every_s: self.stats_every_sec,
            quit_after_s: self.quit_after_sec,
            backend_url: self.backend_url.to_string(),
            backend_cert_hash: self.backend_cert_hash.to_string(),
            join_keys: self
                .join_keys
                .as_slice()
                .iter()
                .map(|k| k.to_string())
                .collect(),
            api_key: self.api_key.clone(),
            public_address: self.public_address.to_string(),
            map_name: self.map_name.to_string(),
            zone_name: self.zone_name.to_string(),
            heartbeat_sec: self.heartbeat_sec,
            require_token: self.require_token,
            websocket_fallback: self.websocket_fallback,
            cert_rotation_sec: self.cert_rotation_sec,
            cert_hash_file: self.hash_file.clone(),
            link_net: self.link_net.clone(),
            hosted: None,
            max_fps: 0,
        };
        // The string-typed properties are checked by the same parser as the command line.
        let mut strings = vec![
            "--link".to_owned(),
            self.link_mode.to_string(),
            "--population".to_owned(),
            self.population.to_string(),
            "--entities".to_owned(),
            self.entities.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if !self.metrics_address.is_empty() {
            strings.extend([
                "--metrics-addr".to_owned(),
                self.metrics_address.to_string(),
            ]);
        }
        config::parse_args(base, &strings)
    }

    /// Writes `s` back into the properties (so scripts see the settings in use).
    fn set_properties(&mut self, s: &ZoneSettings) {
        let cube = s.world_min_m.iter().all(|&m| m == -s.world_max_m[0])
            && s.world_max_m.iter().all(|&m| m == s.world_max_m[0]);
        self.bounds_override = (!cube).then_some((s.world_min_m, s.world_max_m));
        self.world_half_extent = s.world_max_m[0];
        self.zone_id = s.zone_index as i32;
        self.zone_count = s.zone_count as i32;
        self.fabric_name = GString::from(&s.fabric);
        self.capacity = s.capacity as i32;
        self.headroom = s.headroom as i32;
        self.hysteresis_ticks = s.hysteresis_ticks as i32;
        self.claim_window_sec = s.claim_window_s;
        self.interest_radius = s.interest_radius_m;
        self.client_budget = s.client_budget_bytes_per_s as i32;
        self.port = i32::from(s.port);
        self.bind_address = GString::from(&s.bind);
        self.link_port = i32::from(s.link_port);
        self.link_mode = match s.link {
            LinkMode::None => "none",
            LinkMode::Memory => "memory",
            LinkMode::Network => "network",
        }
        .into();
        self.data_dir = s
            .data_dir
            .as_ref()
            .map_or_else(GString::new, |p| GString::from(&p.display().to_string()));
        self.tick_hz = s.tick_hz as i32;
        self.max_catch_up = s.max_catch_up as i32;
        self.event_budget = s.event_budget as i32;
        self.join_timeout_msec = i32::try_from(s.join_timeout_msec).unwrap_or(i32::MAX);
        self.limits = Some(crate::limits::resource(&s.limits));
        match s.population {
            Population::None => self.population = "none".into(),
            Population::Wanderers { entities, seed } => {
                self.population = "wanderers".into();
                self.entities = entities as i32;
                self.seed = seed as i64;
            }
        }
        self.metrics_address = s
            .metrics_addr
            .map_or_else(GString::new, |a| GString::from(&a.to_string()));
        self.stats_every_sec = s.stats_every_s;
        self.quit_after_sec = s.quit_after_s;
        self.backend_url = GString::from(&s.backend_url);
        self.backend_cert_hash = GString::from(&s.backend_cert_hash);
        self.join_keys = s.join_keys.iter().map(GString::from).collect();
        self.api_key = s.api_key.clone();
        self.public_address = GString::from(&s.public_address);
        self.map_name = GString::from(&s.map_name);
        self.zone_name = GString::from(&s.zone_name);
        self.heartbeat_sec = s.heartbeat_sec;
        self.require_token = s.require_token;
        self.websocket_fallback = s.websocket_fallback;
        self.cert_rotation_sec = s.cert_rotation_sec;
        self.hash_file = s.cert_hash_file.clone();
        self.link_net = s.link_net.clone();
        self.durability = (s.journal_sync, s.placement.clone());
        self.original_scheme_sessions = s.original_scheme_sessions;
        self.assets_from_backend = s.assets_from_backend;
    }

    fn start_runtime(&mut self, s: &ZoneSettings) -> Error {
        let cfg = match s.core_config() {
            Ok(c) => c,
            Err(e) => {
                godot_error!("FabricZone: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let repl = match s.replication_config().map(replication::Replication::new) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                godot_error!("FabricZone: client replication: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
            Err(e) => {
                godot_error!("FabricZone: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let mut linked_tickets = None;
        let net: Box<dyn network::ZoneNetwork> = match s.link {
            LinkMode::None => Box::new(network::NoNetwork),
            LinkMode::Memory => {
                let neighbours = fabric_core::aoi::neighbours(&cfg.layout, cfg.zone_id);
                match network::MemoryNetwork::join(&s.fabric, cfg.zone_id, neighbours) {
                    Ok(n) => Box::new(n),
                    Err(e) => {
                        godot_error!("FabricZone: {e}");
                        return Error::ERR_CANT_CREATE;
                    }
                }
            }
            LinkMode::Network => match link_network::LinkNetwork::start(s, &cfg) {
                Ok(n) => {
                    linked_tickets = Some(n.linked_tickets());
                    godot_print!(
                        "FABRIC_ZONE_LINK_READY zone_id={} member={}",
                        s.zone_index,
                        n.member_arg()
                    );
                    Box::new(n)
                }
                Err(e) => {
                    godot_error!("FabricZone {}: links: {e}", s.zone_index);
                    return Error::ERR_CANT_CREATE;
                }
            },
        };
        let published = metrics::Published::new(&s.fabric, s.zone_index);
        let mut metrics_server = None;
        if let Some(addr) = s.metrics_addr {
            match metrics::serve(addr, published.clone()) {
                Ok((server, bound)) => {
                    metrics_server = Some(server);
                    godot_print!("FABRIC_ZONE_METRICS zone_id={} addr={bound}", s.zone_index)
                }
                Err(e) => {
                    godot_error!("FabricZone {}: metrics on {addr}: {e}", s.zone_index);
                    return Error::ERR_CANT_CREATE;
                }
            }
        }
        let limits = runtime::Limits {
            max_catch_up: s.max_catch_up,
            event_budget: s.event_budget.max(1) as usize,
            ghost_rows: cfg.capacity * 2,
        };
        let mut rt = match ZoneRuntime::new(cfg, net, limits, published.clone()) {
            Ok(r) => r,
            Err(e) => {
                godot_error!("FabricZone: {e}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        if s.link == LinkMode::Network {
            // Processes of a fabric agree on tick numbers (see `link_network::epoch_tick`).
            let (tick, phase_ns) = link_network::epoch_position(cfg.tick_hz);
            rt.start_at_tick(tick, phase_ns);
        }
        let mut population = s.population;
        if let Some(dir) = &s.data_dir {
            if shutdown::snapshot_pending(dir, s.zone_index) {
                // A graceful shutdown's snapshot not reloaded yet: it supersedes the journal.
                match journal::set_aside(dir, s.zone_index) {
                    Ok(Some(to)) => godot_print!(
                        "FabricZone {}: a snapshot in {} is newer than the journal; the journal was moved to {}",
                        s.zone_index,
                        dir.display(),
                        to.display()
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        godot_error!(
                            "FabricZone {}: moving the journal aside in {}: {e}",
                            s.zone_index,
                            dir.display()
                        );
                        return Error::ERR_CANT_OPEN;
                    }
                }
            }
            let sqlite = fabric_journal::SqliteConfig {
                synchronous: s.journal_sync,
            };
            match journal::ZoneJournal::open_with(dir, s.zone_index, sqlite) {
                Ok((j, holds)) => {
                    let path = j.path().display().to_string();
                    if holds.last_seq > 0 {
                        // The journal's entity set wins over the start population.
                        population = Population::None;
                    }
                    if let Err(e) = rt.attach_journal(j, &holds) {
                        godot_error!(
                            "FabricZone {}: journal {path}: {} entities do not fit: {e}",
                            s.zone_index,
                            holds.state.len()
                        );
                        return Error::ERR_CANT_OPEN;
                    }
                    godot_print!(
                        "FABRIC_ZONE_JOURNAL zone_id={} file={path} entities={} last_tick={} last_seq={} replayed={}",
                        s.zone_index,
                        holds.state.len(),
                        holds.last_tick,
                        holds.last_seq,
                        holds.replayed
                    );
                }
                Err(e) => {
                    godot_error!("FabricZone {}: {e}", s.zone_index);
                    return Error::ERR_CANT_OPEN;
                }
            }
        }
        rt.spawn_population(population);
        rt.publish();
        self.reset_players(&cfg, repl);
        self.players.original =
            original_scheme::OriginalSchemeSessions::new(s.original_scheme_sessions, cfg.capacity);
        self.unclaimed = unclaimed::UnclaimedAvatars::new(s.claim_window_s, cfg.capacity);
        self.apply_manifest();
        self.players.placements.set_rules(s.placement.clone());
        self.follow = match follow::Follow::new(s, linked_tickets) {
            Ok(f) => f,
            Err(e) => {
                godot_error!("FabricZone {}: follow tickets: {e}", s.zone_index);
                return Error::ERR_CANT_OPEN;
            }
        };
        self.runtime = Some(rt);
        self.monitors = monitors::add(&published, s.zone_index);
        self.published = Some(published);
        self.metrics_server = metrics_server;
        self.tick = 0;
        self.last_frame = Instant::now();
        self.started_at = self.last_frame;
        self.next_stats_at = s.stats_every_s;
        self.flush_events();
        Error::OK
    }

    fn start_server(&mut self) -> Error {
        let registering = !self.backend_url.is_empty();
        if self.assets_from_backend == Some(true) && !registering {
            godot_error!("FabricZone: --assets backend needs a backend (--backend and an API key)");
            return Error::ERR_UNCONFIGURED;
        }
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
        let limits = match crate::limits::server_limits(self.limits.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                godot_error!("FabricZone {}: limits: {e}", self.zone_id);
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let mut scfg = ServerConfig::new(addr, identity);
        scfg.limits = limits;
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
        cfg.token_deadline_ms = u64::try_from(self.join_timeout_msec.max(1)).unwrap_or(1);
        self.admission = Admission::new(cfg);
        self.clock = Instant::now();
        let next = server.next_cert_hash();
        if let Err(e) = self.publish_hashes(server.cert_hash(), next) {
            godot_error!("FabricZone: {e}");
            return Error::ERR_CANT_CREATE;
        }
        if registering {
            let name = if self.zone_name.is_empty() {
                format!("zone {}", self.zone_id)
            } else {
                self.zone_name.to_string()
            };
            let public = self.public_address.to_string();
            let backend = match config::backend_endpoint(
                &self.backend_url.to_string(),
                &self.backend_cert_hash.to_string(),
            ) {
                Ok(b) => b,
                Err(e) => {
                    godot_error!("FabricZone: registry backend: {e}");
                    return Error::ERR_INVALID_PARAMETER;
                }
            };
            // `backend_endpoint` accepted the hashes: they parse.
            let pins = crate::assets::job::cert_pins(&self.backend_cert_hash.to_string())
                .unwrap_or_default();
            self.map_assets = self.assets_from_backend.unwrap_or(true).then(|| {
                map_assets::MapAssets::new(
                    backend.clone(),
                    pins,
                    self.api_key.clone(),
                    self.map_name.to_string(),
                )
            });
            self.registration = Some(Registration::start(RegistrationConfig {
                backend,
                pinned_join_keys: self
                    .join_keys
                    .as_slice()
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
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

    /// Runs the ticks due after `elapsed`, then emits signals and prints stats.
    fn run_frame(&mut self, elapsed: Duration) {
        self.carry_ownership();
        let Some(rt) = self.runtime.as_mut() else {
            return;
        };
        let steps = rt.frame(elapsed.as_nanos() as u64);
        // Link packets are handled every frame, not only by the tick (hand-off latency).
        rt.pump();
        self.tick = rt.zone().current_tick() as i64;
        if steps.dropped > 0 {
            let now = Instant::now();
            // One warning a second at most: a stalled zone must not flood the log.
            if self
                .last_catch_up_warning
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                self.last_catch_up_warning = Some(now);
                godot_warn!(
                    "FabricZone {}: fell behind; ran {} ticks and dropped {} (dropped {} in all)",
                    self.zone_id,
                    steps.run,
                    steps.dropped,
                    rt.pacer().dropped_total()
                );
            }
        }
        if steps.run > 0 {
            // After the ticks: claims of avatars that just arrived (`follow`), then each
            // player's packet (`replication`).
            self.bind_pending_claims();
            let start = tick_profile::Lap::now();
            self.replicate();
            if let Some(rt) = self.runtime.as_mut() {
                rt.record_phase(
                    tick_profile::Phase::Replicate,
                    &start,
                    &tick_profile::Lap::now(),
                );
            }
        }
        self.flush_events();
        self.reap_unclaimed();
        self.mark_restored_when_durable();
        let running = self.started_at.elapsed().as_secs_f64();
        if self.stats_every_sec > 0.0 && running >= self.next_stats_at {
            self.next_stats_at = running + self.stats_every_sec;
            godot_print!("{}", self.stats_line());
        }
        if self.quit_after_sec > 0.0 && running >= self.quit_after_sec {
            self.quit_after_sec = 0.0;
            godot_print!("{}", self.stats_line());
            godot_print!("FABRIC_ZONE_DONE zone_id={}", self.zone_id);
            self.base().get_tree().quit();
        }
    }

    /// Emits the runtime's events as signals.
    fn flush_events(&mut self) {
        let mut buf = std::mem::take(&mut self.event_buf);
        if let Some(rt) = self.runtime.as_mut() {
            buf.extend(rt.drain_events());
        }
        for ev in buf.drain(..) {
            match ev {
                ZoneEvent::MigratedOut { id, to } => {
                    self.on_avatar_moved_out(id, u32::from(to));
                    self.unclaimed.forget(id);
                }
                ZoneEvent::MigratedIn { id, .. } => self.unclaimed_arrived(id),
                ZoneEvent::Despawned(id) => self.unclaimed.forget(id),
                _ => {}
            }
            let mut s = self.signals();
            match ev {
                ZoneEvent::Spawned(id) => s.spawned().emit(i64::from(id)),
                ZoneEvent::Despawned(id) => s.despawned().emit(i64::from(id)),
                ZoneEvent::MigratedIn { id, from } => {
                    s.migrated_in().emit(i64::from(id), i64::from(from))
                }
                ZoneEvent::MigratedOut { id, to } => {
                    s.migrated_out().emit(i64::from(id), i64::from(to))
                }
                ZoneEvent::Linked(z) => s.neighbour_linked().emit(i64::from(z)),
                ZoneEvent::Unlinked(z) => s.neighbour_unlinked().emit(i64::from(z)),
            }
        }
        self.event_buf = buf;
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
    pub(crate) fn is_acknowledged(&self, session: fabric_net::SessionId) -> bool {
        self.admission.is_acknowledged(session)
    }
}
