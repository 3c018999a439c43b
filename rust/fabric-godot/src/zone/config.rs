//! A zone's settings as one typed struct, and the plain function that reads them from the
//! command line.
//!
//! Precedence, lowest first: built-in defaults ([`ZoneSettings::default`]), project settings
//! `multiplayer_fabric/zone/<name>` (read by the node when it is created), the node's exported
//! properties (the scene), then the user arguments after `--` on Godot's command line
//! ([`parse_args`]). Nothing here touches Godot, so it is unit-tested like any Rust code.
//!
//! Command line (`--key value` or `--key=value`):
//!
//! | argument | field |
//! |---|---|
//! | `--zone-id N` (alias `--zone-index`) | [`ZoneSettings::zone_index`] |
//! | `--zone-count N` | [`ZoneSettings::zone_count`] |
//! | `--fabric NAME` | [`ZoneSettings::fabric`] |
//! | `--world-bounds H` or `--world-bounds X0,Y0,Z0,X1,Y1,Z1` (metres) | [`ZoneSettings::world_min_m`], [`ZoneSettings::world_max_m`] |
//! | `--capacity N`, `--headroom N` | slots, slots kept for arrivals |
//! | `--hysteresis-ticks N` | ticks outside the range before a migration starts |
//! | `--interest-radius M` | [`ZoneSettings::interest_radius_m`] |
//! | `--claim-window-sec S` | [`ZoneSettings::claim_window_s`]: how long an avatar nobody plays waits for its `claim` |
//! | `--client-budget B` | [`ZoneSettings::client_budget_bytes_per_s`] |
//! | `--original-scheme-sessions N` | [`ZoneSettings::original_scheme_sessions`]: sessions that may ask for the original scheme (the baseline of the replication benchmark; 0 by default) |
//! | `--port P`, `--bind ADDR`, `--link-port P` | client port, bind address, zone link port |
//! | `--link memory` / `--link network` / `--link none` | [`ZoneSettings::link`] |
//! | `--fabric-key-file PATH`, `--members "k/n@host:port#hash ..."`, `--members-file PATH` | static link membership ([`ZoneSettings::link_net`]) |
//! | `--zone-directory-file PATH` | where clients reach each zone (`zone@host:port#hash`), for `avatar_moved` ([`super::follow`]) |
//! | `--data-dir PATH` | [`ZoneSettings::data_dir`] |
//! | `--journal-sync full` / `--journal-sync normal` | the journal's SQLite `synchronous` ([`ZoneSettings::journal_sync`], `docs/persistence.md`) |
//! | `--place-radius M`, `--assets any` / `--assets ID,ID,...` / `--assets backend` | CMD_INSTANCE_ASSET placement rules ([`ZoneSettings::placement`], [`ZoneSettings::assets_from_backend`]) |
//! | `--tick-hz HZ`, `--max-catch-up N`, `--event-budget N` | pacing |
//! | `--join-timeout-msec MS` | [`ZoneSettings::join_timeout_msec`]: how long a session may stay without a valid join token |
//! | `--send-budget BYTES`, `--session-event-budget BYTES`, `--partial-message-budget BYTES`, `--max-sessions N`, `--max-sessions-per-address N`, `--max-pending-per-address N`, `--handshake-timeout-msec MS` | [`ZoneSettings::limits`]: the client server's limits, one flag per entry of [`fabric_net::limits`] (sizes take `KiB`/`MiB`/`GiB`) |
//! | `--population wanderers --entities N --seed S` | [`ZoneSettings::population`] |
//! | `--metrics-addr IP:PORT` | Prometheus endpoint (`/metrics`, `/state`) |
//! | `--stats-every S`, `--quit-after S` | status lines on stdout, exit after S seconds |
//! | `--zones-in-process A..B` (or `A..=B`, or `A`) | this process runs zones A to B-1, one `FabricZone` each ([`ZoneSettings::hosted`], [`super::hosting`]) |
//! | `--max-fps N` | frames per second of the whole process (0 = the project's `run/max_fps`) |
//! | `--cert-hash-file PATH`, `--backend URL`, `--backend-cert-hash H`, `--join-key K`, `--backend-api-key KEY`, `--public-address HOST`, `--map NAME`, `--name NAME`, `--heartbeat-sec S`, `--require-token`, `--no-websocket`, `--cert-rotation-sec S` | client admission and registry (see `docs/session-protocol.md`) |
//!
//! The API key is better given in the environment variable `FABRIC_BACKEND_API_KEY`, which
//! other users cannot read from the process list.

use std::net::SocketAddr;
use std::path::PathBuf;

use fabric_core::client_view::ReplicationConfig;
use fabric_core::config::{V_MAX_METRES_PER_SECOND, ZoneConfig};
use fabric_core::coords::{MICROS_PER_METRE, WorldBounds};
use fabric_core::zones::ZoneLayout;
use thiserror::Error;

