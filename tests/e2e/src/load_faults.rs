//! The faults a load scenario applies: through the load generator the reconnect storm, a
//! conditioned link for every player, and the players' comparison of what they see with the
//! zones' `/state` (`fabric-load --storm-at`, `--link-delay-ms`/`--link-loss`, `--state`);
//! through the harness a zone process killed and started again ([`ZoneCrash`]).

use std::thread::JoinHandle;

use fabric_harness::process::Proc;

use crate::fabric::{Fabric, FabricZone};
use crate::zone_probe::{field, metrics};

/// Faults of a scenario; the default is none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Seconds from the players' start to the reconnect storm.
    pub storm_at_s: Option<f64>,
    /// One-way delay of every player's link, each way, milliseconds (WebTransport only).
    pub link_delay_ms: Option<u64>,
    /// Share of packets every player's link drops, each way.
    pub link_loss: f64,
    /// Players compare their view with the zones' `/state`.
    pub compare_state: bool,
    /// A zone process SIGKILLed during the run and started again.
    pub zone_kill: Option<ZoneKill>,
    /// The slow reader: a share of the players stop reading their sessions.
    pub stall: Option<Stall>,
    /// The players join through a gateway, which is SIGKILLed during the run and started
    /// again on its address ([`crate::load_gateway`]).
    pub gateway: Option<crate::load_gateway::GatewayKill>,
    /// The links between the zones conditioned and cut ([`crate::load_links`]).
    pub zone_links: Option<crate::load_links::ZoneLinks>,
    /// Windows before and after the fault, `[from, to, after]` seconds from the players'
    /// start: the load generator compares the players' updates in `[from, to)` with those
    /// from `after` on (`fabric_load::windows`).
    pub windows: Option<[f64; 3]>,
}

/// The slow reader (`fabric-load --stall-at`, `fabric_load::stall`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// Seconds from the players' start.
    pub at_s: f64,
    /// Share of the players that stop reading.
    pub share: f64,
}

/// The players' failed sessions in a row before they give up, in a run with a zone kill (one
/// try a second: longer than the zone is out).
pub const KILL_MAX_FAILURES: u32 = 40;

/// A zone's crash: zone `zone` (a process of its own) SIGKILLed `at_s` seconds after the
/// players started, started again on its client port `down_s` seconds later (with the
/// fabric's `--data-dir`, if it has one, so it reloads its journal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneKill {
    /// The zone.
    pub zone: u32,
    /// Seconds from the players' start to the kill.
    pub at_s: f64,
    /// Seconds the zone stays down before it is started again.
    pub down_s: f64,
}

/// What a zone crash did, as measured by the harness.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CrashFigures {
    /// The zone.
    pub zone: u32,
    /// Seconds from the players' start to the kill.
    pub killed_at_s: f64,
    /// Seconds from the players' start to the restarted zone's ready line; `None` when it did
    /// not come back before the run ended.
    pub back_at_s: Option<f64>,
    /// Entities the zone owned at its last reading before the kill.
    pub owned_before: f64,
    /// Entities it reloaded from its journal when it started again.
    pub owned_after: f64,
}

enum CrashState {
    Pending,
    Down,
    Restarting(JoinHandle<anyhow::Result<(Proc, FabricZone)>>),
    Back,
}

/// Runs a [`ZoneKill`] from the harness's sampling loop: [`ZoneCrash::step`] once a second.
/// The restart runs on its own thread, so the other zones are sampled meanwhile.
pub struct ZoneCrash {
    plan: ZoneKill,
    state: CrashState,
    figures: CrashFigures,
}

impl ZoneCrash {
    /// A crash to run.
    pub fn new(plan: ZoneKill) -> Self {
        Self {
            plan,
            state: CrashState::Pending,
            figures: CrashFigures {
                zone: plan.zone,
                ..CrashFigures::default()
            },
        }
    }

    /// Advances the crash to second `t` of the run; `owned` is the zone's newest reading of
    /// owned entities (its `fabric_zone_owned`), if it answered.
    pub fn step(&mut self, t: f64, fabric: &mut Fabric, log: &impl Fn(&str)) -> anyhow::Result<()> {
        let k = self.plan.zone as usize;
        anyhow::ensure!(k < fabric.zones.len(), "no zone {k} to kill");
        let owned = |fabric: &Fabric| {
            metrics(fabric.zones[k].metrics)
                .ok()
                .and_then(|m| m.get("fabric_zone_owned").copied())
        };
        match &mut self.state {
            CrashState::Pending if t >= self.plan.at_s => {
                self.figures.owned_before = owned(fabric).unwrap_or(0.0);
                fabric.kill_zone(k)?;
                self.figures.killed_at_s = t;
                log(&format!(
                    "zone {k} killed (SIGKILL) at {t:.1} s, owning {} entities",
                    self.figures.owned_before
                ));
                self.state = CrashState::Down;
            }
            CrashState::Down if t >= self.figures.killed_at_s + self.plan.down_s => {
                let spawn = fabric.spawn.clone();
                let port = fabric.zones[k].client.port();
                log(&format!("zone {k}: starting again on port {port}"));
                let zone = self.plan.zone;
                self.state =
                    CrashState::Restarting(std::thread::spawn(move || spawn.restart(zone, port)));
            }
            CrashState::Restarting(h) if h.is_finished() => {
                let CrashState::Restarting(h) =
                    std::mem::replace(&mut self.state, CrashState::Back)
                else {
                    unreachable!("matched above")
                };
                let (proc, zone) = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("the restart thread panicked"))??;
                // What the zone reloaded, from its journal line (its metrics are not refreshed
                // yet when it prints that it is ready).
                self.figures.owned_after = proc
                    .output()
                    .lines()
                    .find(|l| l.contains("FABRIC_ZONE_JOURNAL"))
                    .and_then(|l| field(l, "entities"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0);
                fabric.restarted(k, proc, zone);
                self.figures.back_at_s = Some(t);
                log(&format!(
                    "zone {k} back at {t:.1} s on {}, owning {} entities",
                    fabric.zones[k].client, self.figures.owned_after
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether zone `k` is down or starting again now (its metrics do not count).
    pub fn is_out(&self, k: usize) -> bool {
        k == self.plan.zone as usize
            && matches!(self.state, CrashState::Down | CrashState::Restarting(_))
    }

    /// What happened so far.
    pub fn figures(&self) -> CrashFigures {
        self.figures
    }
}

impl Faults {
    /// The load generator's arguments for these faults against `fabric`.
    pub fn args(&self, fabric: &Fabric) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(s) = self.storm_at_s {
            a.extend(["--storm-at".to_owned(), s.to_string()]);
        }
        if let Some(ms) = self.link_delay_ms {
            a.extend(["--link-delay-ms".to_owned(), ms.to_string()]);
            a.extend(["--link-loss".to_owned(), self.link_loss.to_string()]);
        }
        if self.zone_kill.is_some() || self.gateway.is_some() {
            a.extend(["--max-failures".to_owned(), KILL_MAX_FAILURES.to_string()]);
        }
        if let Some(st) = self.stall {
            a.extend(["--stall-at".to_owned(), st.at_s.to_string()]);
            a.extend(["--stall-share".to_owned(), st.share.to_string()]);
        }
        if let Some([from, to, after]) = self.windows {
            a.extend(["--windows".to_owned(), format!("{from},{to},{after}")]);
        }
        if self.compare_state {
            for z in &fabric.zones {
                a.extend(["--state".to_owned(), z.metrics.to_string()]);
            }
        }
        a
    }
}
