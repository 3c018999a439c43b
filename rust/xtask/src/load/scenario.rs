//! `cargo xtask load --scenario NAME [--release] [--out DIR]`: a scenario of the fault ladder
//! (`fabric_e2e::load_scenario`), its report with the scenario's pass/fail section in
//! `docs/load/<NAME>/` by default.

use std::sync::atomic::AtomicBool;

use fabric_e2e::load_scenario::{Scenario, run_scenario};

use super::Options;

pub fn run(name: &str, opts: &Options, stop: &AtomicBool) -> anyhow::Result<()> {
    let scenario = Scenario::parse(name)?;
    let out = match &opts.out {
        Some(o) => o.clone(),
        None => fabric_harness::paths::repo_root()
            .join("docs/load")
            .join(scenario.name()),
    };
    let mut size = scenario.size();
    size.players = opts.scenario_players.unwrap_or(size.players);
    size.zones = opts.scenario_zones.unwrap_or(size.zones);
    let (r, criteria) = run_scenario(scenario, size, opts.release, out, stop, |l| {
        println!("[load] {l}")
    })?;
    println!("{}", r.data.summary.text());
    for c in &criteria {
        println!(
            "[{}] {}: {}",
            if c.pass { "pass" } else { "FAIL" },
            c.what,
            c.measured
        );
    }
    println!("report: {}", r.written.markdown.display());
    anyhow::ensure!(
        criteria.iter().all(|c| c.pass),
        "scenario {name} failed a criterion"
    );
    Ok(())
}
