//! The janitor: periodically deletes shards whose last heartbeat (`PUT /shards/{id}`) is older
//! than the eviction window, and pushes `zone_removed` with reason `stale` to their
//! subscribers. It only looks at `last_put_at_ms`: WebSocket activity is never a liveness signal.

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
    state.rate.forget_idle();
    let evicted = state.store.evict_stale(cutoff)?;
    if state.settings.push_relay_ms > 0 {
        let before = state.clock.now_ms().saturating_sub(crate::relay::KEEP_MS);
        state.store.prune_pushes(before)?;
    }
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
    let shutdown = state.shutdown.clone();
    crate::blocking::every("janitor sweep", period, shutdown, (), move |()| {
        sweep(&state).map(drop)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock as _, ManualClock};
    use crate::config::Config;
    use crate::model::ShardRecord;
    use crate::server::Bound;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{HeartbeatUpdate, Store};

    fn shard(id: u128, t: u64) -> ShardRecord {
        ShardRecord {
            id: Uuid::from_u128(id),
            owner: "ann".into(),
            address: "127.0.0.1".into(),
            port: 7443,
            map: "m".into(),
            name: "n".into(),
            cert_hash: "c".into(),
            max_users: 32,
            current_users: 0,
            public: true,
            asset_index_url: None,
            secret_hash: format!("h{id}"),
            created_at_ms: t,
            last_put_at_ms: t,
            next_cert_hash: None,
        }
    }

    #[tokio::test]
    async fn sweep_evicts_exactly_at_the_window_under_a_manual_clock() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").unwrap());
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), ":memory:");
        config.evict_after_ms = 5_000;
        let bound = Bound::bind_with(&config, store.clone(), clock.clone())
            .await
            .unwrap();
        let state = bound.state();
        store.insert_shard(&shard(1, 1_000_000), &[]).unwrap();
        store.insert_shard(&shard(2, 1_000_000), &[]).unwrap();
        let (conn, tx, mut rx) = state.hub.connect();
        state
            .hub
            .subscribe(conn, &format!("zone:{}", Uuid::from_u128(1)), &tx);

        clock.advance(5_000);
        assert!(
            sweep(&state).unwrap().is_empty(),
            "exactly at the window: kept"
        );
        // Shard 2 heartbeats; shard 1 stays silent.
        let beat = HeartbeatUpdate {
            current_users: 1,
            asset_index_url: None,
            cert_hash: None,
            next_cert_hash: None,
        };
        store
            .heartbeat(Uuid::from_u128(2), &beat, clock.now_ms())
            .unwrap();
        clock.advance(1);
        assert_eq!(
            sweep(&state).unwrap(),
            vec![Uuid::from_u128(1)],
            "one millisecond past the window: evicted"
        );
        let pushed: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(pushed["type"], "zone_removed", "{pushed}");
        assert_eq!(pushed["reason"], "stale", "{pushed}");
        assert!(
            store.shard(Uuid::from_u128(2)).unwrap().is_some(),
            "heartbeating shard kept"
        );
    }
}
