//! Command-line configuration of the backend binary (and of the bench, which embeds it).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Default database: a SQLite path relative to the working directory (`postgres://…` URLs
/// select PostgreSQL).
pub const DEFAULT_DB: &str = "fabric-backend.sqlite3";

/// `fabric-backend` options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fabric-backend",
    version,
    about = "Multiplayer Fabric zone registry backend",
    // A later occurrence of an option replaces an earlier one (scripts add overrides).
    args_override_self = true
)]
pub struct Config {
    /// Address to listen on (HTTP and WebSocket). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// SQLite database path (`:memory:` keeps everything in memory, for tests), or a
    /// `postgres://user@host:port/db` URL for PostgreSQL or CockroachDB.
    #[arg(long, default_value = DEFAULT_DB)]
    pub db: String,
    /// A shard not heard from for this long is hidden from `GET /shards`.
    #[arg(long, default_value_t = 30_000)]
    pub stale_after_ms: u64,
    /// The janitor deletes shards not heard from for this long.
    #[arg(long, default_value_t = 90_000)]
    pub evict_after_ms: u64,
    /// How often the janitor runs; 0 disables it.
    #[arg(long, default_value_t = 5_000)]
    pub janitor_interval_ms: u64,
    /// Lifetime of issued join tokens, seconds.
    #[arg(long, default_value_t = 300)]
    pub token_ttl_s: u64,
    /// File holding the join-token signing key (base64url Ed25519 seed); created if missing.
    /// Without it the key lives in the database.
    #[arg(long)]
    pub join_key_file: Option<PathBuf>,
    /// Largest accepted request body, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
    /// Open HTTP connections at most; further ones wait in the listen backlog.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// A client must send a request's headers within this long (also closes idle keep-alive
    /// connections), milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Handling one request (body included) must finish within this long, milliseconds;
    /// otherwise 408 `request_timeout`.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Directory of the asset chunk store (uploads are baked into it and served from
    /// `/assets/`). Without it, uploads are refused with 503 `assets_disabled`.
    #[arg(long)]
    pub assets_dir: Option<PathBuf>,
    /// Largest accepted asset upload, bytes (the body streams to disk; it is never held whole
    /// in memory). An upload must also finish within `--upload-timeout-ms`.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_upload_bytes: u64,
    /// An asset upload (body and bake) must finish within this long, milliseconds.
    #[arg(long, default_value_t = 600_000)]
    pub upload_timeout_ms: u64,
    /// Largest room save document (`POST /rooms/{id}/save`), bytes; 413 beyond.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_room_bytes: usize,
    /// Period of the push relay between replicas sharing the database, milliseconds: pushes
    /// caused on another replica reach this one's subscribers within about this long. Default:
    /// 200 with `--db postgres://…` (replicas are possible), 0 (off) with SQLite.
    #[arg(long)]
    pub push_relay_ms: Option<u64>,
    /// Requests per second one IP address may make (bursts of twice that), 429 `rate_limited`
    /// beyond; 0 = no limit. Many zones behind one address (NAT, one machine) count together.
    #[arg(long, default_value_t = 200)]
    pub requests_per_ip_per_s: u32,
    /// Accounts one IP address may create per minute; 0 = no limit.
    #[arg(long, default_value_t = 10)]
    pub signups_per_ip_per_min: u32,
    /// Join tokens one account may be issued per minute; 0 = no limit.
    #[arg(long, default_value_t = 600)]
    pub tokens_per_account_per_min: u32,
    /// Most shards one account may have registered at a time (429 `too_many_shards` beyond).
    #[arg(long, default_value_t = 100)]
    pub max_shards_per_account: u64,
    /// Let a public shard declare an address other than the registering caller's IP (behind a
    /// proxy or NAT that rewrites the source). Without it such a registration is refused with
    /// 422 `address_not_caller`, so nobody can list a public shard pointing at someone else's
    /// host.
    #[arg(long)]
    pub allow_any_address: bool,
}

impl Config {
    /// Defaults with a given listen address and database (for embedding and tests).
    pub fn new(listen: SocketAddr, db: impl Into<String>) -> Self {
        let mut c = Config::parse_from(["fabric-backend"]);
        c.listen = listen;
        c.db = db.into();
        c
    }

    /// The same with every rate limit off (for benchmarks and tests that drive many zones,
    /// accounts or players from one address).
    #[must_use]
    pub fn without_rate_limits(mut self) -> Self {
        self.requests_per_ip_per_s = 0;
        self.signups_per_ip_per_min = 0;
        self.tokens_per_account_per_min = 0;
        self
    }
}
