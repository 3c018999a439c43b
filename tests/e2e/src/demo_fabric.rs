//! The fabric of `cargo xtask demo`, of the 8-client acceptance and of the screenshot test:
//! zone processes with wanderers, linked over loopback, and the gateway in front of zone 0
//! following avatars across zones; plus the commands that start its clients: headless bots
//! (`res://examples/fabric_world/bot.tscn`) walking a tour through every zone, and the visual
//! client (`res://examples/fabric_world/visual.tscn`) placed where it sees all zones.
//!
//! By default the membership is the registry's ([`Membership::Registry`], [`crate::fabric`]): a
//! real `fabric-backend` process, each zone registering with it and getting its link
//! credential from it (so it signs version 2 follow tickets with its link key), and every
//! client joining with a join token the backend issued to its own account for the shard of the
//! zone it connects to. The zone directory (where clients reach each zone: for the gateway's
//! follow and `avatar_moved`) is written from the registry's own listing of the shards.
//! [`Membership::Static`] keeps the older fabric ([`crate::linked_zones`]: a members file and a
//! test-only fabric key, no backend, no tokens).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use fabric_core::coords::{Micros, WorldBounds};
use fabric_core::hilbert::encode_position;
use fabric_core::zones::ZoneLayout;
use fabric_harness::engine::{self, Engine};
use fabric_harness::paths;

use crate::fabric::{FabricOptions, start_fabric};
use crate::zone_probe::metrics;
use crate::{Running, backend_request, create_account, linked_zones};

/// The fabric's shape.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Zone processes (2..=8).
    pub zones: usize,
    /// Wanderers in the whole fabric (each zone spawns those in its range).
    pub entities: u32,
    /// Half the world's extent on every axis, metres.
    pub half_m: f64,
    /// Interest radius of every client, metres.
    pub radius_m: f64,
    /// How the zones find each other and admit clients.
    pub membership: Membership,
}

/// How the zones of the fabric find each other and admit clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Membership {
    /// The registry backend: zones register, get their link credentials and neighbours from
    /// it, and admit clients with join tokens it issued.
    #[default]
    Registry,
    /// A members file and a shared test-only fabric key; clients join without tokens.
    Static,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            zones: 3,
            entities: 450,
            half_m: 15.0,
            radius_m: 12.0,
            membership: Membership::Registry,
        }
    }
}

/// Which zone owns each point of a 1 m grid over the world (sampled once: a tour and the
/// visual client's place are chosen from it).
#[derive(Debug, Clone)]
pub struct ZoneMap {
    half: i32,
    zone: Vec<u8>,
}

impl ZoneMap {
    /// The map of `zones` zones over a world of half extent `half_m` metres.
    pub fn new(zones: usize, half_m: f64) -> anyhow::Result<Self> {
        let h = (half_m * 1e6) as i64;
        let bounds = WorldBounds::new([-h; 3], [h; 3]).context("world bounds")?;
        let layout = ZoneLayout::new(zones).context("zone layout")?;
        let half = half_m.floor() as i32;
        let n = (2 * half + 1) as usize;
        let mut zone = Vec::with_capacity(n * n * n);
        for x in -half..=half {
            for y in -half..=half {
                for z in -half..=half {
                    let p = [x, y, z].map(|c| Micros::from_num(i64::from(c) * 1_000_000));
                    zone.push(layout.zone_of(encode_position(&bounds, &p)));
                }
            }
        }
        Ok(Self { half, zone })
    }

    /// The zone of grid point `p` (metres, each within the half extent).
    pub fn at(&self, p: [i32; 3]) -> u8 {
        let n = (2 * self.half + 1) as usize;
        let [x, y, z] = p.map(|c| (c + self.half) as usize);
        self.zone[(x * n + y) * n + z]
    }

