//! The fault scenarios of the load harness, small enough for CI on 2 cores, through the real
//! processes (the registry backend, two linked headless Godot zones, the `fabric-load`
//! generator): a reconnect storm, a lossy link for every player, a zone process killed and
//! started again, players that stop reading, the gateway killed and started again, and the
//! zone links conditioned and cut. Asserted: the scenario's own pass/fail criteria (what the
//! report says) and the figures behind them.

use std::sync::atomic::AtomicBool;

use fabric_e2e::load_scenario::{Scenario, Size, run_scenario};

fn out_dir(name: &str) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("fabric-{name}-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    out
}

/// Runs a scenario at `size` with the machine to itself (the scenarios judge tick times: three
/// fabrics at once on two cores would judge the machine instead).
fn run(scenario: Scenario, size: Size) -> fabric_e2e::load::LoadResult {
    let _serial = fabric_e2e::serial();
    let out = out_dir(scenario.name());
    let stop = AtomicBool::new(false);
    let (r, criteria) = run_scenario(scenario, size, false, out.clone(), &stop, |l| {
        eprintln!("[{}] {l}", scenario.name())
    })
    .expect("the scenario runs");
    eprintln!("{}", r.data.summary.text());
    let md = std::fs::read_to_string(&r.written.markdown).expect("report.md written");
    for c in &criteria {
        eprintln!("[{}] {}: {}", scenario.name(), c.what, c.measured);
    }
    for c in &criteria {
        assert!(c.pass, "{}: {}\n{md}", c.what, c.measured);
        assert!(md.contains(&c.what), "the report lists `{}`", c.what);
    }
    assert!(
        md.contains(&format!("## Scenario `{}`: PASS", scenario.name())),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&out);
    r
}

#[test]
fn forty_players_dropped_at_once_are_all_back_within_five_seconds() {
    let r = run(
        Scenario::Storm,
        Size {
            players: 40,
            zones: 2,
            seconds: 14,
            ramp_s: 2.0,
        },
    );
    let st = r.data.summary.storm.expect("storm figures");
    assert_eq!(st.dropped, 40, "every player was dropped");
    assert_eq!(st.recovered, 40, "every player came back");
    assert!(st.recovery_max_s > 0.0 && st.recovery_max_s < 5.0, "{st:?}");
    let rejoined = r
        .data
        .summary
        .per_player
        .iter()
        .filter(|p| p.joins >= 2)
        .count();
    assert_eq!(rejoined, 40, "every player joined twice");
}

#[test]
fn sixteen_players_behind_a_lossy_link_see_what_the_zones_hold() {
    let r = run(
        Scenario::Lossy,
        Size {
            players: 16,
            zones: 2,
            seconds: 15,
            ramp_s: 2.0,
        },
    );
    let s = &r.data.summary;
    assert!(
        s.compared.entities >= 50,
        "enough entity states compared: {:?}",
        s.compared
    );
    let link = s.relay.expect("the links were conditioned");
    assert!(link.flows >= 16, "a flow per player: {link:?}");
    assert!(
        link.dropped > 0 && link.dropped < link.received / 10,
        "about 2 % lost: {link:?}"
    );
}

#[test]
fn a_zone_killed_under_load_comes_back_and_its_players_with_it() {
    let r = run(
        Scenario::ZoneKill,
        Size {
            players: 12,
            zones: 2,
            seconds: 36,
            ramp_s: 2.0,
        },
    );
    let k = r.crash.expect("crash figures");
    assert_eq!(k.zone, 1);
    assert!(k.back_at_s.is_some(), "{k:?}");
    let lost = r
        .data
        .summary
        .per_player
        .iter()
        .filter(|p| !p.outages.is_empty())
        .count();
    assert!(lost >= 1, "some players were on the killed zone");
}

#[test]
fn players_that_stop_reading_are_held_within_budget_and_the_others_keep_their_rate() {
    let r = run(
        Scenario::SlowReader,
        Size {
            players: 20,
            zones: 2,
            seconds: 36,
            ramp_s: 2.0,
        },
    );
    let s = &r.data.summary;
    let st = s.stall.as_ref().expect("stall figures");
    assert_eq!(st.stalled, 2, "a tenth of 20 players stalled: {st:?}");
    assert_eq!(st.closed_slow_reader + st.open, 2, "{st:?}");
    let stalled: Vec<_> = s.per_player.iter().filter(|p| p.stall.is_some()).collect();
    assert_eq!(
        stalled.iter().map(|p| p.index).collect::<Vec<_>>(),
        vec![9, 19]
    );
    for p in &stalled {
        let end = p.stall.as_ref().expect("stall end");
        assert!(
            end.stalled_s > 20.0 && end.datagrams > 0,
            "held unread until the end, the zone still sending: {end:?}"
        );
    }
    let w = s.windows.as_ref().expect("windows");
    assert_eq!(w.before.players, 18, "the 18 that kept reading: {w:?}");
    assert_eq!(w.after.players, 18, "{w:?}");
    assert!(w.after.own_hz_median > 15.0, "{w:?}");
}

#[test]
fn players_behind_a_gateway_killed_under_load_come_back_by_themselves() {
    let r = run(
        Scenario::GatewayRestart,
        Size {
            players: 12,
            zones: 2,
            seconds: 36,
            ramp_s: 2.0,
        },
    );
    let g = r.gateway.expect("gateway figures");
    let back_at = g.back_at_s.expect("the gateway came back");
    assert!(back_at - g.killed_at_s >= 3.0, "down 3 s: {g:?}");
    assert!(
        g.killed_at_s >= 8.0,
        "killed after the ramp and steady play: {g:?}"
    );
    let s = &r.data.summary;
    for p in &s.per_player {
        assert_eq!(
            p.outages.len(),
            1,
            "player {} lost its session once",
            p.index
        );
        let end = p.outage_ends_s[0] - g.killed_at_s;
        assert!(
            (3.0..=15.0).contains(&end),
            "player {} back {end:.1} s after the kill (the gateway was down 3 s)",
            p.index
        );
        assert!(p.joins >= 2, "player {} joined again", p.index);
    }
    assert!(r.held.baseline > 0 && r.held.snapshots > 10, "{:?}", r.held);
}

#[test]
fn a_fabric_whose_zone_links_are_lossy_and_cut_keeps_every_entity() {
    let r = run(
        Scenario::ZoneLinks,
        Size {
            players: 12,
            zones: 2,
            seconds: 30,
            ramp_s: 2.0,
        },
    );
    let l = r.links.expect("link figures");
    // Two zones, one link; dialled again from a new port when the cut outlasted it.
    assert!((1..=2).contains(&l.relay.flows), "{l:?}");
    let (from, to) = (l.cut_from_s.expect("cut"), l.cut_to_s.expect("cut over"));
    assert!((4.5..=6.5).contains(&(to - from)), "cut 5 s: {l:?}");
    assert!(l.relay.cut > 0 && l.relay.dropped > 0, "{l:?}");
    let h = &r.held;
    assert_eq!((h.lost, h.duplicated, h.missing_last), (0, 0, 0), "{h:?}");
    assert_eq!(h.baseline, 200, "every wanderer in the baseline: {h:?}");
    let migrated: f64 = r
        .data
        .zones
        .iter()
        .filter_map(|z| Some((z.iter().find(|s| s.t >= to)?, z.last()?)))
        .map(|(a, b)| b.migrations_in - a.migrations_in)
        .sum();
    assert!(migrated > 0.0, "migrations after the cut");
}
