//! What a zone's link listener refused and dropped, in its Prometheus registry (`/metrics`):
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `fabric_zone_link_sessions_refused_total{reason}` | counter | sessions on the link path refused: `no_credential` (no link proof in time, or the first message was not one), `bad_credential` (the proof or its credential did not verify: another fabric, another key, another listener, expired), `wrong_zone` (the proven zone may not dial this one) |
//! | `fabric_zone_link_packets_dropped_total{reason}` | counter | packets dropped on an authenticated link: `forged_from_zone` (their `from_zone` is not the link's proven zone), `bad_packet` (they do not decode), `inbound_full` (the link's inbound queue was over its byte bound) |
//!
//! Read from the links' endpoint counters ([`fabric_link::LinkCounters`]) once a second;
//! counters advance by the difference, without locking or allocating.

use fabric_link::LinkCounters;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Reasons a link session is refused, as labelled.
const REFUSALS: [&str; 3] = ["no_credential", "bad_credential", "wrong_zone"];
/// Reasons a link packet is dropped, as labelled.
const DROPS: [&str; 3] = ["forged_from_zone", "bad_packet", "inbound_full"];

/// The refusal counts of `c` in the order of [`REFUSALS`].
fn refusals(c: &LinkCounters) -> [u64; 3] {
    [c.no_credential, c.bad_credential, c.wrong_zone]
}

/// The drop counts of `c` in the order of [`DROPS`].
fn drops(c: &LinkCounters) -> [u64; 3] {
    [c.forged_from_zone, c.bad_packets, c.inbound_full]
}

/// The metric handles.
#[derive(Debug, Default)]
pub struct LinkGuardMetrics {
    refused: [Counter; 3],
    dropped: [Counter; 3],
}

impl LinkGuardMetrics {
    /// Handles registered in `registry` (prefix and labels are the registry's).
    pub fn register(registry: &mut Registry) -> Self {
        let refused = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let dropped = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let m = Self {
            refused: REFUSALS.map(|r| refused.get_or_create(&[("reason", r)]).clone()),
            dropped: DROPS.map(|r| dropped.get_or_create(&[("reason", r)]).clone()),
        };
        registry.register(
            "link_sessions_refused",
            "Sessions on the zone link path refused, per reason",
            refused,
        );
        registry.register(
            "link_packets_dropped",
            "Packets dropped on authenticated zone links, per reason",
            dropped,
        );
        m
    }

    /// Publishes `now`, the counters after `before` (counters advance by the difference).
    pub fn publish(&self, now: &LinkCounters, before: &LinkCounters) {
        let pairs = refusals(now)
            .into_iter()
            .zip(refusals(before))
            .zip(&self.refused)
            .chain(drops(now).into_iter().zip(drops(before)).zip(&self.dropped));
        for ((a, b), c) in pairs {
            c.inc_by(a.saturating_sub(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn counters_advance_by_the_difference_under_their_reason() {
        let mut registry = Registry::with_prefix("fabric_zone");
        let m = LinkGuardMetrics::register(&mut registry);
        let first = LinkCounters {
            sessions_refused: 3,
            no_credential: 2,
            bad_credential: 1,
            forged_from_zone: 4,
            ..LinkCounters::default()
        };
        m.publish(&first, &LinkCounters::default());
        let second = LinkCounters {
            wrong_zone: 1,
            bad_packets: 5,
            ..first
        };
        m.publish(&second, &first);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "fabric_zone_link_sessions_refused_total{reason=\"no_credential\"} 2",
            "fabric_zone_link_sessions_refused_total{reason=\"bad_credential\"} 1",
            "fabric_zone_link_sessions_refused_total{reason=\"wrong_zone\"} 1",
            "fabric_zone_link_packets_dropped_total{reason=\"forged_from_zone\"} 4",
            "fabric_zone_link_packets_dropped_total{reason=\"bad_packet\"} 5",
            "fabric_zone_link_packets_dropped_total{reason=\"inbound_full\"} 0",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
