//! The fabric of `cargo xtask demo` and of the screenshot test: zone processes linked over
//! loopback ([`crate::linked_zones`]: static membership, so the zones sign the follow tickets
//! the gateway needs), wanderers in each, and the gateway in front of zone 0 following avatars
//! across zones; plus the commands that start its clients: headless bots
//! (`res://examples/fabric_world/bot.tscn`) walking a tour through every zone, and the visual
//! client (`res://examples/fabric_world/visual.tscn`) placed where it sees all zones.

use std::process::Command;

use anyhow::Context;
use fabric_core::coords::{Micros, WorldBounds};
use fabric_core::hilbert::encode_position;
use fabric_core::zones::ZoneLayout;
use fabric_harness::engine::Engine;
use fabric_harness::paths;

use crate::Running;
use crate::linked_zones::Fabric;

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
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            zones: 3,
            entities: 450,
            half_m: 15.0,
            radius_m: 12.0,
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

/// The running fabric: zones and the gateway.
pub struct DemoFabric {
    /// Its shape.
    pub opts: DemoOptions,
    /// The zone processes.
    pub fabric: Fabric,
    /// The gateway, in front of zone 0.
    pub gateway: Running,
    /// Who owns which part of the world.
    pub map: ZoneMap,
}

impl DemoFabric {
    /// Starts the zones (fabric `name`), links them, then the gateway in front of zone 0.
    pub fn start(name: &str, opts: DemoOptions) -> anyhow::Result<Self> {
        anyhow::ensure!((2..=8).contains(&opts.zones), "zones must be 2..=8");
        let map = ZoneMap::new(opts.zones, opts.half_m)?;
        let (half, entities, radius) = (
            opts.half_m.to_string(),
            opts.entities.to_string(),
            opts.radius_m.to_string(),
        );
        let args = [
            "--world-bounds",
            &half,
            "--population",
            "wanderers",
            "--entities",
            &entities,
            "--interest-radius",
            &radius,
            "--hysteresis-ticks",
            "4",
        ];
        let mut fabric = Fabric::start(name, opts.zones, &args)?;
        let linked = fabric.link((opts.zones - 1) as f64);
        let gateway = linked.and_then(|()| {
            let z0 = &fabric.zones[0];
            let directory = fabric.directory_file().display().to_string();
            crate::start_gateway_with(
                z0.port,
                &[
                    "--zone-cert-hash",
                    &z0.hash,
                    "--zone-directory-file",
                    &directory,
                ],
            )
        });
        match gateway {
            Ok(gateway) => Ok(Self {
                opts,
                fabric,
                gateway,
                map,
            }),
            Err(e) => {
                fabric.stop();
                Err(e)
            }
        }
    }

    /// The gateway's URL.
    pub fn gateway_url(&self) -> String {
        format!("https://127.0.0.1:{}/wt", self.gateway.port)
    }

    /// Bot `i`'s tour: it spawns deep in zone 0 (the gateway's zone), then walks to a point
    /// deep in each other zone in turn and back, crossing borders on the way. Bots are spread
    /// apart by half a metre each.
    pub fn bot_tour(&self, i: usize) -> ([f64; 3], Vec<[f64; 3]>) {
        let off = (i % 4) as f64 * 0.5;
        let mut points: Vec<[f64; 3]> = self
            .map
            .interiors(self.opts.zones)
            .into_iter()
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

    /// The command of headless bot `name` (number `i`) joining through the gateway; it quits
    /// after `seconds` (0: never).
    pub fn bot_command(&self, eng: &Engine, name: &str, i: usize, seconds: f64) -> Command {
        let (spawn, tour) = self.bot_tour(i);
        let waypoints: Vec<String> = tour.iter().map(|p| vec3(*p)).collect();
        let (url, spawn, waypoints, quit) = (
            self.gateway_url(),
            vec3(spawn),
            waypoints.join(";"),
            seconds.to_string(),
        );
        eng.scene_command(
            "res://examples/fabric_world/bot.tscn",
            &[
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
                "--quit-after",
                &quit,
            ],
        )
    }

    /// The command of the windowed visual client (not headless: it renders; under Xvfb set
    /// `DISPLAY` and more with [`crate::xvfb::Xvfb::apply`]). It connects straight to
    /// the zone that owns a place from where every zone lies within the interest radius, and
    /// passes `extra` on (e.g. `--screenshot PATH`).
    pub fn visual_command(&self, eng: &Engine, extra: &[&str]) -> anyhow::Result<Command> {
        let at = self
            .map
            .sees_all(self.opts.zones, self.opts.radius_m - 2.0)
            .context("no place sees every zone within the interest radius")?;
        let k = usize::from(self.map.at(at.map(|c| c as i32)));
        let zone = &self.fabric.zones[k];
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
            .args(["--world-half", &self.opts.half_m.to_string()])
            .args(extra);
        Ok(c)
    }

    /// Stops the gateway and the zones.
    pub fn stop(&mut self) {
        self.gateway.proc.stop();
        self.fabric.stop();
    }
}

fn vec3(p: [f64; 3]) -> String {
    format!("{},{},{}", p[0], p[1], p[2])
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
