//! The gateway of a load run, and its crash: the players join through one `fabric-gateway`
//! in front of zone 0 that follows their avatars to the other zones (with the zone directory
//! written from the fabric); [`GatewayCrash`] SIGKILLs it under load and starts it again on the
//! same address (UDP and the WebSocket port), from the harness's sampling loop. The gateway
//! keeps its certificate hash in a file (`--cert-hash-file`) that the players read for every
//! new session, as a game client would fetch it from its lobby: a gateway started again has a
//! new self-signed certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use fabric_harness::process::Proc;

use crate::fabric::Fabric;
use crate::zone_probe::field;

/// Sessions the gateway and the zones admit from one address in a gateway run: every player
/// and every upstream session comes from 127.0.0.1, where a deployment's would come from as
/// many addresses as players (the default, 128, is a per-address limit).
pub const SESSIONS_PER_ADDRESS: u32 = 4096;
/// Handshakes at once from one address, for the same reason (default 16).
pub const PENDING_PER_ADDRESS: u32 = 1024;
/// How long the gateway may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway killed during a run: SIGKILLed `at_s` seconds after the players started,
/// started again on the same address `down_s` seconds later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayKill {
    /// Seconds from the players' start to the kill.
    pub at_s: f64,
    /// Seconds it stays down.
    pub down_s: f64,
}

/// What the gateway's crash did, as the harness measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GatewayFigures {
    /// Seconds from the players' start to the kill.
    pub killed_at_s: f64,
    /// Seconds from the players' start to the new gateway's ready line.
    pub back_at_s: Option<f64>,
}

/// How to start the gateway (again).
#[derive(Debug, Clone)]
pub struct GatewaySpawn {
    bin: PathBuf,
    zone: SocketAddr,
    zone_hash: String,
    directory: PathBuf,
    /// The file the gateway writes its certificate hash into (the players read it).
    pub cert_hash_file: PathBuf,
}

/// A running gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Its process.
    pub proc: Proc,
    /// Its address.
    pub addr: SocketAddr,
}

impl GatewaySpawn {
    /// The gateway of `fabric` (in front of zone 0, following avatars with the directory
    /// written into `dir`), its binary `bin`.
    pub fn new(bin: PathBuf, fabric: &Fabric, dir: &Path) -> anyhow::Result<Self> {
        let directory = dir.join("zones");
        fabric.write_zone_directory(&directory)?;
        let z = fabric.zones.first().context("a gateway needs a zone")?;
        Ok(Self {
            bin,
            zone: z.client,
            zone_hash: z.cert_hash.clone(),
            directory,
            cert_hash_file: dir.join("gateway-cert-hash"),
        })
    }

    /// Starts the gateway on `listen` (port 0: any) and waits for its ready line.
    pub fn start(&self, listen: SocketAddr) -> anyhow::Result<RunningGateway> {
        let _ = std::fs::remove_file(&self.cert_hash_file);
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("--listen")
            .arg(listen.to_string())
            .arg("--zone")
            .arg(self.zone.to_string())
            .args(["--zone-cert-hash", &self.zone_hash])
            .arg("--zone-directory-file")
            .arg(&self.directory)
            .arg("--cert-hash-file")
            .arg(&self.cert_hash_file)
            .args(["--zone-timeout", "2"])
            .args([
                "--max-sessions-per-address",
                &SESSIONS_PER_ADDRESS.to_string(),
            ])
            .args([
                "--max-pending-per-address",
                &PENDING_PER_ADDRESS.to_string(),
            ])
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("gateway", cmd, false)?;
        let line = proc.wait_for_line(|l| l.starts_with("FABRIC_GATEWAY_READY"), READY_TIMEOUT)?;
        let addr = field(&line, "addr")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("bad gateway ready line: {line}"))?;
        Ok(RunningGateway { proc, addr })
    }
}

enum CrashState {
    Pending,
    Down,
    Restarting(JoinHandle<anyhow::Result<RunningGateway>>),
    Back,
}

/// Runs a [`GatewayKill`] from the harness's sampling loop ([`GatewayCrash::step`] once a
/// second); the restart runs on a thread of its own.
pub struct GatewayCrash {
    plan: GatewayKill,
    state: CrashState,
    figures: GatewayFigures,
}

impl GatewayCrash {
    /// A crash to run.
    pub fn new(plan: GatewayKill) -> Self {
        Self {
            plan,
            state: CrashState::Pending,
            figures: GatewayFigures::default(),
        }
    }

    /// Advances the crash to second `t` of the run.
    pub fn step(
        &mut self,
        t: f64,
        gateway: &mut RunningGateway,
        spawn: &GatewaySpawn,
        log: &impl Fn(&str),
    ) -> anyhow::Result<()> {
        match &mut self.state {
            CrashState::Pending if t >= self.plan.at_s => {
                gateway.proc.kill();
                self.figures.killed_at_s = t;
                log(&format!("gateway killed (SIGKILL) at {t:.1} s"));
                self.state = CrashState::Down;
            }
            CrashState::Down if t >= self.figures.killed_at_s + self.plan.down_s => {
                log(&format!("gateway: starting again on {}", gateway.addr));
                let (spawn, addr) = (spawn.clone(), gateway.addr);
                self.state = CrashState::Restarting(std::thread::spawn(move || spawn.start(addr)));
            }
            CrashState::Restarting(h) if h.is_finished() => {
                let CrashState::Restarting(h) =
                    std::mem::replace(&mut self.state, CrashState::Back)
                else {
                    unreachable!("matched above")
                };
                *gateway = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("the gateway restart thread panicked"))??;
                self.figures.back_at_s = Some(t);
                log(&format!("gateway back at {t:.1} s on {}", gateway.addr));
            }
            _ => {}
        }
        Ok(())
    }

    /// What happened so far.
    pub fn figures(&self) -> GatewayFigures {
        self.figures
    }
}
