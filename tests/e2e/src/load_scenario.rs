//! The fault ladder of the load harness as named scenarios (`cargo xtask load --scenario NAME`):
//! each is a load run ([`crate::load`]) of a fixed size with its faults, and its pass/fail
//! criteria, judged from the run's own figures and written into the report as a section of its
//! own.
//!
//! - `steady16`: 16 players for 60 s: no gap between own updates over 3 ticks, no entity held
//!   by two zones, memory flat.
//! - `lossy`: every player's link at 100 ms each way and 2 % loss each way: no desync (each
//!   player's view of an entity matches its zone's `/state` within one tick of motion).
//! - `storm`: 500 players drop their sessions at once and join again: all back receiving their
//!   own avatar within 5 s.
//! - `zone_kill`: 100 players on 4 zones with journals; zone 1's process is SIGKILLed and
//!   started again 3 s later on its port: the other zones keep every tick on time, the zone
//!   reloads what it journaled, and every player whose session it took is back (asking the
//!   registry for the zone's new certificate).
//! - `slow_reader`: a tenth of the players stop reading their sessions (no reads, no acks, no
//!   commands; the connection kept): the zone closes them as slow readers or holds them within
//!   its budgets (zones' memory flat), every tick on time, the others' rates and gaps as before.
//! - `gateway_restart`: the players join through the gateway, which is SIGKILLed and started
//!   again on its address: every player back by itself within a bound, the zones untouched
//!   (ticks on time, no entity lost or duplicated).
//!
//! - `zone_links`: the links between the zone processes through `fabric-linksim` (delay,
//!   jitter, loss, reordering) and cut for 5 s: no entity lost or duplicated, migrations back
//!   after the cut, ticks on time, the players' rates after it as before.
//!
//! The criteria shared by several scenarios and those of the second part of the ladder are in
//! [`crate::load_criteria`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::load::{LoadOptions, LoadResult, run_load};
use crate::load_criteria::ticks_on_time;
use crate::load_criteria::{self, memory_flat, no_errors};
use crate::load_faults::{Faults, Stall, ZoneKill};
use crate::load_gateway::GatewayKill;
use crate::load_links::ZoneLinks;

/// Seconds a storm run goes on after the storm: the 5 s goal and a second of margin.
const STORM_WINDOW_S: f64 = 6.0;
/// Seconds a killed zone stays down.
const KILL_DOWN_S: f64 = 3.0;
/// Seconds a zone-kill run goes on after the kill: the time down, the restart, a player's
/// session idle timeout (10 s: a dead zone sends nothing, so that is when a player notices),
/// a rejoin, and margin.
const KILL_WINDOW_S: f64 = 30.0;
/// Share of its entities a killed zone must own again after its restart (its journal commits
/// every few ticks; entities that were crossing may have gone to a neighbour meanwhile).
const KILL_RELOADED: f64 = 0.8;
/// Seconds the gateway stays down in the gateway-restart scenario.
const GATEWAY_DOWN_S: f64 = 3.0;
/// Seconds a gateway-restart run goes on after the kill: the bound on the players' return,
/// then 10 s of play to compare with the play before.
const GATEWAY_WINDOW_S: f64 = load_criteria::GATEWAY_BACK_S + 12.0;
/// When the zone links are cut in the zone-links scenario: the ramp and this much steady play.
const LINK_CUT_AFTER_RAMP_S: f64 = 15.0;
/// Seconds they stay cut.
const LINK_CUT_S: f64 = 5.0;
/// Seconds a zone-links run goes on after the cut: its 5 s, 5 s to recover, 10 s of play.
const LINK_WINDOW_S: f64 = LINK_CUT_S + 15.0;
/// Share of the players that stop reading in the slow-reader scenario.
const STALL_SHARE: f64 = 0.1;
/// Seconds a slow-reader run goes on after the stall: two memory windows and margin.
const STALL_WINDOW_S: f64 = 24.0;

/// A scenario of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 16 players for 60 s on a healthy fabric.
    Steady16,
    /// Every player's link at 100 ms and 2 % loss.
    Lossy,
    /// A reconnect storm of 500 players.
    Storm,
    /// A zone process killed and started again under load.
    ZoneKill,
    /// A tenth of the players stop reading their sessions while connected.
    SlowReader,
    /// The players join through the gateway; it is SIGKILLed and started again.
    GatewayRestart,
    /// The links between the zone processes conditioned, and cut for 5 s.
    ZoneLinks,
}

