//! The tick allocates nothing: a counting global allocator (per test binary, hence its own file)
//! watches 100 ticks of two full-size zones migrating entities to each other, handling each
//! other's packets and emitting interest rows.

use fabric_core::config::ZoneConfig;
use fabric_core::coords::WorldBounds;
use fabric_core::entity::Entity;
use fabric_core::zone::Zone;
use fabric_core::zones::ZoneLayout;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

mod common;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn deliver(now: u64, from: &mut Zone, to: &mut Zone) -> usize {
    let mut n = 0;
    for (dest, bytes) in from.outbox().iter() {
        assert_eq!(dest, to.id(), "two zones only talk to each other");
        to.handle(now, bytes).expect("valid packet");
        n += 1;
    }
    from.clear_outbox();
    n
}

#[test]
fn ticks_do_not_allocate() {
    let layout = ZoneLayout::new(2).unwrap();
    let mk = |z| {
        Zone::new(ZoneConfig {
            hysteresis_ticks: 1,
            ..ZoneConfig::new(z, layout, WorldBounds::demo())
        })
        .unwrap()
    };
    let (mut a, mut b) = (mk(0), mk(1));
    // Zone a full to its spawn limit; 700 of its entities stand in zone b's range and 700 in its own.
    let inside_b = common::positions_in_zone(&layout, 1, 700);
    let inside_a = common::positions_in_zone(&layout, 0, 700);
    for (i, p) in inside_b.iter().chain(inside_a.iter()).enumerate() {
        a.spawn(Entity::at(i as u32, *p)).unwrap();
    }
    // Warm up: the first ticks may touch lazily initialised things in std.
    let mut packets = 0;
    for t in 1..=3 {
        a.tick(t);
        b.tick(t);
        packets += deliver(t + 1, &mut a, &mut b) + deliver(t + 1, &mut b, &mut a);
    }
    COUNTING.store(true, Ordering::SeqCst);
    for t in 4..=103 {
        a.tick(t);
        b.tick(t);
        a.emit_interest_rows();
        b.emit_interest_rows();
        packets += deliver(t + 1, &mut a, &mut b);
        packets += deliver(t + 1, &mut b, &mut a);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert!(
        packets > 1000,
        "the zones exchanged traffic: {packets} packets"
    );
    assert_eq!(
        b.slots().used(),
        700,
        "zone b received the 700 entities standing in its range"
    );
    assert_eq!(
        allocs, 0,
        "allocations during 100 ticks with migrations and rows"
    );
}
