//! Same seed, same bytes: a scenario is a pure function of its seed.

mod common;

use common::*;
use fabric_core::sim::harness::Scenario;

fn run(seed: u64) -> (u64, u64, Vec<(u32, [i128; 3])>) {
    let cfgs = configs(4, 256, 64, 20);
    let mut s = Scenario::new(&cfgs, lossy_link(), seed).unwrap();
    s.set_emit_rows(true);
    let ids = spawn_random(&mut s, 120);
    s.run(800, Some(&ids)).unwrap();
    let mut state: Vec<(u32, [i128; 3])> = s
        .zones()
        .iter()
        .flat_map(|z| {
            z.holdings().map(move |h| {
                let e = z.slots().entity(h.slot);
                (h.global_id, e.position.map(|c| c.to_bits()))
            })
        })
        .collect();
    state.sort();
    (s.output_hash(), s.packets_emitted(), state)
}

#[test]
fn same_seed_same_bytes() {
    let a = run(0xfab);
    let b = run(0xfab);
    assert!(a.1 > 5_000, "the scenario emitted traffic: {} packets", a.1);
    assert_eq!(a.0, b.0, "identical hash of every emitted packet");
    assert_eq!(a.1, b.1, "identical packet count");
    assert_eq!(a.2, b.2, "identical final entity state");
    let c = run(0xfac);
    assert_ne!(
        a.0, c.0,
        "another seed gives other bytes (the hash is sensitive)"
    );
}
