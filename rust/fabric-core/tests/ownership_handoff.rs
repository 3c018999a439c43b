//! Ownership through hand-offs over the in-memory harness: the holder and persist mode of a
//! handed-off entity travel inside its migration intent and are installed by the zone that
//! receives it, exactly once per committed hand-off, on a perfect and on a lossy link.

mod common;

use common::*;
use fabric_core::entity::Entity;
use fabric_core::ownership::{Denial, Ownership, OwnershipConfig, OwnershipRecord, PersistMode};
use fabric_core::sim::harness::Scenario;
use fabric_core::sim::link::LinkConfig;
use fabric_core::slots::SlotState;
use std::collections::{BTreeMap, BTreeSet};

const HOLDER: u32 = 0x8000_0001;
const OTHER: u32 = 0x8000_0002;

#[test]
fn a_held_entity_arrives_held_by_the_same_player() {
    let cfgs = configs(2, 64, 16, 4);
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(2), 3).unwrap();
    let [held, free] = [7u32, 8];
    let at = positions_in_zone(&layout, 1, 2);
    s.zone_mut(0).spawn(Entity::at(held, at[0])).unwrap();
    s.zone_mut(0).spawn(Entity::at(free, at[1])).unwrap();

    // Zone 0's table: `held` is held (transient), `free` has no entry.
    let mut here = Ownership::new(OwnershipConfig::default());
    here.set_persist(held, PersistMode::TransientHeld);
    here.request(held, Some(HOLDER), 0, true, false).unwrap();
    let mut there = Ownership::new(OwnershipConfig::default());

    let ids = BTreeSet::from([held, free]);
    let mut arrived = Vec::new();
    let mut handed = Vec::new();
    for _ in 0..60 {
        s.zone_mut(0).set_carried_ownership(here.records());
        s.step();
        s.check_ownership(&ids).unwrap();
        arrived.extend(s.zone_mut(1).take_arrived_ownership());
        handed.extend(s.zone_mut(0).take_handed_off_ownership());
    }
    assert_eq!(count_in(&s, 1, SlotState::Owned, &ids), 2, "both crossed");
    assert_eq!(
        arrived,
        [OwnershipRecord {
            entity: held,
            holder: Some(HOLDER),
            persist: PersistMode::TransientHeld,
        }],
        "one record arrived, for the held entity only"
    );
    assert_eq!(
        handed,
        [held],
        "the sender lists what it handed off with a record"
    );
    for r in &arrived {
        assert!(there.import(r), "imported");
    }
    assert_eq!(there.holder_of(held), Some(HOLDER), "same holder on zone 1");
    assert_eq!(there.persist_of(held), PersistMode::TransientHeld);
    assert_eq!(
        there.request(held, Some(OTHER), 70, true, false),
        Err(Denial::Held),
        "another player is still denied it there"
    );
    assert_eq!(there.holder_of(free), None);
}

#[test]
fn on_a_lossy_link_each_commit_carries_its_record_once() {
    let cfgs = configs(2, 128, 32, 2);
    let mut s = Scenario::new(&cfgs, lossy_link(), 0x0dd).unwrap();
    let ids = spawn_random(&mut s, 40);
    // Every entity is held by a player named after it, in whichever zone has it.
    let mut tables = [
        Ownership::new(OwnershipConfig::default()),
        Ownership::new(OwnershipConfig::default()),
    ];
    for z in 0..2u8 {
        let owned: Vec<u32> = s.zones()[z as usize]
            .holdings()
            .filter(|h| h.state == SlotState::Owned)
            .map(|h| h.global_id)
            .collect();
        for id in owned {
            tables[z as usize]
                .request(id, Some(1000 + id), 0, true, false)
                .unwrap();
        }
    }
    let mut arrivals = BTreeMap::<u32, u32>::new();
    for _ in 0..3000 {
        for z in 0..2u8 {
            let recs: Vec<_> = tables[z as usize].records().collect();
            s.zone_mut(z).set_carried_ownership(recs.into_iter());
        }
        s.step();
        s.check_ownership(&ids).unwrap();
        for z in 0..2u8 {
            let gone: Vec<u32> = s.zone_mut(z).take_handed_off_ownership().collect();
            for id in gone {
                tables[z as usize].forget(id);
            }
            let came: Vec<_> = s.zone_mut(z).take_arrived_ownership().collect();
            for r in came {
                assert_eq!(r.holder, Some(1000 + r.entity), "its own holder");
                assert!(tables[z as usize].import(&r));
                *arrivals.entry(r.entity).or_default() += 1;
            }
        }
    }
    let commits: u64 = s.zones().iter().map(|z| z.stats().commits).sum();
    let carried: u32 = arrivals.values().sum();
    assert!(commits > 20, "entities kept crossing: {commits}");
    let in_flight = ids
        .iter()
        .filter(|&&id| {
            s.zones().iter().all(|z| {
                !z.holdings()
                    .any(|h| h.global_id == id && h.state == SlotState::Owned)
            })
        })
        .count() as u64;
    assert!(
        u64::from(carried) + in_flight >= commits && u64::from(carried) <= commits,
        "every committed hand-off delivered its record once: {carried} records, {commits} commits, {in_flight} in flight"
    );
    // Every entity owned somewhere is held there by its own player, and nowhere else.
    for id in &ids {
        let holders: Vec<_> = (0..2)
            .filter_map(|z| tables[z].holder_of(*id).map(|h| (z, h)))
            .collect();
        let owner = (0..2).find(|&z| {
            s.zones()[z]
                .holdings()
                .any(|h| h.global_id == *id && h.state == SlotState::Owned)
        });
        if let Some(z) = owner {
            assert_eq!(
                holders,
                [(z, 1000 + id)],
                "entity {id}: held where it is owned"
            );
        }
    }
}
