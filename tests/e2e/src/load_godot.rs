//! Real Godot clients beside the simulated players of a load run ([`crate::load`]): headless
//! Godot bots (`res://examples/fabric_world/bot.tscn`, a `FabricWorld` and its walker), each
//! its own process with a join token of its own account, connected straight to a zone (round
//! robin) and walking a tour through every zone, following their avatars by themselves. Their
//! once-a-second status lines give the figures the load generator gives for its players: own
//! avatar update rate and longest gap, update rate of the 32 nearest entities, bytes/s and
//! entities in view, over a measured window.

use std::fmt::Write as _;

use anyhow::Context;
use fabric_harness::engine::Engine;
use fabric_harness::process::Proc;

use crate::demo_fabric::ZoneMap;
use crate::fabric::Fabric;
use crate::zone_probe::field;
use crate::{backend_request, create_account};

/// Half the world's extent the zones of a load run use (the zone's default), metres.
pub const WORLD_HALF_M: f64 = 15.0;

/// The Godot clients of a run.
pub struct GodotClients {
    bots: Vec<Bot>,
}

struct Bot {
    name: String,
    zone: usize,
    proc: Proc,
    /// Output lines before the measured window.
    from_line: usize,
}

/// What one Godot client measured over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct GodotFigures {
    /// The bot's name.
    pub name: String,
    /// The zone it joined.
    pub zone: usize,
    /// Status lines (seconds) in the window once it held its avatar.
    pub seconds: usize,
    /// Entities in view, mean.
    pub visible: f64,
    /// Replication bytes a second, mean.
    pub bytes_per_s: f64,
    /// Replication packets a second, mean.
    pub packets_per_s: f64,
    /// Entity records a second, mean.
    pub records_per_s: f64,
    /// Updates of its own avatar a second.
    pub own_hz: f64,
    /// Longest run of zone ticks between two updates of its own avatar.
    pub own_gap_ticks: i64,
    /// Update rate of each of its 32 nearest entities, mean.
    pub near_hz: f64,
    /// Zone changes of its own avatar in the window.
    pub zone_changes: i64,
    /// Whether it lost its session in the window (the figures stop there).
    pub disconnected: bool,
}

impl GodotClients {
    /// Starts `count` bots on `fabric` (zones of a world of half extent [`WORLD_HALF_M`]):
    /// bot i joins zone i mod zones at a point deep inside it and walks to a point deep in
    /// every other zone in turn at `walk_m_s`.
    pub fn start(eng: &Engine, fabric: &Fabric, count: u32, walk_m_s: f64) -> anyhow::Result<Self> {
        let zones = fabric.zones.len();
        let interiors = ZoneMap::new(zones, WORLD_HALF_M)?.interiors(zones);
        let mut bots = Vec::new();
        for i in 0..count as usize {
            let k = i % zones;
            let name = format!("godot{i}");
            let z = &fabric.zones[k];
            let key = create_account(&fabric.backend.url, &name)?;
            let (status, body) = backend_request(
                &fabric.backend.url,
                "POST",
                "/tokens/join",
                Some(&key),
                Some(serde_json::json!({ "zone_id": z.shard })),
            )?;
            anyhow::ensure!(status == 200, "join token for {name}: HTTP {status} {body}");
            let token = body["token"].as_str().context("no token")?.to_owned();
            let tour: Vec<String> = (1..=zones)
                .map(|d| vec3(interiors[(k + d) % zones]))
                .collect();
            let (url, spawn, waypoints, speed) = (
                format!("https://{}/wt", z.client),
                vec3(interiors[k]),
                tour.join(";"),
                walk_m_s.to_string(),
            );
            let cmd = eng.scene_command(
                "res://examples/fabric_world/bot.tscn",
                &[
                    "--name",
                    &name,
                    "--url",
                    &url,
                    "--cert-hash",
                    &z.cert_hash,
                    "--token",
                    &token,
                    "--spawn",
                    &spawn,
                    "--waypoints",
                    &waypoints,
                    "--walk-speed",
                    &speed,
                    "--fps",
                    "30",
                    "--log-own-ticks",
                ],
            );
            let proc = Proc::spawn(&name, cmd, true)?;
            bots.push(Bot {
                name,
                zone: k,
                proc,
                from_line: 0,
            });
        }
        Ok(Self { bots })
    }

