//! Building blocks of the high-level multiplayer tests: start `res://scenes/mp/mp_test.tscn` as
//! a server, a client or a swarm of clients (headless Godot processes), and read what they
//! printed (`MP_*` lines of `key=value` fields).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use fabric_harness::engine::Engine;
use fabric_harness::process::Proc;

use crate::{READY_TIMEOUT, Running};

/// The scene every role runs.
pub const SCENE: &str = "res://scenes/mp/mp_test.tscn";

/// The transport a client is told to use (`--transport`, the peer's `transport` property).
/// The server serves both (`auto`), as a real one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebTransport only (QUIC datagrams and streams).
    WebTransport,
    /// The WebSocket fallback only: `wss://`, derived from the `https://` URL by the peer and
    /// pinned by the same hash.
    WebSocket,
}

impl Transport {
    /// The `transport` property's value, as the client also logs it once connected.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebTransport => "webtransport",
            Transport::WebSocket => "websocket",
        }
    }

    /// The `connection_state_changed` states a client forced onto this transport goes through
    /// to connect, as logged (`states=`): `STATE_TRYING_PRIMARY` (1) or
    /// `STATE_TRYING_FALLBACK` (2), then `STATE_CONNECTED` (3); never the other transport.
    pub fn connect_states(self) -> &'static str {
        match self {
            Transport::WebTransport => "1,3",
            Transport::WebSocket => "2,3",
        }
    }
}

/// The `key=value` fields of a line (words without `=` are skipped).
pub fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// Every line of `output` that starts with `tag` followed by a space, as fields.
pub fn tagged<'a>(output: &'a str, tag: &str) -> Vec<BTreeMap<&'a str, &'a str>> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .map(fields)
        .collect()
}

/// A numeric field, with a message naming the line when it is missing or not a number.
pub fn num<T: std::str::FromStr>(f: &BTreeMap<&str, &str>, key: &str) -> T {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("field `{key}` missing or not a number in {f:?}"))
}

/// A comma-separated list of peer ids (`ids=1,2,3`), sorted.
pub fn id_list(v: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = v
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("peer id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// Lines that show a failure: Godot errors (`ERROR:`, from `push_error` or the engine's own
/// checks, e.g. SceneMultiplayer's "Node not found") and the scene's own `MP_FAIL`.
pub fn error_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.contains("MP_FAIL"))
        .collect()
}

/// Starts the server on a free loopback port, expecting `clients` clients in each of `rounds`
/// rounds (each within `timeout_s`), synchronizing players every `sync_interval_s`, and waits
/// for its `MP_READY` line.
pub fn start_server(
    engine: &Engine,
    clients: usize,
    rounds: usize,
    timeout_s: u32,
    sync_interval_s: f64,
) -> anyhow::Result<Running> {
    let (clients, rounds, timeout, sync) = (
        clients.to_string(),
        rounds.to_string(),
        timeout_s.to_string(),
        sync_interval_s.to_string(),
    );
    let cmd = engine.scene_command(
        SCENE,
        &[
            "--role",
            "server",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--clients",
            &clients,
            "--rounds",
            &rounds,
            "--timeout",
            &timeout,
            "--sync-interval",
            &sync,
        ],
    );
    let mut proc = Proc::spawn("mp-server", cmd, true)?;
    let line = proc.wait_for_line(|l| l.starts_with("MP_READY "), READY_TIMEOUT)?;
    let f = fields(&line);
    let port = f
        .get("port")
        .and_then(|p| p.parse().ok())
        .context("MP_READY without a port")?;
    let cert_hash = f.get("cert_hash").context("MP_READY without cert_hash")?;
    let cert_hash = (*cert_hash).to_owned();
    Ok(Running {
        proc,
        port,
        cert_hash,
    })
}

/// The URL of a server started by [`start_server`].
pub fn url(server: &Running) -> String {
    format!("https://127.0.0.1:{}/wt", server.port)
}

/// Starts one client named `name` (one round) against `url` over `transport`, pinning
/// `cert_hash`.
pub fn spawn_client(
    engine: &Engine,
    transport: Transport,
    url: &str,
    cert_hash: &str,
    name: &str,
    timeout_s: u32,
) -> anyhow::Result<Proc> {
    let timeout = timeout_s.to_string();
    let cmd = engine.scene_command(
        SCENE,
        &[
            "--role",
            "client",
            "--url",
            url,
            "--cert-hash",
            cert_hash,
            "--name",
            name,
            "--timeout",
            &timeout,
            "--transport",
            transport.name(),
        ],
    );
    Proc::spawn(name, cmd, true)
}

/// Starts one process with `count` client sessions named `<prefix>-<i>` over `transport`, each
/// in its own SceneMultiplayer, for `rounds` rounds of connect -> exchange -> disconnect.
pub fn spawn_swarm(
    engine: &Engine,
    transport: Transport,
    server: &Running,
    prefix: &str,
    count: usize,
    rounds: usize,
    timeout_s: u32,
) -> anyhow::Result<Proc> {
    let (url, count, rounds, timeout) = (
        url(server),
        count.to_string(),
        rounds.to_string(),
        timeout_s.to_string(),
    );
    let cmd = engine.scene_command(
        SCENE,
        &[
            "--role",
            "swarm",
            "--url",
            &url,
            "--cert-hash",
            &server.cert_hash,
            "--name",
            prefix,
            "--count",
            &count,
            "--rounds",
            &rounds,
            "--timeout",
            &timeout,
            "--reconnect-delay",
            "1.0",
            "--transport",
            transport.name(),
        ],
    );
    Proc::spawn(prefix, cmd, true)
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Waits for `proc` to exit by itself within `timeout`; the error carries its output.
pub fn expect_success(proc: &mut Proc, what: &str, timeout: Duration) -> anyhow::Result<String> {
    let outcome = proc.wait(timeout);
    let out = proc.output();
    anyhow::ensure!(outcome.success(), "{what} failed: {outcome:?}\n{out}");
    Ok(out)
}
