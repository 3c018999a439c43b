//! The janitor: periodically deletes shards whose last heartbeat (`PUT /shards/{id}`) is older
//! than the eviction window, and pushes `zone_removed` with reason `stale` to their
//! subscribers. It only looks at `last_put_at_ms`: WebSocket activity is never a liveness signal.

use std::time::Duration;

use uuid::Uuid;

use crate::error::StoreError;
use crate::push;
use crate::state::{AppState, Shared};

/// One pass: evicts stale shards at the clock's current time and returns their ids.
pub fn sweep(state: &AppState) -> Result<Vec<Uuid>, StoreError> {
    let cutoff = state
        .clock
        .now_ms()
        .saturating_sub(state.settings.evict_after_ms);
    let evicted = state.store.evict_stale(cutoff)?;
    for id in &evicted {
        push::zone_removed(state, *id, "stale");
        tracing::info!(shard = %id, "janitor evicted stale shard");
    }
    Ok(evicted)
}

/// Runs [`sweep`] every `janitor_interval_ms` until shutdown. Does nothing when the interval is 0.
pub async fn run(state: Shared) {
    let period = state.settings.janitor_interval_ms;
    if period == 0 {
        tracing::info!("janitor disabled");
        return;
    }
    let mut shutdown = state.shutdown.clone();
    let mut ticker = tokio::time::interval(Duration::from_millis(period));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = sweep(&state) {
                    tracing::error!(error = %e, "janitor sweep failed");
                }
            }
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => break,
        }
    }
}
