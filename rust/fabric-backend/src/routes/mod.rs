//! The HTTP surface: [`router`] wires every route of the API (one file per resource) plus JSON
//! fallbacks for unknown paths (404 `not_found`) and methods (405 `method_not_allowed`).
//! [`OPENAPI`] is the hand-written description served at `GET /openapi.json`; the
//! `openapi` integration test checks it against these routes over HTTP.

mod accounts;
mod assets;
mod fabrics;
mod relationships;
mod rooms;
mod shards;
mod tokens;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};

pub use accounts::create_account;
pub use assets::open_asset_store;
pub use fabrics::LINK_CREDENTIAL_TTL_S;

use crate::error::ApiError;
use crate::state::Shared;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `(method, path)` of every route, in OpenAPI path syntax. Kept beside [`router`] and checked
/// against [`OPENAPI`] by a unit test; the integration test checks each against the server.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("post", "/accounts"),
    ("get", "/shards"),
    ("post", "/shards"),
    ("get", "/shards/{id}"),
    ("put", "/shards/{id}"),
    ("delete", "/shards/{id}"),
    ("post", "/shards/{id}/link"),
    ("get", "/fabrics/{fabric}/members"),
    ("get", "/keys/join"),
    ("post", "/tokens/join"),
    ("post", "/tokens/join/verify"),
    ("get", "/relationships"),
    ("post", "/relationships"),
    ("delete", "/relationships"),
    ("post", "/check"),
    ("get", "/ws"),
    ("put", "/maps/{map}/assets/{name}"),
    ("get", "/maps/{map}/assets"),
    ("get", "/assets/index/{name}"),
    ("get", "/assets/chunks/{hex}"),
    ("post", "/rooms/{id}/save"),
    ("get", "/rooms/{id}/state"),
];

/// Whether `account` holds `permission` on `object` under the backend's ReBAC schema.
fn permits(
    st: &crate::state::AppState,
    account: &str,
    permission: &str,
    object: &fabric_auth::ObjectRef,
) -> Result<bool, ApiError> {
    Ok(fabric_auth::rebac::check(
        &st.schema,
        &crate::store::StoreTuples(&*st.store),
        account,
        permission,
        object,
    )?)
}

/// Builds the application router.
pub fn router(state: Shared, max_body_bytes: usize) -> Router {
    let max_room_bytes = state.settings.max_room_bytes;
    let router = match assets::chunk_store(&state) {
        Some(store) => Router::new().nest_service("/assets", fabric_assets::router(store)),
        None => Router::new(),
    };
    router
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::serve))
        .route("/accounts", post(accounts::create))
        .route("/shards", get(shards::list).post(shards::register))
        .route(
            "/shards/{id}",
            get(shards::get_one)
                .put(shards::heartbeat)
                .delete(shards::delete),
        )
        .route("/shards/{id}/link", post(fabrics::renew))
        .route("/fabrics/{fabric}/members", get(fabrics::members))
        .route("/keys/join", get(tokens::keys))
        .route("/tokens/join", post(tokens::issue))
        .route("/tokens/join/verify", post(tokens::verify))
        .route(
            "/relationships",
            get(relationships::list)
                .post(relationships::add)
                .delete(relationships::remove),
        )
        .route("/check", post(relationships::check))
        .route("/ws", get(ws::upgrade))
        .route("/maps/{map}/assets/{name}", put(assets::upload))
        .route("/maps/{map}/assets", get(assets::list))
        .route(
            "/rooms/{id}/save",
            post(rooms::save).layer(DefaultBodyLimit::max(max_room_bytes)),
        )
        .route("/rooms/{id}/state", get(rooms::state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rate::per_address,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::record,
        ))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "ok": true }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn openapi_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(
            doc["openapi"].as_str().map(|v| &v[..2]),
            Some("3."),
            "version"
        );
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths object") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routed, "openapi.json and ROUTES differ");
    }
}
