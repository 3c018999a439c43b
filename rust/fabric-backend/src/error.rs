//! Errors: [`StoreError`] from storage backends and [`ApiError`], the JSON error body every
//! failed request gets: `{"error":{"code":"<stable code>","message":"<human text>"}}` with a
//! precise 4xx status. Codes are part of the API (see docs/backend.md); messages are not.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Failures of a [`crate::store::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key already exists.
    #[error("already exists")]
    Conflict,
    /// The SQLite backend failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL backend failed (after retrying serialization failures).
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool, or the URL is unusable.
    #[error("postgres connection: {0}")]
    Connection(String),
    /// A stored value could not be decoded (corrupt or foreign row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// An HTTP error with a stable machine-readable code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status (always 4xx or 500).
    pub status: StatusCode,
    /// Stable code, e.g. `unknown_shard`.
    pub code: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 `unknown_shard`.
    pub fn unknown_shard(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_shard",
            format!("no shard {id}"),
        )
    }

    /// 422 `invalid_field`.
    pub fn invalid_field(field: &str, why: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {why}"),
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 401 `missing_credentials`.
    pub fn missing_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "an Authorization: Bearer header is required",
        )
    }

    /// 401 `invalid_credentials`.
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the bearer credential is not known",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "storage failure",
        )
    }
}

impl From<fabric_auth::RebacError> for ApiError {
    fn from(e: fabric_auth::RebacError) -> Self {
        let status = match e {
            fabric_auth::RebacError::Source(_) => StatusCode::INTERNAL_SERVER_ERROR,
            fabric_auth::RebacError::TooDeep => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<fabric_auth::TokenError> for ApiError {
    fn from(e: fabric_auth::TokenError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