/// The size of a scenario's run (the ladder's own unless a test makes it smaller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size {
    /// Players.
    pub players: u32,
    /// Zones.
    pub zones: u32,
    /// Seconds the players run.
    pub seconds: u32,
    /// Seconds over which they start.
    pub ramp_s: f64,
}

/// One pass/fail line of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// What is required.
    pub what: String,
    /// What the run measured.
    pub measured: String,
    /// Whether it was met.
    pub pass: bool,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 7] = [
        Scenario::Steady16,
        Scenario::Lossy,
        Scenario::Storm,
        Scenario::ZoneKill,
        Scenario::SlowReader,
        Scenario::GatewayRestart,
        Scenario::ZoneLinks,
    ];

    /// Its name on the command line and in `docs/load/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Steady16 => "steady16",
            Self::Lossy => "lossy",
            Self::Storm => "storm",
            Self::ZoneKill => "zone_kill",
            Self::SlowReader => "slow_reader",
            Self::GatewayRestart => "gateway_restart",
            Self::ZoneLinks => "zone_links",
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
                format!("no scenario `{name}` (there are {})", names.join(", "))
            })
    }

    /// The ladder's size of this scenario.
    pub fn size(self) -> Size {
        match self {
            Self::Steady16 => Size {
                players: 16,
                zones: 2,
                seconds: 60,
                ramp_s: 2.0,
            },
            Self::Lossy => Size {
                players: 100,
                zones: 4,
                seconds: 40,
                ramp_s: 5.0,
            },
            Self::Storm => Size {
                players: 500,
                zones: 8,
                seconds: 40,
                ramp_s: 10.0,
            },
            // The fault scenarios: 100 players on 4 zones for a minute.
            Self::ZoneKill | Self::SlowReader | Self::GatewayRestart | Self::ZoneLinks => Size {
                players: 100,
                zones: 4,
                seconds: 60,
                ramp_s: 10.0,
            },
        }
    }

    /// Seconds from the players' start to the storm: the ramp and 10 s of steady play, or
    /// less steady play when the run is short, so that [`STORM_WINDOW_S`] seconds are left
    /// after the storm for every player to come back (a run that ends earlier would count a
    /// player still reconnecting as lost).
    fn storm_at_s(size: &Size) -> f64 {
        (size.ramp_s + 10.0).min(f64::from(size.seconds) - STORM_WINDOW_S)
    }

    /// Seconds from the players' start to the slow readers' stall: the ramp and 10 s of
    /// steady play, or less when the run is short, so that [`STALL_WINDOW_S`] are left after.
    fn stall_at_s(size: &Size) -> f64 {
        (size.ramp_s + 10.0).min(f64::from(size.seconds) - STALL_WINDOW_S)
    }

    /// Seconds from the players' start to the gateway's kill: the ramp and 10 s of steady
    /// play, or less when the run is short, so that [`GATEWAY_WINDOW_S`] are left after.
    fn gateway_kill_at_s(size: &Size) -> f64 {
        (size.ramp_s + 10.0).min(f64::from(size.seconds) - GATEWAY_WINDOW_S)
    }

    /// Seconds from the players' start to the zone links' cut, leaving [`LINK_WINDOW_S`] after.
    fn link_cut_at_s(size: &Size) -> f64 {
        (size.ramp_s + LINK_CUT_AFTER_RAMP_S).min(f64::from(size.seconds) - LINK_WINDOW_S)
    }

    /// The faults of this scenario at `size`.
    pub fn faults(self, size: &Size) -> Faults {
        match self {
            Self::Steady16 => Faults::default(),
            Self::Lossy => Faults {
                link_delay_ms: Some(100),
                link_loss: 0.02,
                compare_state: true,
                ..Faults::default()
            },
            Self::Storm => Faults {
                storm_at_s: Some(Self::storm_at_s(size)),
                ..Faults::default()
            },
            Self::ZoneKill => Faults {
                zone_kill: Some(ZoneKill {
                    zone: 1.min(size.zones - 1),
                    at_s: Self::kill_at_s(size),
                    down_s: KILL_DOWN_S,
                }),
                ..Faults::default()
            },
            Self::SlowReader => {
                let at_s = Self::stall_at_s(size);
                Faults {
                    stall: Some(Stall {
                        at_s,
                        share: STALL_SHARE,
                    }),
                    // Steady play before the stall against the rest of the run after it.
                    windows: Some([size.ramp_s + 2.0, at_s, at_s + 2.0]),
                    ..Faults::default()
                }
            }
            Self::GatewayRestart => {
                let at_s = Self::gateway_kill_at_s(size);
                Faults {
                    gateway: Some(GatewayKill {
                        at_s,
                        down_s: GATEWAY_DOWN_S,
                    }),
                    windows: Some([
                        size.ramp_s + 2.0,
                        at_s,
                        at_s + load_criteria::GATEWAY_BACK_S + 2.0,
                    ]),
                    ..Faults::default()
                }
            }
            Self::ZoneLinks => {
                let cut_at_s = Self::link_cut_at_s(size);
                Faults {
                    zone_links: Some(ZoneLinks {
                        delay_ms: 25,
                        jitter_ms: 10,
                        loss: 0.01,
                        reorder: 0.01,
                        cut_at_s,
                        cut_s: LINK_CUT_S,
                    }),
                    windows: Some([size.ramp_s + 2.0, cut_at_s, cut_at_s + LINK_CUT_S + 5.0]),
                    ..Faults::default()
                }
            }
        }
    }

    /// Seconds from the players' start to the zone kill: the ramp and 10 s of steady play, or
    /// less when the run is short, so that [`KILL_WINDOW_S`] seconds are left after it.
    fn kill_at_s(size: &Size) -> f64 {
        (size.ramp_s + 10.0).min(f64::from(size.seconds) - KILL_WINDOW_S)
    }

    /// Why this scenario cannot run at `size`, if it cannot.
    pub fn check_size(self, size: &Size) -> Result<(), String> {
        if self == Self::ZoneKill && (size.zones < 2 || Self::kill_at_s(size) < size.ramp_s + 2.0) {
            return Err(format!(
                "a zone kill needs 2 zones or more and at least the ramp ({} s), 2 s of steady \
                 play and {KILL_WINDOW_S} s after the kill: {} zones, {} s",
                size.ramp_s, size.zones, size.seconds
            ));
        }
        if self == Self::SlowReader
            && (Self::stall_at_s(size) < size.ramp_s + 4.0
                || (f64::from(size.players) * STALL_SHARE).round() < 1.0)
        {
            return Err(format!(
                "a slow-reader run needs at least the ramp ({} s), 4 s of steady play, \
                 {STALL_WINDOW_S} s after the stall and {:.0} players: {} players, {} s",
                size.ramp_s,
                (0.5 / STALL_SHARE).ceil(),
                size.players,
                size.seconds
            ));
        }
        if self == Self::GatewayRestart && Self::gateway_kill_at_s(size) < size.ramp_s + 4.0 {
            return Err(format!(
                "a gateway-restart run needs at least the ramp ({} s), 4 s of steady play and \
                 {GATEWAY_WINDOW_S} s after the kill: {} s is too short",
                size.ramp_s, size.seconds
            ));
        }
        if self == Self::ZoneLinks
            && (size.zones < 2 || Self::link_cut_at_s(size) < size.ramp_s + 4.0)
        {
            return Err(format!(
                "a zone-links run needs 2 zones or more and at least the ramp ({} s), 4 s of \
                 steady play and {LINK_WINDOW_S} s after the cut: {} zones, {} s",
                size.ramp_s, size.zones, size.seconds
            ));
        }
        if self == Self::Storm && Self::storm_at_s(size) < size.ramp_s + 2.0 {
            return Err(format!(
                "a storm run needs at least the ramp ({} s), 2 s of steady play and {STORM_WINDOW_S} s \
                 to come back: {} s is too short",
                size.ramp_s, size.seconds
            ));
        }
        Ok(())
    }

    /// The load run of this scenario at `size`, its report in `out`.
    pub fn options(self, size: Size, release: bool, out: PathBuf) -> LoadOptions {
        LoadOptions {
            players: size.players,
            zones: size.zones,
            // The fault ladder's reports were made with one process per zone.
            zones_per_process: 1,
            seconds: size.seconds,
            entities: 200,
            transport: "wt".into(),
            ramp_s: size.ramp_s,
            command_hz: 20.0,
            hysteresis_ticks: 80,
            out,
            command: format!(
                "cargo xtask load --scenario {}{}{}",
                self.name(),
                if size == self.size() {
                    String::new()
                } else {
                    format!(
                        " --scenario-players {} --scenario-zones {}",
                        size.players, size.zones
                    )
                },
                if release { " --release" } else { "" }
            ),
            release,
            faults: self.faults(&size),
            godot_clients: 0,
            interest_radius_m: None,
            // As game clients: an endpoint (UDP flow) per player, so the conditioned link's relay
            // sees a flow per player and a storm is a handshake per player.
            sessions_per_endpoint: Some(0),
            original_scheme_observers: 0,
        }
    }

    /// Judges a run of this scenario.
    pub fn criteria(self, r: &LoadResult, opts: &LoadOptions) -> Vec<Criterion> {
        let s = &r.data.summary;
        let mut c = vec![Criterion {
            what: format!("every player joined ({})", opts.players),
            measured: s.joined.to_string(),
            pass: s.joined == opts.players,
        }];
        match self {
            Self::Steady16 => {
                c.push(Criterion {
                    what: "no gap between own updates > 3 ticks".into(),
                    measured: format!("longest {} ticks", s.gap_max_ticks),
                    pass: s.gap_max_ticks <= 3 && s.own_hz_median > 0.0,
                });
                let h = &r.held;
                c.push(Criterion {
                    what: "no entity held by two zones (zones' /state, each second)".into(),
                    measured: format!(
                        "{} snapshots, {} duplicated, {} seen twice in one snapshot only",
                        h.snapshots, h.duplicated, h.transient
                    ),
                    pass: h.duplicated == 0 && h.snapshots >= opts.seconds / 2,
                });
                c.push(memory_flat(r, opts.ramp_s + 2.0, |_| true));
                c.push(no_errors(r));
            }
            Self::Lossy => {
                let k = &s.compared;
                c.push(Criterion {
                    what: "no desync: each player's view within one tick of motion of the zones' /state".into(),
                    measured: format!(
                        "{} entity states compared, {} off (worst {:.3} m beyond)",
                        k.entities, k.desynced, k.worst_excess_m
                    ),
                    pass: k.entities > 0 && k.desynced == 0,
                });
                let (loss, measured) = match &s.relay {
                    Some(l) if l.received > 0 => {
                        let share = l.dropped as f64 / l.received as f64;
                        (
                            share,
                            format!(
                                "{:.2} % of {} datagrams dropped, {} flows",
                                share * 100.0,
                                l.received,
                                l.flows
                            ),
                        )
                    }
                    _ => (0.0, "no conditioned link".into()),
                };
                c.push(Criterion {
                    what: "the links lost about 2 % each way (1..3 %)".into(),
                    measured,
                    pass: (0.01..=0.03).contains(&loss),
                });
            }
            Self::Storm => {
                let (measured, pass) = match &s.storm {
                    Some(st) => (
                        format!(
                            "{} dropped at {:.0} s, {} back; p50 {:.2} s, p99 {:.2} s, all {:.2} s",
                            st.dropped,
                            st.at_s,
                            st.recovered,
                            st.recovery_p50_s,
                            st.recovery_p99_s,
                            st.recovery_max_s
                        ),
                        st.dropped == s.joined
                            && st.dropped > 0
                            && st.recovered == st.dropped
                            && st.recovery_max_s < 5.0,
                    ),
                    None => ("no storm".into(), false),
                };
                c.push(Criterion {
                    what: "every player dropped and was back receiving its avatar in < 5 s".into(),
                    measured,
                    pass,
                });
                c.push(no_errors(r));
            }
            Self::ZoneKill => c.extend(zone_kill_criteria(r, opts)),
            Self::SlowReader => c.extend(load_criteria::slow_reader(r, opts)),
            Self::GatewayRestart => c.extend(load_criteria::gateway_restart(r, opts)),
            Self::ZoneLinks => c.extend(load_criteria::zone_links(r, opts)),
        }
        c
    }
}

