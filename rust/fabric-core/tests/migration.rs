//! Acceptance tests of STAGING migration over the in-memory harness.

mod common;

use common::*;
use fabric_core::coords::{micros, vec3_micros};
use fabric_core::entity::Entity;
use fabric_core::latency::FabricLatency;
use fabric_core::sim::harness::Scenario;
use fabric_core::sim::link::LinkConfig;
use fabric_core::slots::SlotState;
use fabric_core::tick::step_axis;
use fabric_core::zone::SpawnError;
use std::collections::BTreeSet;

#[test]
fn ten_thousand_lossy_ticks_lose_and_duplicate_nothing() {
    let cfgs = configs(4, 176, 16, 80);
    let mut s = Scenario::new(&cfgs, lossy_link(), 0x5eed).unwrap();
    let ids = spawn_random(&mut s, 160);
    s.run(10_000, Some(&ids)).unwrap();
    let census = s.check_ownership(&ids).unwrap();
    let total = |f: fn(&fabric_core::zone::ZoneStats) -> u64| -> u64 {
        s.zones().iter().map(|z| f(z.stats())).sum()
    };
    let commits = total(|st| st.commits);
    let timeouts = total(|st| st.rollbacks_timeout);
    let dups = total(|st| st.intents_duplicate);
    let resends = total(|st| st.resends);
    let link = *s.link().stats();
    eprintln!(
        "commits {commits} timeouts {timeouts} duplicate intents {dups} resends {resends} link {link:?} census {census:?}"
    );
    assert!(commits > 1000, "entities kept migrating: {commits} commits");
    assert!(timeouts > 0, "loss forced RTO rollbacks: {timeouts}");
    assert!(
        timeouts * 5 < commits,
        "RTO rollbacks stay rare (about the loss rate): {timeouts} vs {commits} commits"
    );
    assert!(dups > 0, "duplicated intents were dropped: {dups}");
    assert!(resends > 0, "lost commits/aborts were resent: {resends}");
    assert!(
        link.lost > 100 && link.duplicated > 100 && link.reordered > 100,
        "link impaired: {link:?}"
    );
    assert_eq!(
        census.owned + census.in_window(),
        160,
        "every entity is owned or in its staging window"
    );
}

#[test]
fn one_hundred_forty_four_crossing_at_once_land_within_32_ticks() {
    let cfgs = configs(2, 1800, 400, 80);
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(2), 1).unwrap();
    // 144 entities owned by zone 0 but standing in zone 1's range: they crossed together at tick 0.
    let mut ids = BTreeSet::new();
    for (i, p) in positions_in_zone(&layout, 1, 144).into_iter().enumerate() {
        s.zone_mut(0).spawn(Entity::at(i as u32, p)).unwrap();
        ids.insert(i as u32);
    }
    let mut first_intent = None;
    let mut landed = None;
    let mut last_sent = 0;
    for _ in 0..200 {
        s.step();
        s.check_ownership(&ids).unwrap();
        let sent = s.zones()[0].stats().intents_sent;
        assert!(
            sent - last_sent <= 50,
            "at most 50 migrations start per tick, got {}",
            sent - last_sent
        );
        last_sent = sent;
        if sent > 0 && first_intent.is_none() {
            first_intent = Some(s.tick());
        }
        if count_in(&s, 1, SlotState::Owned, &ids) == 144 {
            landed = Some(s.tick());
            break;
        }
    }
    let start = first_intent.expect("migrations started");
    assert_eq!(
        start, 80,
        "migration starts after 80 ticks of hysteresis (4 x 20 Hz)"
    );
    let end = landed.expect("all 144 landed");
    assert!(
        end - start <= 32,
        "all 144 landed {} ticks after staging began",
        end - start
    );
    assert_eq!(s.zones()[0].slots().used(), 0, "sender freed every slot");
}

#[test]
fn a_burst_of_400_is_absorbed_by_the_headroom() {
    let cfgs = configs(2, 1800, 400, 1);
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(2), 2).unwrap();
    let mut ids = BTreeSet::new();
    // Zone 1 at its spawn limit, 1400.
    for (i, p) in positions_in_zone(&layout, 1, 1400).into_iter().enumerate() {
        s.zone_mut(1)
            .spawn(Entity::at(10_000 + i as u32, p))
            .unwrap();
        ids.insert(10_000 + i as u32);
    }
    assert!(
        matches!(
            s.zone_mut(1).spawn(Entity::at(99_999, vec3_micros([0; 3]))),
            Err(SpawnError::Full { used: 1400, .. })
        ),
        "the 1401st local spawn is refused: the headroom is for arrivals"
    );
    for (i, p) in positions_in_zone(&layout, 1, 400).into_iter().enumerate() {
        s.zone_mut(0).spawn(Entity::at(i as u32, p)).unwrap();
        ids.insert(i as u32);
    }
    for _ in 0..60 {
        s.step();
        s.check_ownership(&ids).unwrap();
    }
    assert_eq!(
        count_in(&s, 1, SlotState::Owned, &ids),
        1800,
        "zone 1 owns all 1800"
    );
    assert_eq!(
        s.zones()[1].stats().intents_refused,
        0,
        "no arrival refused"
    );
    assert_eq!(s.zones()[0].slots().used(), 0, "zone 0 is empty");
}

