//! Starting and stopping a backend: open the store, load or create the join signing key, bind
//! the listener, run the router and the janitor until a shutdown future resolves, then close
//! WebSocket sessions and drain in-flight requests (graceful shutdown).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use fabric_auth::keys::{signing_key_from_b64, signing_key_to_b64};
use fabric_auth::{JoinTokenIssuer, JoinTokenVerifier, Schema};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::StoreError;
use crate::hub::Hub;
use crate::listen::{self, Limits};
use crate::state::{AppState, AssetSettings, Settings, Shared};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::{janitor, routes};

/// Meta key of the signing key when it lives in the database.
const KEY_META: &str = "join_signing_key";

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Opening or migrating the store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Binding or serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The signing key file or stored key is unreadable.
    #[error("join signing key: {0}")]
    Key(String),
}

fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn load_key(config: &Config, store: &dyn Store) -> Result<SigningKey, ServeError> {
    if let Some(path) = &config.join_key_file {
        return load_key_file(path);
    }
    // Replicas sharing a database may start together: whichever key is stored first is the
    // one every replica signs with.
    let text = store.meta_or_insert(KEY_META, &signing_key_to_b64(&generate_key()))?;
    signing_key_from_b64(&text).map_err(|e| ServeError::Key(e.to_string()))
}

fn load_key_file(path: &Path) -> Result<SigningKey, ServeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            refuse_shared_key_file(path)?;
            signing_key_from_b64(&text).map_err(|e| ServeError::Key(format!("{path:?}: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key();
            write_private(path, &signing_key_to_b64(&key))?;
            Ok(key)
        }
        Err(e) => Err(ServeError::Key(format!("{path:?}: {e}"))),
    }
}

/// A signing seed others can read is a leaked seed: refuse to start (as ssh does with keys).
#[cfg(unix)]
fn refuse_shared_key_file(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ServeError::Key(format!(
            "{path:?} is readable by others (mode {:o}): chmod 600 it",
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared_key_file(_path: &Path) -> Result<(), ServeError> {
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), ServeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<(), ServeError> {
    std::fs::write(path, text)?;
    Ok(())
}

/// A backend bound to its address, ready to serve.
pub struct Bound {
    listener: TcpListener,
    state: Shared,
    shutdown_tx: watch::Sender<bool>,
    max_body_bytes: usize,
    limits: Limits,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// Opens the store named by `config.db` and binds `config.listen`.
    pub async fn bind(config: &Config) -> Result<Self, ServeError> {
        let db = config.db.clone();
        let store = tokio::task::spawn_blocking(move || -> Result<Arc<dyn Store>, StoreError> {
            if PgStore::is_url(&db) {
                Ok(Arc::new(PgStore::connect(&db)?))
            } else {
                Ok(Arc::new(SqliteStore::open(&db)?))
            }
        })
        .await
        .map_err(|e| ServeError::Key(format!("opening the store failed: {e}")))??;
        Self::bind_with(config, store, Arc::new(SystemClock)).await
    }

    /// Binds with a caller-provided store and clock.
    pub async fn bind_with(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServeError> {
        let key = {
            let (config, store) = (config.clone(), store.clone());
            tokio::task::spawn_blocking(move || load_key(&config, &*store))
                .await
                .map_err(|e| ServeError::Key(format!("loading the key failed: {e}")))??
        };
        let link_issuer = fabric_auth::LinkCredentialIssuer::new(
            key.clone(),
            crate::routes::LINK_CREDENTIAL_TTL_S,
        );
        let issuer = JoinTokenIssuer::new(key, config.token_ttl_s);
        let verifier = JoinTokenVerifier::new([issuer.verifying_key()])
            .with_max_lifetime_s(config.token_ttl_s.max(1));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let push_relay_ms = config
            .push_relay_ms
            .unwrap_or(if PgStore::is_url(&config.db) { 200 } else { 0 });
        let state = Arc::new(AppState {
            store,
            replica_id: uuid::Uuid::new_v4().to_string(),
            hub: Hub::default(),
            clock,
            issuer,
            link_issuer,
            verifier,
            schema: Schema::default(),
            settings: Settings {
                stale_after_ms: config.stale_after_ms,
                evict_after_ms: config.evict_after_ms,
                janitor_interval_ms: config.janitor_interval_ms,
                max_shards_per_account: config.max_shards_per_account,
                allow_any_address: config.allow_any_address,
                push_relay_ms,
                max_room_bytes: config.max_room_bytes,
            },
            shutdown: shutdown_rx,
            rate: crate::rate::RateLimits::new(crate::rate::RateSettings {
                requests_per_ip_per_s: config.requests_per_ip_per_s,
                signups_per_ip_per_min: config.signups_per_ip_per_min,
                tokens_per_account_per_min: config.tokens_per_account_per_min,
            }),
            assets: match &config.assets_dir {
                Some(dir) => Some(AssetSettings {
                    store: Arc::new(fabric_assets::DiskStore::open(dir).map_err(|e| {
                        std::io::Error::other(format!("cannot open the asset store {dir:?}: {e}"))
                    })?),
                    max_upload_bytes: config.max_upload_bytes,
                }),
                None => None,
            },
        });
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            state,
            shutdown_tx,
            max_body_bytes: config.max_body_bytes,
            limits: Limits {
                max_connections: config.max_connections,
                header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
                request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
                upload_timeout: Duration::from_millis(config.upload_timeout_ms.max(1)),
            },
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The shared state (for in-process embedding and tests).
    pub fn state(&self) -> Shared {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops the janitor, closes WebSocket sessions and
    /// waits for in-flight HTTP requests.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = routes::router(self.state.clone(), self.max_body_bytes);
        let janitor = tokio::spawn(janitor::run(self.state.clone()));
        let relay = tokio::spawn(crate::relay::run(self.state.clone()));
        let tx = self.shutdown_tx;
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        };
        let state = self.state.clone();
        listen::serve(self.listener, app, self.limits, signal).await?;
        // Upgraded WebSocket sessions outlive their HTTP connection: give them a moment to
        // send their Close frames.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.hub.all_disconnected()).await;
        let _ = janitor.await;
        let _ = relay.await;
        Ok(())
    }
}
