//! Zone core benchmarks: a plain bench binary (no harness) that prints a table.
//!
//! Run: `cargo bench -p fabric-core --bench zone_core` (release profile). Each figure is the
//! median (and the fastest) of 15 batches; every batch times many iterations with `Instant`
//! around the whole batch.
//! Baselines measured in the same run: a zone tick with no entity (constant work means the ratio
//! should be about 1), the direct bitwise Hilbert transform and a branchy one written here.

use fabric_core::config::ZoneConfig;
use fabric_core::coords::{WorldBounds, micros};
use fabric_core::entity::Entity;
use fabric_core::entity_row::EntityRow;
use fabric_core::hilbert;
use fabric_core::migration_intent::MigrationIntent;
use fabric_core::sim::rng::SimRng;
use fabric_core::zone::Zone;
use fabric_core::zones::ZoneLayout;
use std::hint::black_box;
use std::time::Instant;

const BATCHES: usize = 15;

/// Median and fastest batch, ns per iteration. On a shared machine the fastest batch is the one
/// least disturbed by other processes.
#[derive(Clone, Copy)]
struct Stat {
    med: f64,
    min: f64,
}

/// Median nanoseconds per iteration of `f` over batches of `iters`.
fn measure(iters: u64, mut f: impl FnMut(u64)) -> Stat {
    for i in 0..iters.min(1000) {
        f(i);
    }
    let mut per = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES {
        let t = Instant::now();
        for i in 0..iters {
            f(b as u64 * iters + i);
        }
        per.push(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    per.sort_by(|a, b| a.total_cmp(b));
    Stat {
        med: per[BATCHES / 2],
        min: per[0],
    }
}

/// Skilling's encode with the paper's branches, for a baseline.
fn hilbert_branchy(c: [u32; 3]) -> u32 {
    let mut x = c;
    let mut q = 1u32 << 9;
    while q > 1 {
        let p = q - 1;
        for i in 0..3 {
            if x[i] & q != 0 {
                x[0] ^= p;
            } else {
                let t = (x[0] ^ x[i]) & p;
                x[0] ^= t;
                x[i] ^= t;
            }
        }
        q >>= 1;
    }
    x[1] ^= x[0];
    x[2] ^= x[1];
    let mut t = 0;
    let mut q = 1u32 << 9;
    while q > 1 {
        if x[2] & q != 0 {
            t ^= q - 1;
        }
        q >>= 1;
    }
    let mut code = 0;
    for level in (0..10).rev() {
        for xi in x {
            code = (code << 1) | (((xi ^ t) >> level) & 1);
        }
    }
    code
}

fn zone_with(active: usize) -> Zone {
    // Zone 1 of 4 over the demo world, headroom 0 so all 1800 slots can be filled by spawning,
    // hysteresis longer than the run so the figure is the pure tick (no migration traffic).
    let layout = ZoneLayout::new(4).unwrap();
    let mut z = Zone::new(ZoneConfig {
        headroom: 0,
        hysteresis_ticks: u32::MAX,
        ..ZoneConfig::new(1, layout, WorldBounds::demo())
    })
    .unwrap();
    let b = WorldBounds::demo();
    let mut rng = SimRng::new(1);
    let vmax = z.config().v_max_um;
    for id in 0..active as u32 {
        let p = [0, 1, 2].map(|k| micros(rng.range_i64(b.min()[k], b.max()[k])));
        let v = [0, 1, 2].map(|_| micros(rng.range_i64(-vmax, vmax)));
        let a = [0, 1, 2].map(|_| micros(rng.range_i64(-1000, 1000)));
        z.spawn(Entity::at(id, p).with_velocity(v).with_acceleration(a))
            .unwrap();
    }
    z
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; keep that fast.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 1 } else { 100 };

    let mut rows: Vec<(String, Stat, String)> = Vec::new();

    let mut full = zone_with(1800);
    let mut tick = 0u64;
    let t_full = measure(20 * scale, |_| {
        tick += 1;
        full.tick(tick);
        full.clear_outbox();
    });
    assert_eq!(full.slots().used(), 1800, "all slots stayed active");
    let mut empty = zone_with(0);
    let mut tick0 = 0u64;
    let t_empty = measure(20 * scale, |_| {
        tick0 += 1;
        empty.tick(tick0);
    });
    rows.push((
        "tick, 1800 active slots (integrate + Hilbert + crossing + band bucketing)".into(),
        t_full,
        format!("{:.1} ns/slot", t_full.med / 1800.0),
    ));
    rows.push((
        "tick, 0 active slots (constant-work baseline)".into(),
        t_empty,
        format!("active/empty = {:.2}", t_full.med / t_empty.med),
    ));

    let n_rows = full.emit_interest_rows();
    let n_batches = full.outbox().len();
    full.clear_outbox();
    let t_rows = measure(10 * scale, |_| {
        full.emit_interest_rows();
        full.clear_outbox();
    });
    rows.push((
        format!(
            "interest rows for all neighbours, 1800 active ({n_rows} rows, {n_batches} batches)"
        ),
        t_rows,
        format!("{:.1} ns/row", t_rows.med / n_rows as f64),
    ));

    let cells: Vec<[u32; 3]> = {
        let mut r = SimRng::new(2);
        (0..4096)
            .map(|_| [0, 1, 2].map(|_| r.below(1024) as u32))
            .collect()
    };
    let t_h = measure(20_000 * scale, |i| {
        black_box(hilbert::encode(black_box(cells[(i & 4095) as usize])));
    });
    let t_hb = measure(20_000 * scale, |i| {
        black_box(hilbert_branchy(black_box(cells[(i & 4095) as usize])));
    });
    assert_eq!(
        hilbert::encode(cells[7]),
        hilbert_branchy(cells[7]),
        "baseline computes the same curve"
    );
    let t_hw = measure(20_000 * scale, |i| {
        black_box(hilbert::encode_bitwise(black_box(
            cells[(i & 4095) as usize],
        )));
    });
    let t_hd = measure(20_000 * scale, |i| {
        black_box(hilbert::decode(black_box(
            (i as u32).wrapping_mul(2_654_435_761) >> 2,
        )));
    });
    rows.push((
        "Hilbert encode (2-level state table)".into(),
        t_h,
        String::new(),
    ));
    rows.push((
        "Hilbert encode, branch-free bitwise Skilling".into(),
        t_hw,
        format!("bitwise/table = {:.2}", t_hw.med / t_h.med),
    ));
    rows.push((
        "Hilbert encode, branchy baseline (the paper's loops)".into(),
        t_hb,
        format!("branchy/table = {:.2}", t_hb.med / t_h.med),
    ));
    rows.push(("Hilbert decode".into(), t_hd, String::new()));

    // The tick's per-slot bucketing: code bands only (before zones touching in space were
    // neighbours) against bands plus neighbour boxes padded by the interest radius (shipped).
    let layout = ZoneLayout::new(4).unwrap();
    let pad = fabric_core::adjacency::radius_in_cells(
        &WorldBounds::demo(),
        fabric_core::aoi::INTEREST_RADIUS_MICROS,
    );
    let table = fabric_core::aoi::BandTable::with_padding(&layout, 0, pad);
    let codes: Vec<u32> = cells.iter().map(|&c| hilbert::encode(c)).collect();
    let t_band = measure(20_000 * scale, |i| {
        let j = (i & 4095) as usize;
        black_box(table.interested(black_box(codes[j])));
    });
    let t_box = measure(20_000 * scale, |i| {
        let j = (i & 4095) as usize;
        black_box(table.interested_at(black_box(codes[j]), black_box(cells[j])));
    });
    rows.push((
        format!(
            "bucketing one slot, zone 0 of 4: code bands only ({} neighbours)",
            table.len()
        ),
        t_band,
        String::new(),
    ));
    rows.push((
        "bucketing one slot: bands + padded neighbour boxes (shipped)".into(),
        t_box,
        format!("boxes/bands = {:.2}", t_box.med / t_band.med),
    ));

    let e = full.slots().entity(5);
    let row = EntityRow {
        global_id: e.global_id,
        position: e.position,
        velocity: [1, -2, 3],
        acceleration: [4, 5, -6],
        hlc: 77,
        payload: [0x0100_0000; 14],
    };
    let mut buf = [0u8; 100];
    let t_re = measure(20_000 * scale, |_| {
        black_box(&row).encode(&mut buf);
        black_box(&buf);
    });
    let bytes = row.to_bytes();
    let t_rd = measure(20_000 * scale, |_| {
        black_box(EntityRow::decode(black_box(&bytes)).unwrap());
    });
    rows.push(("entity row encode (100 B)".into(), t_re, String::new()));
    rows.push((
        "entity row decode + validate (100 B)".into(),
        t_rd,
        String::new(),
    ));

    let intent = MigrationIntent {
        from_zone: 1,
        to_zone: 2,
        migration_id: 9,
        sender_slot: 5,
        sent_tick: 100,
        sender_hlc: fabric_core::hlc::Hlc { l: 100, c: 1 },
        arrival_hlc: fabric_core::hlc::Hlc { l: 102, c: 0 },
        entity: e,
        ownership: None,
    };
    let ib = intent.to_bytes();
    let t_id = measure(20_000 * scale, |_| {
        black_box(MigrationIntent::decode(black_box(&ib)).unwrap());
    });
    rows.push((
        "migration intent decode + validate (244 B)".into(),
        t_id,
        String::new(),
    ));

    command_gate_rows(scale, &mut rows);

    println!("| benchmark | median ns per op | fastest batch | note (from medians) |");
    println!("|---|---:|---:|---|");
    for (name, st, note) in rows {
        println!("| {name} | {:.1} | {:.1} | {note} |", st.med, st.min);
    }
}

/// The command gate (issue 11): one command frame checked per op. The flood row is what a
/// client sending far above its rate costs the zone (refused by the token bucket before any
/// decoding); the accepted row is a full check of a valid position upsert (decode, authority,
/// bounds, speed); the baseline is the packet decoder alone.
fn command_gate_rows(scale: u64, rows: &mut Vec<(String, Stat, String)>) {
    use fabric_core::avatars::Avatars;
    use fabric_core::command_gate::{CommandGate, GateConfig, command_frame};
    use fabric_core::player_command::{PlayerCommand, PlayerPacket};

    let cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
    let mut avatars = Avatars::new();
    avatars.insert(1, 10);
    let packet = PlayerPacket {
        global_id: 10,
        position: [micros(1_000_000), micros(0), micros(0)],
        velocity: [100, 0, 0],
        acceleration: [0; 3],
        hlc: 0,
        command: PlayerCommand::PositionUpsert,
    };
    let frame = command_frame(&packet);
    let t_dec = measure(20_000 * scale, |_| {
        black_box(PlayerPacket::decode(black_box(&frame[1..])).unwrap());
    });
    rows.push((
        "player packet decode (100 B), baseline".into(),
        t_dec,
        String::new(),
    ));
    let mut flood = CommandGate::new(GateConfig::new(&cfg));
    flood.open(1, 0);
    // Time stands still: after the burst every command is over the rate.
    let t_flood = measure(100_000 * scale, |_| {
        black_box(flood.check(1, black_box(&frame), 0, 1, &avatars).ok());
    });
    rows.push((
        "command gate, flood (rate-limited)".into(),
        t_flood,
        format!("flood/decode = {:.2}", t_flood.med / t_dec.med),
    ));
    let mut gate = CommandGate::new(GateConfig {
        rate_per_s: u32::MAX,
        burst: u32::MAX,
        ..GateConfig::new(&cfg)
    });
    gate.open(1, 0);
    let t_ok = measure(20_000 * scale, |i| {
        black_box(gate.check(1, black_box(&frame), i, 1, &avatars).ok());
    });
    rows.push((
        "command gate, accepted upsert (full check)".into(),
        t_ok,
        format!("accepted/decode = {:.2}", t_ok.med / t_dec.med),
    ));
}
