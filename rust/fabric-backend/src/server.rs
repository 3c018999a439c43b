//! Starting and stopping a backend: open the store, load or create the join signing key, bind
//! the listener, run the router and the janitor until a shutdown future resolves, then close
//! WebSocket sessions and drain in-flight requests (graceful shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fabric_auth::Schema;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::StoreError;
use crate::hub::Hub;
use crate::listen::{self, Limits};
use crate::state::{AppState, Settings, Shared};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::{janitor, routes};

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
    /// The TLS certificate or key is missing, unreadable or does not match.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Opens (and migrates) the store `db` names: a `postgres://` URL (over TLS with
/// `db_root_cert`) or a SQLite path. Blocking.
pub fn open_store(
    db: &str,
    db_root_cert: Option<&std::path::Path>,
) -> Result<Arc<dyn Store>, StoreError> {
    if PgStore::is_url(db) {
        Ok(Arc::new(PgStore::connect_tls(db, db_root_cert)?))
    } else {
        Ok(Arc::new(SqliteStore::open(db)?))
    }
}

/// A backend bound to its address, ready to serve.
pub struct Bound {
    listener: TcpListener,
    state: Shared,
    shutdown_tx: watch::Sender<bool>,
    max_body_bytes: usize,
    limits: Limits,
    tls: Option<crate::tls::Tls>,
    config: Config,
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
        // A configuration without a place for the signing keys fails before any connection.
        crate::keyring::key_source(config)?;
        let (db, root) = (config.db.clone(), config.db_root_cert.clone());
        let store = tokio::task::spawn_blocking(move || open_store(&db, root.as_deref()))
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
        let ring = {
            let (config, store) = (config.clone(), store.clone());
            tokio::task::spawn_blocking(move || crate::keyring::load(&config, &*store))
                .await
                .map_err(|e| ServeError::Key(format!("loading the key failed: {e}")))??
        };
        let keys = crate::keyring::SigningKeys::new(ring, config.token_ttl_s);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let push_relay_ms = config
            .push_relay_ms
            .unwrap_or(if PgStore::is_url(&config.db) { 200 } else { 0 });
        let state = Arc::new(AppState {
            store,
            replica_id: uuid::Uuid::new_v4().to_string(),
            hub: Hub::default(),
            clock,
            keys: std::sync::RwLock::new(Arc::new(keys)),
            schema: Schema::default(),
            settings: Settings {
                stale_after_ms: config.stale_after_ms,
                evict_after_ms: config.evict_after_ms,
                janitor_interval_ms: config.janitor_interval_ms,
                max_shards_per_account: config.max_shards_per_account,
                allow_any_address: config.allow_any_address,
                closed_signup: config.closed_signup,
                push_relay_ms,
                max_room_bytes: config.max_room_bytes,
            },
            shutdown: shutdown_rx,
            rate: crate::rate::RateLimits::new(crate::rate::RateSettings {
                requests_per_ip_per_s: config.requests_per_ip_per_s,
                signups_per_ip_per_min: config.signups_per_ip_per_min,
                tokens_per_account_per_min: config.tokens_per_account_per_min,
            }),
            assets: crate::routes::open_asset_store(config).await?,
            metrics: crate::metrics::Metrics::default(),
        });
        let tls = crate::tls::load(config)?;
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            state,
            shutdown_tx,
            tls,
            config: config.clone(),
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

    /// The SHA-256 (base64) of the certificate served with `--tls-*`, which zones pin; `None`
    /// for plain HTTP.
    pub fn cert_hash(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.cert_hash.as_str())
    }

    /// `https` with a certificate, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
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
        let keys = (self.config.join_key_refresh_ms > 0).then(|| {
            tokio::spawn(crate::keyring::refresh_loop(
                self.state.clone(),
                self.config.clone(),
                Duration::from_millis(self.config.join_key_refresh_ms),
            ))
        });
        let tx = self.shutdown_tx;
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        };
        let state = self.state.clone();
        let tls = self.tls.map(|t| t.config);
        listen::serve(self.listener, app, self.limits, tls, signal).await?;
        // Upgraded WebSocket sessions outlive their HTTP connection: give them a moment to
        // send their Close frames.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.hub.all_disconnected()).await;
        let _ = janitor.await;
        let _ = relay.await;
        if let Some(keys) = keys {
            let _ = keys.await;
        }
        Ok(())
    }
}