#[test]
fn a_full_zone_refuses_and_the_sender_rolls_back_without_loss() {
    let mut cfgs = configs(2, 1800, 400, 1);
    cfgs[1].headroom = 0; // fill zone 1 by spawning
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(2), 3).unwrap();
    let mut ids = BTreeSet::new();
    for (i, p) in positions_in_zone(&layout, 1, 1800).into_iter().enumerate() {
        s.zone_mut(1)
            .spawn(Entity::at(10_000 + i as u32, p))
            .unwrap();
        ids.insert(10_000 + i as u32);
    }
    for (i, p) in positions_in_zone(&layout, 1, 10).into_iter().enumerate() {
        s.zone_mut(0).spawn(Entity::at(i as u32, p)).unwrap();
        ids.insert(i as u32);
    }
    for _ in 0..20 {
        s.step();
        s.check_ownership(&ids).unwrap();
    }
    let z0 = s.zones()[0].stats();
    assert!(
        s.zones()[1].stats().intents_refused >= 10,
        "full zone refused: {:?}",
        s.zones()[1].stats()
    );
    assert!(
        z0.rollbacks_refused >= 10,
        "sender rolled back on refusal: {z0:?}"
    );
    assert_eq!(z0.rollbacks_timeout, 0, "refusals, not timeouts");
    assert_eq!(
        count_in(&s, 0, SlotState::Owned, &ids) + count_in(&s, 0, SlotState::Staging, &ids),
        10,
        "zone 0 still holds its 10"
    );
    // Room frees up: the 10 move on.
    for slot in 0..10 {
        assert!(s.zone_mut(1).despawn(slot), "despawn slot {slot}");
        ids.remove(&(10_000 + slot as u32));
    }
    for _ in 0..20 {
        s.step();
        s.check_ownership(&ids).unwrap();
    }
    assert_eq!(
        count_in(&s, 1, SlotState::Owned, &ids),
        1800,
        "the 10 landed once room was made"
    );
}

#[test]
fn no_answer_rolls_back_after_one_second_unmeasured() {
    let cfgs = configs(2, 64, 16, 1);
    let layout = cfgs[0].layout;
    let blackhole = LinkConfig {
        loss_ppm: 1_000_000,
        ..LinkConfig::perfect(2)
    };
    let mut s = Scenario::new(&cfgs, blackhole, 4).unwrap();
    let p = positions_in_zone(&layout, 1, 1)[0];
    s.zone_mut(0).spawn(Entity::at(7, p)).unwrap();
    let ids = BTreeSet::from([7]);
    let mut rolled_back_at = None;
    for _ in 0..40 {
        s.step();
        s.check_ownership(&ids).unwrap();
        if rolled_back_at.is_none() && s.zones()[0].stats().rollbacks_timeout == 1 {
            rolled_back_at = Some(s.tick());
        }
    }
    assert!(s.zones()[0].stats().intents_sent >= 1, "an intent was sent");
    assert_eq!(
        rolled_back_at,
        Some(1 + 20),
        "sent at tick 1, RTO 20 ticks (1 s at 20 Hz) unmeasured"
    );
    assert!(
        s.zones()[0].find_owned(7).is_some() || s.zones()[0].staging_count() == 1,
        "still at the sender"
    );
}

#[test]
fn arrival_waits_for_the_arrival_hlc() {
    let mut cfgs = configs(2, 64, 16, 1);
    for c in &mut cfgs {
        c.latency = FabricLatency::Satellite;
    }
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(1), 5).unwrap();
    s.zone_mut(0)
        .spawn(Entity::at(1, positions_in_zone(&layout, 1, 1)[0]))
        .unwrap();
    let ids = BTreeSet::from([1]);
    let mut owned_at = None;
    let mut saw_arriving = false;
    for _ in 0..80 {
        s.step();
        s.check_ownership(&ids).unwrap();
        saw_arriving |= count_in(&s, 1, SlotState::Arriving, &ids) == 1;
        if owned_at.is_none() && count_in(&s, 1, SlotState::Owned, &ids) == 1 {
            owned_at = Some(s.tick());
        }
    }
    assert!(saw_arriving, "committed early, then waited in Arriving");
    assert_eq!(
        owned_at,
        Some(1 + 40),
        "sent at tick 1 (HLC l = 1), satellite latency 40 ticks"
    );
}