    fn points(&self) -> impl Iterator<Item = [i32; 3]> + '_ {
        let h = self.half;
        (-h..=h).flat_map(move |x| (-h..=h).flat_map(move |y| (-h..=h).map(move |z| [x, y, z])))
    }

    /// How far (metres, on the grid, up to `cap`) every point around `p` belongs to its zone.
    fn clearance(&self, p: [i32; 3], cap: i32) -> i32 {
        let zone = self.at(p);
        for r in 1..=cap {
            let inside = |c: i32| (-self.half..=self.half).contains(&c);
            for dx in -r..=r {
                for dy in -r..=r {
                    for dz in -r..=r {
                        let q = [p[0] + dx, p[1] + dy, p[2] + dz];
                        if !q.iter().all(|&c| inside(c)) || self.at(q) != zone {
                            return r - 1;
                        }
                    }
                }
            }
        }
        cap
    }

    /// One point deep inside each zone (the most clearance, nearest the centre on a tie).
    pub fn interiors(&self, zones: usize) -> Vec<[f64; 3]> {
        (0..zones)
            .map(|k| {
                self.points()
                    .filter(|p| usize::from(self.at(*p)) == k)
                    .max_by_key(|p| {
                        let d2: i32 = p.iter().map(|c| c * c).sum();
                        (self.clearance(*p, 4), -d2)
                    })
                    .map_or([0.0; 3], |p| p.map(f64::from))
            })
            .collect()
    }

    /// The grid point nearest the centre from which every zone lies within `radius_m`.
    pub fn sees_all(&self, zones: usize, radius_m: f64) -> Option<[f64; 3]> {
        let r = radius_m.floor() as i32;
        let mut candidates: Vec<[i32; 3]> = self.points().collect();
        candidates.sort_by_key(|p| p.iter().map(|c| c * c).sum::<i32>());
        let inside = |c: i32| (-self.half..=self.half).contains(&c);
        candidates
            .into_iter()
            .find(|p| {
                let mut seen = vec![false; zones];
                for dx in -r..=r {
                    for dy in -r..=r {
                        for dz in -r..=r {
                            let q = [p[0] + dx, p[1] + dy, p[2] + dz];
                            if dx * dx + dy * dy + dz * dz <= r * r && q.iter().all(|&c| inside(c))
                            {
                                seen[usize::from(self.at(q)) % zones] = true;
                            }
                        }
                    }
                }
                seen.iter().all(|&s| s)
            })
            .map(|p| p.map(f64::from))
    }
}

/// One zone of the running fabric: where its clients and its metrics are.
#[derive(Debug, Clone)]
pub struct DemoZone {
    /// Client (WebTransport) port on 127.0.0.1.
    pub port: u16,
    /// Certificate hash clients pin.
    pub hash: String,
    /// `/metrics` and `/state`.
    pub metrics: SocketAddr,
    /// Its shard id in the registry (registry membership only).
    pub shard: Option<String>,
}

/// The zone processes behind a [`DemoFabric`].
enum Zones {
    Registry {
        fabric: Box<crate::fabric::Fabric>,
        dir: PathBuf,
    },
    Static(linked_zones::Fabric),
}

/// The running fabric: zones and the gateway.
pub struct DemoFabric {
    /// Its shape.
    pub opts: DemoOptions,
    /// The zones, by index.
    pub zones: Vec<DemoZone>,
    processes: Zones,
    /// The gateway, in front of zone 0.
    pub gateway: Running,
    /// Who owns which part of the world.
    pub map: ZoneMap,
    /// One point deep inside each zone ([`ZoneMap::interiors`], found once: a few seconds in a
    /// debug build).
    interiors: Vec<[f64; 3]>,
}

impl DemoFabric {
    /// Starts the zones (fabric `name`), links them, then the gateway in front of zone 0.
    pub fn start(name: &str, opts: DemoOptions) -> anyhow::Result<Self> {
        anyhow::ensure!((2..=8).contains(&opts.zones), "zones must be 2..=8");
        let map = ZoneMap::new(opts.zones, opts.half_m)?;
        let interiors = map.interiors(opts.zones);
        let (mut processes, zones, directory) = match opts.membership {
            Membership::Registry => start_registry(name, &opts)?,
            Membership::Static => start_static(name, &opts)?,
        };
        let directory = directory.display().to_string();
        let gateway = crate::start_gateway_with(
            zones[0].port,
            &[
                "--zone-cert-hash",
                &zones[0].hash,
                "--zone-directory-file",
                &directory,
            ],
        );
        match gateway {
            Ok(gateway) => Ok(Self {
                opts,
                zones,
                processes,
                gateway,
                map,
                interiors,
            }),
            Err(e) => {
                processes.stop();
                Err(e)
            }
        }
    }

