//! Helpers of the registry tests: a real `fabric-backend` in this process on a real socket,
//! its operator account, and a zone's registration settings.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use fabric_backend::config::Config;
use fabric_backend::server::{Bound, ServeError};
use fabric_net::http::Endpoint;
use fabric_net::registry::RegistrationConfig;
use tokio::task::JoinHandle;

/// A backend serving until its shutdown future resolves.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The API key of its account `operator`.
    pub api_key: String,
    /// The serving task.
    pub server: JoinHandle<Result<(), ServeError>>,
}

/// Starts a backend with `cfg` (plain HTTP) and creates the account `operator`.
pub fn start_backend(
    cfg: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Backend {
    let rt = fabric_net::runtime_handle();
    let bound = rt.block_on(Bound::bind(cfg)).expect("backend binds");
    let addr = bound.local_addr();
    let server = rt.spawn(bound.serve(shutdown));
    let api_key = rt
        .block_on(fabric_backend::client::Client::new(addr.to_string()).create_account("operator"))
        .expect("account")
        .api_key;
    Backend {
        addr,
        api_key,
        server,
    }
}

/// A zone's registration with `backend` as `api_key`, heartbeating every `heartbeat`.
pub fn zone(
    backend: Endpoint,
    api_key: &str,
    pinned_join_keys: Vec<String>,
    heartbeat: Duration,
) -> RegistrationConfig {
    RegistrationConfig {
        backend,
        pinned_join_keys,
        api_key: api_key.to_owned(),
        address: Some("127.0.0.1".into()),
        port: 7443,
        map: "m".into(),
        name: "z".into(),
        cert_hash: "q0ANGmCZtlwHx6kn3pd3T6g0iE3KeTTqYy9x0c0O2tY=".into(),
        next_cert_hash: None,
        max_users: 32,
        public: false,
        heartbeat,
    }
}