#[test]
fn migration_preserves_the_trajectory_exactly() {
    // The same moving entity in a one-zone world and across two zones ends in the same place.
    let v = [micros(123_457), micros(-65_432), micros(10_001)];
    let a = [micros(-300), micros(150), micros(7)];
    let start = vec3_micros([-14_000_000, 14_000_000, 0]);
    let mut single = Scenario::new(&configs(1, 8, 0, 3), LinkConfig::perfect(2), 6).unwrap();
    let mut multi = Scenario::new(&configs(8, 8, 0, 3), lossy_link(), 6).unwrap();
    let e = Entity::at(1, start).with_velocity(v).with_acceleration(a);
    single.spawn(e).unwrap();
    multi.spawn(e).unwrap();
    let ids = BTreeSet::from([1]);
    for _ in 0..600 {
        single.step();
        multi.step();
        multi.check_ownership(&ids).unwrap();
    }
    let commits: u64 = multi.zones().iter().map(|z| z.stats().commits).sum();
    assert!(
        commits >= 2,
        "the entity crossed zones: {commits} migrations"
    );
    let reference = single.zones()[0]
        .slots()
        .entity(single.zones()[0].find_owned(1).unwrap());
    // Wherever it is now (owned, staging or arriving), its state matches.
    let held: Vec<Entity> = multi
        .zones()
        .iter()
        .flat_map(|z| {
            z.holdings()
                .filter(|h| h.global_id == 1 && h.state != SlotState::Incoming)
                .map(move |h| z.slots().entity(h.slot))
        })
        .collect();
    assert_eq!(held.len(), 1, "held once");
    assert_eq!(
        held[0].position, reference.position,
        "same position as the single-zone run"
    );
    assert_eq!(held[0].velocity, reference.velocity, "same velocity");
}

#[test]
fn draining_moves_everything_to_zone_zero() {
    let cfgs = configs(3, 256, 64, 80);
    let mut s = Scenario::new(&cfgs, lossy_link(), 7).unwrap();
    let ids = spawn_random(&mut s, 90);
    s.run(50, Some(&ids)).unwrap();
    s.zone_mut(1).start_drain(0);
    s.zone_mut(2).start_drain(0);
    s.run(400, Some(&ids)).unwrap();
    assert_eq!(s.zones()[1].slots().used(), 0, "zone 1 drained");
    assert_eq!(s.zones()[2].slots().used(), 0, "zone 2 drained");
    assert_eq!(
        count_in(&s, 0, SlotState::Owned, &ids) + count_in(&s, 0, SlotState::Staging, &ids),
        90,
        "zone 0 holds all 90"
    );
    assert!(
        s.zones()[1].drain_done() && s.zones()[2].drain_done(),
        "both sent drain-done"
    );
    assert!(
        s.zones()[1].drain_done_acked() && s.zones()[2].drain_done_acked(),
        "zone 0 confirmed both notices"
    );
    assert_eq!(
        s.zones()[0].drain_done_from(),
        fabric_core::zones::ZoneMask(0b110),
        "zone 0 heard drain-done from zones 1 and 2"
    );
}

#[test]
fn skipped_ticks_move_only_the_entities_in_flight() {
    // A zone that drops ticks: what it alone holds stands still, both copies of a hand-off in
    // flight (the sender's staging, the receiver's reservation) move as the tick would.
    let cfgs = configs(2, 8, 0, 1);
    let layout = cfgs[0].layout;
    let mut s = Scenario::new(&cfgs, LinkConfig::perfect(2), 7).unwrap();
    let v = [micros(1_234), micros(-567), micros(89)];
    let a = [micros(-3), micros(2), micros(1)];
    let crossing = Entity::at(1, positions_in_zone(&layout, 1, 1)[0])
        .with_velocity(v)
        .with_acceleration(a);
    let staying = Entity::at(2, positions_in_zone(&layout, 0, 1)[0]).with_velocity(v);
    s.zone_mut(0).spawn(crossing).unwrap();
    s.zone_mut(0).spawn(staying).unwrap();
    let ids = BTreeSet::from([1]);
    while count_in(&s, 0, SlotState::Staging, &ids) + count_in(&s, 1, SlotState::Incoming, &ids) < 2
    {
        s.step();
        assert!(s.tick() < 40, "no hand-off under way");
    }
    let copy = |s: &Scenario, z: usize, id: u32| {
        let zone = &s.zones()[z];
        let h = zone.holdings().find(|h| h.global_id == id).unwrap();
        zone.slots().entity(h.slot)
    };
    let (staging, incoming, owned) = (copy(&s, 0, 1), copy(&s, 1, 1), copy(&s, 0, 2));
    let bounds = cfgs[0].bounds;
    let vmax = micros(cfgs[0].v_max_um);
    let carried = |mut e: Entity| {
        for _ in 0..3 {
            for k in 0..3 {
                (e.position[k], e.velocity[k]) = step_axis(
                    e.position[k],
                    e.velocity[k],
                    e.acceleration[k],
                    bounds.min_micros(k),
                    bounds.max_micros(k),
                    vmax,
                );
            }
        }
        e
    };
    assert_eq!(s.zone_mut(0).skip_ticks(3), 1, "zone 0: the staging slot");
    assert_eq!(s.zone_mut(1).skip_ticks(3), 1, "zone 1: the reservation");
    for (z, before, moved) in [(0, staging, true), (1, incoming, true), (0, owned, false)] {
        let now = copy(&s, z, before.global_id);
        let want = if moved { carried(before) } else { before };
        assert_eq!(
            (now.position, now.velocity),
            (want.position, want.velocity),
            "entity {} on zone {z}",
            before.global_id
        );
    }
}
