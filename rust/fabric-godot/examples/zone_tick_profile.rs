//! Where a zone's tick goes with 3 neighbours, without Godot and without sockets: the zones of
//! one 4-zone fabric as `ZoneRuntime`s over the in-memory network, all on this thread, ticked
//! and pumped in turn (so CPU contention between processes is out of the figures). Prints the
//! measured zone's whole tick and each phase (wall and thread CPU time, p50/p99/max) and the
//! slots each zone holds.
//!
//! ```text
//! cargo run --release -p fabric-godot --example zone_tick_profile -- [--entities 17400]
//!     [--capacity 6400] [--headroom 400] [--ticks 600] [--zone 1] [--zones 4]
//! ```

use fabric_godot::zone::config::{Population, ZoneSettings};
use fabric_godot::zone::metrics::Published;
use fabric_godot::zone::network::MemoryNetwork;
use fabric_godot::zone::runtime::{Limits, ZoneRuntime};
use fabric_godot::zone::tick_profile::{PairSummary, Phase};

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn line(name: &str, s: &PairSummary) {
    let ms = |ns: u64| ns as f64 / 1e6;
    println!(
        "  {name:<10} wall p50 {:>7.3} p99 {:>7.3} max {:>7.3} ms | cpu p50 {:>7.3} p99 {:>7.3} max {:>7.3} ms",
        ms(s.wall.p50_ns),
        ms(s.wall.p99_ns),
        ms(s.wall.max_ns),
        ms(s.cpu.p50_ns),
        ms(s.cpu.p99_ns),
        ms(s.cpu.max_ns)
    );
}

fn main() {
    let entities = arg("--entities", 17_400);
    let capacity = arg("--capacity", 6_400);
    let headroom = arg("--headroom", 400);
    let ticks = arg("--ticks", 600);
    let zones_n = arg("--zones", 4);
    let measured = arg("--zone", 1) as usize;
    let fabric = format!("zone-tick-profile-{}", std::process::id());
    let mut zones: Vec<ZoneRuntime> = (0..zones_n)
        .map(|z| {
            let s = ZoneSettings {
                zone_index: z,
                zone_count: zones_n,
                capacity,
                headroom,
                hysteresis_ticks: 4,
                ..ZoneSettings::default()
            };
            let cfg = s.core_config().expect("valid settings");
            let net = MemoryNetwork::join(
                &fabric,
                cfg.zone_id,
                fabric_core::aoi::neighbours(&cfg.layout, cfg.zone_id),
            )
            .expect("joined");
            let limits = Limits {
                max_catch_up: s.max_catch_up,
                event_budget: s.event_budget as usize,
                ghost_rows: cfg.capacity * 2,
            };
            let mut rt = ZoneRuntime::new(cfg, Box::new(net), limits, Published::new(&fabric, z))
                .expect("runtime");
            rt.spawn_population(Population::Wanderers { entities, seed: 7 });
            rt
        })
        .collect();
    for _ in 0..ticks {
        for z in zones.iter_mut() {
            z.run_tick();
            z.drain_events().for_each(drop);
        }
        for _ in 0..2 {
            for z in zones.iter_mut() {
                z.pump();
                z.drain_events().for_each(drop);
            }
        }
    }
    let held: Vec<u64> = zones
        .iter()
        .map(|z| {
            let c = z.counts();
            c.owned + c.staging + c.arriving
        })
        .collect();
    // Where each zone's owned entities are: per zone whose Hilbert range holds their position.
    for z in &zones {
        let cfg = z.zone().config();
        let mut by_range = vec![0u32; zones_n as usize];
        for h in z.zone().holdings() {
            if h.state == fabric_core::slots::SlotState::Owned {
                let e = z.zone().slots().entity(h.slot);
                let code = fabric_core::hilbert::encode_position(&cfg.bounds, &e.position);
                by_range[cfg.layout.zone_of(code) as usize] += 1;
            }
        }
        println!(
            "zone {} (links to {:?}) owns {} entities; by the range their position is in: {by_range:?}; rollbacks {}, sends refused (no link) {}",
            z.zone().id(),
            fabric_core::aoi::neighbours(&cfg.layout, cfg.zone_id)
                .iter()
                .collect::<Vec<_>>(),
            by_range.iter().sum::<u32>(),
            z.totals().rollbacks,
            z.totals().refused_sends
        );
    }
    let z = &mut zones[measured];
    let links = z.links().len();
    let ghosts = z.ghosts().len();
    let t = z.totals();
    let p = z.profile_summary();
    println!(
        "{zones_n} zones in memory, {entities} wanderers, capacity {capacity} (headroom {headroom}), {ticks} ticks; held per zone {held:?}"
    );
    println!(
        "zone {measured}: {} active slots, {links} links, {ghosts} ghosts, {} migrations in, {} out, {} network events",
        held[measured], t.migrations_in, t.migrations_out, t.net_events
    );
    line("tick", &p.tick);
    for (ph, s) in Phase::ALL.iter().zip(p.phases.iter()) {
        if *ph != Phase::Replicate {
            line(ph.name(), s);
        }
    }
    line("pump", &p.pump);
}
