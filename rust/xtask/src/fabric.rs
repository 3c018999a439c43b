//! `cargo xtask fabric --zones 3 --entities 3000`: a zone fabric on this machine. The registry
//! backend, then one headless Godot `FabricZone` process per zone with registry membership
//! (`--link network --backend URL`: each zone registers its link listener, gets its link
//! credential from the registry and finds its neighbours there), wanderers crossing between
//! them. Prints one status line per zone each second, read from the zones' own metrics;
//! Ctrl-C (or `--seconds`) stops every process it started.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_e2e::zone_probe::{field, metrics};
use fabric_e2e::{create_account, start_backend};
use fabric_harness::engine;
use fabric_harness::process::Proc;

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

struct ZoneProc {
    proc: Proc,
    metrics: SocketAddr,
    last_migrations: f64,
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
    if !(1..=32).contains(&opts.zones) {
        bail!("--zones must be 1..=32");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    println!("[fabric] preparing Godot, the extension and the project");
    let eng = engine::prepare(false)?;
    let mut backend = start_backend(&format!("127.0.0.1:{}", opts.backend_port), ":memory:")
        .context("the registry backend did not start")?;
    let api_key = create_account(&backend.url, "operator")?;
    println!("[fabric] registry backend on {}", backend.url);
    let fabric = format!("xtask-{}", std::process::id());
    let mut zones: Vec<ZoneProc> = Vec::new();
    let started = (|| -> anyhow::Result<()> {
        for k in 0..opts.zones {
            let args = [
                "--port".to_owned(),
                "0".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--metrics-addr".into(),
                "127.0.0.1:0".into(),
                "--fabric".into(),
                fabric.clone(),
                "--zone-id".into(),
                k.to_string(),
                "--zone-count".into(),
                opts.zones.to_string(),
                "--link".into(),
                "network".into(),
                "--backend".into(),
                backend.url.clone(),
                "--heartbeat-sec".into(),
                "2".into(),
                "--population".into(),
                "wanderers".into(),
                "--entities".into(),
                opts.entities.to_string(),
                "--hysteresis-ticks".into(),
                opts.hysteresis_ticks.to_string(),
                // Room for twice a zone's share (wanderers gather unevenly), 400 for arrivals.
                "--capacity".into(),
                (opts.entities / opts.zones * 2 + 400).max(1800).to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = eng.scene_command("res://scenes/zone.tscn", &args);
            // The API key in the environment, not on the process list.
            cmd.env("FABRIC_BACKEND_API_KEY", &api_key);
            let mut proc = Proc::spawn(&format!("zone{k}"), cmd, true)?;
            let line = proc.wait_for_line(
                |l| l.starts_with("FABRIC_ZONE_METRICS"),
                Duration::from_secs(60),
            )?;
            let metrics = field(&line, "addr")
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("bad metrics line: {line}"))?;
            proc.wait_for_line(
                |l| l.starts_with("FABRIC_ZONE_READY"),
                Duration::from_secs(60),
            )?;
            println!("[fabric] zone {k} running, metrics on http://{metrics}/metrics");
            zones.push(ZoneProc {
                proc,
                metrics,
                last_migrations: 0.0,
            });
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        Ok(())
    })();
    let t0 = Instant::now();
    let mut next = t0 + Duration::from_secs(1);
    while started.is_ok() && !stop.load(Ordering::SeqCst) {
        if opts.seconds > 0 && t0.elapsed() >= Duration::from_secs(opts.seconds) {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        println!("[fabric +{:>4.0} s]", t0.elapsed().as_secs_f64());
        for (k, z) in zones.iter_mut().enumerate() {
            if !z.proc.group_alive() {
                println!("zone {k}: exited");
                continue;
            }
            match metrics(z.metrics) {
                Ok(m) => {
                    let total = m.get("fabric_zone_migrations_in_total").copied();
                    let rate = total.map_or(0.0, |t| t - z.last_migrations);
                    z.last_migrations = total.unwrap_or(z.last_migrations);
                    println!("{}", status_line(k as u32, &m, rate));
                }
                Err(e) => println!("zone {k}: metrics unreadable: {e:#}"),
            }
        }
    }
    println!("[fabric] stopping {} zones and the backend", zones.len());
    for z in &mut zones {
        z.proc.stop();
    }
    backend.proc.stop();
    started
}
