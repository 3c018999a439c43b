//! Building blocks of the end-to-end tests and of `cargo xtask demo`: start a zone (headless
//! Godot running `res://scenes/zone.tscn`), a gateway (the `fabric-gateway` binary) and the
//! cycle-1 client (headless Godot running `res://scenes/cycle1.tscn`) as separate processes on
//! loopback, each on a free port.

pub mod assets;
pub mod demo_fabric;
pub mod fabric;
pub mod godot_players;
pub mod linked_zones;
pub mod load;
pub mod load_checks;
pub mod load_criteria;
pub mod load_faults;
pub mod load_gateway;
pub mod load_godot;
pub mod load_links;
pub mod load_scenario;
pub mod mp;
pub mod proc_usage;
pub mod repl_client;
pub mod screenshot;
pub mod xvfb;
pub mod zone_probe;
pub mod zone_state;

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

/// Holds the other tests of this test binary off while a test that judges timing runs (a
/// fabric of its own per test would otherwise share two cores with another's).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
    start_gateway_with(zone_port, &["--zone-cert-hash", zone_cert_hash])
}

/// [`start_gateway`] with other arguments for the zone's hash (e.g. `--zone-cert-hash-file`).
pub fn start_gateway_with(zone_port: u16, args: &[&str]) -> anyhow::Result<Running> {
    let mut cmd = std::process::Command::new(engine::binary("fabric-gateway")?);
    cmd.args(["--listen", "127.0.0.1:0", "--zone"])
        .arg(format!("127.0.0.1:{zone_port}"))
        .args(["--zone-timeout", "2"])
        .args(args);
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
    run_cycle1_with(engine, role, url, cert_hash, &[])
}

/// [`run_cycle1`] with extra user arguments (e.g. `--transport websocket`).
pub fn run_cycle1_with(
    engine: &Engine,
    role: &str,
    url: &str,
    cert_hash: &str,
    extra: &[&str],
) -> anyhow::Result<(Outcome, String, Proc)> {
    let mut args = vec!["--url", url, "--cert-hash", cert_hash, "--timeout", "10"];
    args.extend_from_slice(extra);
    let cmd = engine.scene_command("res://scenes/cycle1.tscn", &args);
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

/// A running registry backend.
#[derive(Debug)]
pub struct Backend {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT` (`https://` with `--tls-*`).
    pub url: String,
    /// The certificate hash it printed (with `--tls-*`), to pin.
    pub cert_hash: Option<String>,
}

/// Starts `fabric-backend` on `listen` (e.g. `127.0.0.1:0`) with the SQLite database `db`
/// (`:memory:` for none), short staleness windows fit for tests and no rate limits (tests and
/// the load harness make many accounts and tokens from one address).
pub fn start_backend(listen: &str, db: &str) -> anyhow::Result<Backend> {
    start_backend_with(listen, db, &[])
}

/// [`start_backend`] with extra options (e.g. `--assets-dir DIR`).
pub fn start_backend_with(listen: &str, db: &str, extra: &[&str]) -> anyhow::Result<Backend> {
    start_backend_bin(&engine::binary("fabric-backend")?, listen, db, extra)
}

/// [`start_backend_with`] running the backend binary `bin` (e.g. a release build).
pub fn start_backend_bin(
    bin: &std::path::Path,
    listen: &str,
    db: &str,
    extra: &[&str],
) -> anyhow::Result<Backend> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["--listen", listen, "--db", db]).args([
        "--stale-after-ms",
        "5000",
        "--janitor-interval-ms",
        "0",
        "--requests-per-ip-per-s",
        "0",
        "--signups-per-ip-per-min",
        "0",
        "--tokens-per-account-per-min",
        "0",
    ]);
    cmd.args(extra);
    let mut proc = Proc::spawn("backend", cmd, false)?;
    let line = proc.wait_for_line(|l| l.contains("listening on http"), READY_TIMEOUT)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .context("no URL in the backend's ready line")?
        .trim_end_matches('/')
        .to_owned();
    let cert_hash = field(&line, "cert_hash").map(str::to_owned);
    Ok(Backend {
        proc,
        url,
        cert_hash,
    })
}

