//! The main job: a zone, the gateway and the cycle-1 client as separate processes on loopback.

use std::time::Instant;

use anyhow::{Context, bail};
use fabric_e2e::{run_cycle1, zone_datagram_msec};
use fabric_harness::engine;
use fabric_harness::process::Proc;

fn step(t0: Instant, text: &str) {
    println!("[demo +{:>6.2} s] {text}", t0.elapsed().as_secs_f64());
}

pub fn run(zone_port: u16, gateway_port: u16) -> anyhow::Result<()> {
    let t0 = Instant::now();
    step(
        t0,
        "preparing Godot, the extension and the project (first run installs Godot: about a minute)",
    );
    let eng = engine::prepare(false)?;
    step(t0, &format!("engine: {}", eng.bin.display()));
    let gateway_bin = engine::binary("fabric-gateway")?;

    step(
        t0,
        &format!("starting zone 0 (headless Godot, FabricZone) on UDP 127.0.0.1:{zone_port}"),
    );
    let port = zone_port.to_string();
    let cmd = eng.scene_command(
        "res://scenes/zone.tscn",
        &["--zone-id", "0", "--port", &port, "--bind", "127.0.0.1"],
    );
    let mut zone = Proc::spawn("zone", cmd, true)?;
    let ready = zone
        .wait_for_line(
            |l| l.starts_with("FABRIC_ZONE_READY"),
            fabric_e2e::READY_TIMEOUT,
        )
        .context("the zone did not start (is the port free? try --zone-port)")?;
    let zone_hash = field(&ready, "cert_hash")?;
    step(t0, &format!("zone ready: {ready}"));

    step(
        t0,
        &format!("starting the gateway on UDP 127.0.0.1:{gateway_port}"),
    );
    let mut cmd = std::process::Command::new(gateway_bin);
    cmd.args(["--listen", &format!("127.0.0.1:{gateway_port}")])
        .args(["--zone", &format!("127.0.0.1:{zone_port}")])
        .args(["--zone-cert-hash", &zone_hash]);
    let mut gateway = Proc::spawn("gateway", cmd, false)?;
    let ready = gateway
        .wait_for_line(
            |l| l.starts_with("FABRIC_GATEWAY_READY"),
            fabric_e2e::READY_TIMEOUT,
        )
        .context("the gateway did not start (is the port free? try --gateway-port)")?;
    let gateway_hash = field(&ready, "cert_hash")?;
    step(t0, &format!("gateway ready: {ready}"));

    let url = format!("https://127.0.0.1:{gateway_port}/wt");
    step(
        t0,
        &format!("starting the cycle-1 client (headless Godot) -> {url}"),
    );
    let (outcome, out, _client) = run_cycle1(&eng, "client", &url, &gateway_hash)?;
    step(t0, "stopping the gateway and the zone");
    gateway.stop();
    zone.stop();
    if !outcome.success() {
        bail!("the cycle-1 client failed: {outcome:?}");
    }
    let ms = zone_datagram_msec(&out).context("no timing line in the client's log")?;
    step(
        t0,
        &format!(
            "cycle 1 passed: client start to zone datagram {ms:.1} ms (the original system: ~880 ms over the internet)"
        ),
    );
    Ok(())
}

fn field(line: &str, key: &str) -> anyhow::Result<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .with_context(|| format!("no {key} in `{line}`"))
}
