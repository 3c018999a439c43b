//! A zone fabric on this machine, as `cargo xtask fabric` and `cargo xtask load` start it: the
//! registry backend, then one headless Godot `FabricZone` process per zone with registry
//! membership (`--link network --backend URL`: each zone registers its link listener, gets its
//! link credential from the registry and finds its neighbours there), with wanderers.
//! With `zones_per_process` K > 1, each process runs K zones (`--zones-in-process A..B`):
//! the same zones, ports and links, fewer engines.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use fabric_harness::engine::Engine;
use fabric_harness::process::Proc;

use crate::zone_probe::field;
use crate::{Backend, create_account, start_backend};

/// How long a zone of a fabric may take to start and register.
pub const ZONE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct FabricOptions {
    /// Zones (1..=32).
    pub zones: u32,
    /// Zones each process runs (1 = a process per zone).
    pub zones_per_process: u32,
    /// Wanderers in the whole fabric.
    pub entities: u32,
    /// Registry backend TCP port (0 = any free port).
    pub backend_port: u16,
    /// Ticks outside a zone before an entity migrates.
    pub hysteresis_ticks: u32,
    /// More zone arguments (e.g. `--stats-every 1`).
    pub extra: Vec<String>,
}

/// One zone of the fabric.
#[derive(Debug)]
pub struct FabricZone {
    /// The process that runs it: an index into [`Fabric::processes`].
    pub process: usize,
    /// Its metrics endpoint (`/metrics`, `/state`).
    pub metrics: SocketAddr,
    /// Its client address (UDP for WebTransport, TCP for the WebSocket fallback).
    pub client: SocketAddr,
    /// Its certificate hash (base64).
    pub cert_hash: String,
    /// Its shard id in the registry.
    pub shard: String,
}

/// A running fabric.
#[derive(Debug)]
pub struct Fabric {
    /// The registry backend.
    pub backend: Backend,
    /// The operator's API key (the zones register with it).
    pub api_key: String,
    /// The zones that started, by index.
    pub zones: Vec<FabricZone>,
    /// The zone processes, each with the zones it runs (`zones a..b`).
    pub processes: Vec<(Proc, std::ops::Range<u32>)>,
}

impl Fabric {
    /// Stops every zone process, then the backend.
    pub fn stop(&mut self) {
        for (p, _) in &mut self.processes {
            p.stop();
        }
        self.backend.proc.stop();
    }
}

/// Starts the backend and the zones one after another, printing a line per zone through
/// `log`; stops early (with the zones so far) when `stop` is set. On an error the fabric so far
/// is returned beside it, so the caller stops what started.
pub fn start_fabric(
    eng: &Engine,
    opts: &FabricOptions,
    stop: &AtomicBool,
    log: impl Fn(&str),
) -> anyhow::Result<(Fabric, anyhow::Result<()>)> {
    anyhow::ensure!((1..=32).contains(&opts.zones), "--zones must be 1..=32");
    anyhow::ensure!(
        (1..=opts.zones).contains(&opts.zones_per_process),
        "--zones-per-process must be 1..=zones"
    );
    let backend = start_backend(&format!("127.0.0.1:{}", opts.backend_port), ":memory:")
        .context("the registry backend did not start")?;
    let api_key = create_account(&backend.url, "operator")?;
    log(&format!("registry backend on {}", backend.url));
    let mut fabric = Fabric {
        backend,
        api_key,
        zones: Vec::new(),
        processes: Vec::new(),
    };
    let name = format!("fabric-{}", std::process::id());
    let started = (|| -> anyhow::Result<()> {
        for first in (0..opts.zones).step_by(opts.zones_per_process as usize) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let range = first..(first + opts.zones_per_process).min(opts.zones);
            let (proc, zones) = start_zones(eng, opts, &name, range.clone(), &fabric)?;
            for (k, z) in range.clone().zip(&zones) {
                log(&format!(
                    "zone {k} running on {}, metrics on http://{}/metrics",
                    z.client, z.metrics
                ));
            }
            fabric.processes.push((proc, range));
            fabric.zones.extend(zones);
        }
        Ok(())
    })();
    Ok((fabric, started))
}

/// Starts one process running zones `range`; returns it and its zones once each has printed
/// its metrics, ready and registered lines.
fn start_zones(
    eng: &Engine,
    opts: &FabricOptions,
    name: &str,
    range: std::ops::Range<u32>,
    fabric: &Fabric,
) -> anyhow::Result<(Proc, Vec<FabricZone>)> {
    let k = range.start;
    let mut args = vec![
        "--port".to_owned(),
        "0".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--public-address".into(),
        "127.0.0.1".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--fabric".into(),
        name.to_owned(),
        "--zone-id".into(),
        k.to_string(),
        "--zone-count".into(),
        opts.zones.to_string(),
        "--link".into(),
        "network".into(),
        "--backend".into(),
        fabric.backend.url.clone(),
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
    if range.len() > 1 {
        args.extend([
            "--zones-in-process".into(),
            format!("{}..{}", range.start, range.end),
        ]);
    }
    args.extend(opts.extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = eng.scene_command("res://scenes/zone.tscn", &args);
    // The API key in the environment, not on the process list.
    cmd.env("FABRIC_BACKEND_API_KEY", &fabric.api_key);
    let role = if range.len() > 1 {
        format!("zones{}-{}", range.start, range.end - 1)
    } else {
        format!("zone{k}")
    };
    let mut proc = Proc::spawn(&role, cmd, true)?;
    let lines = crate::zone_probe::wait_for_zone_lines(
        &mut proc,
        range.clone(),
        &[
            "FABRIC_ZONE_METRICS",
            "FABRIC_ZONE_READY",
            "FABRIC_ZONE_REGISTERED",
        ],
        ZONE_START_TIMEOUT,
    )?;
    let zones = lines
        .iter()
        .map(|l| {
            let [line, ready, reg] = &l[..] else {
                unreachable!("three lines asked for")
            };
            let metrics = field(line, "addr")
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("bad metrics line: {line}"))?;
            let client = field(ready, "addr")
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("bad ready line: {ready}"))?;
            let cert_hash = field(ready, "cert_hash")
                .with_context(|| format!("no cert_hash: {ready}"))?
                .to_owned();
            let shard = field(reg, "shard_id")
                .with_context(|| format!("no shard_id: {reg}"))?
                .to_owned();
            Ok(FabricZone {
                process: fabric.processes.len(),
                metrics,
                client,
                cert_hash,
                shard,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((proc, zones))
}
