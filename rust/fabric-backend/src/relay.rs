//! Pushes between replicas that share one database.
//!
//! A replica publishes a push to its own WebSocket subscribers at once ([`crate::hub`]) and,
//! when relaying is on, also appends it to the store's push log ([`Store::append_push`]). Every
//! replica polls that log every `--push-relay-ms` for pushes of the others on the topics it has
//! subscribers for (plus `map:` pushes, which it expands to its own zones of that map) and
//! publishes them locally. A push therefore reaches a subscriber on another replica within one
//! poll period plus the commit (about 250 ms by default), with no reliance on
//! LISTEN/NOTIFY (CockroachDB has none) and nothing lost if a listener was slow: the log keeps
//! a push for [`KEEP_MS`].
//!
//! Store ids are unique but a later id may commit first, so each poll re-reads a window of
//! [`GRACE_MS`] before the previous one and skips the ids it has already delivered.
//!
//! [`Store::append_push`]: crate::store::Store::append_push

use std::collections::HashMap;

use crate::model::SharedFile;
use crate::push;
use crate::state::{AppState, Shared};
use crate::store::PushRecord;

/// How far back each poll looks before the previous one, so a push that committed late is
/// still seen.
pub const GRACE_MS: u64 = 3_000;
/// How long the log keeps a push (the janitor prunes older ones).
pub const KEEP_MS: u64 = 60_000;
/// Most pushes read per poll.
pub const BATCH: u32 = 2_000;

/// What a replica remembers between polls.
#[derive(Debug, Default)]
pub struct RelayState {
    /// Start of the next poll's window.
    since_ms: u64,
    /// Ids delivered within the window, with their time (to forget them later).
    delivered: HashMap<i64, u64>,
}

impl RelayState {
    /// Starts relaying pushes recorded from `now_ms` on.
    pub fn starting_at(now_ms: u64) -> Self {
        Self {
            since_ms: now_ms,
            delivered: HashMap::new(),
        }
    }
}

/// One poll at `now_ms`: publishes the other replicas' new pushes locally; returns how many
/// were delivered.
pub fn poll(
    state: &AppState,
    relay: &mut RelayState,
    now_ms: u64,
) -> Result<usize, crate::error::StoreError> {
    if relay.since_ms == 0 {
        // Restarted after a failed task: only what may have been missed in the meantime.
        relay.since_ms = now_ms.saturating_sub(GRACE_MS);
    }
    let topics = state.hub.topics();
    let records = state
        .store
        .pushes_since(relay.since_ms, &state.replica_id, &topics, BATCH)?;
    let mut delivered = 0;
    for record in &records {
        if relay.delivered.insert(record.id, record.at_ms).is_some() {
            continue;
        }
        delivered += deliver(state, record);
    }
    let full = records.len() >= BATCH as usize;
    if full {
        // More than one batch waits: carry on from the last one read (its time) next poll.
        relay.since_ms = records.last().map_or(relay.since_ms, |r| r.at_ms);
    } else {
        relay.since_ms = now_ms.saturating_sub(GRACE_MS).max(relay.since_ms);
    }
    let horizon = relay.since_ms;
    relay.delivered.retain(|_, at| *at >= horizon);
    Ok(delivered)
}

fn deliver(state: &AppState, record: &PushRecord) -> usize {
    if let Some(map) = record.topic.strip_prefix("map:") {
        return match serde_json::from_str::<SharedFile>(&record.message) {
            Ok(asset) if asset.map == map => {
                push::asset_baked_local(state, &asset).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "relayed asset push not delivered");
                    0
                })
            }
            _ => {
                tracing::warn!(id = record.id, "malformed relayed map push skipped");
                0
            }
        };
    }
    state
        .hub
        .publish(&record.topic, record.message.as_str().into())
}

/// Polls every `push_relay_ms` until shutdown; does nothing when relaying is off.
pub async fn run(state: Shared) {
    let period = state.settings.push_relay_ms;
    if period == 0 {
        return;
    }
    tracing::info!(replica = %state.replica_id, period_ms = period, "relaying pushes between replicas");
    let relay = RelayState::starting_at(state.clock.now_ms());
    let shutdown = state.shutdown.clone();
    crate::blocking::every("push relay poll", period, shutdown, relay, move |r| {
        let now = state.clock.now_ms();
        poll(&state, r, now).map(drop)
    })
    .await;
}
