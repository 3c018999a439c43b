//! Replication to clients, measured: 1,800 wanderers in one zone, 32 clients (each viewing from
//! its own avatar, a wanderer), 20 Hz, packets lost at 2 %, acks arriving 3 ticks late (and lost
//! at 2 %). Prints bytes/s per client, bytes per moving-entity update on the wire (headers
//! included), the update rate of each client's nearest 32 entities, the encode CPU per client per
//! tick (thread CPU time), and the original scheme (every entity of the zone as 100-byte rows at 20 Hz) measured in
//! the same run.
//!
//! ```sh
//! cargo run --release -p fabric-core --example replication_bench -- [seconds] [radius_m] [turns_per_s]
//! ```
//!
//! Wanderers move in straight lines between bounces; `turns_per_s` (default 0) makes each one
//! also pick a new random heading that often (on average), as players steering would.

use std::time::Duration;

use fabric_core::client_view::{Candidate, ReplicationConfig};
use fabric_core::coords::{Micros, WorldBounds, ZERO3, floor_micros};
use fabric_core::entity_row::{
    EntityRow, MAX_ROWS_PER_BATCH, ROW_BATCH_HEADER_LEN, ROW_LEN, RowBatchHeader,
    quantize_acceleration, quantize_velocity,
};
use fabric_core::sim::replication::ReplicationLink;
use fabric_core::sim::rng::SimRng;
use fabric_core::wanderers::wanderer;

const ENTITIES: u32 = 1_800;
const CLIENTS: usize = 32;
const TICK_HZ: u64 = 20;
const V_MAX_UM: i64 = 500_000; // 10 m/s at 20 Hz
const LOSS_PPM: u32 = 20_000;
const ACK_DELAY_TICKS: u64 = 3;
const NEAREST: usize = 32;

/// CPU time this thread has used (not wall time: the figures hold on a busy machine).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One tick of motion: maybe turn, integrate, reflect off the world bounds (as the zone tick
/// does).
fn step(world: &mut [Candidate], bounds: &WorldBounds, rng: &mut SimRng, turn_ppm: u32) {
    for e in world {
        if rng.chance_ppm(turn_ppm) {
            let a = rng.next_f64() * std::f64::consts::TAU;
            let speed = V_MAX_UM as f64 * (0.5 + 0.5 * rng.next_f64());
            e.velocity[0] = Micros::from_num((speed * a.cos()) as i64);
            e.velocity[2] = Micros::from_num((speed * a.sin()) as i64);
        }
        for k in 0..3 {
            e.position[k] += e.velocity[k];
            let (lo, hi) = (bounds.min_micros(k), bounds.max_micros(k));
            if e.position[k] > hi {
                e.position[k] = hi - (e.position[k] - hi);
                e.velocity[k] = -e.velocity[k];
            } else if e.position[k] < lo {
                e.position[k] = lo + (lo - e.position[k]);
                e.velocity[k] = -e.velocity[k];
            }
        }
    }
}

fn dist2(a: &[Micros; 3], b: &[Micros; 3]) -> f64 {
    (0..3)
        .map(|k| ((floor_micros(a[k]) - floor_micros(b[k])) as f64).powi(2))
        .sum()
}