/// `any`, or a comma-separated list of non-zero asset ids (decimal, or hex with `0x`).
fn asset_filter(
    key: &str,
    v: &str,
) -> Result<fabric_core::asset_placement::AssetFilter, ConfigError> {
    use fabric_core::asset_placement::AssetFilter;
    if v == "any" {
        return Ok(AssetFilter::Any);
    }
    let bad = || ConfigError::Invalid {
        key: key.into(),
        value: v.into(),
        expected: "`any`, `backend` or a list of non-zero asset ids `1,0x2a,...`",
    };
    let ids = v
        .split(',')
        .map(|t| {
            let t = t.trim();
            match t.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => t.parse(),
            }
            .ok()
            .filter(|&id| id != 0)
            .ok_or_else(bad)
        })
        .collect::<Result<Vec<u64>, _>>()?;
    Ok(AssetFilter::only(ids))
}

/// Why the arguments or settings are not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// An argument needs a value and none followed.
    #[error("{0} needs a value")]
    Missing(String),
    /// A value does not parse.
    #[error("{key}: `{value}` is not {expected}")]
    Invalid {
        /// The argument.
        key: String,
        /// What was given.
        value: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The settings do not make a valid zone (bounds, layout, capacity, tick rate).
    #[error("{0}")]
    Zone(String),
}

/// How this zone reaches its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// No neighbours: migrations out time out and roll back.
    #[default]
    None,
    /// Zones of the same fabric in this process, through an in-memory hub (tests, tools).
    Memory,
    /// Zones in other processes, over authenticated WebTransport links
    /// ([`super::link_network`]): static members with a fabric key, or registry members.
    Network,
}

/// A population spawned at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Population {
    /// Nothing.
    #[default]
    None,
    /// `entities` wanderers seeded with `seed`; this zone spawns its Hilbert share.
    Wanderers {
        /// Entities in the whole fabric.
        entities: u32,
        /// Seed.
        seed: u64,
    },
}

/// Everything a zone process is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSettings {
    /// This zone's index in the fabric (0-based).
    pub zone_index: u32,
    /// Zones in the fabric (0 = `zone_index + 1`: a zone started alone with only an index, as
    /// before fabrics existed).
    pub zone_count: u32,
    /// The fabric's name (zones of one fabric link to each other).
    pub fabric: String,
    /// World lower corner, metres.
    pub world_min_m: [f64; 3],
    /// World upper corner, metres.
    pub world_max_m: [f64; 3],
    /// Entity slots.
    pub capacity: u32,
    /// Slots kept for arrivals.
    pub headroom: u32,
    /// Ticks an entity spends outside the zone before it migrates (0 = the core's default,
    /// 4 s of ticks).
    pub hysteresis_ticks: u32,
    /// Seconds an avatar nobody plays waits for its player's `claim` before it is despawned
    /// (`super::unclaimed`; default 30, the follow ticket's lifetime).
    pub claim_window_s: f64,
    /// Radius of a client's interest, metres.
    pub interest_radius_m: f64,
    /// Replication bytes per second to each client (the token bucket of its view).
    pub client_budget_bytes_per_s: u32,
    /// Sessions that may ask for the original fabric's replication (every entity as a
    /// 100-byte row every tick, `super::original_scheme`): the baseline the replication
    /// benchmark measures ours against. 0 (the default) refuses every request: one such
    /// session of a 1,800-entity zone takes 3.7 MB/s.
    pub original_scheme_sessions: u32,
    /// Client port (0 = any free port).
    pub port: u16,
    /// Address to bind (`*` = all interfaces).
    pub bind: String,
    /// Zone link port (0 = any free port; used by network links).
    pub link_port: u16,
    /// How neighbours are reached.
    pub link: LinkMode,
    /// Where the zone keeps its files (empty = none yet).
    pub data_dir: Option<PathBuf>,
    /// The journal's durability (`Full` by default).
    pub journal_sync: fabric_journal::Synchronous,
    /// Who may place which asset where (CMD_INSTANCE_ASSET).
    pub placement: fabric_core::asset_placement::PlacementRules,
    /// Take the placeable asset ids from the backend's list of the zone's map
    /// ([`super::map_assets`]): `Some(true)` with `--assets backend`, `Some(false)` with
    /// `--assets any` or a list, `None` (the default) = from the backend when the zone
    /// registers with a backend.
    pub assets_from_backend: Option<bool>,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Most ticks run in one frame to catch up; the rest of a backlog is dropped and counted.
    pub max_catch_up: u32,
    /// Most network events handled per tick.
    pub event_budget: u32,
    /// Milliseconds a client session may stay without a valid join token before it is closed,
    /// when tokens are required (default 10000).
    pub join_timeout_msec: u32,
    /// The client server's budgets, admission caps and handshake deadline.
    pub limits: fabric_net::ServerLimits,
    /// Spawned at start.
    pub population: Population,
    /// Prometheus endpoint address.
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds between `FABRIC_ZONE_STATS` lines (0 = none).
    pub stats_every_s: f64,
    /// Quit after this many seconds (0 = run until stopped), printing a last stats line.
    pub quit_after_s: f64,
    /// Registry backend URL (empty = none): `http://host:port`, or `https://host:port` with
    /// `backend_cert_hash`.
    pub backend_url: String,
    /// SHA-256 hashes (base64 or hex, comma-separated) of the certificate an `https://`
    /// backend presents: the only ones accepted.
    pub backend_cert_hash: String,
    /// Join-token public keys (base64url) pinned from configuration: when set, the zone trusts
    /// only these, not what the backend publishes.
    pub join_keys: Vec<String>,
    /// Operator API key for the registry.
    pub api_key: String,
    /// Address registered for clients.
    pub public_address: String,
    /// Map name registered.
    pub map_name: String,
    /// Display name registered.
    pub zone_name: String,
    /// Seconds between registry heartbeats.
    pub heartbeat_sec: f64,
    /// Require join tokens even without a registry.
    pub require_token: bool,
    /// Accept the WebSocket fallback.
    pub websocket_fallback: bool,
    /// Seconds between certificate rotations (0 = never).
    pub cert_rotation_sec: i64,
    /// Where to write the certificate hashes.
    pub cert_hash_file: Option<PathBuf>,
    /// Fabric key and static members for `--link network`.
    pub link_net: super::link_network::LinkSettings,
    /// Zones this process runs (`--zones-in-process`), one node each, derived from these
    /// settings by [`super::hosting::settings_for`]; `None` = this zone only.
    pub hosted: Option<std::ops::Range<u32>>,
    /// Engine frames per second (0 = leave the project's `run/max_fps`). The zone ticks at
    /// `tick_hz` whatever this is; fewer frames cost less CPU when idle, at a coarser tick
    /// start and link pumping every `1/max_fps` s.
    pub max_fps: u32,
}

