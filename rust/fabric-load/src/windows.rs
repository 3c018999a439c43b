//! Before and after a fault: each player counts its own updates, its time with an avatar and
//! its gaps in two windows of the run ([`WindowPlan`]: one before the fault, one from when it
//! should be over), so a scenario can compare the same players with themselves
//! ([`WindowFigures`]), e.g. the players who kept reading while others stalled.

use serde::{Deserialize, Serialize};

use crate::stats::{GAP_BUCKETS, Histogram, PlayerStats};

/// The two windows, in seconds since the players started: `before` is `[from, to)`, `after`
/// runs from `after_from` to the end of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowPlan {
    /// The window before the fault, `[from, to)`.
    pub before: (f64, f64),
    /// The start of the window after it (it ends with the run).
    pub after_from: f64,
}

impl WindowPlan {
    /// Parses `FROM,TO,AFTER` (seconds, increasing).
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Vec<f64> = text
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{text}`: {e}"))?;
        match v[..] {
            [a, b, c] if a >= 0.0 && a < b && b <= c => Ok(Self {
                before: (a, b),
                after_from: c,
            }),
            _ => Err(format!(
                "`{text}`: expected FROM,TO,AFTER seconds with FROM < TO <= AFTER"
            )),
        }
    }

    /// The window second `t` of the run falls in: 0 before, 1 after, `None` in neither.
    pub fn index(&self, t: f64) -> Option<usize> {
        if t >= self.before.0 && t < self.before.1 {
            Some(0)
        } else if t >= self.after_from {
            Some(1)
        } else {
            None
        }
    }

    /// Seconds of `[from, to)` in each window (the run's end at `end`).
    fn overlap(&self, from: f64, to: f64, end: f64) -> [f64; 2] {
        let part = |a: f64, b: f64| (to.min(b) - from.max(a)).max(0.0);
        [
            part(self.before.0, self.before.1),
            part(self.after_from, end.max(self.after_from)),
        ]
    }
}

/// What one player saw in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Seconds with an avatar in the window.
    pub seconds: f64,
    /// Own updates in the window.
    pub own_updates: u64,
    /// Longest gap between own updates that ended in the window, ticks.
    pub max_gap_ticks: u32,
    /// Gaps between own updates that ended in the window, ticks.
    pub gaps: Histogram,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            seconds: 0.0,
            own_updates: 0,
            max_gap_ticks: 0,
            gaps: Histogram::new(1.0, GAP_BUCKETS),
        }
    }
}

impl PlayerStats {
    /// Counts an own update at second `t` (and the gap before it, if any) in its window.
    pub fn window_update(&mut self, plan: &WindowPlan, t: f64, gap: Option<u32>) {
        let Some(k) = plan.index(t) else {
            return;
        };
        let w = &mut self.windows.get_or_insert_with(Default::default)[k];
        w.own_updates += 1;
        if let Some(g) = gap {
            w.gaps.record(f64::from(g));
            w.max_gap_ticks = w.max_gap_ticks.max(g);
        }
    }

    /// Counts the time with an avatar from second `from` to `to` in the windows.
    pub fn window_time(&mut self, plan: &WindowPlan, from: f64, to: f64, end: f64) {
        let s = plan.overlap(from, to, end);
        let w = self.windows.get_or_insert_with(Default::default);
        w[0].seconds += s[0];
        w[1].seconds += s[1];
    }
}

/// One window over the players counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Seconds since the players started: the window's start.
    pub from_s: f64,
    /// Its end.
    pub to_s: f64,
    /// Players with at least a second with an avatar in it.
    pub players: u32,
    /// Median over them of own updates per second.
    pub own_hz_median: f64,
    /// 5th percentile of the same.
    pub own_hz_p5: f64,
    /// 99th percentile of their gaps, ticks.
    pub gap_p99_ticks: f64,
    /// Their longest gap, ticks.
    pub gap_max_ticks: u32,
}

/// The players counted (see [`WindowFigures::new`]) before and after the fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    /// Before the fault.
    pub before: WindowSummary,
    /// After it.
    pub after: WindowSummary,
}

impl WindowFigures {
    /// The windows of `plan` over the players for which `counted` holds; the run ended at
    /// `end_s`.
    pub fn new(
        plan: &WindowPlan,
        players: &[PlayerStats],
        counted: impl Fn(&PlayerStats) -> bool,
        end_s: f64,
    ) -> Self {
        let one = |k: usize, from_s: f64, to_s: f64| {
            let ws: Vec<&Window> = players
                .iter()
                .filter(|p| counted(p))
                .filter_map(|p| p.windows.as_ref().map(|w| &w[k]))
                .filter(|w| w.seconds >= crate::run::MIN_RATE_SECONDS)
                .collect();
            let mut hz: Vec<f64> = ws
                .iter()
                .map(|w| w.own_updates as f64 / w.seconds)
                .collect();
            hz.sort_by(f64::total_cmp);
            let mut gaps = Histogram::new(1.0, GAP_BUCKETS);
            for w in &ws {
                gaps.merge(&w.gaps);
            }
            WindowSummary {
                from_s,
                to_s,
                players: ws.len() as u32,
                own_hz_median: crate::run::percentile(&hz, 0.5),
                own_hz_p5: crate::run::percentile(&hz, 0.05),
                gap_p99_ticks: (gaps.quantile(0.99) - 1.0).max(0.0),
                gap_max_ticks: ws.iter().map(|w| w.max_gap_ticks).max().unwrap_or(0),
            }
        };
        Self {
            before: one(0, plan.before.0, plan.before.1),
            after: one(1, plan.after_from, end_s),
        }
    }

    /// One line: the rates and gaps before and after.
    pub fn text(&self) -> String {
        let w = |s: &WindowSummary| {
            format!(
                "{:.0}-{:.0} s: {} players, own updates median {:.1} Hz, p5 {:.1} Hz, gaps p99 {:.0} max {}",
                s.from_s,
                s.to_s,
                s.players,
                s.own_hz_median,
                s.own_hz_p5,
                s.gap_p99_ticks,
                s.gap_max_ticks
            )
        };
        format!("before {}; after {}", w(&self.before), w(&self.after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_parses_and_splits_time_and_updates_between_its_windows() {
        let plan = WindowPlan::parse("5,20,22").unwrap();
        assert_eq!(plan.index(4.9), None);
        assert_eq!(plan.index(5.0), Some(0));
        assert_eq!(plan.index(21.0), None);
        assert_eq!(plan.index(30.0), Some(1));
        assert!(WindowPlan::parse("5,4,22").is_err());
        assert!(WindowPlan::parse("5,20").is_err());
        let mut p = PlayerStats::new(0);
        p.window_time(&plan, 0.0, 40.0, 40.0);
        for t in 0..40 {
            p.window_update(&plan, f64::from(t), Some(if t < 20 { 1 } else { 4 }));
        }
        let w = p.windows.as_ref().unwrap();
        assert_eq!((w[0].seconds, w[1].seconds), (15.0, 18.0));
        assert_eq!((w[0].own_updates, w[1].own_updates), (15, 18));
        assert_eq!((w[0].max_gap_ticks, w[1].max_gap_ticks), (1, 4));
        let f = WindowFigures::new(&plan, &[p.clone()], |_| true, 40.0);
        assert_eq!(f.before.own_hz_median, 1.0);
        assert_eq!((f.before.gap_p99_ticks, f.after.gap_p99_ticks), (1.0, 4.0));
        let none = WindowFigures::new(&plan, &[p], |_| false, 40.0);
        assert_eq!(none.after.players, 0, "nobody counted");
    }
}