/// One HTTP request to the backend (blocking), returning status and JSON body.
pub fn backend_request(
    url: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = fabric_net::runtime_handle().block_on(fabric_net::http::request(
        url,
        method,
        path,
        bearer,
        body.as_ref(),
        Duration::from_secs(5),
    ))?;
    Ok((r.status, r.body))
}

/// Creates an account and returns its API key.
pub fn create_account(url: &str, name: &str) -> anyhow::Result<String> {
    let (status, body) = backend_request(
        url,
        "POST",
        "/accounts",
        None,
        Some(serde_json::json!({ "name": name })),
    )?;
    anyhow::ensure!(
        status == 201,
        "creating account {name}: HTTP {status} {body}"
    );
    Ok(body["api_key"].as_str().context("no api_key")?.to_owned())
}

/// Starts a zone that registers with the backend at `backend` using the operator `api_key`
/// (passed through the environment, as in production), and waits until it is registered.
/// Returns the zone and its shard id.
pub fn start_registered_zone(
    engine: &Engine,
    zone_id: u32,
    backend: &str,
    api_key: &str,
) -> anyhow::Result<(Running, String)> {
    start_registered_zone_on(engine, zone_id, 0, backend, api_key)
}

/// [`start_registered_zone`] on a given UDP port (0 = any free port).
pub fn start_registered_zone_on(
    engine: &Engine,
    zone_id: u32,
    port: u16,
    backend: &str,
    api_key: &str,
) -> anyhow::Result<(Running, String)> {
    start_registered_zone_with(engine, zone_id, port, backend, api_key, &[])
}

/// [`start_registered_zone_on`] with extra zone arguments (e.g. `--cert-rotation-sec 3`).
pub fn start_registered_zone_with(
    engine: &Engine,
    zone_id: u32,
    port: u16,
    backend: &str,
    api_key: &str,
    extra: &[&str],
) -> anyhow::Result<(Running, String)> {
    let id = zone_id.to_string();
    let port_text = port.to_string();
    let name = format!("zone-{zone_id}");
    let mut args = vec![
        "--zone-id",
        &id,
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--public-address",
        "127.0.0.1",
        "--backend",
        backend,
        "--heartbeat-sec",
        "0.5",
        "--name",
        &name,
    ];
    args.extend_from_slice(extra);
    let mut cmd = engine.scene_command("res://scenes/zone.tscn", &args);
    cmd.env("FABRIC_BACKEND_API_KEY", api_key);
    let mut proc = Proc::spawn("zone", cmd, true)?;
    let line = proc.wait_for_line(|l| l.starts_with("FABRIC_ZONE_READY"), READY_TIMEOUT)?;
    let (port, cert_hash) = parse_ready(&line)?;
    let reg = proc.wait_for_line(|l| l.starts_with("FABRIC_ZONE_REGISTERED"), READY_TIMEOUT)?;
    let shard = field(&reg, "shard_id").context("no shard_id")?.to_owned();
    Ok((
        Running {
            proc,
            port,
            cert_hash,
        },
        shard,
    ))
}

/// Runs the cycle-1 client in discovery mode against the registry at `backend`.
pub fn run_cycle1_discovery(
    engine: &Engine,
    backend: &str,
    api_key: &str,
    extra: &[&str],
) -> anyhow::Result<(Outcome, String, Proc)> {
    let mut args = vec![
        "--backend",
        backend,
        "--api-key",
        api_key,
        "--timeout",
        "10",
    ];
    args.extend_from_slice(extra);
    let cmd = engine.scene_command("res://scenes/cycle1.tscn", &args);
    let mut proc = Proc::spawn("client", cmd, true)?;
    let outcome = proc.wait(Duration::from_secs(30));
    let output = proc.output();
    Ok((outcome, output, proc))
}