impl Default for ZoneSettings {
    fn default() -> Self {
        Self {
            zone_index: 0,
            zone_count: 0,
            fabric: "default".into(),
            world_min_m: [-15.0; 3],
            world_max_m: [15.0; 3],
            capacity: 1800,
            headroom: 400,
            hysteresis_ticks: 0,
            claim_window_s: 30.0,
            interest_radius_m: 5.0,
            client_budget_bytes_per_s: 65_536,
            original_scheme_sessions: 0,
            port: 7443,
            bind: "*".into(),
            link_port: 0,
            link: LinkMode::None,
            data_dir: None,
            journal_sync: fabric_journal::Synchronous::Full,
            placement: Default::default(),
            assets_from_backend: None,
            tick_hz: 20,
            max_catch_up: 5,
            event_budget: 4096,
            join_timeout_msec: 10_000,
            limits: fabric_net::ServerLimits::DEFAULT,
            population: Population::None,
            metrics_addr: None,
            stats_every_s: 0.0,
            quit_after_s: 0.0,
            backend_url: String::new(),
            backend_cert_hash: String::new(),
            join_keys: Vec::new(),
            api_key: String::new(),
            public_address: String::new(),
            map_name: "default".into(),
            zone_name: String::new(),
            heartbeat_sec: 25.0,
            require_token: false,
            websocket_fallback: true,
            cert_rotation_sec: 7 * 24 * 3600,
            cert_hash_file: None,
            link_net: Default::default(),
            hosted: None,
            max_fps: 0,
        }
    }
}

impl ZoneSettings {
    /// The core's configuration for these settings.
    pub fn core_config(&self) -> Result<ZoneConfig, ConfigError> {
        let count = if self.zone_count == 0 {
            self.zone_index as usize + 1
        } else {
            self.zone_count as usize
        };
        let layout = ZoneLayout::new(count).map_err(|e| ConfigError::Zone(e.to_string()))?;
        let um = |m: f64| (m * MICROS_PER_METRE as f64).round() as i64;
        let bounds = WorldBounds::new(self.world_min_m.map(um), self.world_max_m.map(um))
            .map_err(|e| ConfigError::Zone(format!("world bounds: {e}")))?;
        let index = u8::try_from(self.zone_index).map_err(|_| {
            ConfigError::Zone(format!("zone index {} is too large", self.zone_index))
        })?;
        let tick_hz = self.tick_hz.max(1);
        let mut cfg = ZoneConfig::new(index, layout, bounds);
        cfg.tick_hz = tick_hz;
        cfg.capacity = self.capacity as usize;
        cfg.headroom = self.headroom as usize;
        cfg.v_max_um = V_MAX_METRES_PER_SECOND * MICROS_PER_METRE / i64::from(tick_hz);
        cfg.hysteresis_ticks = if self.hysteresis_ticks == 0 {
            fabric_core::config::HYSTERESIS_SECONDS * tick_hz
        } else {
            self.hysteresis_ticks
        };
        cfg.validate()
            .map_err(|e| ConfigError::Zone(e.to_string()))?;
        Ok(cfg)
    }

