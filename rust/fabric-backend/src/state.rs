//! Shared state of a running backend, handed to every handler as `State<Arc<AppState>>`.

use std::sync::Arc;

use fabric_auth::Schema;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::hub::Hub;
use crate::store::Store;

/// Time windows and limits the handlers and the janitor apply.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GET /shards` hides shards older than this.
    pub stale_after_ms: u64,
    /// The janitor deletes shards older than this.
    pub evict_after_ms: u64,
    /// Janitor period; 0 disables it.
    pub janitor_interval_ms: u64,
    /// Most shards per account.
    pub max_shards_per_account: u64,
    /// Public shards may declare any address.
    pub allow_any_address: bool,
    /// `POST /accounts` is refused (`--closed-signup`).
    pub closed_signup: bool,
    /// Largest room save document, bytes.
    pub max_room_bytes: usize,
    /// Period of the push relay between replicas, milliseconds; 0 = off (one replica).
    pub push_relay_ms: u64,
}

/// Where uploaded assets go.
pub struct AssetSettings {
    /// The chunk store (a directory or an S3-compatible bucket).
    pub store: Arc<dyn fabric_assets::ChunkStore>,
    /// Where upload bodies wait for their bake.
    pub spool: std::path::PathBuf,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
}

/// Everything a request may need.
pub struct AppState {
    /// Persistent registry.
    pub store: Arc<dyn Store>,
    /// This replica's random id (names its pushes in the shared push log).
    pub replica_id: String,
    /// WebSocket topic fan-out.
    pub hub: Hub,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// The signing keys (current and retiring); replaced whole when the stored ring changes.
    pub keys: std::sync::RwLock<Arc<crate::keyring::SigningKeys>>,
    /// ReBAC schema.
    pub schema: Schema,
    /// Windows and limits.
    pub settings: Settings,
    /// The asset store, when `--assets-dir` or `--assets-s3` is set.
    pub assets: Option<AssetSettings>,
    /// Rate limits per address and per account.
    pub rate: crate::rate::RateLimits,
    /// This replica's metrics (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Flips to true when the server shuts down (WebSocket sessions close).
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// The signing keys now (cheap: one `Arc` clone under a read lock).
    pub fn signing(&self) -> Arc<crate::keyring::SigningKeys> {
        self.keys.read().expect("keys lock").clone()
    }

    /// Installs a new ring (after a rotation).
    pub fn set_signing(&self, keys: crate::keyring::SigningKeys) {
        *self.keys.write().expect("keys lock") = Arc::new(keys);
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The handle handlers receive.
pub type Shared = Arc<AppState>;
