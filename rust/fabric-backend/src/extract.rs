//! Request extractors that turn every kind of bad input into a precise [`ApiError`] instead of
//! axum's plain-text rejections: JSON bodies ([`ApiJson`]), shard ids in the path
//! ([`ShardId`]) and bearer credentials ([`Bearer`], [`require_account`]).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::secrets::{API_KEY_PREFIX, hash_secret};
use crate::state::AppState;

/// A JSON body with precise rejections:
/// 400 `malformed_json`, 415 `unsupported_media_type`, 413 `body_too_large`,
/// 422 `invalid_body` (well-formed JSON of the wrong shape).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body exceeds the limit",
        ),
        other => ApiError::new(other.status(), "bad_body", text),
    }
}

/// The `{id}` path segment parsed as a UUID (400 `invalid_id` otherwise).
#[derive(Debug, Clone, Copy)]
pub struct ShardId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ShardId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.body_text()))?;
        Uuid::parse_str(&raw).map(ShardId).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                "shard id must be a UUID",
            )
        })
    }
}

/// The credential of `Authorization: Bearer <credential>`, if the header is present.
/// A present header that is not a bearer credential is 401 `invalid_credentials`.
#[derive(Debug, Clone)]
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Bearer(None));
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::invalid_credentials())?;
        let cred = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.len() <= 256)
            .ok_or_else(ApiError::invalid_credentials)?;
        Ok(Bearer(Some(cred.to_owned())))
    }
}

/// The account an API key belongs to, or 401.
pub fn account_for(state: &AppState, credential: &str) -> Result<String, ApiError> {
    if !credential.starts_with(API_KEY_PREFIX) {
        return Err(ApiError::invalid_credentials());
    }
    state
        .store
        .account_by_key_hash(&hash_secret(credential))?
        .ok_or_else(ApiError::invalid_credentials)
}

/// The calling account: 401 `missing_credentials` without a header, 401 `invalid_credentials`
/// for an unknown key.
pub fn require_account(state: &AppState, bearer: &Bearer) -> Result<String, ApiError> {
    let cred = bearer
        .0
        .as_deref()
        .ok_or_else(ApiError::missing_credentials)?;
    account_for(state, cred)
}

/// The calling account if a credential was sent (an unknown one is still 401).
pub fn optional_account(state: &AppState, bearer: &Bearer) -> Result<Option<String>, ApiError> {
    bearer
        .0
        .as_deref()
        .map(|c| account_for(state, c))
        .transpose()
}