    /// The gateway's URL.
    pub fn gateway_url(&self) -> String {
        format!("https://127.0.0.1:{}/wt", self.gateway.port)
    }

    /// The registry backend's URL (registry membership only).
    pub fn backend_url(&self) -> Option<&str> {
        match &self.processes {
            Zones::Registry { fabric, .. } => Some(&fabric.backend.url),
            Zones::Static(_) => None,
        }
    }

    /// The output of the process that runs zone `k` so far.
    pub fn zone_output(&self, k: usize) -> String {
        match &self.processes {
            Zones::Registry { fabric, .. } => fabric.processes[fabric.zones[k].process].0.output(),
            Zones::Static(f) => f.processes[f.zones[k].process].output(),
        }
    }

    /// A join token for a new player account `player`, issued by the backend for zone `k`'s
    /// shard (as a game's client gets one: `POST /accounts`, then `POST /tokens/join` with the
    /// player's own key); `None` with static membership (its zones want no token).
    pub fn join_token(&self, player: &str, k: usize) -> anyhow::Result<Option<String>> {
        let (Some(url), Some(shard)) = (self.backend_url(), &self.zones[k].shard) else {
            return Ok(None);
        };
        let key = create_account(url, player)?;
        let (status, body) = backend_request(
            url,
            "POST",
            "/tokens/join",
            Some(&key),
            Some(serde_json::json!({ "zone_id": shard })),
        )?;
        anyhow::ensure!(
            status == 200,
            "join token for {player}: HTTP {status} {body}"
        );
        let token = body["token"].as_str().context("no token in the reply")?;
        Ok(Some(token.to_owned()))
    }

    /// Bot `i`'s tour: it spawns deep in zone 0 (the gateway's zone), then walks to a point
    /// deep in each other zone in turn and back, crossing borders on the way. Bots are spread
    /// apart by half a metre each.
    pub fn bot_tour(&self, i: usize) -> ([f64; 3], Vec<[f64; 3]>) {
        let off = (i % 4) as f64 * 0.5;
        let mut points: Vec<[f64; 3]> = self
            .interiors
            .iter()
            .map(|p| [p[0] + off, p[1], p[2] + off])
            .collect();
        let spawn = points[0];
        points.rotate_left(1);
        if i % 2 == 1 {
            // Every other bot goes round the other way.
            let last = points.len() - 1;
            points[..last].reverse();
        }
        (spawn, points)
    }

    /// The command of headless bot `name` (number `i`) joining through the gateway on its
    /// tour, with a join token of its own for zone 0 (the gateway's) when the fabric wants
    /// one; `extra` is passed on to the bot (e.g. `--quit-after 20`, `--fps 20`).
    pub fn bot_command(
        &self,
        eng: &Engine,
        name: &str,
        i: usize,
        extra: &[&str],
    ) -> anyhow::Result<Command> {
        let (spawn, tour) = self.bot_tour(i);
        let waypoints: Vec<String> = tour.iter().map(|p| vec3(*p)).collect();
        let (url, spawn, waypoints) = (self.gateway_url(), vec3(spawn), waypoints.join(";"));
        let token = self.join_token(name, 0)?;
        let mut args = vec![
            "--name",
            name,
            "--url",
            &url,
            "--cert-hash",
            &self.gateway.cert_hash,
            "--spawn",
            &spawn,
            "--waypoints",
            &waypoints,
        ];
        if let Some(t) = &token {
            args.extend(["--token", t]);
        }
        args.extend_from_slice(extra);
        Ok(eng.scene_command("res://examples/fabric_world/bot.tscn", &args))
    }

