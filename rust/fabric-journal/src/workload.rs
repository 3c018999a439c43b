//! A deterministic mutation workload: the crash test, the benchmark and the property tests use
//! it to know, from a tick number alone, what the journal must hold.
//!
//! Tick `t` yields [`MUTATIONS_PER_TICK`]-ish mutations on global ids below
//! [`WORKLOAD_IDS`] (a full 1,800-slot zone): about 40 % spawns at exact 64.64 positions up to
//! 10^7 m from the origin, 40 % payload updates and 20 % despawns.

use fabric_core::coords::Micros;
use fabric_core::entity::Entity;
use fabric_core::entity_row::PAYLOAD_WORDS;

use crate::batch::TickBatch;
use crate::mutation::Mutation;
use crate::state::JournalState;

/// Global ids the workload touches (one full zone).
pub const WORKLOAD_IDS: u32 = 1800;
/// Mutations per tick of [`fill_tick`] with the default size.
pub const MUTATIONS_PER_TICK: usize = 20;

/// SplitMix64: a tiny, well-known mixing function (deterministic on every platform).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th mutation of tick `tick`.
pub fn mutation(tick: u64, i: usize) -> Mutation {
    let h = mix(tick.wrapping_mul(0x1_0000_0001) ^ i as u64);
    let global_id = (h % u64::from(WORKLOAD_IDS)) as u32;
    let mut payload = [0u32; PAYLOAD_WORDS];
    for (w, word) in payload.iter_mut().enumerate() {
        *word = mix(h ^ w as u64) as u32;
    }
    match (h >> 32) % 5 {
        0 | 1 => {
            // Up to +-2^43 micrometres (about 8.8e6 m), with fraction bits set.
            let axis = |k: u64| {
                let r = mix(h ^ (k << 56));
                Micros::from_bits((i128::from(r as i64) << 44) | i128::from(mix(r) >> 20))
            };
            Mutation::Spawn(Entity {
                global_id,
                position: [axis(1), axis(2), axis(3)],
                velocity: [axis(4) >> 20, axis(5) >> 20, axis(6) >> 20],
                acceleration: [axis(7) >> 30, axis(8) >> 30, axis(9) >> 30],
                hlc: tick as u32,
                payload,
            })
        }
        2 | 3 => Mutation::PayloadUpdate { global_id, payload },
        _ => Mutation::Despawn { global_id },
    }
}

/// Replaces `batch`'s contents with tick `tick`'s `count` mutations.
pub fn fill_tick(tick: u64, count: usize, batch: &mut TickBatch) {
    batch.clear();
    batch.tick = tick;
    for i in 0..count {
        batch.push(mutation(tick, i));
    }
}

/// The state after ticks `first..=last` of `count` mutations each, applied to `state`.
pub fn apply_ticks(state: &mut JournalState, first: u64, last: u64, count: usize) {
    for tick in first..=last {
        for i in 0..count {
            state.apply(&mutation(tick, i));
        }
    }
}
