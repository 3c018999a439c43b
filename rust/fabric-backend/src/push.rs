//! Messages the backend pushes on `zone:<id>` topics, and the helpers that publish them.
//!
//! ```json
//! {"type":"zone_updated","topic":"zone:<id>","zone":{…ShardView…}}
//! {"type":"relationship_changed","topic":"zone:<id>","object":"group:builders"}
//! {"type":"zone_removed","topic":"zone:<id>","reason":"deleted"|"stale"}
//! {"type":"asset_baked","topic":"zone:<id>","asset":{…SharedFile…}}
//! ```

use serde::Serialize;
use uuid::Uuid;

use crate::model::{ShardRecord, ShardView, SharedFile};
use crate::state::AppState;

/// The topic of a zone.
pub fn zone_topic(id: Uuid) -> String {
    format!("zone:{id}")
}

/// A pushed message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Push<'a> {
    /// After every heartbeat: the zone's current state, including `asset_index_url`.
    ZoneUpdated {
        /// Topic.
        topic: &'a str,
        /// The zone.
        zone: ShardView,
    },
    /// A tuple that can affect permissions on this zone was added or removed.
    RelationshipChanged {
        /// Topic.
        topic: &'a str,
        /// The object whose tuples changed.
        object: &'a str,
    },
    /// An asset of the zone's map was uploaded and baked: fetch its index at `baked_url`.
    AssetBaked {
        /// Topic.
        topic: &'a str,
        /// The asset's new current version.
        asset: &'a SharedFile,
    },
    /// The zone was deleted or evicted by the janitor.
    ZoneRemoved {
        /// Topic.
        topic: &'a str,
        /// `deleted` or `stale`.
        reason: &'a str,
    },
}

fn publish(state: &AppState, topic: &str, push: &Push<'_>) -> usize {
    let text = serde_json::to_string(push).expect("push messages serialise");
    record_for_replicas(state, topic, &text);
    state.hub.publish(topic, text.into())
}

/// Appends a push to the shared log for the other replicas ([`crate::relay`]) when relaying is
/// on. A failure is logged, never returned: the change that caused the push has committed, and
/// this replica's own subscribers still get it.
fn record_for_replicas(state: &AppState, topic: &str, message: &str) {
    if state.settings.push_relay_ms == 0 {
        return;
    }
    if let Err(e) = state
        .store
        .append_push(&state.replica_id, topic, message, state.clock.now_ms())
    {
        tracing::warn!(topic, error = %e, "push not recorded for the other replicas");
    }
}

/// Publishes `zone_updated` for a shard.
pub fn zone_updated(state: &AppState, shard: &ShardRecord) -> usize {
    let topic = zone_topic(shard.id);
    publish(
        state,
        &topic,
        &Push::ZoneUpdated {
            topic: &topic,
            zone: ShardView::from(shard),
        },
    )
}

/// Publishes `zone_removed`.
pub fn zone_removed(state: &AppState, id: Uuid, reason: &str) -> usize {
    let topic = zone_topic(id);
    publish(
        state,
        &topic,
        &Push::ZoneRemoved {
            topic: &topic,
            reason,
        },
    )
}

/// Publishes `relationship_changed` on `topic`.
pub fn relationship_changed(state: &AppState, topic: &str, object: &str) -> usize {
    publish(state, topic, &Push::RelationshipChanged { topic, object })
}

/// Publishes `asset_baked` to every subscribed zone whose map is `asset.map` (on this replica,
/// and through the push log on the others); returns how many zones of this replica were told.
pub fn asset_baked(
    state: &AppState,
    asset: &SharedFile,
) -> Result<usize, crate::error::StoreError> {
    let payload = serde_json::to_string(asset).expect("assets serialise");
    record_for_replicas(state, &format!("map:{}", asset.map), &payload);
    asset_baked_local(state, asset)
}

/// Publishes `asset_baked` to this replica's subscribed zones whose map is `asset.map`. Only
/// topics with subscribers are looked at, so the cost follows the listeners, not the
/// registry's size.
pub fn asset_baked_local(
    state: &AppState,
    asset: &SharedFile,
) -> Result<usize, crate::error::StoreError> {
    let mut told = 0;
    for topic in state.hub.topics() {
        let Some(id) = topic
            .strip_prefix("zone:")
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            continue;
        };
        if state.store.shard(id)?.is_none_or(|s| s.map != asset.map) {
            continue;
        }
        let text = serde_json::to_string(&Push::AssetBaked {
            topic: &topic,
            asset,
        })
        .expect("push messages serialise");
        if state.hub.publish(&topic, text.into()) > 0 {
            told += 1;
        }
    }
    Ok(told)
}
