//! The criteria of the fault ladder's scenarios that more than one scenario uses (no errors,
//! memory flat, every tick on time) and those of the second part of the ladder (issue 16):
//! the slow reader, the gateway restarted, the zone links conditioned and cut. Each judges the
//! run's own figures ([`crate::load::LoadResult`]) into [`Criterion`] lines.

use crate::load::{LoadOptions, LoadResult};
use crate::load_scenario::Criterion;

/// Seconds after which every process's memory is compared with its end.
pub const MEMORY_WINDOW_S: f64 = 10.0;
/// Growth of a process's resident memory still called flat, percent.
pub const MEMORY_FLAT_PERCENT: f64 = 10.0;
/// Growth still called flat whatever the percentage, MiB (allocator noise of small processes).
pub const MEMORY_FLAT_MIB: f64 = 8.0;
/// A zone's tick budget, milliseconds (20 Hz is 50 ms).
pub const TICK_BUDGET_MS: f64 = 50.0;
/// Share of their own update rate before a fault that the players must keep after it.
pub const RATE_KEPT: f64 = 0.9;

/// No errors counted by the players.
pub fn no_errors(r: &LoadResult) -> Criterion {
    let s = &r.data.summary;
    Criterion {
        what: "no errors".into(),
        measured: match s.error_examples.first() {
            Some(e) => format!(
                "{} (the first: {})",
                s.errors,
                e.chars().take(160).collect::<String>()
            ),
            None => s.errors.to_string(),
        },
        pass: s.errors == 0,
    }
}