/// The original scheme for one client and one tick: every entity as a 100-byte row, in batches
/// of 11 behind a 4-byte header. Returns the bytes written.
fn original_tick(world: &[Candidate], out: &mut [u8]) -> usize {
    let mut n = 0;
    for chunk in world.chunks(MAX_ROWS_PER_BATCH) {
        let h = RowBatchHeader {
            from_zone: 0,
            count: chunk.len() as u8,
        };
        out[n..n + ROW_BATCH_HEADER_LEN].copy_from_slice(&h.encode());
        n += ROW_BATCH_HEADER_LEN;
        for e in chunk {
            let mut payload = [0u32; fabric_core::entity_row::PAYLOAD_WORDS];
            payload[0] = e.class_word;
            let row = EntityRow {
                global_id: e.global_id,
                position: e.position,
                velocity: e.velocity.map(|v| quantize_velocity(v, V_MAX_UM)),
                acceleration: [0; 3].map(|a| quantize_acceleration(Micros::from_num(a), V_MAX_UM)),
                hlc: 0,
                payload,
            };
            let dst: &mut [u8; ROW_LEN] = (&mut out[n..n + ROW_LEN]).try_into().expect("row");
            row.encode(dst);
            n += ROW_LEN;
        }
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let radius_m: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let turns_per_s: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let turn_ppm = (turns_per_s / TICK_HZ as f64 * 1e6) as u32;
    let mut rng = SimRng::new(7);
    // A 300 m x 300 m ground, 2 m high: walkers, not fliers (vertical velocity zeroed).
    let bounds = WorldBounds::new(
        [-150_000_000, -1_000_000, -150_000_000],
        [150_000_000, 1_000_000, 150_000_000],
    )
    .expect("bounds");
    let mut world: Vec<Candidate> = (0..ENTITIES)
        .map(|i| {
            let e = wanderer(&bounds, 42, i, V_MAX_UM);
            Candidate {
                global_id: e.global_id,
                position: e.position,
                velocity: [e.velocity[0], ZERO3[1], e.velocity[2]],
                zone: (i % 3) as u8,
                class_word: 1 << 24 | i,
            }
        })
        .collect();
    let cfg = ReplicationConfig::with_radius(radius_m * 1_000);
    let mut links: Vec<ReplicationLink> = (0..CLIENTS)
        .map(|c| {
            ReplicationLink::new(cfg, LOSS_PPM, ACK_DELAY_TICKS, 1000 + c as u64).expect("cfg")
        })
        .collect();
    // Client c's avatar is wanderer c * 50.
    let avatar = |c: usize| c * (ENTITIES as usize / CLIENTS);
    let warmup = TICK_HZ; // the first second (everything entering) is not measured
    let ticks = seconds * TICK_HZ;
    let mut encode = Duration::ZERO;
    let mut original = Duration::ZERO;
    let mut original_bytes = 0u64;
    let mut orig_buf = vec![0u8; ENTITIES as usize * ROW_LEN * 2];
    let (mut bytes0, mut updates0, mut enters0) = (0u64, 0u64, 0u64);
    let mut nearest_updates = 0u64;
    let mut in_radius = 0u64;
    let mut order: Vec<(f64, usize)> = Vec::with_capacity(ENTITIES as usize);
    let r2 = (radius_m as f64 * 1e6).powi(2);
    for tick in 1..=warmup + ticks {
        step(&mut world, &bounds, &mut rng, turn_ppm);
        if tick == warmup + 1 {
            let s = links.iter().map(|l| l.view.stats());
            (bytes0, updates0, enters0) = s.fold((0, 0, 0), |a, s| {
                (a.0 + s.bytes, a.1 + s.updates, a.2 + s.enter_records)
            });
        }
        let measure = tick > warmup;
        for (c, link) in links.iter_mut().enumerate() {
            let viewer = world[avatar(c)].position;
            let t0 = thread_cpu();
            link.deliver_acks(tick);
            let sent = link.write(tick, &viewer, &world);
            let t1 = thread_cpu();
            if measure {
                encode += t1 - t0;
            }
            if let Some(len) = sent {
                link.transmit(tick, len).expect("valid packet");
            }
            if measure {
                let t2 = thread_cpu();
                original_bytes += original_tick(&world, &mut orig_buf) as u64;
                original += thread_cpu() - t2;
                order.clear();
                order.extend(
                    world
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (dist2(&e.position, &viewer), i)),
                );
                in_radius += order.iter().filter(|o| o.0 <= r2).count() as u64;
                order.select_nth_unstable_by(NEAREST, |a, b| a.0.total_cmp(&b.0));
                for &(_, i) in &order[..NEAREST] {
                    let fresh = link
                        .mirror
                        .get(world[i].global_id)
                        .is_some_and(|m| u64::from(m.tick) == tick);
                    nearest_updates += u64::from(fresh);
                }
            }
        }
    }
    let (bytes, updates, enters) = links
        .iter()
        .map(|l| l.view.stats())
        .fold((0, 0, 0), |a, s| {
            (a.0 + s.bytes, a.1 + s.updates, a.2 + s.enter_records)
        });
    let (bytes, updates, enters) = (bytes - bytes0, updates - updates0, enters - enters0);
    let samples = (CLIENTS as u64 * ticks) as f64;
    let per_client_bps = bytes as f64 / CLIENTS as f64 / seconds as f64;
    let orig_bps = original_bytes as f64 / CLIENTS as f64 / seconds as f64;
    let lost: u64 = links.iter().map(|l| l.lost_packets).sum();
    let packets: u64 = links.iter().map(|l| l.view.stats().packets).sum();
    println!(
        "replication_bench: {ENTITIES} entities, {CLIENTS} clients, radius {radius_m} m, {seconds} s at {TICK_HZ} Hz, \
         loss {} %, acks {ACK_DELAY_TICKS} ticks late, {turns_per_s} turns/s per entity",
        LOSS_PPM as f64 / 1e4
    );
    println!(
        "entities within each client's radius (mean): {:.0} (all moving)",
        in_radius as f64 / samples
    );
    println!("packets: {packets} written, {lost} lost");
    println!(
        "| scheme | bytes/s per client | bytes per entity update | nearest {NEAREST} rate | CPU per client per tick |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| client_view v1 | {:.0} | {:.2} ({} updates; {} enter records also in the bytes) | {:.1} Hz | {:.1} us |",
        per_client_bps,
        bytes as f64 / updates as f64,
        updates,
        enters,
        nearest_updates as f64 / (samples * NEAREST as f64) * TICK_HZ as f64,
        encode.as_secs_f64() * 1e6 / samples,
    );
    println!(
        "| original (all rows, 20 Hz) | {:.0} | {:.2} | 20.0 Hz | {:.1} us |",
        orig_bps,
        original_bytes as f64 / (ENTITIES as f64 * samples),
        original.as_secs_f64() * 1e6 / samples,
    );
    println!(
        "ratio: {:.0}x fewer bytes per client",
        orig_bps / per_client_bps.max(1.0)
    );
}
