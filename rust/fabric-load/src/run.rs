//! Many players on one runtime: starts them (spread over a ramp so the joins are not one
//! burst), prints a progress line each second, and sums up what they measured in a
//! [`Summary`] (written as JSON for the scenario report).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::desync::Compared;
use crate::original::{self, OriginalStats};
use crate::player::{self, Behaviour};
use crate::relay::RelayFigures;
use crate::stall::{StallFigures, StallPlan};
use crate::stats::{
    DELAY_BUCKET_MS, DELAY_BUCKETS, GAP_BUCKETS, Histogram, Live, PlayerStats, Second,
};
use crate::target::{Target, Transport};
use crate::windows::WindowFigures;

/// A run: how many players, for how long, doing what.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Players.
    pub players: u32,
    /// Seconds from the first player's start to the end.
    pub seconds: f64,
    /// Seconds over which the players' starts are spread.
    pub ramp_s: f64,
    /// What each player does.
    pub behaviour: Behaviour,
    /// Seconds from the start to the reconnect storm (every player drops its session and joins
    /// again at once), if any.
    pub storm_at_s: Option<f64>,
    /// Observers of the original scheme (the baseline, [`crate::original`]), spread over the
    /// zones; they measure from the end of the ramp.
    pub original_scheme_observers: u32,
    /// The slow reader: a share of the players stop reading at a given second
    /// ([`crate::stall`]).
    pub stall: Option<StallPlan>,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Players started.
    pub players: u32,
    /// Zones.
    pub zones: u32,
    /// `wt` or `ws`.
    pub transport: String,
    /// Seconds the run lasted.
    pub seconds: f64,
    /// Players that got an avatar at least once.
    pub joined: u32,
    /// Median over players of own updates per second.
    pub own_hz_median: f64,
    /// 5th percentile over players of own updates per second (the unlucky ones).
    pub own_hz_p5: f64,
    /// Median over players of the nearest entities' update rate.
    pub nearest_hz_median: f64,
    /// 5th percentile of the same.
    pub nearest_hz_p5: f64,
    /// 99th percentile of all gaps between own updates, ticks.
    pub gap_p99_ticks: f64,
    /// Longest gap any player saw, ticks.
    pub gap_max_ticks: u32,
    /// Median over players of bytes received per second.
    pub bytes_per_s_median: f64,
    /// Most bytes per second one player received.
    pub bytes_per_s_max: f64,
    /// Delay (see [`crate::stats`]) p50 over all packets, milliseconds.
    pub delay_p50_ms: f64,
    /// Delay p99, milliseconds.
    pub delay_p99_ms: f64,
    /// Hand-offs (rejoins after the avatar migrated), all players.
    pub handoffs: u64,
    /// Commands refused by the zones (reason `not_here` excluded), all players.
    pub commands_refused: u64,
    /// Errors, all players.
    pub errors: u64,
    /// A few error texts.
    pub error_examples: Vec<String>,
    /// Gaps between own updates, all players (1-tick buckets).
    pub gaps: Histogram,
    /// Delays, all players (2 ms buckets).
    pub delays: Histogram,
    /// Each second's progress line.
    pub series: Vec<Second>,
    /// Every player's figures.
    pub per_player: Vec<PlayerStats>,
    /// The reconnect storm's figures, when there was one.
    #[serde(default)]
    pub storm: Option<StormFigures>,
    /// The players' views compared with the zones' `/state`, all players.
    #[serde(default)]
    pub compared: Compared,
    /// What the conditioned links did, when the players' links went through relays.
    #[serde(default)]
    pub relay: Option<RelayFigures>,
    /// The original scheme's observers (the baseline measured in the same run), if any.
    #[serde(default)]
    pub original_scheme: Vec<OriginalStats>,
    /// The players that did not stall, before the fault and after it, when the run had
    /// windows ([`crate::windows`]).
    #[serde(default)]
    pub windows: Option<WindowFigures>,
    /// The slow reader's figures, when players stalled.
    #[serde(default)]
    pub stall: Option<StallFigures>,
}

/// The reconnect storm: how fast the players got back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StormFigures {
    /// Seconds from the start to the storm.
    pub at_s: f64,
    /// Players whose session the storm dropped.
    pub dropped: u32,
    /// Of those, the ones that received their own avatar again.
    pub recovered: u32,
    /// Median seconds from the drop to the first own update after it.
    pub recovery_p50_s: f64,
    /// 99th percentile of the same.
    pub recovery_p99_s: f64,
    /// The slowest player's, i.e. the time until all were back (when all recovered).
    pub recovery_max_s: f64,
    /// Where the time went: p50 and p99 over the players of the seconds from the drop to
    /// each step back, in the order of [`STORM_STEPS`] (token, session open, welcome, avatar).
    #[serde(default)]
    pub steps_s: [(f64, f64); 4],
}

