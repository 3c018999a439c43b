//! The ownership figures of a zone in its Prometheus registry (`/metrics`), beside the
//! command figures ([`super::metrics`]):
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `fabric_zone_ownership_grants_total` | counter | requests granted (repeats excluded) |
//! | `fabric_zone_ownership_releases_total` | counter | entities released by their holder |
//! | `fabric_zone_ownership_takebacks_total` | counter | entities taken back by the server |
//! | `fabric_zone_ownership_denials_total{reason}` | counter | requests, releases and forged events refused, per reason (`held`, `cooldown`, `not_here`, `avatar`, `too_many`, `not_joined`, `not_holder`, `forged`) |
//! | `fabric_zone_ownership_handed_in_total` | counter | held entities that arrived with their holder from a neighbour |
//! | `fabric_zone_ownership_handed_out_total` | counter | held entities handed to a neighbour with their holder |
//! | `fabric_zone_ownership_absent_expired_total` | counter | holds ended because the holder stayed away from this zone past the grace |
//! | `fabric_zone_ownership_held` | gauge | entities held by a player now |
//!
//! Updated once a frame from the table's running totals (counters advance by the difference),
//! without locking or allocating.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use fabric_core::ownership::{DENIAL_COUNT, Denial};

/// Running totals of a zone's ownership, as the glue counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnershipFigures {
    /// Grants.
    pub grants: u64,
    /// Releases by the holder.
    pub releases: u64,
    /// Take-backs by the server.
    pub takebacks: u64,
    /// Refusals per [`Denial::index`].
    pub denials: [u64; DENIAL_COUNT],
    /// Held entities arrived with their holder.
    pub handed_in: u64,
    /// Held entities handed off with their holder.
    pub handed_out: u64,
    /// Holds ended by the absent-holder grace.
    pub absent_expired: u64,
    /// Entities held now.
    pub held: u64,
}

/// The metric handles.
#[derive(Debug, Default)]
pub struct OwnershipMetrics {
    grants: Counter,
    releases: Counter,
    takebacks: Counter,
    denials: [Counter; DENIAL_COUNT],
    handed_in: Counter,
    handed_out: Counter,
    absent_expired: Counter,
    held: Gauge,
}

impl OwnershipMetrics {
    /// Handles registered in `registry` (prefix and labels are the registry's).
    pub fn register(registry: &mut Registry) -> Self {
        let denials = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let m = Self {
            denials: Denial::ALL.map(|d| denials.get_or_create(&[("reason", d.name())]).clone()),
            ..Self::default()
        };
        registry.register(
            "ownership_denials",
            "Ownership requests, releases and forged events refused, per reason",
            denials,
        );
        let counters: [(&str, &str, &Counter); 6] = [
            ("ownership_grants", "Ownership requests granted", &m.grants),
            (
                "ownership_releases",
                "Entities released by their holder",
                &m.releases,
            ),
            (
                "ownership_takebacks",
                "Entities taken back by the server",
                &m.takebacks,
            ),
            (
                "ownership_handed_in",
                "Held entities arrived from a neighbour with their holder",
                &m.handed_in,
            ),
            (
                "ownership_handed_out",
                "Held entities handed to a neighbour with their holder",
                &m.handed_out,
            ),
            (
                "ownership_absent_expired",
                "Holds ended because the holder stayed away past the grace",
                &m.absent_expired,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "ownership_held",
            "Entities held by a player",
            m.held.clone(),
        );
        m
    }

    /// Publishes `now`, the totals after `before` (counters advance by the difference).
    pub fn publish(&self, now: &OwnershipFigures, before: &OwnershipFigures) {
        let add = |c: &Counter, a: u64, b: u64| {
            c.inc_by(a.saturating_sub(b));
        };
        add(&self.grants, now.grants, before.grants);
        add(&self.releases, now.releases, before.releases);
        add(&self.takebacks, now.takebacks, before.takebacks);
        add(&self.handed_in, now.handed_in, before.handed_in);
        add(&self.handed_out, now.handed_out, before.handed_out);
        add(
            &self.absent_expired,
            now.absent_expired,
            before.absent_expired,
        );
        for (i, c) in self.denials.iter().enumerate() {
            add(c, now.denials[i], before.denials[i]);
        }
        self.held.set(i64::try_from(now.held).unwrap_or(i64::MAX));
    }
}
