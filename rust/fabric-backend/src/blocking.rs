//! Moves store work off the async workers. Every store call is synchronous (SQLite through
//! rusqlite, PostgreSQL through a pool driven from the calling thread), and a ReBAC check can
//! make thousands of them; run on a tokio worker, one wide check would stall every heartbeat
//! and WebSocket frame on that worker. Handlers therefore run their store-touching part on
//! tokio's blocking pool through [`off_worker`].

use axum::http::StatusCode;

use crate::error::ApiError;

/// Runs `f` on the blocking pool and returns its result. A task that panicked or was cancelled
/// at shutdown becomes a 500 `internal` (never a panic in the caller).
pub async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "blocking store task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage task failed",
            ))
        }
    }
}