/// A zone kill's criteria: it came back with what it journaled, the others kept their ticks
/// on time, every session it took came back, and nobody else saw an error.
fn zone_kill_criteria(r: &LoadResult, opts: &LoadOptions) -> Vec<Criterion> {
    let Some(k) = r.crash else {
        return load_criteria::not_run("the zone was killed", "no crash ran");
    };
    let mut c = Vec::new();
    c.push(Criterion {
        what: format!("zone {} was killed and came back on its port", k.zone),
        measured: match k.back_at_s {
            Some(b) => format!(
                "killed at {:.0} s, ready again at {:.0} s ({:.0} s down)",
                k.killed_at_s,
                b,
                b - k.killed_at_s
            ),
            None => format!("killed at {:.0} s, not back", k.killed_at_s),
        },
        pass: k.back_at_s.is_some(),
    });
    c.push(Criterion {
        what: format!(
            "it reloaded its journal: owns >= {:.0} % of what it owned before",
            KILL_RELOADED * 100.0
        ),
        measured: format!(
            "{} entities before the kill, {} after the restart",
            k.owned_before, k.owned_after
        ),
        pass: k.owned_before > 0.0 && k.owned_after >= KILL_RELOADED * k.owned_before,
    });
    c.push(ticks_on_time(
        r,
        opts.ramp_s + 2.0,
        Some(k.zone as usize),
        "the other zones",
    ));
    let players = &r.data.summary.per_player;
    let (lost, unrecovered) = load_criteria::lost_sessions(r);
    let slowest = lost
        .iter()
        .flat_map(|p| p.outages.iter().copied())
        .fold(0.0, f64::max);
    c.push(Criterion {
        what: "every player whose session the crash took was back".into(),
        measured: format!(
            "{} players lost their session, {} not back; the slowest back {slowest:.1} s after it noticed",
            lost.len(),
            unrecovered
        ),
        pass: !lost.is_empty() && unrecovered == 0,
    });
    let bystanders: Vec<_> = players
        .iter()
        .filter(|p| p.outages.is_empty() && p.outages_unrecovered == 0 && p.error_count > 0)
        .collect();
    c.push(Criterion {
        what: "no errors for the players whose session it did not take".into(),
        measured: match bystanders.first() {
            Some(p) => format!(
                "{} players (the first: player {}: {})",
                bystanders.len(),
                p.index,
                p.errors.first().map_or("", String::as_str)
            ),
            None => "0".into(),
        },
        pass: bystanders.is_empty(),
    });
    c
}

