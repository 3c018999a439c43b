//! A fabric of zone processes linked over the network on loopback, for the tests that move
//! players between zones: each zone is headless Godot running `res://scenes/zone.tscn` with
//! `--link network`, a test-only fabric key and a members file, on free ports. Once all are
//! up, [`Fabric::link`] writes the members file (and the zone directory: where clients reach
//! each zone) and waits until every zone has linked its neighbours.
//! [`Fabric::start_hosted`] runs several zones per process (`--zones-in-process`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_core::coords::{Micros, Vec3, WorldBounds};
use fabric_core::hilbert::encode_position;
use fabric_core::zones::ZoneLayout;
use fabric_harness::engine;
use fabric_harness::process::Proc;

use crate::zone_probe::{field, http_get, metrics, wait_for_zone_lines};

/// Test-only fabric key (base64url Ed25519 seed) the zones sign link credentials and follow
/// tickets with.
pub const TEST_FABRIC_KEY: &str = "dGVzdC1vbmx5IGZhYnJpYyBrZXkgZm9yIGUyZSEhISE";

/// One zone.
pub struct LinkedZone {
    /// The process that runs it (an index into [`Fabric::processes`]).
    pub process: usize,
    /// Client (WebTransport) port on 127.0.0.1.
    pub port: u16,
    /// Certificate hash clients pin.
    pub hash: String,
    /// `/metrics` and `/state`.
    pub metrics: SocketAddr,
    /// Its link member entry.
    pub member: String,
}

impl LinkedZone {
    /// Its zone directory entry (`k@127.0.0.1:port#hash`).
    pub fn directory_entry(&self, k: usize) -> String {
        format!("{k}@127.0.0.1:{}#{}", self.port, self.hash)
    }

    /// The zone's `/state`: its tick and the exact positions of the entities it owns.
    pub fn state(&self) -> anyhow::Result<(u64, BTreeMap<u32, Vec3>)> {
        read_state(self.metrics)
    }
}

/// The `/state` of the zone whose metrics listen on `metrics`: its tick and the exact positions
/// of the entities it owns.
pub fn read_state(metrics: SocketAddr) -> anyhow::Result<(u64, BTreeMap<u32, Vec3>)> {
    let text = http_get(metrics, "/state")?;
    let head = text.lines().next().unwrap_or_default();
    let tick = field(head, "tick")
        .and_then(|t| t.parse().ok())
        .context("/state without a tick")?;
    let mut held = BTreeMap::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("E ")) {
        let n: Vec<i128> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
        if n.len() < 4 {
            bail!("/state line `E {l}`");
        }
        held.insert(n[0] as u32, [1, 2, 3].map(|i| Micros::from_bits(n[i])));
    }
    Ok((tick, held))
}

/// Zones of one fabric, each its own process, sharing a folder for the key and the files.
pub struct Fabric {
    /// The zones, by index.
    pub zones: Vec<LinkedZone>,
    /// The zone processes.
    pub processes: Vec<Proc>,
    /// The folder.
    pub dir: PathBuf,
    /// The fabric's name.
    pub name: String,
}

impl Fabric {
    /// Starts zones `0..count` of fabric `name` with the same `args` each (world, population,
    /// radius ...), plus the link, key, members and directory arguments.
    pub fn start(name: &str, count: usize, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_hosted(name, count, 1, args)
    }