    /// The registry backend to talk to: `backend_url` with the pinned `backend_cert_hash`
    /// (required for `https://`, refused for `http://`).
    pub fn backend_endpoint(&self) -> Result<fabric_net::http::Endpoint, ConfigError> {
        backend_endpoint(&self.backend_url, &self.backend_cert_hash)
    }

    /// The configuration of every client's view ([`fabric_core::client_view`]): the interest
    /// radius (10 % hysteresis), the byte budget and the tick rate.
    pub fn replication_config(&self) -> Result<ReplicationConfig, ConfigError> {
        let radius_mm = (self.interest_radius_m * 1000.0).round() as i64;
        let mut c = ReplicationConfig::with_radius(radius_mm);
        c.bytes_per_second = self.client_budget_bytes_per_s;
        c.tick_hz = self.tick_hz.max(1);
        c.validate()
            .map_err(|e| ConfigError::Zone(format!("client replication: {e}")))?;
        Ok(c)
    }
}

/// The registry backend at `url`, accepting only the certificates `cert_hash` names (SHA-256,
/// base64 or hex, comma-separated; required for `https://`, refused for `http://`).
pub fn backend_endpoint(
    url: &str,
    cert_hash: &str,
) -> Result<fabric_net::http::Endpoint, ConfigError> {
    let pins = if cert_hash.trim().is_empty() {
        Vec::new()
    } else {
        fabric_net::cert::CertHash::parse_list(cert_hash).map_err(|_| ConfigError::Invalid {
            key: "--backend-cert-hash".into(),
            value: cert_hash.chars().take(100).collect(),
            expected: "SHA-256 hashes (base64 or hex), comma-separated",
        })?
    };
    fabric_net::http::Endpoint::new(url, &pins).map_err(|e| ConfigError::Zone(e.to_string()))
}

fn parse<T: std::str::FromStr>(
    key: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        expected,
    })
}

/// `A..B` (zones A to B-1), `A..=B` (A to B) or `A` (A alone), non-empty, B at most 256.
fn zone_range(key: &str, value: &str) -> Result<std::ops::Range<u32>, ConfigError> {
    let bad = || ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        expected: "a non-empty zone range `A..B`, `A..=B` or `A`",
    };
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
    let v = value.trim();
    let range = if let Some((a, b)) = v.split_once("..=") {
        num(a)?..num(b)?.checked_add(1).ok_or_else(bad)?
    } else if let Some((a, b)) = v.split_once("..") {
        num(a)?..num(b)?
    } else {
        let a = num(v)?;
        a..a + 1
    };
    if range.is_empty() || range.end > 256 {
        return Err(bad());
    }
    Ok(range)
}

fn bounds(key: &str, value: &str) -> Result<([f64; 3], [f64; 3]), ConfigError> {
    let bad = || ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        expected: "a half extent or six numbers X0,Y0,Z0,X1,Y1,Z1 (metres)",
    };
    let nums: Vec<f64> = value
        .split(',')
        .map(|s| s.trim().parse::<f64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match nums[..] {
        [h] if h > 0.0 => Ok(([-h; 3], [h; 3])),
        [x0, y0, z0, x1, y1, z1] => Ok(([x0, y0, z0], [x1, y1, z1])),
        _ => Err(bad()),
    }
}

/// The value of the last `KEY VALUE` or `KEY=VALUE` in `args` (for arguments read outside
/// [`parse_args`]); an empty string when `KEY` ends the line.
pub(crate) fn last_arg(args: &[String], key: &str) -> Option<String> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.split_once('=') {
            Some((k, v)) if k == key => found = Some(v.to_owned()),
            None if a == key => found = Some(it.next().cloned().unwrap_or_default()),
            _ => {}
        }
    }
    found
}