/// Puts the scenario's section (its name, the verdict and the criteria) into the report at
/// `md`, after its title and command.
pub fn write_section(md: &Path, scenario: Scenario, criteria: &[Criterion]) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(md).with_context(|| format!("reading {}", md.display()))?;
    let all = criteria.iter().all(|c| c.pass);
    let mut section = format!(
        "## Scenario `{}`: {}\n\n| criterion | measured | pass |\n|---|---|---|\n",
        scenario.name(),
        if all { "PASS" } else { "**FAIL**" }
    );
    for c in criteria {
        section += &format!(
            "| {} | {} | {} |\n",
            c.what,
            c.measured.replace('|', "/"),
            if c.pass { "pass" } else { "**FAIL**" }
        );
    }
    section.push('\n');
    let at = text.find("\n## ").map_or(text.len(), |i| i + 1);
    let out = format!("{}{}{}", &text[..at], section, &text[at..]);
    std::fs::write(md, out).with_context(|| format!("writing {}", md.display()))
}

/// Runs `scenario` at `size`, judges it and writes its report into `out`.
pub fn run_scenario(
    scenario: Scenario,
    size: Size,
    release: bool,
    out: PathBuf,
    stop: &AtomicBool,
    log: impl Fn(&str),
) -> anyhow::Result<(LoadResult, Vec<Criterion>)> {
    scenario
        .check_size(&size)
        .map_err(|e| anyhow::anyhow!("scenario `{}`: {e}", scenario.name()))?;
    let opts = scenario.options(size, release, out);
    let r = run_load(&opts, stop, log)?;
    let criteria = scenario.criteria(&r, &opts);
    write_section(&r.written.markdown, scenario, &criteria)?;
    Ok((r, criteria))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(seconds: u32, ramp_s: f64) -> Size {
        Size {
            players: 40,
            zones: 2,
            seconds,
            ramp_s,
        }
    }

    #[test]
    fn a_storm_leaves_time_to_come_back() {
        // The CI size: the storm moves earlier so 6 s are left after it.
        assert_eq!(Scenario::storm_at_s(&size(14, 2.0)), 8.0);
        // The default size keeps its 10 s of steady play.
        let full = Scenario::Storm.size();
        assert_eq!(Scenario::storm_at_s(&full), full.ramp_s + 10.0);
        assert!(f64::from(full.seconds) - Scenario::storm_at_s(&full) >= STORM_WINDOW_S);
        assert!(Scenario::Storm.check_size(&size(14, 2.0)).is_ok());
        let short = Scenario::Storm.check_size(&size(9, 2.0)).unwrap_err();
        assert!(short.contains("9 s is too short"), "{short}");
        assert!(Scenario::Lossy.check_size(&size(9, 2.0)).is_ok());
    }
}
