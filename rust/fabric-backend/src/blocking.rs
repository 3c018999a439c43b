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

/// Runs `work` on the blocking pool every `period_ms` until `shutdown` flips to true, handing
/// it `carried` (state kept between runs). A run that fails is logged as `what` and the next
/// one comes at its time; a run that panicked starts over from `S::default()`.
pub async fn every<S, E>(
    what: &'static str,
    period_ms: u64,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut carried: S,
    work: impl Fn(&mut S) -> Result<(), E> + Send + Sync + Clone + 'static,
) where
    S: Default + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(period_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let work = work.clone();
                let mut s = std::mem::take(&mut carried);
                match tokio::task::spawn_blocking(move || {
                    let out = work(&mut s);
                    (s, out)
                })
                .await
                {
                    Ok((s, out)) => {
                        carried = s;
                        if let Err(e) = out {
                            tracing::error!(error = %e, "{what} failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "{what} task failed"),
                }
            }
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => break,
        }
    }
}