    /// [`Fabric::start`] with `per_process` zones in each process (the last may run fewer).
    pub fn start_hosted(
        name: &str,
        count: usize,
        per_process: usize,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(per_process >= 1, "at least one zone per process");
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("fabric.key"), format!("{TEST_FABRIC_KEY}\n"))?;
        let mut f = Self {
            zones: Vec::new(),
            processes: Vec::new(),
            dir,
            name: name.to_owned(),
        };
        for first in (0..count).step_by(per_process) {
            let range = first as u32..(first + per_process).min(count) as u32;
            let started = start_group(&f.dir, name, range, count, args, f.processes.len());
            match started {
                Ok((proc, zones)) => {
                    f.processes.push(proc);
                    f.zones.extend(zones);
                }
                Err(e) => {
                    f.stop();
                    return Err(e);
                }
            }
        }
        Ok(f)
    }

    /// The zone directory file (`zone@host:port#hash` entries), written by [`Fabric::link`].
    pub fn directory_file(&self) -> PathBuf {
        self.dir.join("zones")
    }

    /// Writes the members and the directory files, then waits until each zone has `links`
    /// links up.
    pub fn link(&self, links: f64) -> anyhow::Result<()> {
        self.write_files()?;
        self.wait_links(&vec![links; self.zones.len()])
    }

    /// Waits until zone k has `want[k]` links up.
    fn wait_links(&self, want: &[f64]) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        for (z, links) in self.zones.iter().zip(want) {
            while metrics(z.metrics)?.get("fabric_zone_links") != Some(links) {
                if Instant::now() > until {
                    bail!("zones not linked within 30 s (want {want:?} links)");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Writes the members and the directory files.
    fn write_files(&self) -> anyhow::Result<()> {
        let members: Vec<&str> = self.zones.iter().map(|z| z.member.as_str()).collect();
        write_atomically(&self.dir.join("members"), &members.join("\n"))?;
        let entries: Vec<String> = self
            .zones
            .iter()
            .enumerate()
            .map(|(k, z)| z.directory_entry(k))
            .collect();
        write_atomically(&self.directory_file(), &entries.join("\n"))
    }

    /// [`Fabric::link`] for a fabric whose zones have different numbers of neighbours: waits
    /// until each zone has linked every neighbour its layout gives it.
    pub fn link_neighbours(&self) -> anyhow::Result<()> {
        let layout = fabric_core::zones::ZoneLayout::new(self.zones.len())?;
        let expected: Vec<f64> = (0..self.zones.len() as u8)
            .map(|k| fabric_core::aoi::neighbours(&layout, k).0.count_ones() as f64)
            .collect();
        self.write_files()?;
        self.wait_links(&expected)
    }

    /// SIGKILLs zone `k`'s process (one running that zone alone) and waits until it is gone:
    /// no goodbye on any link, nothing written after the signal.
    pub fn kill(&mut self, k: usize) -> anyhow::Result<()> {
        let p = &mut self.processes[self.zones[k].process];
        // SAFETY: kill(2) on the process group the harness created for the zone.
        unsafe {
            libc::kill(-(p.pid() as i32), libc::SIGKILL);
        }
        let out = p.wait(Duration::from_secs(10));
        anyhow::ensure!(out.signal == Some(libc::SIGKILL), "zone {k}: {out:?}");
        Ok(())
    }

    /// Starts zone `k` (killed before) again with `args`, as [`Fabric::start`] did: a new
    /// port and certificate, rewritten members and directory files. Does not wait for links.
    pub fn restart(&mut self, k: usize, args: &[&str]) -> anyhow::Result<()> {
        let count = self.zones.len();
        let process = self.zones[k].process;
        let (proc, mut zones) = start_group(
            &self.dir,
            &self.name,
            k as u32..k as u32 + 1,
            count,
            args,
            process,
        )?;
        self.processes[process] = proc;
        self.zones[k] = zones.remove(0);
        self.write_files()
    }

    /// Stops every zone process and removes the folder.
    pub fn stop(&mut self) {
        for p in &mut self.processes {
            p.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn start_group(
    dir: &Path,
    name: &str,
    range: std::ops::Range<u32>,
    count: usize,
    args: &[&str],
    process: usize,
) -> anyhow::Result<(Proc, Vec<LinkedZone>)> {
    let engine = engine::prepare(false)?;
    let key = dir.join("fabric.key").display().to_string();
    let members = dir.join("members").display().to_string();
    let directory = dir.join("zones").display().to_string();
    let (zone, zones) = (range.start.to_string(), count.to_string());
    let hosted = format!("{}..{}", range.start, range.end);
    let mut all = vec![
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--fabric",
        name,
        "--zone-id",
        &zone,
        "--zone-count",
        &zones,
        "--link",
        "network",
        "--fabric-key-file",
        &key,
        "--members-file",
        &members,
        "--zone-directory-file",
        &directory,
    ];
    if range.len() > 1 {
        all.extend(["--zones-in-process", hosted.as_str()]);
    }
    all.extend_from_slice(args);
    let cmd = engine.scene_command("res://scenes/zone.tscn", &all);
    let role = if range.len() > 1 {
        format!("zones{}-{}", range.start, range.end - 1)
    } else {
        format!("zone{}", range.start)
    };
    let mut proc = Proc::spawn(&role, cmd, true)?;
    let lines = wait_for_zone_lines(
        &mut proc,
        range,
        &[
            "FABRIC_ZONE_LINK_READY",
            "FABRIC_ZONE_METRICS",
            "FABRIC_ZONE_READY",
        ],
        Duration::from_secs(60),
    )
    .with_context(|| role.clone())?;
    let zones = lines
        .iter()
        .map(|l| {
            let [link, m, ready] = &l[..] else {
                unreachable!("three lines asked for")
            };
            let member = field(link, "member").context("member")?.to_owned();
            let metrics = field(m, "addr")
                .and_then(|a| a.parse().ok())
                .context("metrics address")?;
            let port = field(ready, "addr")
                .and_then(|a| a.rsplit(':').next()?.parse().ok())
                .context("addr")?;
            let hash = field(ready, "cert_hash").context("cert_hash")?.to_owned();
            Ok(LinkedZone {
                process,
                port,
                hash,
                metrics,
                member,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((proc, zones))
}

/// Which zone of the 2-zone layout of a world of half extent `half_m` metres holds point `p`
/// (metres).
pub fn zone_of(half_m: f64, p: [f64; 3]) -> u8 {
    let h = (half_m * 1e6) as i64;
    let bounds = WorldBounds::new([-h; 3], [h; 3]).expect("bounds");
    let layout = ZoneLayout::new(2).expect("layout");
    layout.zone_of(encode_position(
        &bounds,
        &p.map(|m| Micros::from_num(m * 1e6)),
    ))
}

/// Two points 4 m apart along x in a 2-zone world of half extent `half_m`, the first in zone 0
/// and the second in zone 1, with a single border crossing 1 to 2 m from the first (checked
/// every 5 cm).
pub fn border_crossing(half_m: f64) -> ([f64; 3], [f64; 3]) {
    for x in -10..=10 {
        for y in -6..=6 {
            for z in -6..=6 {
                let a = [f64::from(x), f64::from(y) + 0.5, f64::from(z) + 0.5];
                let b = [a[0] + 4.0, a[1], a[2]];
                let zones: Vec<u8> = (0..=80)
                    .map(|i| zone_of(half_m, [a[0] + f64::from(i) * 0.05, a[1], a[2]]))
                    .collect();
                let switch = zones.iter().position(|&z| z == 1);
                if let Some(s) = switch
                    && (20..=40).contains(&s)
                    && zones[..s].iter().all(|&z| z == 0)
                    && zones[s..].iter().all(|&z| z == 1)
                {
                    return (a, b);
                }
            }
        }
    }
    panic!("no border crossing between zones 0 and 1")
}
