//! The command gate allocates nothing per packet: a counting global allocator (per test binary,
//! hence its own file) watches 60,000 checks of a flooding session (accepted, rate-limited,
//! refused for authority and bounds, malformed) and a report poll.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fabric_core::command_gate::{Authority, CommandGate, GateConfig, command_frame};
use fabric_core::config::ZoneConfig;
use fabric_core::coords::{WorldBounds, metres};
use fabric_core::player_command::{PlayerCommand, PlayerPacket};
use fabric_core::zones::ZoneLayout;

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

/// Session 1 owns entity 10.
struct One;

impl Authority for One {
    fn avatar_of(&self, session: u64) -> Option<u32> {
        (session == 1).then_some(10)
    }
    fn may_act(&self, session: u64, gid: u32) -> bool {
        session == 1 && gid == 10
    }
}

#[test]
fn checks_and_reports_do_not_allocate() {
    let cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
    let mut gate = CommandGate::new(GateConfig::new(&cfg));
    gate.open(1, 0);
    let frame = |gid: u32, x: i64| {
        command_frame(&PlayerPacket {
            global_id: gid,
            position: [metres(x), metres(0), metres(0)],
            velocity: [0; 3],
            acceleration: [0; 3],
            hlc: 0,
            command: PlayerCommand::PositionUpsert,
        })
    };
    let frames = [frame(10, 0), frame(20, 0), frame(10, 90)];
    let (mut ok, mut refused) = (0u64, 0u64);
    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..30_000u64 {
        match gate.check(1, &frames[(i % 3) as usize], i / 30, 1, &One) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
        let _ = gate.check(1, &[0x43u8; 7], i / 30, 1, &One);
    }
    let mut reports = 0;
    gate.poll_reports(2000, |_| reports += 1);
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "60,000 checks and a poll");
    assert!(ok > 0 && refused > 0, "{ok} accepted, {refused} refused");
    assert_eq!(reports, 1);
}
