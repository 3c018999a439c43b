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
    /// PEM certificate of the authority that signed the PostgreSQL server's certificate: with
    /// it the database connection is TLS (rustls) or nothing, and the server must prove its
    /// name. Needed for `?sslmode=require`.
    #[arg(long)]
    pub db_root_cert: Option<PathBuf>,
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
    /// File holding the signing keys (the current base64url Ed25519 seed, then previous ones
    /// with `retires_at=<unix s>`); created readable by its owner only if missing, refused if
    /// others can read it. Default: `<db>.join-keys` beside a SQLite database; in memory for
    /// `--db :memory:`; required (or `--join-key-env`) with PostgreSQL, where every replica
    /// must be given the same keys. The keys are never kept in the database.
    #[arg(long)]
    pub join_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the signing keys (the same text as
    /// `--join-key-file`), for secret managers that hand secrets over as environment
    /// variables. The keys are then written nowhere, neither to a file nor to the database;
    /// rotate them by changing the variable (add the old seed with `retires_at=`) and
    /// restarting the replicas. Not together with `--join-key-file`.
    #[arg(long, value_name = "VAR", conflicts_with = "join_key_file")]
    pub join_key_env: Option<String>,
    /// Rotate the signing key and exit: a new key signs join tokens and link credentials from
    /// the next refresh of every replica on; the old one still verifies for
    /// `--join-key-overlap-s`. Acts on the key file (`--join-key-file`, or the one beside the
    /// SQLite `--db`).
    #[arg(long)]
    pub rotate_join_key: bool,
    /// With `--rotate-join-key`: seconds the replaced key keeps verifying. Give at least the
    /// token lifetime plus the zones' heartbeat period (they renew their link credentials on
    /// the heartbeat after they see the new key) plus `--join-key-refresh-ms`.
    #[arg(long, default_value_t = crate::keyring::DEFAULT_OVERLAP_S)]
    pub join_key_overlap_s: u64,
    /// How often each replica re-reads the stored signing keys (to pick up a rotation),
    /// milliseconds; 0 = never.
    #[arg(long, default_value_t = 5_000)]
    pub join_key_refresh_ms: u64,
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
    /// `/assets/`). Without it or `--assets-s3`, uploads are refused with 503
    /// `assets_disabled`.
    #[arg(long, conflicts_with = "assets_s3")]
    pub assets_dir: Option<PathBuf>,
    /// Keep the asset chunk store in an S3-compatible bucket instead of a directory: the
    /// service endpoint (`https://host` or `http://host:port`, path-style addressing), with
    /// `--assets-bucket`. Credentials come from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (region `AWS_REGION`, default `us-east-1`). The backend still
    /// serves the chunks under `/assets/`.
    #[arg(long, requires = "assets_bucket")]
    pub assets_s3: Option<String>,
    /// The bucket of `--assets-s3` (it must exist; the start fails clearly otherwise).
    #[arg(long, requires = "assets_s3")]
    pub assets_bucket: Option<String>,
    /// Where upload bodies wait for their bake. Default: `<--assets-dir>/uploads`, or a
    /// `fabric-backend-uploads` folder in the system's temporary directory with `--assets-s3`.
    #[arg(long)]
    pub assets_spool: Option<PathBuf>,
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
    /// Close sign-up: `POST /accounts` answers 403 `signup_closed`, and the operator creates
    /// accounts with `--create-account NAME`. Without it anyone who reaches the registry may
    /// make an account (rate-limited per address by `--signups-per-ip-per-min`).
    #[arg(long)]
    pub closed_signup: bool,
    /// Create the account NAME in `--db`, print its API key once, and exit: how accounts are
    /// made when sign-up is closed (`--closed-signup`).
    #[arg(long, value_name = "NAME")]
    pub create_account: Option<String>,
    /// PEM certificate chain: serve HTTPS and WSS instead of plain HTTP (with `--tls-key`).
    /// The start-up line prints the leaf's SHA-256, which zones pin (`--backend-cert-hash`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (must not be readable by others).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS and WSS with a self-signed certificate kept in this directory: made on the
    /// first start (key mode 0600) and reused after, so the hash zones pinned stays valid.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: Option<PathBuf>,
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
