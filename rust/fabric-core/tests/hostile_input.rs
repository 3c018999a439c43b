//! Hostile input to a running zone: arbitrary bytes and forged-but-well-formed packets never
//! panic, never corrupt the slot accounting and never drag the clock far ahead.

mod common;

use common::*;
use fabric_core::coords::micros;
use fabric_core::entity::Entity;
use fabric_core::hlc::Hlc;
use fabric_core::migration_intent::MigrationIntent;
use fabric_core::slots::SlotState;
use fabric_core::zone::Zone;
use fabric_core::zone_control::{ControlKind, ZoneControl};
use proptest::prelude::*;

fn zone_with_traffic() -> Zone {
    let cfgs = configs(4, 64, 16, 1);
    let layout = cfgs[1].layout;
    let mut z = Zone::new(cfgs[1]).unwrap();
    // A few owned entities inside, a few standing in zone 2's range (so staging slots exist).
    for (i, p) in positions_in_zone(&layout, 1, 8).into_iter().enumerate() {
        z.spawn(Entity::at(i as u32, p)).unwrap();
    }
    for (i, p) in positions_in_zone(&layout, 2, 8).into_iter().enumerate() {
        z.spawn(Entity::at(100 + i as u32, p)).unwrap();
    }
    z.tick(1);
    z.clear_outbox();
    z
}

fn accounting_is_sane(z: &Zone) -> Result<(), TestCaseError> {
    let used = z.slots().used();
    let held = z.holdings().count();
    prop_assert_eq!(used, held, "used slots == non-free slots");
    let staging = z
        .holdings()
        .filter(|h| h.state == SlotState::Staging)
        .count();
    prop_assert_eq!(
        staging,
        z.staging_count(),
        "staging counter matches the slots"
    );
    prop_assert!(
        z.clock().now().l <= 1 + 1 + 256 + 1,
        "clock not dragged ahead: {:?}",
        z.clock().now()
    );
    Ok(())
}

const KINDS: [ControlKind; 10] = [
    ControlKind::Ping,
    ControlKind::Pong,
    ControlKind::Ack,
    ControlKind::Refuse,
    ControlKind::Commit,
    ControlKind::CommitAck,
    ControlKind::Abort,
    ControlKind::AbortAck,
    ControlKind::Drain,
    ControlKind::DrainDone,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_are_counted_and_dropped(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut z = zone_with_traffic();
        for p in &packets {
            let before = z.stats().bad_packets;
            if z.handle(2, p).is_err() {
                prop_assert_eq!(z.stats().bad_packets, before + 1, "a rejected packet is counted");
            }
        }
        z.tick(2);
        accounting_is_sane(&z)?;
    }

    #[test]
    fn forged_control_packets_keep_the_accounting_sane(
        forged in proptest::collection::vec((0usize..10, 0u8..6, 0u32..20, 0u32..80, 0u32..80), 1..40)
    ) {
        let mut z = zone_with_traffic();
        for (k, from, f, f2, f3) in forged {
            let kind = KINDS[k];
            // Keep drains out of it half the time so the other paths get exercised too.
            if kind == ControlKind::Drain && f % 2 == 0 {
                continue;
            }
            let c = ZoneControl::new(kind, from, f, f2, f3);
            let _ = z.handle(2, &c.to_bytes());
            accounting_is_sane(&z)?;
        }
        z.tick(2);
        accounting_is_sane(&z)?;
    }

    #[test]
    fn forged_intents_keep_the_accounting_sane(
        intents in proptest::collection::vec((0u8..4, 0u32..6, 0u64..100_000, 0u64..100_000, any::<u32>()), 1..30)
    ) {
        let mut z = zone_with_traffic();
        for (from, id, sender_l, extra, gid) in intents {
            let it = MigrationIntent {
                from_zone: from,
                to_zone: 1,
                migration_id: id,
                sender_slot: (gid % 70) as u16,
                sent_tick: sender_l,
                sender_hlc: Hlc { l: sender_l, c: 0 },
                arrival_hlc: Hlc { l: sender_l + extra, c: 0 },
                entity: Entity::at(gid, [micros(gid as i64); 3]).with_velocity([micros(i64::from(gid as i32)); 3]),
                ownership: None,
            };
            if from == 1 {
                prop_assert!(z.handle(2, &it.to_bytes()).is_err(), "from == to is refused by the decoder");
            } else {
                let _ = z.handle(2, &it.to_bytes());
            }
            accounting_is_sane(&z)?;
        }
        z.tick(2);
        accounting_is_sane(&z)?;
    }
}
