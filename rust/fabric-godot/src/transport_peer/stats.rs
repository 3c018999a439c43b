//! `get_stats()`'s Dictionary: the traffic counters the `PeerCore` keeps
//! ([`PeerStats`]), with the peer's own entries.

use fabric_core::peer_core::PeerStats;
use godot::prelude::*;

/// The counters as a Dictionary (int values), plus `extra` entries.
pub(super) fn to_dictionary(stats: &PeerStats, extra: &[(&str, Variant)]) -> VarDictionary {
    let mut d = VarDictionary::new();
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX).to_variant();
    d.set("packets_sent", &count(stats.packets_sent));
    d.set("bytes_sent", &count(stats.bytes_sent));
    d.set("packets_received", &count(stats.packets_received));
    d.set("bytes_received", &count(stats.bytes_received));
    d.set("stale_dropped", &count(stats.stale_dropped));
    d.set("send_errors", &count(stats.send_errors));
    for (k, v) in extra {
        d.set(*k, v);
    }
    d
}