/// The steps of [`StormFigures::steps_s`], as the summary names them.
pub const STORM_STEPS: [&str; 4] = ["token", "session open", "welcome", "avatar"];

impl StormFigures {
    /// The storm at `at_s` as `players` lived it.
    pub fn new(at_s: f64, players: &[PlayerStats]) -> Self {
        let dropped = players
            .iter()
            .filter(|p| p.storm_dropped_at.is_some())
            .count();
        let times = sorted(players, |p| p.storm_recovery_s.unwrap_or(f64::NAN));
        let times: Vec<f64> = times.into_iter().filter(|t| !t.is_nan()).collect();
        Self {
            at_s,
            dropped: dropped as u32,
            recovered: times.len() as u32,
            recovery_p50_s: percentile(&times, 0.5),
            recovery_p99_s: percentile(&times, 0.99),
            recovery_max_s: times.last().copied().unwrap_or(0.0),
            steps_s: [0, 1, 2, 3].map(|k| {
                let v: Vec<f64> = sorted(players, |p| {
                    let s = p.storm_phases.unwrap_or_default();
                    [s.token_s, s.connected_s, s.welcomed_s, s.avatar_s][k].unwrap_or(f64::NAN)
                })
                .into_iter()
                .filter(|t| !t.is_nan())
                .collect();
                (percentile(&v, 0.5), percentile(&v, 0.99))
            }),
        }
    }
}

/// Seconds with an avatar a player needs before its rates count in the summary.
pub const MIN_RATE_SECONDS: f64 = 1.0;

/// The value at share `q` of sorted `v` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(players: &[PlayerStats], f: impl Fn(&PlayerStats) -> f64) -> Vec<f64> {
    sorted_f64(players.iter().map(f).collect())
}

impl Summary {
    /// Sums up `players`: the rates count only players that held an avatar for at least
    /// [`MIN_RATE_SECONDS`] (a player that joined just before the end would divide its first
    /// packet's bytes by a few milliseconds).
    pub fn new(
        target: &Target,
        seconds: f64,
        series: Vec<Second>,
        per_player: Vec<PlayerStats>,
    ) -> Self {
        let joined = per_player.iter().filter(|p| p.joins > 0).count();
        let timed: Vec<PlayerStats> = per_player
            .iter()
            .filter(|p| p.seconds >= MIN_RATE_SECONDS)
            .cloned()
            .collect();
        let own = sorted(&timed, PlayerStats::own_hz);
        let near = sorted(&timed, PlayerStats::nearest_hz);
        let bps = sorted(&timed, PlayerStats::bytes_per_s);
        let mut gaps = Histogram::new(1.0, GAP_BUCKETS);
        let mut delays = Histogram::new(DELAY_BUCKET_MS, DELAY_BUCKETS);
        for p in &per_player {
            gaps.merge(&p.gaps);
            delays.merge(&p.delays);
        }
        Self {
            players: per_player.len() as u32,
            zones: target.zones.len() as u32,
            transport: match target.transport {
                Transport::WebTransport => "wt",
                Transport::WebSocket => "ws",
            }
            .into(),
            seconds,
            joined: joined as u32,
            own_hz_median: percentile(&own, 0.5),
            own_hz_p5: percentile(&own, 0.05),
            nearest_hz_median: percentile(&near, 0.5),
            nearest_hz_p5: percentile(&near, 0.05),
            // Bucket k holds gaps of k ticks: its lower edge is the gap.
            gap_p99_ticks: (gaps.quantile(0.99) - 1.0).max(0.0),
            gap_max_ticks: per_player
                .iter()
                .map(|p| p.max_gap_ticks)
                .max()
                .unwrap_or(0),
            bytes_per_s_median: percentile(&bps, 0.5),
            bytes_per_s_max: bps.last().copied().unwrap_or(0.0),
            delay_p50_ms: delays.quantile(0.5),
            delay_p99_ms: delays.quantile(0.99),
            handoffs: per_player.iter().map(|p| u64::from(p.handoffs)).sum(),
            commands_refused: per_player.iter().map(|p| p.commands_refused).sum(),
            errors: per_player.iter().map(|p| u64::from(p.error_count)).sum(),
            error_examples: per_player
                .iter()
                .flat_map(|p| {
                    p.errors
                        .iter()
                        .map(move |e| format!("player {}: {e}", p.index))
                })
                .take(8)
                .collect(),
            compared: per_player.iter().fold(Compared::default(), |mut c, p| {
                c.add(p.compared);
                c
            }),
            gaps,
            delays,
            series,
            per_player,
            storm: None,
            relay: None,
            original_scheme: Vec::new(),
            windows: None,
            stall: None,
        }
    }