    /// The measured window starts now: what the bots printed so far is left out.
    pub fn start_window(&mut self) {
        for b in &mut self.bots {
            b.from_line = b.proc.output().lines().count();
        }
    }

    /// Each bot's figures over the window so far (`None` for one that printed no status line
    /// in it).
    pub fn figures(&self) -> Vec<(String, Option<GodotFigures>)> {
        self.bots
            .iter()
            .map(|b| {
                let text = b.proc.output();
                let lines: Vec<&str> = text.lines().skip(b.from_line).collect();
                (b.name.clone(), figures(&b.name, b.zone, &lines))
            })
            .collect()
    }

    /// The output of every bot (for a failure's report).
    pub fn outputs(&self) -> String {
        self.bots
            .iter()
            .map(|b| b.proc.output())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops every bot.
    pub fn stop(&mut self) {
        for b in &mut self.bots {
            b.proc.stop();
        }
    }
}

fn vec3(p: [f64; 3]) -> String {
    format!("{},{},{}", p[0], p[1], p[2])
}

/// The figures of bot `name` (joined zone `zone`) from its output `lines` of the window.
pub fn figures(name: &str, zone: usize, lines: &[&str]) -> Option<GodotFigures> {
    // Up to a lost session (its status lines then repeat stale figures).
    let lost = lines
        .iter()
        .position(|l| l.contains(&format!("FABRIC_BOT name={name} disconnected")));
    let lines = &lines[..lost.unwrap_or(lines.len())];
    let tag = format!("FABRIC_BOT name={name} visible=");
    let num = |l: &str, k: &str| field(l, k).and_then(|v| v.parse::<f64>().ok());
    // The lines once it holds its avatar.
    let status: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.find(&tag).map(|i| &l[i..]))
        .filter(|l| num(l, "avatar").is_some_and(|a| a >= 0.0))
        .collect();
    let mean = |k: &str| {
        let v: Vec<f64> = status.iter().filter_map(|l| num(l, k)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let (first, last) = (status.first()?, status.last()?);
    let counted = |k: &str| Some(num(last, k)? - num(first, k)?);
    let seconds = status.len();
    let own_hz = counted("own_updates")? / (seconds.max(2) - 1) as f64;
    let own_tag = format!("FABRIC_BOT_OWN name={name} ");
    let mut ticks: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.find(&own_tag).map(|i| &l[i..]))
        .filter_map(|l| field(l, "ticks"))
        .flat_map(|t| t.split(',').filter_map(|t| t.parse::<i64>().ok()))
        .filter(|&t| t > 0)
        .collect();
    ticks.sort_unstable();
    ticks.dedup();
    let own_gap_ticks = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    Some(GodotFigures {
        name: name.to_owned(),
        zone,
        seconds,
        visible: mean("visible")?,
        bytes_per_s: mean("bytes_per_second")?,
        packets_per_s: mean("updates_per_second")?,
        records_per_s: mean("entity_updates_per_second").unwrap_or(0.0),
        own_hz,
        own_gap_ticks,
        near_hz: mean("near_hz").unwrap_or(0.0),
        zone_changes: counted("zone_changes")? as i64,
        disconnected: lost.is_some(),
    })
}

/// The figures as a Markdown table, one row per client.
pub fn table(figures: &[(String, Option<GodotFigures>)]) -> String {
    let mut t = String::from(
        "| Godot client | joined zone | seconds | entities in view | bytes/s | packets/s | entity records/s | bytes per record | own avatar updates/s | longest own gap (ticks) | nearest 32 rate | zone changes | session lost |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (name, f) in figures {
        match f {
            Some(f) => {
                let per_record = if f.records_per_s > 0.0 {
                    format!("{:.2}", f.bytes_per_s / f.records_per_s)
                } else {
                    "-".into()
                };
                let _ = writeln!(
                    t,
                    "| {name} | {} | {} | {:.0} | {:.0} | {:.1} | {:.0} | {per_record} | {:.1} Hz | {} | {:.1} Hz | {} | {} |",
                    f.zone,
                    f.seconds,
                    f.visible,
                    f.bytes_per_s,
                    f.packets_per_s,
                    f.records_per_s,
                    f.own_hz,
                    f.own_gap_ticks,
                    f.near_hz,
                    f.zone_changes,
                    if f.disconnected { "yes" } else { "no" }
                );
            }
            None => {
                let _ = writeln!(t, "| {name} | no status line in the window ||||||||||||");
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_window_s_status_and_own_tick_lines() {
        let lines = [
            "[godot0] FABRIC_BOT name=godot0 visible=0 zones_seen= bytes_per_second=0 updates_per_second=0 avatar=-1 avatar_zone=-1 crossings=0 session_zone=0 zone_changes=0 own_updates=0 own_gap=0 own_gap_tick=-1 near_hz=0 entity_updates_per_second=0",
            "[godot0] FABRIC_BOT_OWN name=godot0 ticks=100,101,102",
            "[godot0] FABRIC_BOT name=godot0 visible=120 zones_seen=0,1 bytes_per_second=4000 updates_per_second=20.0 avatar=5 avatar_zone=0 crossings=0 session_zone=0 zone_changes=0 own_updates=40 own_gap=1 own_gap_tick=102 near_hz=18.0 entity_updates_per_second=1000",
            "[godot0] FABRIC_BOT_OWN name=godot0 ticks=103,106,107",
            "[godot0] FABRIC_BOT name=godot0 visible=140 zones_seen=0,1 bytes_per_second=6000 updates_per_second=19.0 avatar=5 avatar_zone=1 crossings=1 session_zone=1 zone_changes=1 own_updates=60 own_gap=3 own_gap_tick=106 near_hz=16.0 entity_updates_per_second=2000",
            "[godot0] FABRIC_BOT name=godot0 disconnected: gone",
            "[godot0] FABRIC_BOT_OWN name=godot0 ticks=-1",
            "[godot0] FABRIC_BOT name=godot0 visible=0 zones_seen=0,1 bytes_per_second=6000 updates_per_second=19.0 avatar=5 avatar_zone=1 crossings=1 session_zone=1 zone_changes=1 own_updates=61 own_gap=3 own_gap_tick=106 near_hz=0.0 entity_updates_per_second=2000",
            "[godot1] FABRIC_BOT name=godot1 visible=9 zones_seen=0 bytes_per_second=1 updates_per_second=1 avatar=6 avatar_zone=0 crossings=0 session_zone=0 zone_changes=0 own_updates=1 own_gap=1 own_gap_tick=1 near_hz=1 entity_updates_per_second=1",
        ];
        let f = figures("godot0", 2, &lines).expect("figures");
        assert_eq!(
            f,
            GodotFigures {
                name: "godot0".into(),
                zone: 2,
                seconds: 2,
                visible: 130.0,
                bytes_per_s: 5000.0,
                packets_per_s: 19.5,
                records_per_s: 1500.0,
                own_hz: 20.0,
                own_gap_ticks: 3,
                near_hz: 17.0,
                zone_changes: 1,
                disconnected: true,
            }
        );
        assert_eq!(figures("godot2", 0, &lines), None, "no line of its own");
        let t = table(&[("godot0".into(), Some(f)), ("godot2".into(), None)]);
        assert!(
            t.contains(
                "| godot0 | 2 | 2 | 130 | 5000 | 19.5 | 1500 | 3.33 | 20.0 Hz | 3 | 17.0 Hz | 1 |"
            ),
            "{t}"
        );
        assert!(t.contains("| godot2 | no status line"), "{t}");
    }
}
