//! The fault scenarios of the load harness, small enough for CI on 2 cores, through the real
//! processes (the registry backend, two linked headless Godot zones, the `fabric-load`
//! generator): a reconnect storm, a lossy link for every player, and a zone process killed and started again. Asserted: the scenario's
//! own pass/fail criteria (what the report says) and the figures behind them.

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