    /// The final summary in a few lines.
    pub fn text(&self) -> String {
        format!(
            "players {} joined {} over {} zones ({}), {:.0} s\n\
             own avatar updates: median {:.1} Hz, p5 {:.1} Hz; gaps p99 {:.0} ticks, max {}\n\
             nearest {} entities: median {:.1} Hz, p5 {:.1} Hz\n\
             bytes/s per player: median {:.0}, max {:.0}\n\
             delay above the fastest packet: p50 {:.0} ms, p99 {:.0} ms\n\
             hand-offs {}, commands refused {}, errors {}",
            self.players,
            self.joined,
            self.zones,
            self.transport,
            self.seconds,
            self.own_hz_median,
            self.own_hz_p5,
            self.gap_p99_ticks,
            self.gap_max_ticks,
            crate::stats::NEAREST,
            self.nearest_hz_median,
            self.nearest_hz_p5,
            self.bytes_per_s_median,
            self.bytes_per_s_max,
            self.delay_p50_ms,
            self.delay_p99_ms,
            self.handoffs,
            self.commands_refused,
            self.errors,
        ) + &self.fault_text()
    }

    /// The fault lines of the summary (storm, desync check, conditioned link), when present.
    fn fault_text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.storm {
            out += &format!(
                "\nstorm at {:.0} s: {} dropped, {} back; back within p50 {:.2} s, p99 {:.2} s, all {:.2} s",
                s.at_s,
                s.dropped,
                s.recovered,
                s.recovery_p50_s,
                s.recovery_p99_s,
                s.recovery_max_s
            );
            let steps: Vec<String> = STORM_STEPS
                .iter()
                .zip(s.steps_s)
                .map(|(name, (p50, p99))| format!("{name} {p50:.2}/{p99:.2} s"))
                .collect();
            out += &format!(
                "\nstorm, the way back (p50/p99 after the drop): {}",
                steps.join(", ")
            );
        }
        if self.compared.entities > 0 {
            out += &format!(
                "\nview vs zones: {} entities compared, {} desynced (worst {:.3} m beyond one tick)",
                self.compared.entities, self.compared.desynced, self.compared.worst_excess_m
            );
        }
        if !self.original_scheme.is_empty() {
            let o = &self.original_scheme;
            let bytes: Vec<f64> = o.iter().map(|s| s.bytes_per_s).collect();
            let median = percentile(&sorted_f64(bytes), 0.5);
            out += &format!(
                "\noriginal scheme (baseline, same run): {} observers, bytes/s per client median {:.0} ({:.0}x ours), {}-{} entities per zone in a second, {:.1} updates/s per entity, {} bad datagrams, {} observers failed",
                o.len(),
                median,
                median / self.bytes_per_s_median.max(1.0),
                o.iter().map(|s| s.entities).min().unwrap_or(0),
                o.iter().map(|s| s.entities).max().unwrap_or(0),
                o.iter().map(OriginalStats::per_entity_hz).sum::<f64>() / o.len() as f64,
                o.iter().map(|s| s.bad).sum::<u64>(),
                o.iter().filter(|s| s.error.is_some()).count(),
            );
        }
        if let Some(s) = &self.stall {
            out += &format!("\n{}", s.text());
        }
        if let Some(w) = &self.windows {
            out += &format!("\nwindows (players that did not stall): {}", w.text());
        }
        if let Some(r) = &self.relay {
            out += &format!(
                "\nconditioned links: {} flows, {} datagrams in, {} dropped, {} delivered",
                r.flows, r.received, r.dropped, r.sent
            );
        }
        out
    }
}

/// One progress line.
pub fn progress_line(s: &Second) -> String {
    format!(
        "[load +{:>5.1} s] players {:>5}  updates/s {:>8.0}  packets/s {:>8.0}  bytes/s {:>10.0}  p99 gap {:>3.0} ticks  errors {}",
        s.t,
        s.connected,
        s.updates_per_s,
        s.packets_per_s,
        s.bytes_per_s,
        s.p99_gap_ticks,
        s.errors
    )
}

