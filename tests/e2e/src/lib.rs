//! Building blocks of the end-to-end tests and of `cargo xtask demo`: start a zone (headless
//! Godot running `res://scenes/zone.tscn`), a gateway (the `fabric-gateway` binary) and the
//! cycle-1 client (headless Godot running `res://scenes/cycle1.tscn`) as separate processes on
//! loopback, each on a free port.

pub mod mp;

use std::time::Duration;

use anyhow::Context;
use fabric_harness::engine::{self, Engine};
use fabric_harness::process::{Outcome, Proc};

/// How long a server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process and what it announced.
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub proc: Proc,
    /// Its UDP port.
    pub port: u16,
    /// Its certificate hash (base64).
    pub cert_hash: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn parse_ready(line: &str) -> anyhow::Result<(u16, String)> {
    let addr = field(line, "addr").context("ready line without addr")?;
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("ready line with a bad port")?;
    let hash = field(line, "cert_hash").context("ready line without cert_hash")?;
    Ok((port, hash.to_owned()))
}

/// Starts a zone on a free loopback port and waits for its `FABRIC_ZONE_READY` line.
pub fn start_zone(engine: &Engine, zone_id: u32) -> anyhow::Result<Running> {
    let id = zone_id.to_string();
    let cmd = engine.scene_command(
        "res://scenes/zone.tscn",
        &["--zone-id", &id, "--port", "0", "--bind", "127.0.0.1"],
    );
    let role = if engine.double { "zone-double" } else { "zone" };
    let mut proc = Proc::spawn(role, cmd, true)?;
    let line = proc.wait_for_line(|l| l.starts_with("FABRIC_ZONE_READY"), READY_TIMEOUT)?;
    let (port, cert_hash) = parse_ready(&line)?;
    Ok(Running {
        proc,
        port,
        cert_hash,
    })
}

/// Starts a gateway on a free loopback port in front of the zone at `zone_port`.
pub fn start_gateway(zone_port: u16, zone_cert_hash: &str) -> anyhow::Result<Running> {
    let mut cmd = std::process::Command::new(engine::binary("fabric-gateway")?);
    cmd.args(["--listen", "127.0.0.1:0", "--zone"])
        .arg(format!("127.0.0.1:{zone_port}"))
        .args(["--zone-cert-hash", zone_cert_hash, "--zone-timeout", "2"]);
    let mut proc = Proc::spawn("gateway", cmd, false)?;
    let line = proc.wait_for_line(|l| l.starts_with("FABRIC_GATEWAY_READY"), READY_TIMEOUT)?;
    let (port, cert_hash) = parse_ready(&line)?;
    Ok(Running {
        proc,
        port,
        cert_hash,
    })
}

/// Runs the cycle-1 client against `url` with the pinned `cert_hash`; returns how it ended and
/// everything it printed.
pub fn run_cycle1(
    engine: &Engine,
    role: &str,
    url: &str,
    cert_hash: &str,
) -> anyhow::Result<(Outcome, String, Proc)> {
    let cmd = engine.scene_command(
        "res://scenes/cycle1.tscn",
        &["--url", url, "--cert-hash", cert_hash, "--timeout", "10"],
    );
    let mut proc = Proc::spawn(role, cmd, true)?;
    // The scene gives up after 10 s by itself; 30 s covers a slow engine start.
    let outcome = proc.wait(Duration::from_secs(30));
    let output = proc.output();
    Ok((outcome, output, proc))
}

/// Milliseconds from client start to the zone's datagram, read from the client's log.
pub fn zone_datagram_msec(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.starts_with("CYCLE1 OK"))
        .and_then(|l| field(l, "zone_datagram"))
        .and_then(|v| v.parse().ok())
}
