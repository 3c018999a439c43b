//! Helpers shared by the zone-core integration tests.
#![allow(dead_code)]

use fabric_core::config::ZoneConfig;
use fabric_core::coords::{Vec3, WorldBounds, micros, vec3_micros};
use fabric_core::entity::Entity;
use fabric_core::hilbert;
use fabric_core::sim::harness::Scenario;
use fabric_core::sim::link::LinkConfig;
use fabric_core::slots::SlotState;
use fabric_core::zones::{ZoneId, ZoneLayout};
use std::collections::BTreeSet;

/// Configs for `n` zones over the demo world.
pub fn configs(n: usize, capacity: usize, headroom: usize, hysteresis: u32) -> Vec<ZoneConfig> {
    let layout = ZoneLayout::new(n).expect("zone count");
    (0..n as u8)
        .map(|z| ZoneConfig {
            capacity,
            headroom,
            hysteresis_ticks: hysteresis,
            ..ZoneConfig::new(z, layout, WorldBounds::demo())
        })
        .collect()
}

/// The centre of the cell with Hilbert code `code` in the demo world.
pub fn position_of_code(code: u32) -> Vec3 {
    let b = WorldBounds::demo();
    let o = b.cell_origin(hilbert::decode(code));
    let half = [0, 1, 2].map(|k| b.cell_size(k) as i64 / 2);
    vec3_micros([o[0] + half[0], o[1] + half[1], o[2] + half[2]])
}

/// `n` positions inside zone `zone`'s range (spread over the range).
pub fn positions_in_zone(layout: &ZoneLayout, zone: ZoneId, n: usize) -> Vec<Vec3> {
    let r = layout.range(zone).expect("zone in layout");
    let step = (r.width() / (n as u32 + 1)).max(1);
    (0..n as u32)
        .map(|i| position_of_code(r.start + step * (i + 1)))
        .collect()
}

/// How many of `ids` zone `zone` holds in `state`.
pub fn count_in(s: &Scenario, zone: ZoneId, state: SlotState, ids: &BTreeSet<u32>) -> usize {
    s.zones()[zone as usize]
        .holdings()
        .filter(|h| h.state == state && ids.contains(&h.global_id))
        .count()
}

/// The lossy link of the acceptance criteria: 100 ms (2 ticks at 20 Hz), 2 % loss, duplicates
/// and reordering.
pub fn lossy_link() -> LinkConfig {
    LinkConfig {
        latency_ticks: 2,
        jitter_ticks: 1,
        loss_ppm: 20_000,
        duplicate_ppm: 20_000,
        reorder_ppm: 20_000,
        reorder_delay_ticks: 3,
    }
}

/// Spawns `n` entities at random positions with random velocities (up to a quarter of v_max),
/// ids `0..n`, each in the zone owning its position. Returns the ids.
pub fn spawn_random(s: &mut Scenario, n: u32) -> BTreeSet<u32> {
    let b = WorldBounds::demo();
    let vq = s.zones()[0].config().v_max_um / 4;
    let mut ids = BTreeSet::new();
    for id in 0..n {
        let rng = s.rng();
        let p = [0, 1, 2].map(|k| micros(rng.range_i64(b.min()[k], b.max()[k])));
        let v = [0, 1, 2].map(|_| micros(rng.range_i64(-vq, vq)));
        let e = Entity::at(id, p).with_velocity(v);
        s.spawn(e).expect("spawn fits");
        ids.insert(id);
    }
    ids
}
