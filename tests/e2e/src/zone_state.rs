//! A zone process started for a client test, with its metrics address, and its `/state`
//! (tick and exact positions of everything it holds) read as metres.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use fabric_core::coords::Micros;
use fabric_harness::engine::Engine;
use fabric_harness::process::Proc;

use crate::zone_probe::{field, http_get};

/// A zone process and what it announced.
pub struct ObservedZone {
    /// The process.
    pub proc: Proc,
    /// Client port on loopback.
    pub port: u16,
    /// Certificate hash (base64).
    pub cert_hash: String,
    /// Metrics and `/state` address.
    pub metrics: SocketAddr,
}

/// One `/state` reading.
#[derive(Debug, Clone)]
pub struct ZoneState {
    /// The zone's tick.
    pub tick: u64,
    /// Global id -> position, metres.
    pub held: BTreeMap<u32, [f64; 3]>,
}

/// Starts `res://scenes/zone.tscn` with `args` (plus a free client port and metrics address
/// on loopback) and waits until it is ready.
pub fn start_observed_zone(engine: &Engine, args: &[&str]) -> anyhow::Result<ObservedZone> {
    start_observed_zone_scene(engine, "res://scenes/zone.tscn", args)
}

/// [`start_observed_zone`] with another zone scene (one with a `FabricZone` that reads the
/// command line, e.g. under a test script).
pub fn start_observed_zone_scene(
    engine: &Engine,
    scene: &str,
    args: &[&str],
) -> anyhow::Result<ObservedZone> {
    let mut all = vec!["--port", "0", "--bind", "127.0.0.1"];
    all.extend_from_slice(&["--metrics-addr", "127.0.0.1:0"]);
    all.extend_from_slice(args);
    let mut proc = Proc::spawn("zone", engine.scene_command(scene, &all), true)?;
    let timeout = Duration::from_secs(60);
    let m = proc.wait_for_line(|l| l.starts_with("FABRIC_ZONE_METRICS"), timeout)?;
    let metrics = field(&m, "addr")
        .and_then(|a| a.parse().ok())
        .context("metrics address")?;
    let ready = proc.wait_for_line(|l| l.starts_with("FABRIC_ZONE_READY"), timeout)?;
    let addr = field(&ready, "addr").context("addr")?;
    let port = addr.rsplit(':').next().unwrap_or("").parse()?;
    let cert_hash = field(&ready, "cert_hash").context("cert_hash")?.to_owned();
    Ok(ObservedZone {
        proc,
        port,
        cert_hash,
        metrics,
    })
}

/// The zone of the ownership tests: one zone (`--world-bounds 15`) of three wanderers (ids
/// 1..=3, seed 7) with persist mode `persist_mode`, a stats line every second.
pub fn start_ownership_zone(engine: &Engine, persist_mode: &str) -> anyhow::Result<ObservedZone> {
    start_observed_zone(
        engine,
        &[
            "--zone-id",
            "0",
            "--zone-count",
            "1",
            "--world-bounds",
            "15",
            "--population",
            "wanderers",
            "--entities",
            "3",
            "--seed",
            "7",
            "--persist-mode",
            persist_mode,
            "--stats-every",
            "1",
        ],
    )
}

impl ObservedZone {
    /// Reads `/state` now.
    pub fn state(&self) -> anyhow::Result<ZoneState> {
        let text = http_get(self.metrics, "/state")?;
        let tick = text
            .lines()
            .next()
            .and_then(|l| field(l, "tick"))
            .and_then(|t| t.parse().ok())
            .context("/state without a tick")?;
        let mut held = BTreeMap::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("E ")) {
            let n: Vec<i128> = line.split(' ').map(str::parse).collect::<Result<_, _>>()?;
            let m = |i: usize| Micros::from_bits(n[i]).to_num::<f64>() / 1e6;
            held.insert(n[0] as u32, [m(1), m(2), m(3)]);
        }
        Ok(ZoneState { tick, held })
    }
}

/// Distance between two points, metres.
pub fn dist(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>().sqrt()
}