    /// The command of the windowed visual client (not headless: it renders; under Xvfb set
    /// `DISPLAY` and more with [`crate::xvfb::Xvfb::apply`]). It connects straight to
    /// the zone that owns a place from where every zone lies within the interest radius (with
    /// a join token for that zone when the fabric wants one), and passes `extra` on (e.g.
    /// `--screenshot PATH`).
    pub fn visual_command(&self, eng: &Engine, extra: &[&str]) -> anyhow::Result<Command> {
        let at = self
            .map
            .sees_all(self.opts.zones, self.opts.radius_m - 2.0)
            .context("no place sees every zone within the interest radius")?;
        let k = usize::from(self.map.at(at.map(|c| c as i32)));
        let zone = &self.zones[k];
        let mut c = Command::new(&eng.bin);
        c.arg("--path")
            .arg(paths::godot_project())
            .args(["--rendering-method", "gl_compatibility"])
            .args(["--rendering-driver", "opengl3"])
            .args(["--resolution", "1280x720"])
            .arg("res://examples/fabric_world/visual.tscn")
            .arg("--")
            .args(["--url", &format!("https://127.0.0.1:{}/wt", zone.port)])
            .args(["--cert-hash", &zone.hash])
            .args(["--spawn", &vec3(at)])
            .args(["--zones", &self.opts.zones.to_string()])
            .args(["--world-half", &self.opts.half_m.to_string()]);
        if let Some(token) = self.join_token("visual", k)? {
            c.args(["--token", &token]);
        }
        c.args(extra);
        Ok(c)
    }

    /// Stops the gateway, the zones and the backend, and removes their files.
    pub fn stop(&mut self) {
        self.gateway.proc.stop();
        self.processes.stop();
    }
}

impl Zones {
    fn stop(&mut self) {
        match self {
            Zones::Registry { fabric, dir } => {
                fabric.stop();
                let _ = std::fs::remove_dir_all(dir);
            }
            Zones::Static(f) => f.stop(),
        }
    }
}

/// The zone arguments every membership shares.
fn zone_args(opts: &DemoOptions) -> Vec<String> {
    [
        "--world-bounds".into(),
        opts.half_m.to_string(),
        "--interest-radius".into(),
        opts.radius_m.to_string(),
    ]
    .into()
}

