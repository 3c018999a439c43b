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
use crate::{Backend, create_account};

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
    /// The registry backend's binary (`None`: the workspace's debug build); capacity runs
    /// give an optimised one, or the backend's own CPU would be measured in debug.
    pub backend_bin: Option<std::path::PathBuf>,
    /// The zones' links go through something in between (conditioned relays): each zone
    /// advertises this address instead of 127.0.0.1 and listens for links on its own port;
    /// `None`: direct links on any free port.
    pub link_via: Option<LinkVia>,
}

/// Where zones advertise their link listeners when the links go through relays.
#[derive(Debug, Clone)]
pub struct LinkVia {
    /// The address the zones advertise (their `--public-address`), where the relays listen.
    pub public_address: String,
    /// Each zone's link port (the zone listens on 127.0.0.1, its relay on the public address).
    pub ports: Vec<u16>,
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
    /// How its zones were started (to start one again after a crash).
    pub spawn: ZoneSpawn,
}

impl Fabric {
    /// Writes the zone directory file `path` (`k@address#hash` per zone: where clients reach
    /// each zone, read by zones started with `--zone-directory-file` and by the gateway).
    pub fn write_zone_directory(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let entries: Vec<String> = self
            .zones
            .iter()
            .enumerate()
            .map(|(k, z)| format!("{k}@{}#{}", z.client, z.cert_hash))
            .collect();
        std::fs::write(path, entries.join("\n"))
            .with_context(|| format!("writing the zone directory {}", path.display()))
    }

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
    let listen = format!("127.0.0.1:{}", opts.backend_port);
    // Zones that advertise another address than they register from (their links go through
    // relays there) need the registry to accept it.
    let backend_args: &[&str] = match opts.link_via {
        Some(_) => &["--allow-any-address"],
        None => &[],
    };
    let backend = match &opts.backend_bin {
        Some(bin) => crate::start_backend_bin(bin, &listen, ":memory:", backend_args),
        None => crate::start_backend_with(&listen, ":memory:", backend_args),
    }
    .context("the registry backend did not start")?;
    let api_key = create_account(&backend.url, "operator")?;
    log(&format!("registry backend on {}", backend.url));
    let spawn = ZoneSpawn {
        engine: eng.clone(),
        opts: opts.clone(),
        name: format!("fabric-{}", std::process::id()),
        backend_url: backend.url.clone(),
        api_key: api_key.clone(),
    };
    let mut fabric = Fabric {
        spawn: spawn.clone(),
        backend,
        api_key,
        zones: Vec::new(),
        processes: Vec::new(),
    };
    let started = (|| -> anyhow::Result<()> {
        for first in (0..opts.zones).step_by(opts.zones_per_process as usize) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let range = first..(first + opts.zones_per_process).min(opts.zones);
            let (proc, zones) = spawn.start(range.clone(), fabric.processes.len(), None)?;
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

/// What starting a zone process takes, apart from the fabric itself: a restart runs it again
/// from another thread while the fabric keeps going.
#[derive(Debug, Clone)]
pub struct ZoneSpawn {
    engine: Engine,
    opts: FabricOptions,
    name: String,
    backend_url: String,
    api_key: String,
}

impl Fabric {
    /// SIGKILLs the process running zone `k` (alone: `zones_per_process` 1): a crash, no
    /// goodbye on any link. Its [`FabricZone`] stays as it was until [`Fabric::restarted`].
    pub fn kill_zone(&mut self, k: usize) -> anyhow::Result<()> {
        let p = self.zones[k].process;
        let (proc, range) = &mut self.processes[p];
        anyhow::ensure!(range.len() == 1, "zone {k} shares its process: {range:?}");
        proc.kill();
        Ok(())
    }

    /// Puts a zone restarted by [`ZoneSpawn::restart`] in place of the killed one.
    pub fn restarted(&mut self, k: usize, proc: Proc, mut zone: FabricZone) {
        let p = self.zones[k].process;
        zone.process = p;
        self.processes[p].0 = proc;
        self.zones[k] = zone;
    }
}

impl ZoneSpawn {
    /// Starts zone `k` again on its old client port `port` (what the zone's players reconnect
    /// to), with the fabric's other arguments (its `--data-dir` among them, if any).
    pub fn restart(&self, k: u32, port: u16) -> anyhow::Result<(Proc, FabricZone)> {
        let (proc, mut zones) = self.start(k..k + 1, 0, Some(port))?;
        Ok((proc, zones.remove(0)))
    }

    /// Starts one process running zones `range`; returns it and its zones once each has
    /// printed its metrics, ready and registered lines.
    fn start(
        &self,
        range: std::ops::Range<u32>,
        process: usize,
        port: Option<u16>,
    ) -> anyhow::Result<(Proc, Vec<FabricZone>)> {
        start_zones(self, range, process, port)
    }
}

fn start_zones(
    spawn: &ZoneSpawn,
    range: std::ops::Range<u32>,
    process: usize,
    port: Option<u16>,
) -> anyhow::Result<(Proc, Vec<FabricZone>)> {
    let (eng, opts, name) = (&spawn.engine, &spawn.opts, &spawn.name);
    let k = range.start;
    let mut args = vec![
        "--port".to_owned(),
        port.unwrap_or(0).to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--public-address".into(),
        opts.link_via
            .as_ref()
            .map_or("127.0.0.1".into(), |v| v.public_address.clone()),
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
        spawn.backend_url.clone(),
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
    if let Some(v) = &opts.link_via {
        let port = v
            .ports
            .get(k as usize)
            .with_context(|| format!("no link port for zone {k}"))?;
        args.extend(["--link-port".into(), port.to_string()]);
    }
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
    cmd.env("FABRIC_BACKEND_API_KEY", &spawn.api_key);
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
                process,
                metrics,
                client,
                cert_hash,
                shard,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((proc, zones))
}