/// `base` with the user arguments `args` applied. Unknown arguments are ignored (other parts
/// of a scene may read them); a malformed value is an error naming it.
pub fn parse_args(base: ZoneSettings, args: &[String]) -> Result<ZoneSettings, ConfigError> {
    let mut s = base;
    let mut entities = None;
    let mut seed = None;
    let mut wanderers = matches!(s.population, Population::Wanderers { .. });
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (a.as_str(), None),
        };
        match key {
            "--require-token" => {
                s.require_token = true;
                continue;
            }
            "--no-websocket" => {
                s.websocket_fallback = false;
                continue;
            }
            _ if !key.starts_with("--") => continue,
            _ => {}
        }
        if let Some(limit) = fabric_net::ServerLimits::flag(key) {
            let v = inline
                .or_else(|| it.next().cloned())
                .ok_or_else(|| ConfigError::Missing(key.into()))?;
            limit
                .set_text(&mut s.limits, &v)
                .map_err(|e| ConfigError::Invalid {
                    key: key.into(),
                    value: v.clone(),
                    expected: match e {
                        fabric_net::limits::LimitError::OutOfRange { .. } => "at least 1",
                        _ => limit.unit.expected(),
                    },
                })?;
            continue;
        }
        let known = [
            "--zone-id",
            "--zone-index",
            "--zone-count",
            "--fabric",
            "--world-bounds",
            "--capacity",
            "--headroom",
            "--hysteresis-ticks",
            "--interest-radius",
            "--claim-window-sec",
            "--client-budget",
            "--original-scheme-sessions",
            "--port",
            "--bind",
            "--link-port",
            "--link",
            "--data-dir",
            "--journal-sync",
            "--place-radius",
            "--assets",
            "--tick-hz",
            "--max-catch-up",
            "--event-budget",
            "--join-timeout-msec",
            "--population",
            "--entities",
            "--seed",
            "--metrics-addr",
            "--stats-every",
            "--quit-after",
            "--cert-hash-file",
            "--backend",
            "--backend-cert-hash",
            "--join-key",
            "--backend-api-key",
            "--public-address",
            "--map",
            "--name",
            "--heartbeat-sec",
            "--cert-rotation-sec",
            "--fabric-key-file",
            "--members",
            "--members-file",
            "--zone-directory-file",
            "--zones-in-process",
            "--max-fps",
        ];
        if !known.contains(&key) {
            continue;
        }
        let v = match inline.or_else(|| it.next().cloned()) {
            Some(v) => v,
            None => return Err(ConfigError::Missing(key.into())),
        };
        let v = v.as_str();
        match key {
            "--zone-id" | "--zone-index" => s.zone_index = parse(key, v, "a zone index")?,
            "--zone-count" => s.zone_count = parse(key, v, "a zone count")?,
            "--fabric" => s.fabric = v.into(),
            "--world-bounds" => (s.world_min_m, s.world_max_m) = bounds(key, v)?,
            "--capacity" => s.capacity = parse(key, v, "a slot count")?,
            "--headroom" => s.headroom = parse(key, v, "a slot count")?,
            "--hysteresis-ticks" => s.hysteresis_ticks = parse(key, v, "a tick count")?,
            "--interest-radius" => s.interest_radius_m = parse(key, v, "metres")?,
            "--claim-window-sec" => s.claim_window_s = parse(key, v, "seconds")?,
            "--client-budget" => s.client_budget_bytes_per_s = parse(key, v, "bytes per second")?,
            "--original-scheme-sessions" => {
                s.original_scheme_sessions = parse(key, v, "a session count")?
            }
            "--port" => s.port = parse(key, v, "a port number")?,
            "--bind" => s.bind = v.into(),
            "--link-port" => s.link_port = parse(key, v, "a port number")?,
            "--link" => {
                s.link = match v {
                    "memory" => LinkMode::Memory,
                    "network" => LinkMode::Network,
                    "none" => LinkMode::None,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.into(),
                            value: v.into(),
                            expected: "`memory`, `network` or `none`",
                        });
                    }
                }
            }
            "--data-dir" => s.data_dir = Some(PathBuf::from(v)),
            "--journal-sync" => {
                s.journal_sync = match v {
                    "full" => fabric_journal::Synchronous::Full,
                    "normal" => fabric_journal::Synchronous::Normal,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.into(),
                            value: v.into(),
                            expected: "`full` or `normal`",
                        });
                    }
                }
            }
            "--place-radius" => {
                let m: f64 = parse(key, v, "metres")?;
                if !(m.is_finite() && m >= 0.0) {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        value: v.into(),
                        expected: "metres, at least 0",
                    });
                }
                s.placement.radius_um = (m * MICROS_PER_METRE as f64).round() as i64;
            }
            "--assets" if v == "backend" => s.assets_from_backend = Some(true),
            "--assets" => {
                s.placement.assets = asset_filter(key, v)?;
                s.assets_from_backend = Some(false);
            }
            "--tick-hz" => s.tick_hz = parse(key, v, "ticks per second")?,
            "--max-catch-up" => s.max_catch_up = parse(key, v, "a tick count")?,
            "--event-budget" => s.event_budget = parse(key, v, "an event count")?,
            "--join-timeout-msec" => s.join_timeout_msec = parse(key, v, "milliseconds")?,
            "--population" => match v {
                "wanderers" => wanderers = true,
                "none" => wanderers = false,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        value: v.into(),
                        expected: "`wanderers` or `none`",
                    });
                }
            },
            "--entities" => entities = Some(parse(key, v, "an entity count")?),
            "--seed" => seed = Some(parse(key, v, "a 64-bit seed")?),
            "--metrics-addr" => s.metrics_addr = Some(parse(key, v, "an IP:PORT address")?),
            "--stats-every" => s.stats_every_s = parse(key, v, "seconds")?,
            "--quit-after" => s.quit_after_s = parse(key, v, "seconds")?,
            "--cert-hash-file" => s.cert_hash_file = Some(PathBuf::from(v)),
            "--backend" => s.backend_url = v.into(),
            "--backend-cert-hash" => s.backend_cert_hash = v.into(),
            "--join-key" => s.join_keys.extend(
                v.split([',', ' '])
                    .filter(|k| !k.is_empty())
                    .map(String::from),
            ),
            "--backend-api-key" => s.api_key = v.into(),
            "--public-address" => s.public_address = v.into(),
            "--map" => s.map_name = v.into(),
            "--name" => s.zone_name = v.into(),
            "--heartbeat-sec" => s.heartbeat_sec = parse(key, v, "seconds")?,
            "--cert-rotation-sec" => s.cert_rotation_sec = parse(key, v, "seconds")?,
            "--fabric-key-file" => s.link_net.fabric_key_file = Some(PathBuf::from(v)),
            "--members" => s.link_net.members.extend(
                v.split([' ', ';'])
                    .filter(|m| !m.is_empty())
                    .map(String::from),
            ),
            "--members-file" => s.link_net.members_file = Some(PathBuf::from(v)),
            "--zone-directory-file" => s.link_net.zone_directory_file = Some(PathBuf::from(v)),
            "--zones-in-process" => s.hosted = Some(zone_range(key, v)?),
            "--max-fps" => s.max_fps = parse(key, v, "frames per second")?,
            _ => unreachable!("every known key is matched above"),
        }
    }
    s.population = match (wanderers, s.population) {
        (false, _) => Population::None,
        (
            true,
            Population::Wanderers {
                entities: e,
                seed: sd,
            },
        ) => Population::Wanderers {
            entities: entities.unwrap_or(e),
            seed: seed.unwrap_or(sd),
        },
        (true, Population::None) => Population::Wanderers {
            entities: entities.unwrap_or(1000),
            seed: seed.unwrap_or(1),
        },
    };
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_an_empty_line() {
        let s = parse_args(ZoneSettings::default(), &[]).unwrap();
        assert_eq!(s, ZoneSettings::default(), "no arguments, no change");
        let c = s.core_config().unwrap();
        assert_eq!((c.capacity, c.headroom, c.tick_hz), (1800, 400, 20));
        assert_eq!(c.hysteresis_ticks, 80, "4 s at 20 Hz by default");
        assert_eq!(c.bounds, WorldBounds::demo(), "+-15 m by default");
        assert_eq!(c.layout.count(), 1, "a lone zone by default");
        let lone = ZoneSettings {
            zone_index: 5,
            ..ZoneSettings::default()
        };
        assert_eq!(
            lone.core_config().unwrap().layout.count(),
            6,
            "zone 5 alone: 6 ranges"
        );
    }

    #[test]
    fn durability_and_placement_are_read_and_checked() {
        use fabric_core::asset_placement::AssetFilter;
        let d = ZoneSettings::default();
        assert_eq!(d.journal_sync, fabric_journal::Synchronous::Full, "default");
        assert_eq!(d.placement.assets, AssetFilter::Any);
        let s = parse_args(
            ZoneSettings::default(),
            &args("--journal-sync normal --place-radius 2.5 --assets 7,0x10,7"),
        )
        .unwrap();
        assert_eq!(s.journal_sync, fabric_journal::Synchronous::Normal);
        assert_eq!(s.placement.radius_um, 2_500_000);
        assert_eq!(s.placement.assets, AssetFilter::Only(vec![7, 16]));
        assert_eq!(s.assets_from_backend, Some(false), "an explicit list");
        assert_eq!(d.assets_from_backend, None, "decided by registering or not");
        let b = parse_args(ZoneSettings::default(), &args("--assets backend")).unwrap();
        assert_eq!(b.assets_from_backend, Some(true));
        for bad in [
            "--journal-sync off",
            "--place-radius -1",
            "--assets 0",
            "--assets 1,x",
        ] {
            assert!(
                matches!(
                    parse_args(ZoneSettings::default(), &args(bad)),
                    Err(ConfigError::Invalid { .. })
                ),
                "{bad} is refused"
            );
        }
    }

    #[test]
    fn every_zone_field_is_read() {
        let s = parse_args(
            ZoneSettings::default(),
            &args(
                "--zone-index 2 --zone-count=3 --fabric f1 --world-bounds 100 --capacity 900 \
                 --headroom 100 --hysteresis-ticks 7 --claim-window-sec 4.5 --interest-radius 12.5 --port 0 \
                 --client-budget 32000 --original-scheme-sessions 4 \
                 --bind 127.0.0.1 --link-port 9000 --link memory --data-dir /tmp/z --tick-hz 30 \
                 --max-catch-up 3 --event-budget 64 --population wanderers --entities 3000 \
                 --seed 42 --metrics-addr 127.0.0.1:9100 --stats-every 1 --quit-after 5 \
                 --require-token --no-websocket --cert-hash-file /tmp/h",
            ),
        )
        .unwrap();
        assert_eq!(
            (s.zone_index, s.zone_count, s.fabric.as_str()),
            (2, 3, "f1")
        );
        assert_eq!((s.world_min_m, s.world_max_m), ([-100.0; 3], [100.0; 3]));
        assert_eq!((s.capacity, s.headroom, s.hysteresis_ticks), (900, 100, 7));
        assert_eq!(s.claim_window_s, 4.5);
        assert_eq!(s.original_scheme_sessions, 4);
        assert_eq!(s.interest_radius_m, 12.5);
        let repl = s.replication_config().unwrap();
        assert_eq!(
            (repl.radius_mm, repl.hysteresis_mm, repl.bytes_per_second),
            (12_500, 1_250, 32_000)
        );
        assert_eq!(repl.tick_hz, 30, "views run at the zone's tick rate");
        assert_eq!(
            (s.port, s.bind.as_str(), s.link_port),
            (0, "127.0.0.1", 9000)
        );
        assert_eq!(s.link, LinkMode::Memory);
        assert_eq!(s.data_dir, Some(PathBuf::from("/tmp/z")));
        assert_eq!((s.tick_hz, s.max_catch_up, s.event_budget), (30, 3, 64));
        assert_eq!(
            s.population,
            Population::Wanderers {
                entities: 3000,
                seed: 42
            }
        );
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!((s.stats_every_s, s.quit_after_s), (1.0, 5.0));
        assert!(s.require_token && !s.websocket_fallback);
        assert_eq!(s.cert_hash_file, Some(PathBuf::from("/tmp/h")));
        let c = s.core_config().unwrap();
        assert_eq!((c.zone_id, c.layout.count(), c.tick_hz), (2, 3, 30));
        assert_eq!(c.v_max_um, 10_000_000 / 30, "10 m/s at 30 Hz");
        assert_eq!(c.bounds.max(), [100_000_000; 3], "metres to micrometres");
    }

    #[test]
    fn an_https_backend_needs_its_pinned_certificate_hash() {
        let args = |a: &[&str]| {
            parse_args(
                ZoneSettings::default(),
                &a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let hash = "q0ANGmCZtlwHx6kn3pd3T6g0iE3KeTTqYy9x0c0O2tY=";
        let s = args(&[
            "--backend",
            "https://127.0.0.1:8443",
            "--backend-cert-hash",
            hash,
        ]);
        assert_eq!(
            s.backend_endpoint().unwrap().base(),
            "https://127.0.0.1:8443"
        );
        let unpinned = args(&["--backend", "https://127.0.0.1:8443"]).backend_endpoint();
        assert!(
            unpinned
                .unwrap_err()
                .to_string()
                .contains("--backend-cert-hash"),
            "says which option is missing"
        );
        let plain_pinned = args(&[
            "--backend",
            "http://127.0.0.1:8080",
            "--backend-cert-hash",
            hash,
        ]);
        assert!(
            plain_pinned.backend_endpoint().is_err(),
            "a pin on http:// is refused"
        );
        let garbage = args(&["--backend", "https://h:1", "--backend-cert-hash", "nope"]);
        assert!(garbage.backend_endpoint().is_err());
        let keys = args(&["--join-key", "AAAA,BBBB", "--join-key", "CCCC"]);
        assert_eq!(keys.join_keys, ["AAAA", "BBBB", "CCCC"]);
    }

    #[test]
    fn registry_arguments_and_six_number_bounds() {
        let s = parse_args(
            ZoneSettings::default(),
            &args(
                "--zone-id 1 --backend http://127.0.0.1:8080 --backend-api-key k --public-address \
                 h --map m --name n --heartbeat-sec 2.5 --cert-rotation-sec 0 \
                 --world-bounds -1,-2,-3,1,2,3 unrelated --other x",
            ),
        )
        .unwrap();
        assert_eq!(s.zone_index, 1);
        assert_eq!(s.backend_url, "http://127.0.0.1:8080");
        assert_eq!((s.api_key.as_str(), s.public_address.as_str()), ("k", "h"));
        assert_eq!((s.map_name.as_str(), s.zone_name.as_str()), ("m", "n"));
        assert_eq!((s.heartbeat_sec, s.cert_rotation_sec), (2.5, 0));
        assert_eq!(
            (s.world_min_m, s.world_max_m),
            ([-1.0, -2.0, -3.0], [1.0, 2.0, 3.0])
        );
        assert_eq!(s.population, Population::None, "no population unless asked");
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let err = |line: &str| parse_args(ZoneSettings::default(), &args(line)).unwrap_err();
        assert!(matches!(err("--port 70000"), ConfigError::Invalid { key, .. } if key == "--port"));
        assert_eq!(err("--tick-hz"), ConfigError::Missing("--tick-hz".into()));
        assert!(matches!(
            err("--link carrier-pigeon"),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err("--population zombies"),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err("--world-bounds 1,2"),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            err("--metrics-addr localhost"),
            ConfigError::Invalid { .. }
        ));
        let no_radius = ZoneSettings {
            interest_radius_m: 0.0,
            ..ZoneSettings::default()
        };
        assert!(
            matches!(no_radius.replication_config(), Err(ConfigError::Zone(_))),
            "a zero interest radius is refused"
        );
        let bad_zone = ZoneSettings {
            zone_index: 3,
            zone_count: 3,
            ..ZoneSettings::default()
        };
        assert!(
            matches!(bad_zone.core_config(), Err(ConfigError::Zone(_))),
            "index past count"
        );
        let bad_cap = ZoneSettings {
            headroom: 2000,
            ..ZoneSettings::default()
        };
        assert!(matches!(bad_cap.core_config(), Err(ConfigError::Zone(_))));
    }

    #[test]
    fn zones_in_process_and_frame_rate() {
        let one = |line: &str| parse_args(ZoneSettings::default(), &args(line));
        assert_eq!(one("--zones-in-process 4..8").unwrap().hosted, Some(4..8));
        assert_eq!(one("--zones-in-process=0..=3").unwrap().hosted, Some(0..4));
        assert_eq!(one("--zones-in-process 5").unwrap().hosted, Some(5..6));
        assert_eq!(one("").unwrap().hosted, None, "one zone unless asked");
        for bad in ["3..3", "4..2", "a..b", "0..300", "", "1..=x"] {
            assert!(
                matches!(
                    one(&format!("--zones-in-process={bad}")),
                    Err(ConfigError::Invalid { key, .. }) if key == "--zones-in-process"
                ),
                "`{bad}` is refused"
            );
        }
        assert_eq!(one("--max-fps 60").unwrap().max_fps, 60);
        assert_eq!(one("").unwrap().max_fps, 0, "the project's rate by default");
        assert!(matches!(
            one("--max-fps -1"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn server_limits_and_the_join_deadline_are_read() {
        let d = ZoneSettings::default();
        assert_eq!(d.limits, fabric_net::ServerLimits::default(), "defaults");
        assert_eq!(d.join_timeout_msec, 10_000);
        let s = parse_args(
            ZoneSettings::default(),
            &args(
                "--max-sessions 50 --max-sessions-per-address=2 --max-pending-per-address 3 \
                 --send-budget 64KiB --session-event-budget 1MiB --partial-message-budget 1048576 \
                 --handshake-timeout-msec 750 --join-timeout-msec 300 --event-budget 9",
            ),
        )
        .unwrap();
        assert_eq!(
            s.limits,
            fabric_net::ServerLimits {
                max_sessions: 50,
                max_sessions_per_address: 2,
                max_pending_per_address: 3,
                send_budget: 65_536,
                session_event_budget: 1 << 20,
                partial_message_budget: 1 << 20,
                handshake_timeout_msec: 750,
            }
        );
        assert_eq!(s.join_timeout_msec, 300);
        assert_eq!(
            s.event_budget, 9,
            "the per-tick event count is its own flag"
        );
        let err = |line: &str| parse_args(ZoneSettings::default(), &args(line)).unwrap_err();
        assert_eq!(
            err("--max-sessions 0"),
            ConfigError::Invalid {
                key: "--max-sessions".into(),
                value: "0".into(),
                expected: "at least 1"
            }
        );
        assert!(
            matches!(err("--send-budget 1TB"), ConfigError::Invalid { key, .. } if key == "--send-budget")
        );
        assert_eq!(
            err("--handshake-timeout-msec"),
            ConfigError::Missing("--handshake-timeout-msec".into())
        );
    }

    #[test]
    fn wanderers_defaults_and_overrides() {
        let s = parse_args(ZoneSettings::default(), &args("--population wanderers")).unwrap();
        assert_eq!(
            s.population,
            Population::Wanderers {
                entities: 1000,
                seed: 1
            }
        );
        let s = parse_args(s, &args("--seed 9")).unwrap();
        assert_eq!(
            s.population,
            Population::Wanderers {
                entities: 1000,
                seed: 9
            },
            "a later --seed keeps the population"
        );
        let s = parse_args(s, &args("--population none")).unwrap();
        assert_eq!(s.population, Population::None);
    }
}
