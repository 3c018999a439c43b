//! The zone's wire as a whole: a live `fabric_core::zone::Zone` is fed a sequence of packets from
//! a neighbour (intents, control packets, row batches, anything) with ticks in between, the way
//! `Zone::handle` meets them on a zone link. Bad packets must be counted and dropped, never
//! panic, and never leave more than one owner or a slot count beyond capacity.
//!
//! Input: records of `[op][len lo][len hi][len bytes]`; `op & 1` runs a tick after the packet,
//! `op >> 1` advances the packet's `now` by that many ticks.
#![no_main]

use fabric_core::config::ZoneConfig;
use fabric_core::coords::WorldBounds;
use fabric_core::zone::Zone;
use fabric_core::zones::ZoneLayout;
use libfuzzer_sys::fuzz_target;

/// Most ticks one input may run (keeps each execution short).
const MAX_TICKS: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let mut cfg = ZoneConfig::new(1, ZoneLayout::new(4).expect("4 zones"), WorldBounds::demo());
    cfg.capacity = 64;
    cfg.headroom = 8;
    let mut zone = Zone::new(cfg).expect("valid config");
    let mut now = 1u64;
    let mut ticks = 0;
    let mut rest = data;
    while let [op, lo, hi, tail @ ..] = rest {
        let len = (u16::from_le_bytes([*lo, *hi]) as usize).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        now += u64::from(op >> 1);
        let before = zone.stats().bad_packets;
        if zone.handle(now, packet).is_err() {
            assert!(
                zone.stats().bad_packets > before,
                "a refused packet is counted"
            );
        }
        if op & 1 == 1 && ticks < MAX_TICKS {
            ticks += 1;
            zone.tick(now);
            now += 1;
        }
        assert!(
            zone.slots().used() <= 64,
            "slots in use {} beyond capacity",
            zone.slots().used()
        );
        zone.clear_outbox();
    }
});