/// Every process's resident memory (of the processes whose name `counted` accepts) at the
/// end (mean of the last [`MEMORY_WINDOW_S`]) against its start (mean of the first
/// [`MEMORY_WINDOW_S`] after `after_s`).
pub fn memory_flat(r: &LoadResult, after_s: f64, counted: impl Fn(&str) -> bool) -> Criterion {
    let mut worst = (String::new(), 0.0_f64, 0.0_f64);
    let mut pass = true;
    let mut measured_any = false;
    for p in r.data.processes.iter().filter(|p| counted(&p.name)) {
        let s: Vec<(f64, f64)> = p
            .samples
            .iter()
            .filter(|x| x.t >= after_s)
            .map(|x| (x.t, x.rss_mib))
            .collect();
        let (Some(first), Some(last)) = (s.first(), s.last()) else {
            continue;
        };
        if last.0 - first.0 < 2.0 * MEMORY_WINDOW_S {
            continue;
        }
        let mean = |from: f64, to: f64| {
            let v: Vec<f64> = s
                .iter()
                .filter(|x| x.0 >= from && x.0 < to)
                .map(|x| x.1)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let start = mean(first.0, first.0 + MEMORY_WINDOW_S);
        let end = mean(last.0 - MEMORY_WINDOW_S, last.0 + 1.0);
        let growth = end - start;
        let percent = if start > 0.0 {
            growth / start * 100.0
        } else {
            0.0
        };
        measured_any = true;
        if growth > MEMORY_FLAT_MIB && percent > MEMORY_FLAT_PERCENT {
            pass = false;
        }
        if growth > worst.1 {
            worst = (p.name.clone(), growth, percent);
        }
    }
    Criterion {
        what: format!(
            "memory flat: no process grows more than {MEMORY_FLAT_PERCENT:.0} % (and {MEMORY_FLAT_MIB:.0} MiB) from its first to its last {MEMORY_WINDOW_S:.0} s"
        ),
        measured: if worst.0.is_empty() {
            "no process grew".into()
        } else {
            format!(
                "most growth: {} +{:.1} MiB ({:+.1} %)",
                worst.0, worst.1, worst.2
            )
        },
        pass: pass && measured_any,
    }
}

/// Every zone but `skip` kept its tick p99 within [`TICK_BUDGET_MS`] and ran no overrun from
/// `after_s` on; `who` names them in the criterion.
pub fn ticks_on_time(r: &LoadResult, after_s: f64, skip: Option<usize>, who: &str) -> Criterion {
    let mut worst = (0usize, 0.0_f64, 0.0_f64);
    for (z, samples) in r.data.zones.iter().enumerate() {
        if Some(z) == skip {
            continue;
        }
        let late: Vec<_> = samples.iter().filter(|s| s.t >= after_s).collect();
        let p99 = late.iter().map(|s| s.tick_p99_ms).fold(0.0, f64::max);
        let overruns = match (late.first(), late.last()) {
            (Some(a), Some(b)) => b.overruns - a.overruns,
            _ => 0.0,
        };
        if (p99, overruns) > (worst.1, worst.2) {
            worst = (z, p99, overruns);
        }
    }
    Criterion {
        what: format!(
            "{who} kept every tick on time (tick p99 <= {TICK_BUDGET_MS:.0} ms after {after_s:.0} s, no overrun)"
        ),
        measured: format!(
            "worst zone {}: tick p99 {:.2} ms, {} overruns",
            worst.0, worst.1, worst.2
        ),
        pass: worst.1 <= TICK_BUDGET_MS && worst.2 == 0.0,
    }
}

/// The players the fault did not stall kept their own update rate and gaps: after it, the
/// median rate is at least [`RATE_KEPT`] of before, and the gaps' p99 at most one tick longer.
pub fn rates_kept(r: &LoadResult, who: &str) -> Criterion {
    let Some(w) = &r.data.summary.windows else {
        return Criterion {
            what: format!("{who} kept their update rate and gaps"),
            measured: "no windows measured".into(),
            pass: false,
        };
    };
    let (b, a) = (&w.before, &w.after);
    Criterion {
        what: format!(
            "{who} kept their update rate (median after >= {:.0} % of before) and gaps (p99 after <= before + 1 tick)",
            RATE_KEPT * 100.0
        ),
        measured: format!(
            "{}-{} s: {} players, median {:.1} Hz, p5 {:.1} Hz, gap p99 {:.0} max {}; {:.0}-{:.0} s: {} players, median {:.1} Hz, p5 {:.1} Hz, gap p99 {:.0} max {}",
            b.from_s as u32,
            b.to_s as u32,
            b.players,
            b.own_hz_median,
            b.own_hz_p5,
            b.gap_p99_ticks,
            b.gap_max_ticks,
            a.from_s,
            a.to_s,
            a.players,
            a.own_hz_median,
            a.own_hz_p5,
            a.gap_p99_ticks,
            a.gap_max_ticks
        ),
        pass: b.players > 0
            && a.players > 0
            && a.own_hz_median >= RATE_KEPT * b.own_hz_median
            && a.gap_p99_ticks <= b.gap_p99_ticks + 1.0,
    }
}

/// The slow reader's criteria: the stalled sessions were closed by their zone as slow readers
/// or held within its budgets (the zones' memory flat from the stall on), every tick on time,
/// and the other players unaffected.
pub fn slow_reader(r: &LoadResult, opts: &LoadOptions) -> Vec<Criterion> {
    let Some(plan) = opts.faults.stall else {
        return not_run("players stalled", "no stall planned");
    };
    let expected = (f64::from(opts.players) * plan.share).round() as u32;
    let mut c = Vec::new();
    c.push(match &r.data.summary.stall {
        Some(st) => Criterion {
            what: format!(
                "the {expected} stalled sessions ({:.0} %) were closed by their zone as slow readers (code {}) or held open within its budgets, none ended otherwise",
                plan.share * 100.0,
                fabric_net::budget::SLOW_READER
            ),
            measured: format!(
                "{} stalled at {:.0} s: {} closed as slow readers, {} still open at the end, {} ended otherwise{}; unread bytes/s per stalled player median {:.0}, max {:.0}",
                st.stalled,
                st.at_s,
                st.closed_slow_reader,
                st.open,
                st.closed_other,
                st.reasons
                    .first()
                    .map_or(String::new(), |r| format!(" (first: {r})")),
                st.waiting_bytes_per_s_median,
                st.waiting_bytes_per_s_max
            ),
            pass: st.stalled == expected
                && expected > 0
                && st.closed_other == 0
                && st.closed_slow_reader + st.open == st.stalled,
        },
        None => Criterion {
            what: "players stalled".into(),
            measured: "no stall figures".into(),
            pass: false,
        },
    });
    c.push(memory_flat(r, plan.at_s, |name| name.starts_with("zone")));
    c.push(ticks_on_time(r, opts.ramp_s + 2.0, None, "every zone"));
    c.push(rates_kept(r, "the players that kept reading"));
    c.push(no_errors(r));
    c
}

/// The one criterion of a run whose fault did not happen: `what` was required, `why` not.
pub fn not_run(what: &str, why: &str) -> Vec<Criterion> {
    vec![Criterion {
        what: what.into(),
        measured: why.into(),
        pass: false,
    }]
}

/// The players that lost a session (one that had an avatar ended in an error), and how many
/// of those losses were not recovered by the end.
pub fn lost_sessions(r: &LoadResult) -> (Vec<&fabric_load::stats::PlayerStats>, u32) {
    let lost: Vec<_> = r
        .data
        .summary
        .per_player
        .iter()
        .filter(|p| !p.outages.is_empty() || p.outages_unrecovered > 0)
        .collect();
    let unrecovered = lost.iter().map(|p| p.outages_unrecovered).sum();
    (lost, unrecovered)
}

/// Seconds from the gateway's kill within which every player must be back: the players notice
/// a dead gateway at their session's idle timeout (10 s: it sends nothing), then a retry
/// (after 1 s) and a join; 5 s of margin over the idle timeout.
pub const GATEWAY_BACK_S: f64 = 15.0;

/// No wanderer lost and no entity held by two zones (the zones' `/state`, each second).
pub fn entities_kept(r: &LoadResult) -> Criterion {
    let h = &r.held;
    Criterion {
        what: "no entity lost or duplicated (zones' /state each second: every wanderer held or incoming somewhere, no id held by two zones, two readings in a row)".into(),
        measured: format!(
            "{} snapshots; {} wanderers: {} lost, {} missing from one snapshot only, {} missing at the end; {} duplicated, {} seen twice in one snapshot only",
            h.snapshots, h.baseline, h.lost, h.missing_once, h.missing_last, h.duplicated, h.transient
        ),
        pass: h.snapshots > 0
            && h.baseline > 0
            && h.lost == 0
            && h.missing_last == 0
            && h.duplicated == 0,
    }
}

/// The gateway restart's criteria: it came back on its address, every player's session it took
/// came back by itself within [`GATEWAY_BACK_S`] of the kill, the zones kept every tick on
/// time and every entity, no other errors, and the players' rates after it as before.
pub fn gateway_restart(r: &LoadResult, opts: &LoadOptions) -> Vec<Criterion> {
    let Some(g) = r.gateway else {
        return not_run("the gateway was killed", "no gateway crash ran");
    };
    let mut c = Vec::new();
    c.push(Criterion {
        what: "the gateway was SIGKILLed and came back on its address".into(),
        measured: match g.back_at_s {
            Some(b) => format!(
                "killed at {:.0} s, ready again at {:.0} s",
                g.killed_at_s, b
            ),
            None => format!("killed at {:.0} s, not back", g.killed_at_s),
        },
        pass: g.back_at_s.is_some(),
    });
    let players = &r.data.summary.per_player;
    let (lost, unrecovered) = lost_sessions(r);
    // Each player's first return after the kill, seconds after it.
    let mut back: Vec<f64> = lost
        .iter()
        .filter_map(|p| {
            p.outage_ends_s
                .iter()
                .copied()
                .find(|&t| t >= g.killed_at_s)
        })
        .map(|t| t - g.killed_at_s)
        .collect();
    back.sort_by(f64::total_cmp);
    let mut noticed: Vec<f64> = lost
        .iter()
        .flat_map(|p| p.outages.iter().copied())
        .collect();
    noticed.sort_by(f64::total_cmp);
    let pct = fabric_load::run::percentile;
    let slowest = back.last().copied().unwrap_or(f64::INFINITY);
    c.push(Criterion {
        what: format!(
            "every player's session came back by itself within {GATEWAY_BACK_S:.0} s of the kill"
        ),
        measured: format!(
            "{} of {} players lost their session, {} back, {} not back; back after the kill p50 {:.1} s, p99 {:.1} s, all {:.1} s (from noticing: p50 {:.1} s, max {:.1} s)",
            lost.len(),
            r.data.summary.joined,
            back.len(),
            unrecovered,
            pct(&back, 0.5),
            pct(&back, 0.99),
            slowest,
            pct(&noticed, 0.5),
            noticed.last().copied().unwrap_or(0.0)
        ),
        pass: lost.len() as u32 == r.data.summary.joined
            && unrecovered == 0
            && back.len() == lost.len()
            && slowest <= GATEWAY_BACK_S,
    });
    c.push(ticks_on_time(r, opts.ramp_s + 2.0, None, "every zone"));
    c.push(entities_kept(r));
    let s = &r.data.summary;
    let outages: u64 = players
        .iter()
        .map(|p| p.outages.len() as u64 + u64::from(p.outages_unrecovered))
        .sum();
    c.push(Criterion {
        what: "no errors but the lost sessions (one per player)".into(),
        measured: format!(
            "{} errors, {} lost sessions{}",
            s.errors,
            outages,
            s.error_examples
                .first()
                .map_or(String::new(), |e| format!(" (the first: {e})"))
        ),
        pass: s.errors == outages,
    });
    c.push(rates_kept(r, "the players"));
    c
}

/// Share of the migrations per second before the cut that must come back after it.
pub const MIGRATIONS_BACK: f64 = 0.5;

/// Entities migrated in per second over all zones in `[from, to)` (their counters).
fn migrations_per_s(r: &LoadResult, from: f64, to: f64) -> f64 {
    r.data
        .zones
        .iter()
        .map(|samples| {
            let w: Vec<_> = samples.iter().filter(|s| s.t >= from && s.t < to).collect();
            match (w.first(), w.last()) {
                (Some(a), Some(b)) if b.t > a.t => {
                    (b.migrations_in - a.migrations_in) / (b.t - a.t)
                }
                _ => 0.0,
            }
        })
        .sum()
}

/// The conditioned zone links' criteria: the links were conditioned and cut, no entity lost or
/// duplicated, migrations came back after the cut, every tick on time, the players' rates
/// after it as before, no errors.
pub fn zone_links(r: &LoadResult, opts: &LoadOptions) -> Vec<Criterion> {
    let (Some(plan), Some(l)) = (opts.faults.zone_links, r.links) else {
        return not_run("the zone links were conditioned", "no conditioned links");
    };
    let f = l.relay;
    let loss = f.dropped as f64 / f.received.max(1) as f64;
    let mut c = vec![Criterion {
        what: format!(
            "every zone link through the conditioner ({} ms +0..{} ms each way, {:.0} % loss, {:.0} % reordered) and cut for {:.0} s",
            plan.delay_ms,
            plan.jitter_ms,
            plan.loss * 100.0,
            plan.reorder * 100.0,
            plan.cut_s
        ),
        measured: format!(
            "{} flows, {} datagrams in, {:.2} % lost, {} dropped by the cut ({:.0}-{:.0} s)",
            f.flows,
            f.received,
            loss * 100.0,
            f.cut,
            l.cut_from_s.unwrap_or(0.0),
            l.cut_to_s.unwrap_or(0.0)
        ),
        pass: f.flows > 0
            && f.cut > 0
            && l.cut_to_s.is_some()
            && (0.5 * plan.loss..=2.0 * plan.loss).contains(&loss),
    }];
    c.push(entities_kept(r));
    let (from, to) = (
        l.cut_from_s.unwrap_or(0.0),
        l.cut_to_s.unwrap_or(f64::INFINITY),
    );
    let before = migrations_per_s(r, opts.ramp_s + 2.0, from);
    let during = migrations_per_s(r, from, to);
    let after = migrations_per_s(r, to + 2.0, f64::INFINITY);
    c.push(Criterion {
        what: format!(
            "migrations resume after the cut (>= {:.0} % of the rate before it)",
            MIGRATIONS_BACK * 100.0
        ),
        measured: format!(
            "{before:.1}/s before, {during:.1}/s during the cut, {after:.1}/s from 2 s after it"
        ),
        pass: before > 0.0 && after >= MIGRATIONS_BACK * before,
    });
    c.push(ticks_on_time(r, opts.ramp_s + 2.0, None, "every zone"));
    c.push(rates_kept(r, "the players"));
    c.push(no_errors(r));
    c
}