/// Runs `plan` against `target` on the current runtime, printing a progress line each second
/// (through `print`); returns the summary.
pub async fn run(target: Target, plan: Plan, print: impl Fn(&str)) -> Summary {
    let target = Arc::new(target);
    let t0 = Instant::now();
    let live = Arc::new(Live::starting(t0));
    let deadline = t0 + Duration::from_secs_f64(plan.seconds.max(0.0));
    let mut tasks = Vec::with_capacity(plan.players as usize);
    let gap = plan.ramp_s.max(0.0) / f64::from(plan.players.max(1));
    for index in 0..plan.players {
        let start = t0 + Duration::from_secs_f64(gap * f64::from(index));
        let (target, live) = (target.clone(), live.clone());
        let how = plan.behaviour;
        let storm = plan
            .storm_at_s
            .map(|s| t0 + Duration::from_secs_f64(s.max(0.0)));
        let stall = plan
            .stall
            .filter(|p| p.stalls(index))
            .map(|p| t0 + Duration::from_secs_f64(p.at_s.max(0.0)));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            player::run(index, target, how, live, deadline, storm, stall).await
        }));
    }
    let measure_from = t0 + Duration::from_secs_f64(plan.ramp_s.max(0.0));
    let zones = target.zones.len().max(1) as u32;
    let observers: Vec<_> = (0..plan.original_scheme_observers)
        .map(|i| {
            let zone = (i % zones) as u8;
            tokio::spawn(original::observe(
                i,
                zone,
                target.clone(),
                measure_from,
                deadline,
            ))
        })
        .collect();
    let mut series = Vec::new();
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = Instant::now();
    while Instant::now() < deadline {
        tick.tick().await;
        let now = Instant::now();
        let s = live.take_second((now - t0).as_secs_f64(), (now - last).as_secs_f64());
        last = now;
        print(&progress_line(&s));
        series.push(s);
    }
    let mut per_player = Vec::with_capacity(tasks.len());
    for (index, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(p) => per_player.push(p),
            Err(e) => {
                let mut p = PlayerStats::new(index as u32);
                p.error(format!("player task failed: {e}"));
                per_player.push(p);
            }
        }
    }
    let mut summary = Summary::new(&target, t0.elapsed().as_secs_f64(), series, per_player);
    summary.storm = plan
        .storm_at_s
        .map(|at| StormFigures::new(at, &summary.per_player));
    summary.stall = plan
        .stall
        .map(|p| StallFigures::new(p.at_s, &summary.per_player));
    summary.windows = plan.behaviour.windows.map(|w| {
        let stalls = |p: &PlayerStats| plan.stall.is_some_and(|s| s.stalls(p.index));
        WindowFigures::new(&w, &summary.per_player, |p| !stalls(p), plan.seconds)
    });
    for o in observers {
        summary
            .original_scheme
            .push(o.await.unwrap_or_else(|e| OriginalStats {
                error: Some(format!("observer task failed: {e}")),
                ..OriginalStats::default()
            }));
    }
    summary
}

/// `v` sorted ascending (NaN last).
fn sorted_f64(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.05), 1.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_player_with_a_moment_of_avatar_counts_as_joined_but_not_in_the_rates() {
        let zones = vec![
            crate::target::ZoneAddr::parse(
                "127.0.0.1:7000,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
            .unwrap(),
        ];
        let target = Target::new(zones, 15.0, None, Transport::WebTransport).unwrap();
        let mut steady = PlayerStats::new(0);
        (steady.joins, steady.seconds, steady.bytes) = (1, 10.0, 10_000);
        let mut late = PlayerStats::new(1);
        (late.joins, late.seconds, late.bytes) = (1, 0.002, 1_000);
        let s = Summary::new(&target, 10.0, Vec::new(), vec![steady, late]);
        assert_eq!(s.joined, 2);
        assert_eq!(s.bytes_per_s_max, 1000.0, "not 500,000 B/s from 2 ms");
    }

    #[test]
    fn the_storm_figures_split_the_way_back_into_steps_over_the_players_that_reached_them() {
        let mut players: Vec<PlayerStats> = (0..4).map(PlayerStats::new).collect();
        for (k, p) in players.iter_mut().enumerate() {
            let k = k as f64;
            p.storm_dropped_at = Some(tokio::time::Instant::now());
            p.storm_phases = Some(crate::stats::StormPhases {
                token_s: Some(0.1 * (k + 1.0)),
                connected_s: Some(1.0 + k),
                // The last player never got its welcome.
                welcomed_s: (k < 3.0).then_some(2.0 + k),
                avatar_s: (k < 3.0).then_some(3.0 + k),
            });
            p.storm_recovery_s = (k < 3.0).then_some(3.5 + k);
        }
        let s = StormFigures::new(20.0, &players);
        assert_eq!((s.dropped, s.recovered), (4, 3));
        assert_eq!(s.recovery_max_s, 5.5);
        assert_eq!(s.steps_s[0], (0.2, 0.4), "token over 4 players");
        assert_eq!(s.steps_s[1], (2.0, 4.0), "session open over 4 players");
        assert_eq!(s.steps_s[2], (3.0, 4.0), "welcome over the 3 that got it");
        assert_eq!(s.steps_s[3], (4.0, 5.0));
    }
}
