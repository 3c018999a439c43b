//! `GET /metrics`: the registry's own figures in the Prometheus text format, for the operator's
//! scraper: requests by route template, method and status, their handling time, and the
//! business events a capacity plan looks at (join tokens issued, heartbeats, sign-ups). Route
//! templates (`/shards/{id}`), never ids or names, so the label sets stay small and carry no
//! account data.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::Shared;

/// Labels of a handled request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/shards/{id}`), or `unmatched` for a path no route has.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a handling-time sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template, or `unmatched`.
    pub route: String,
}

/// The registry's metrics (one set per replica).
pub struct Metrics {
    registry: Registry,
    /// Requests handled, by route, method and status (refusals such as 429 included).
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from a request's arrival to its response head, by route.
    pub request_seconds: Family<RouteLabels, Histogram>,
    /// Join tokens issued.
    pub tokens_issued: Counter,
    /// Heartbeats accepted.
    pub heartbeats: Counter,
    /// Accounts created (sign-up; the operator's `--create-account` runs in its own process).
    pub signups: Counter,
    text: Mutex<String>,
}

/// Buckets of [`Metrics::request_seconds`]: 0.25 ms to about 4 s, doubling.
fn seconds_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 15)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fabric_backend");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(seconds_buckets())
        });
        let tokens_issued = Counter::default();
        let heartbeats = Counter::default();
        let signups = Counter::default();
        registry.register(
            "requests",
            "HTTP requests handled, by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "request_seconds",
            "Seconds from a request's arrival to its response, by route template",
            request_seconds.clone(),
        );
        registry.register("tokens_issued", "Join tokens issued", tokens_issued.clone());
        registry.register("heartbeats", "Zone heartbeats accepted", heartbeats.clone());
        registry.register("signups", "Accounts created by sign-up", signups.clone());
        Self {
            registry,
            requests,
            request_seconds,
            tokens_issued,
            heartbeats,
            signups,
            text: Mutex::new(String::new()),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = self.text.lock().expect("metrics text lock");
        text.clear();
        encode(&mut *text, &self.registry).expect("writing to a String does not fail");
        text.clone()
    }
}

/// Middleware: counts and times every request (outermost, so refusals are counted too).
pub async fn record(State(st): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    st.metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(State(st): State<Shared>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        st.metrics.render(),
    )
}
