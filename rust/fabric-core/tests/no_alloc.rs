//! The tick allocates nothing: a counting global allocator (per test binary, hence its own file)
//! watches 100 ticks of two full-size zones migrating entities to each other, handling each
//! other's packets and emitting interest rows; and 100 ticks of a client's replication (view,
//! lossy link, mirror). The counter is per thread, so the tests (and the harness printing
//! results) do not count each other's allocations.

use fabric_core::config::ZoneConfig;
use fabric_core::coords::WorldBounds;
use fabric_core::entity::Entity;
use fabric_core::zone::Zone;
use fabric_core::zones::ZoneLayout;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

mod common;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
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
    COUNTING.with(|c| c.set(true));
    for t in 4..=103 {
        a.tick(t);
        b.tick(t);
        a.emit_interest_rows();
        b.emit_interest_rows();
        packets += deliver(t + 1, &mut a, &mut b);
        packets += deliver(t + 1, &mut b, &mut a);
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.with(Cell::get);
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

#[test]
fn client_replication_ticks_do_not_allocate() {
    use fabric_core::client_view::{Candidate, ReplicationConfig};
    use fabric_core::coords::{ZERO3, micros};
    use fabric_core::sim::replication::ReplicationLink;

    let mut link =
        ReplicationLink::new(ReplicationConfig::with_radius(20_000), 20_000, 3, 1).expect("config");
    // 600 entities on lines through the viewer's radius: they keep entering and leaving.
    let mut world: Vec<Candidate> = (0..600u32)
        .map(|i| Candidate {
            global_id: i + 1,
            position: [
                micros(i64::from(i % 60) * 1_000_000 - 30_000_000),
                ZERO3[1],
                micros(i64::from(i / 60) * 4_000_000 - 20_000_000),
            ],
            velocity: [
                micros(150_000 + i64::from(i % 7) * 10_000),
                ZERO3[1],
                ZERO3[2],
            ],
            zone: (i % 3) as u8,
            class_word: 0,
        })
        .collect();
    let mut run = |from: u64, to: u64, world: &mut Vec<Candidate>| {
        for tick in from..to {
            for e in world.iter_mut() {
                e.position[0] += e.velocity[0];
                if e.position[0].abs() > micros(30_000_000) {
                    e.velocity[0] = -e.velocity[0];
                }
            }
            link.tick(tick, &ZERO3, world).expect("valid packets");
        }
    };
    run(1, 200, &mut world);
    COUNTING.with(|c| c.set(true));
    run(200, 300, &mut world);
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.with(Cell::get);
    let s = link.view.stats();
    assert!(
        s.entered > 250 && s.left > 100,
        "entities came and went: {s:?}"
    );
    assert_eq!(allocs, 0, "100 replication ticks allocated {allocs} times");
}

/// `put_packet` on a server with 50 joined peers (the frame, the sequence number, the targets)
/// allocates nothing once the frame buffer has grown.
#[test]
fn peer_core_broadcast_does_not_allocate() {
    use fabric_core::packet_frame::TransferMode;
    use fabric_core::peer_core::{PeerCore, Route};
    use fabric_core::session_control::ControlMessage;

    let now = std::time::Instant::now();
    let mut server = PeerCore::new();
    server.start_server();
    for s in 0..50u64 {
        server.session_opened(now, s);
        server.receive(
            s,
            &ControlMessage::Join {
                peer_id: 2 + s as u32,
            }
            .encode(),
        );
    }
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
    assert_eq!(server.peer_count(), 50, "all joined");
    let payload = [7u8; 200];
    let mut frame = Vec::new();
    let mut send = |server: &mut PeerCore, i: u32| {
        server.set_transfer_mode(TransferMode::UnreliableOrdered);
        server.set_transfer_channel((i % 4) as u8);
        server.set_target_peer(if i.is_multiple_of(2) { 0 } else { -2 });
        let Ok(Route::ToSessions(targets)) = server.prepare_send(&payload, &mut frame) else {
            panic!("a server routes to sessions");
        };
        targets.count()
    };
    send(&mut server, 0);
    COUNTING.with(|c| c.set(true));
    let mut reached = 0;
    for i in 0..100 {
        reached += send(&mut server, i);
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.with(Cell::get);
    assert_eq!(reached, 50 * 50 + 49 * 50, "every target reached");
    assert_eq!(allocs, 0, "100 broadcasts allocated {allocs} times");
}
