//! QUIC endpoints shared by many WebTransport client sessions of one process.
//!
//! By default every [`crate::Client`] binds its own UDP socket and QUIC endpoint: right for a
//! game client, which holds one session. A process that holds hundreds (the load generator's
//! simulated players) pays for that in memory and CPU: each quinn endpoint has its own receive
//! buffers (a GRO batch: megabytes, filled as datagrams arrive) and its own driver task and
//! socket to poll. [`ClientEndpoints`] is a pool the caller sets in
//! [`crate::ClientConfig::endpoints`]: sessions with the same server URL, pinned hashes, idle
//! timeout and congestion controller (everything an endpoint's configuration holds) share one
//! endpoint, up to [`ClientEndpoints::sessions_per_endpoint`] sessions each; beyond it the pool
//! binds another.
//!
//! The pool is not used unless set: a session's own endpoint stays the default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wtransport::Endpoint;
use wtransport::endpoint::endpoint_side;

use crate::cert::CertHash;
use crate::congestion::CongestionControl;
use crate::error::NetError;
use crate::tls::PinVerdict;

/// How many sessions [`ClientEndpoints::new`] lets one endpoint carry before it binds another.
pub const DEFAULT_SESSIONS_PER_ENDPOINT: usize = 64;

/// A client QUIC endpoint and the pin check its TLS configuration reports to.
pub(crate) type SharedEndpoint = Arc<(Endpoint<endpoint_side::Client>, PinVerdict)>;

/// What an endpoint's configuration holds: sessions that agree on all of it may share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EndpointKey {
    /// The server URL: one endpoint's pin verdict then speaks of one server only.
    pub url: String,
    /// Every accepted certificate hash, in the configuration's order.
    pub pins: Vec<CertHash>,
    /// The QUIC idle timeout.
    pub idle_timeout: Duration,
    /// The congestion controller.
    pub congestion: CongestionControl,
}

/// A pool of client QUIC endpoints; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct ClientEndpoints {
    pool: Arc<Mutex<HashMap<EndpointKey, Vec<SharedEndpoint>>>>,
    sessions_per_endpoint: usize,
}

impl std::fmt::Debug for ClientEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEndpoints")
            .field("endpoints", &self.endpoint_count())
            .field("sessions_per_endpoint", &self.sessions_per_endpoint)
            .finish()
    }
}

impl Default for ClientEndpoints {
    fn default() -> Self {
        Self::new(DEFAULT_SESSIONS_PER_ENDPOINT)
    }
}

impl ClientEndpoints {
    /// An empty pool whose endpoints carry at most `sessions_per_endpoint` sessions each (at
    /// least 1).
    pub fn new(sessions_per_endpoint: usize) -> Self {
        Self {
            pool: Arc::default(),
            sessions_per_endpoint: sessions_per_endpoint.max(1),
        }
    }

    /// How many sessions one endpoint carries before the pool binds another.
    pub fn sessions_per_endpoint(&self) -> usize {
        self.sessions_per_endpoint
    }

    /// Endpoints bound so far and still held by the pool.
    pub fn endpoint_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Sessions (open or opening) on the pool's endpoints.
    pub fn session_count(&self) -> usize {
        self.lock()
            .values()
            .flatten()
            .map(|e| e.0.open_connections())
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointKey, Vec<SharedEndpoint>>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An endpoint for `key` with room for one more session, binding one with `bind` when none
    /// has room. Endpoints of `key` left without a session are let go, but for the one returned.
    /// Must run inside a tokio runtime (a new endpoint's driver is spawned on it).
    pub(crate) fn get(
        &self,
        key: EndpointKey,
        bind: impl FnOnce() -> Result<SharedEndpoint, NetError>,
    ) -> Result<SharedEndpoint, NetError> {
        let mut pool = self.lock();
        let list = pool.entry(key).or_default();
        let room = list
            .iter()
            .position(|e| e.0.open_connections() < self.sessions_per_endpoint);
        let chosen = match room {
            Some(i) => list[i].clone(),
            None => {
                let e = bind()?;
                list.push(e.clone());
                e
            }
        };
        list.retain(|e| Arc::ptr_eq(e, &chosen) || e.0.open_connections() > 0);
        Ok(chosen)
    }
}