/// The static fabric: zones linked by a members file and a fabric key; its directory file.
fn start_static(name: &str, opts: &DemoOptions) -> anyhow::Result<(Zones, Vec<DemoZone>, PathBuf)> {
    let entities = opts.entities.to_string();
    let mut args = zone_args(opts);
    args.extend(
        [
            "--population",
            "wanderers",
            "--entities",
            &entities,
            "--hysteresis-ticks",
            "4",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut fabric = linked_zones::Fabric::start(name, opts.zones, &args)?;
    if let Err(e) = fabric.link((opts.zones - 1) as f64) {
        fabric.stop();
        return Err(e);
    }
    let zones = fabric
        .zones
        .iter()
        .map(|z| DemoZone {
            port: z.port,
            hash: z.hash.clone(),
            metrics: z.metrics,
            shard: None,
        })
        .collect();
    let directory = fabric.directory_file();
    Ok((Zones::Static(fabric), zones, directory))
}

/// The registry fabric: the backend, zones registered with it and linked through it; the
/// directory file written from the registry's listing of their shards.
fn start_registry(
    name: &str,
    opts: &DemoOptions,
) -> anyhow::Result<(Zones, Vec<DemoZone>, PathBuf)> {
    let eng = engine::prepare(false)?;
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let directory = dir.join("zones");
    let mut extra = zone_args(opts);
    extra.extend([
        "--zone-directory-file".into(),
        directory.display().to_string(),
    ]);
    let fopts = FabricOptions {
        zones: opts.zones as u32,
        zones_per_process: 1,
        entities: opts.entities,
        backend_port: 0,
        hysteresis_ticks: 4,
        extra,
        backend_bin: None,
        link_via: None,
    };
    let (mut fabric, started) = start_fabric(&eng, &fopts, &AtomicBool::new(false), |_| {})?;
    let ready = started.and_then(|()| {
        let zones = registry_zones(&fabric)?;
        let entries: Vec<String> = zones
            .iter()
            .enumerate()
            .map(|(k, z)| format!("{k}@127.0.0.1:{}#{}", z.port, z.hash))
            .collect();
        std::fs::write(&directory, entries.join("\n"))?;
        wait_neighbours_linked(&zones)?;
        Ok(zones)
    });
    match ready {
        Ok(zones) => Ok((
            Zones::Registry {
                fabric: Box::new(fabric),
                dir,
            },
            zones,
            directory,
        )),
        Err(e) => {
            fabric.stop();
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// The zones as the registry lists them (`GET /shards/{id}`: address, port, certificate hash).
fn registry_zones(fabric: &crate::fabric::Fabric) -> anyhow::Result<Vec<DemoZone>> {
    fabric
        .zones
        .iter()
        .map(|z| {
            let path = format!("/shards/{}", z.shard);
            let (status, body) = backend_request(&fabric.backend.url, "GET", &path, None, None)?;
            anyhow::ensure!(status == 200, "GET {path}: HTTP {status} {body}");
            let port = body["port"].as_u64().context("shard without a port")?;
            let hash = body["cert_hash"].as_str().context("shard without a hash")?;
            anyhow::ensure!(
                port == u64::from(z.client.port()) && hash == z.cert_hash,
                "the registry lists shard {} at port {port} hash {hash}, the zone says {} {}",
                z.shard,
                z.client,
                z.cert_hash
            );
            Ok(DemoZone {
                port: port as u16,
                hash: hash.to_owned(),
                metrics: z.metrics,
                shard: Some(z.shard.clone()),
            })
        })
        .collect()
}

/// Waits until each zone has linked every neighbour its layout gives it (through the registry).
fn wait_neighbours_linked(zones: &[DemoZone]) -> anyhow::Result<()> {
    let layout = ZoneLayout::new(zones.len())?;
    let until = Instant::now() + Duration::from_secs(30);
    for (k, z) in zones.iter().enumerate() {
        let want = f64::from(
            fabric_core::aoi::neighbours(&layout, k as u8)
                .0
                .count_ones(),
        );
        while metrics(z.metrics)?.get("fabric_zone_links") != Some(&want) {
            anyhow::ensure!(
                Instant::now() < until,
                "zone {k} has not linked its {want} neighbours through the registry in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn vec3(p: [f64; 3]) -> String {
    format!("{},{},{}", p[0], p[1], p[2])
}

/// Waits for a bot (`bot.tscn`) to print `avatar ID spawned in zone K`; returns (ID, K).
pub fn wait_bot_spawned(
    bot: &mut fabric_harness::process::Proc,
    timeout: std::time::Duration,
) -> anyhow::Result<(u32, u32)> {
    let line = bot.wait_for_line(|l| l.contains(" spawned in zone "), timeout)?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "avatar");
    let avatar = words.nth(1).and_then(|w| w.parse().ok());
    let zone = line.rsplit(' ').next().and_then(|w| w.parse().ok());
    avatar
        .zip(zone)
        .with_context(|| format!("no avatar id and zone in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interior_point_lies_deep_inside_its_own_zone() {
        let map = ZoneMap::new(3, 15.0).unwrap();
        let points = map.interiors(3);
        assert_eq!(points.len(), 3);
        for (k, p) in points.iter().enumerate() {
            let g = p.map(|c| c as i32);
            assert_eq!(usize::from(map.at(g)), k, "interior of zone {k}: {p:?}");
            assert!(map.clearance(g, 4) >= 2, "zone {k}: {p:?} is near a border");
        }
    }

    #[test]
    fn the_visual_place_sees_every_zone_within_the_radius() {
        let map = ZoneMap::new(3, 15.0).unwrap();
        let p = map.sees_all(3, 10.0).expect("a place");
        let mut seen = [false; 3];
        for q in map.points() {
            let d2: f64 = (0..3).map(|k| (f64::from(q[k]) - p[k]).powi(2)).sum();
            if d2 <= 100.0 {
                seen[usize::from(map.at(q))] = true;
            }
        }
        assert_eq!(seen, [true; 3], "from {p:?}");
        // A radius of 0 sees one point, so one zone: no place.
        assert_eq!(map.sees_all(3, 0.0), None);
        // In a 2 m world, a radius as large as the world reaches every zone from the centre.
        let small = ZoneMap::new(3, 1.0).unwrap();
        assert_eq!(small.sees_all(3, 4.0), Some([0.0, 0.0, 0.0]));
    }
}
