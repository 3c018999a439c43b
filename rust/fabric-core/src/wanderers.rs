//! "Wanderers": a seeded population that keeps crossing zone boundaries, to watch and test a
//! fabric without a game.
//!
//! Entity `i` (global id `i + 1`) of a population of `n` with seed `s` is a pure function of
//! `(s, i)` and the world bounds: a uniform position inside the bounds and a velocity of random
//! direction and a speed between half and all of the top speed. The tick reflects them off the
//! world bounds, so they bounce around the whole world for ever and cross every zone border on
//! the way. Each zone spawns only its share: the wanderers whose starting position falls in its
//! Hilbert range ([`share`]), so N zone processes given the same `--entities` and `--seed`
//! together hold the population exactly once.

use crate::coords::{Micros, Vec3, WorldBounds, micros};
use crate::entity::Entity;
use crate::hilbert;
use crate::sim::rng::SimRng;
use crate::zones::{ZoneId, ZoneLayout};

/// Marker in `payload[1]` of every wanderer (`"WAND"` in ASCII), so tools can tell them apart.
pub const WANDERER_TAG: u32 = u32::from_be_bytes(*b"WAND");

/// Wanderer `index` (global id `index + 1`) of the population seeded with `seed`, moving at up
/// to `v_max_um` micrometres per tick.
pub fn wanderer(bounds: &WorldBounds, seed: u64, index: u32, v_max_um: i64) -> Entity {
    // One generator per entity, so an entity does not depend on how many come before it.
    let mut rng = SimRng::new(seed ^ (u64::from(index) + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let (lo, hi) = (bounds.min(), bounds.max());
    let position: Vec3 = [0, 1, 2].map(|k| micros(rng.range_i64(lo[k], hi[k])));
    // A random direction: a normalised vector of three uniform components in [-1, 1].
    let mut dir = [0.0f64; 3];
    let mut norm = 0.0;
    while norm < 1e-6 {
        dir = [0, 1, 2].map(|_| rng.next_f64() * 2.0 - 1.0);
        norm = dir.iter().map(|d| d * d).sum::<f64>().sqrt();
    }
    let speed = v_max_um as f64 * (0.5 + 0.5 * rng.next_f64());
    let velocity = dir.map(|d| Micros::from_num((d / norm * speed) as i64));
    let mut e = Entity::at(index + 1, position).with_velocity(velocity);
    e.payload[1] = WANDERER_TAG;
    e.payload[2] = index;
    e
}

/// The wanderers of a population of `entities` whose starting position is in `zone`'s Hilbert
/// range, in global id order.
pub fn share(
    layout: &ZoneLayout,
    bounds: &WorldBounds,
    zone: ZoneId,
    entities: u32,
    seed: u64,
    v_max_um: i64,
) -> impl Iterator<Item = Entity> {
    let (layout, bounds) = (*layout, *bounds);
    (0..entities)
        .map(move |i| wanderer(&bounds, seed, i, v_max_um))
        .filter(move |e| layout.zone_of(hilbert::encode_position(&bounds, &e.position)) == zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ZoneConfig;
    use crate::sim::harness::Scenario;
    use crate::sim::link::LinkConfig;
    use std::collections::BTreeSet;

    fn layout(n: usize) -> ZoneLayout {
        ZoneLayout::new(n).expect("valid zone count")
    }

    #[test]
    fn same_seed_same_population_other_seed_other_one() {
        let b = WorldBounds::demo();
        let a: Vec<Entity> = (0..50).map(|i| wanderer(&b, 7, i, 500_000)).collect();
        let again: Vec<Entity> = (0..50).map(|i| wanderer(&b, 7, i, 500_000)).collect();
        let other: Vec<Entity> = (0..50).map(|i| wanderer(&b, 8, i, 500_000)).collect();
        assert_eq!(a, again, "a population is a pure function of its seed");
        assert_ne!(a, other, "another seed gives another population");
        for e in &a {
            assert!(
                b.contains(&e.position),
                "{} starts inside the world",
                e.global_id
            );
            let speed = e
                .velocity
                .iter()
                .map(|v| v.to_num::<f64>().powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (249_000.0..=500_001.0).contains(&speed),
                "speed {speed} between half and all of v_max"
            );
            assert_eq!(e.payload[1], WANDERER_TAG, "tagged");
        }
    }

    #[test]
    fn shares_partition_the_population() {
        let b = WorldBounds::demo();
        let l = layout(3);
        let mut seen = BTreeSet::new();
        let mut sizes = Vec::new();
        for z in 0..3 {
            let ids: Vec<u32> = share(&l, &b, z, 900, 11, 500_000)
                .map(|e| e.global_id)
                .collect();
            sizes.push(ids.len());
            for id in ids {
                assert!(seen.insert(id), "entity {id} is in two zones' shares");
            }
        }
        assert_eq!(seen.len(), 900, "every wanderer is in exactly one share");
        assert_eq!(seen.first(), Some(&1), "ids start at 1");
        assert!(
            sizes.iter().all(|&s| s > 150),
            "uniform positions give each of 3 zones a fair share: {sizes:?}"
        );
    }

    #[test]
    fn wanderers_cross_boundaries_without_loss_or_duplicate() {
        let b = WorldBounds::demo();
        let l = layout(3);
        let configs: Vec<ZoneConfig> = (0..3)
            .map(|z| ZoneConfig {
                hysteresis_ticks: 10,
                ..ZoneConfig::new(z, l, b)
            })
            .collect();
        let mut s = Scenario::new(&configs, LinkConfig::perfect(1), 3).expect("scenario");
        let v_max = configs[0].v_max_um;
        let mut ids = BTreeSet::new();
        for z in 0..3 {
            for e in share(&l, &b, z, 600, 5, v_max) {
                ids.insert(e.global_id);
                s.zone_mut(z).spawn(e).expect("room for the share");
            }
        }
        s.run(400, Some(&ids)).expect("no loss, no duplicate");
        let commits: u64 = s.zones().iter().map(|z| z.stats().commits).sum();
        assert!(
            commits > 100,
            "wanderers keep crossing borders: {commits} migrations in 400 ticks"
        );
    }
}
