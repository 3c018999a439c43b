//! `cargo xtask demo --cycle1`: the first cycle's demo: the registry backend, a zone that registers
//! with it, the gateway in front of the zone, and cycle-1 clients, all as separate processes on
//! loopback.

use std::time::Instant;

use anyhow::{Context, bail};
use fabric_e2e::{create_account, run_cycle1_discovery, start_backend, zone_datagram_msec};
use fabric_harness::engine;
use fabric_harness::process::Proc;

fn step(t0: Instant, text: &str) {
    println!("[demo +{:>6.2} s] {text}", t0.elapsed().as_secs_f64());
}

/// Ports of the demo's servers.
pub struct Ports {
    pub zone: u16,
    pub gateway: u16,
    pub backend: u16,
}

pub fn run(ports: Ports) -> anyhow::Result<()> {
    let t0 = Instant::now();
    step(
        t0,
        "preparing Godot, the extension and the project (the first run installs Godot: about a minute)",
    );
    let eng = engine::prepare(false)?;
    step(t0, &format!("engine: {}", eng.bin.display()));
    let gateway_bin = engine::binary("fabric-gateway")?;

    step(
        t0,
        &format!(
            "starting the registry backend on http://127.0.0.1:{}",
            ports.backend
        ),
    );
    let mut backend = start_backend(&format!("127.0.0.1:{}", ports.backend), ":memory:")
        .context("the backend did not start (is the port free? try --backend-port)")?;
    let operator = create_account(&backend.url, "operator")?;
    let player = create_account(&backend.url, "player1")?;
    step(
        t0,
        "accounts created: `operator` (registers zones) and `player1` (joins them)",
    );

    step(
        t0,
        &format!(
            "starting zone 0 (headless Godot, FabricZone) on UDP 127.0.0.1:{}",
            ports.zone
        ),
    );
    let (mut zone, shard) = start_zone_on(&eng, ports.zone, &backend.url, &operator)
        .context("the zone did not start or register (is the port free? try --zone-port)")?;
    step(
        t0,
        &format!(
            "zone registered as shard {shard}, cert hash {}",
            zone.cert_hash
        ),
    );

    step(
        t0,
        &format!("starting the gateway on UDP 127.0.0.1:{}", ports.gateway),
    );
    let mut cmd = std::process::Command::new(gateway_bin);
    cmd.args(["--listen", &format!("127.0.0.1:{}", ports.gateway)])
        .args(["--zone", &format!("127.0.0.1:{}", zone.port)])
        .args(["--zone-cert-hash", &zone.cert_hash]);
    let mut gateway = Proc::spawn("gateway", cmd, false)?;
    let ready = gateway
        .wait_for_line(
            |l| l.starts_with("FABRIC_GATEWAY_READY"),
            fabric_e2e::READY_TIMEOUT,
        )
        .context("the gateway did not start (is the port free? try --gateway-port)")?;
    let gateway_hash = field(&ready, "cert_hash")?;
    step(t0, &format!("gateway ready: {ready}"));

    let url = format!("https://127.0.0.1:{}/wt", ports.gateway);
    step(
        t0,
        &format!(
            "cycle 1 through the gateway: client discovers the zone, gets a join token, connects to {url}"
        ),
    );
    let (outcome, out, _c) = run_cycle1_discovery(
        &eng,
        &backend.url,
        &player,
        &["--url", &url, "--cert-hash", &gateway_hash],
    )?;
    if !outcome.success() {
        bail!("the cycle-1 client failed: {outcome:?}");
    }
    let via_gateway = zone_datagram_msec(&out).context("no timing line in the client's log")?;

    step(
        t0,
        "cycle 1 direct: client discovers the zone and connects to it with its registered hash",
    );
    let (outcome, out, _c) = run_cycle1_discovery(&eng, &backend.url, &player, &[])?;
    if !outcome.success() {
        bail!("the direct cycle-1 client failed: {outcome:?}");
    }
    let direct = zone_datagram_msec(&out).context("no timing line in the client's log")?;

    for (flag, what) in [
        ("--no-token", "without a token"),
        ("--forge-token", "with a forged token"),
    ] {
        step(t0, &format!("a client {what} (must be refused)"));
        let (outcome, out, _c) = run_cycle1_discovery(&eng, &backend.url, &player, &[flag])?;
        let reason = out
            .lines()
            .find_map(|l| l.strip_prefix("CYCLE1 FAIL: "))
            .unwrap_or("(no reason printed)");
        if outcome.code != Some(1) {
            bail!("a client {what} was not refused: {outcome:?}");
        }
        step(t0, &format!("refused as expected: {reason}"));
    }

    step(t0, "stopping the gateway, the zone and the backend");
    gateway.stop();
    zone.proc.stop();
    backend.proc.stop();
    step(
        t0,
        &format!(
            "done: client start to zone datagram {via_gateway:.1} ms through the gateway, {direct:.1} ms direct \
             (discovery and token included; the original system: ~880 ms over the internet)"
        ),
    );
    Ok(())
}

fn start_zone_on(
    eng: &engine::Engine,
    port: u16,
    backend: &str,
    api_key: &str,
) -> anyhow::Result<(fabric_e2e::Running, String)> {
    fabric_e2e::start_registered_zone_on(eng, 0, port, backend, api_key)
}

fn field(line: &str, key: &str) -> anyhow::Result<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .with_context(|| format!("no {key} in `{line}`"))
}
