//! `cargo xtask fabric --zones 3 --entities 3000`: a zone fabric on this machine. The registry
//! backend, then one headless Godot `FabricZone` process per zone with registry membership
//! (`--link network --backend URL`: each zone registers its link listener, gets its link
//! credential from the registry and finds its neighbours there), wanderers crossing between
//! them. Prints one status line per zone each second, read from the zones' own metrics;
//! Ctrl-C (or `--seconds`) stops every process it started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use fabric_e2e::fabric::{FabricOptions, start_fabric};
use fabric_e2e::zone_probe::metrics;
use fabric_harness::engine;

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Zone processes.
    pub zones: u32,
    /// Wanderers in the whole fabric.
    pub entities: u32,
    /// Stop after this many seconds (0 = until Ctrl-C).
    pub seconds: u64,
    /// Registry backend TCP port (0 = any free port).
    pub backend_port: u16,
    /// Ticks outside a zone before a wanderer migrates.
    pub hysteresis_ticks: u32,
}

/// One zone's status line from its metrics `m`.
pub fn status_line(zone: u32, m: &BTreeMap<String, f64>, migrations_per_s: f64) -> String {
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    format!(
        "zone {zone}: entities {:>5} (staging {:>3})  tick p99 {:>6.2} ms  migrations {:>6.1}/s  links {}  hand-off p99 {:>6.2} ms",
        get("fabric_zone_owned") + get("fabric_zone_arriving"),
        get("fabric_zone_staging"),
        get("fabric_zone_tick_p99_seconds") * 1e3,
        migrations_per_s,
        get("fabric_zone_links"),
        get("fabric_zone_handoff_p99_seconds") * 1e3,
    )
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    println!("[fabric] preparing Godot, the extension and the project");
    let eng = engine::prepare(false)?;
    let fabric_opts = FabricOptions {
        zones: opts.zones,
        zones_per_process: 1,
        entities: opts.entities,
        backend_port: opts.backend_port,
        hysteresis_ticks: opts.hysteresis_ticks,
        extra: Vec::new(),
        backend_bin: None,
        link_via: None,
    };
    let (mut fabric, started) =
        start_fabric(&eng, &fabric_opts, &stop, |l| println!("[fabric] {l}"))?;
    let mut last_migrations = vec![0.0; fabric.zones.len()];
    let t0 = Instant::now();
    let mut next = t0 + Duration::from_secs(1);
    while started.is_ok() && !stop.load(Ordering::SeqCst) {
        if opts.seconds > 0 && t0.elapsed() >= Duration::from_secs(opts.seconds) {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        println!("[fabric +{:>4.0} s]", t0.elapsed().as_secs_f64());
        for (k, z) in fabric.zones.iter_mut().enumerate() {
            if !fabric.processes[z.process].0.group_alive() {
                println!("zone {k}: exited");
                continue;
            }
            match metrics(z.metrics) {
                Ok(m) => {
                    let total = m.get("fabric_zone_migrations_in_total").copied();
                    let rate = total.map_or(0.0, |t| t - last_migrations[k]);
                    last_migrations[k] = total.unwrap_or(last_migrations[k]);
                    println!("{}", status_line(k as u32, &m, rate));
                }
                Err(e) => println!("zone {k}: metrics unreadable: {e:#}"),
            }
        }
    }
    println!(
        "[fabric] stopping {} zones and the backend",
        fabric.zones.len()
    );
    fabric.stop();
    started
}
