//! Results, the table and the section of `docs/benchmarks.md` the benchmark writes.

use std::fmt::Write as _;

use serde::Deserialize;

/// One phase as the Godot client reports it (`BENCH_RESULT {json}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Phase {
    /// `unreliable`, `reliable` or `throughput`.
    pub phase: String,
    /// Messages sent.
    pub messages: u64,
    /// Distinct echoes received.
    pub received: u64,
    /// Round trip of every echo received, microseconds, in arrival order.
    pub rtt_us: Vec<u64>,
    /// Echoes per second from the phase's start to its last echo.
    pub msgs_per_sec: f64,
    /// Client CPU (utime + stime) during the phase, clock ticks.
    pub client_cpu_ticks: i64,
    /// Server CPU during the phase, clock ticks.
    pub server_cpu_ticks: i64,
}

impl Phase {
    /// Percentage of messages without an echo.
    pub fn lost_percent(&self) -> f64 {
        100.0 * (self.messages.saturating_sub(self.received)) as f64 / self.messages.max(1) as f64
    }

    /// Client + server CPU microseconds per message sent.
    pub fn cpu_us_per_msg(&self, clk_tck: f64) -> f64 {
        (self.client_cpu_ticks + self.server_cpu_ticks) as f64 * 1e6
            / clk_tck
            / self.messages.max(1) as f64
    }

    /// The `pct`-th percentile of the round trips in milliseconds; `None` without echoes.
    pub fn rtt_ms(&self, pct: u8) -> Option<f64> {
        let mut sorted = self.rtt_us.clone();
        sorted.sort_unstable();
        percentile(&sorted, pct).map(|us| us as f64 / 1e3)
    }
}

/// Nearest-rank percentile of ascending `sorted` samples: the smallest sample with at least
/// `pct` % of the samples at or below it (`pct` 0 gives the minimum, 100 the maximum); `None`
/// for no samples.
pub fn percentile(sorted: &[u64], pct: u8) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // ceil(pct * n / 100) in integers, so 95 % of 20 samples is exactly rank 19.
    let rank = (usize::from(pct.min(100)) * n).div_ceil(100);
    Some(sorted[rank.clamp(1, n) - 1])
}

/// One transport on one link.
#[derive(Debug, Clone)]
pub struct Row {
    /// Transport name (`fabric-wt`, `enet`, `websocket`).
    pub transport: String,
    /// Link name (`loopback`, `2% + 50ms`).
    pub link: String,
    /// The phases, or why the run failed.
    pub result: Result<Vec<Phase>, String>,
}

impl Row {
    /// The named phase, if the run produced it.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.result.as_ref().ok()?.iter().find(|p| p.phase == name)
    }
}

/// The RTT percentiles shown in the table.
pub const RTT_PERCENTILES: [u8; 3] = [50, 95, 99];

/// `p50 / p95 / p99` of a phase in milliseconds, `-` where there is no echo.
fn rtt_cell(p: &Phase) -> String {
    RTT_PERCENTILES
        .iter()
        .map(|&q| {
            p.rtt_ms(q)
                .map_or_else(|| "-".into(), |ms| format!("{ms:.1}"))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The Markdown table of all rows.
pub fn table(rows: &[Row], clk_tck: f64, window: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| transport | link | unreliable RTT p50 / p95 / p99 ms | unreliable lost | reliable RTT p50 / p95 / p99 ms | reliable msgs/s (window {window}) | CPU µs/msg (client+server) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        match (
            r.phase("unreliable"),
            r.phase("reliable"),
            r.phase("throughput"),
        ) {
            (Some(u), Some(rel), Some(t)) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.1} % | {} | {:.0} | {:.1} |",
                    r.transport,
                    r.link,
                    rtt_cell(u),
                    u.lost_percent(),
                    rtt_cell(rel),
                    t.msgs_per_sec,
                    t.cpu_us_per_msg(clk_tck),
                );
            }
            _ => {
                let why = match &r.result {
                    Err(e) => e.clone(),
                    Ok(_) => "missing phases".into(),
                };
                let why: String = why.lines().next().unwrap_or("").chars().take(120).collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | failed: {} | | | | |",
                    r.transport,
                    r.link,
                    why.replace('|', "/")
                );
            }
        }
    }
    s
}

/// What a goal line compares between two transports on one link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A round-trip percentile of the `unreliable` or `reliable` phase.
    Rtt {
        /// The phase.
        phase: &'static str,
        /// The percentile.
        pct: u8,
    },
    /// Messages per second of the `throughput` phase.
    Throughput,
}

impl Metric {
    fn of(self, row: &Row) -> Option<f64> {
        match self {
            Self::Rtt { phase, pct } => row.phase(phase)?.rtt_ms(pct),
            Self::Throughput => Some(row.phase("throughput")?.msgs_per_sec),
        }
    }

    fn name(self) -> String {
        match self {
            Self::Rtt { phase, pct } => format!("{phase} RTT p{pct}"),
            Self::Throughput => "reliable msgs/s".into(),
        }
    }
}

/// What the ratio of a goal line should be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// At most this many times the other transport's figure.
    AtMost(f64),
    /// At least this many times.
    AtLeast(f64),
    /// No goal: the ratio is shown for reading.
    None,
}

/// One comparison: `metric` of transport `num` over that of `den`, on `link`.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// Link name, as in the rows.
    pub link: String,
    /// Transport whose figure is the numerator.
    pub num: &'static str,
    /// Transport whose figure is the denominator.
    pub den: &'static str,
    /// What is compared.
    pub metric: Metric,
    /// What the ratio should be.
    pub bound: Bound,
    /// Extra words after the verdict (may be empty).
    pub note: &'static str,
}

/// One goal as a Markdown list item: the ratio measured in this run and, for a goal, whether
/// it is met (`n/a` when a run failed or had no echo).
pub fn goal_line(rows: &[Row], g: &Goal) -> String {
    let get = |t: &str| {
        rows.iter()
            .find(|r| r.transport == t && r.link == g.link)
            .and_then(|r| g.metric.of(r))
    };
    // Judged as shown, to two decimals: a verdict never contradicts the printed ratio (p50s of
    // 1.004 and 1.000 ms are "1.00x", equal within the 1 ms frame, not a miss).
    let ratio = match (get(g.num), get(g.den)) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
        _ => None,
    };
    let shown = ratio.map_or_else(|| "n/a".into(), |x| format!("{x:.2}x"));
    let verdict = |op: &str, bound: f64, met: bool| {
        let v = match ratio {
            None => "n/a",
            Some(_) if met => "met",
            Some(_) => "not met",
        };
        format!(" (goal: {op} {bound}x: {v})")
    };
    let goal = match g.bound {
        Bound::AtMost(b) => verdict("<=", b, ratio.is_some_and(|x| x <= b)),
        Bound::AtLeast(b) => verdict(">=", b, ratio.is_some_and(|x| x >= b)),
        Bound::None => String::new(),
    };
    let note = if g.note.is_empty() {
        String::new()
    } else {
        format!("; {}", g.note)
    };
    format!(
        "- {}, {} / {} {}: {shown}{goal}{note}",
        g.link,
        g.num,
        g.den,
        g.metric.name()
    )
}

/// The goals of this benchmark: fabric-wt against ENet on the clean link `clean`, Godot's
/// WebSocket against fabric-wt on the lossy link `lossy`, and on every link of `rows` the
/// original target "WebSocket p95 <= 2x WebTransport p95" for our own fallback.
pub fn goals(rows: &[Row], clean: &str, lossy: &str) -> Vec<Goal> {
    let goal = |link: &str, num, den, metric, bound, note| Goal {
        link: link.to_owned(),
        num,
        den,
        metric,
        bound,
        note,
    };
    let rtt = |phase, pct| Metric::Rtt { phase, pct };
    let mut v = vec![
        goal(
            clean,
            "fabric-wt",
            "enet",
            rtt("unreliable", 50),
            Bound::AtMost(1.0),
            "",
        ),
        goal(
            clean,
            "fabric-wt",
            "enet",
            Metric::Throughput,
            Bound::AtLeast(1.0),
            "",
        ),
        goal(
            lossy,
            "websocket",
            "fabric-wt",
            rtt("unreliable", 99),
            Bound::AtLeast(1.0),
            "datagrams should not wait for TCP retransmissions",
        ),
        goal(
            lossy,
            "websocket",
            "fabric-wt",
            rtt("reliable", 99),
            Bound::None,
            "",
        ),
    ];
    let mut links: Vec<&str> = Vec::new();
    for r in rows {
        if !links.contains(&r.link.as_str()) {
            links.push(&r.link);
        }
    }
    for link in links {
        for phase in ["unreliable", "reliable"] {
            v.push(goal(
                link,
                "fabric-websocket",
                "fabric-wt",
                rtt(phase, 95),
                Bound::AtMost(2.0),
                "",
            ));
        }
    }
    v
}

/// The goal lines of [`goals`], each a ratio measured in this run.
pub fn comparisons(rows: &[Row], clean: &str, lossy: &str) -> String {
    goals(rows, clean, lossy)
        .iter()
        .map(|g| goal_line(rows, g) + "\n")
        .collect()
}

/// The section heading this benchmark owns in `docs/benchmarks.md`.
pub const HEADING: &str = "## Transport (issue 4)";
/// Start of the generated part of the section.
pub const BEGIN: &str =
    "<!-- fabric-bench:transport:begin (generated; edit outside the markers) -->";
/// End of the generated part.
pub const END: &str = "<!-- fabric-bench:transport:end -->";

/// Puts `generated` between the markers of this benchmark's section of `doc`, creating the
/// section (heading, `intro`, markers) at the end when it is missing. Text outside the markers
/// is kept as it is.
pub fn update_doc(doc: &str, intro: &str, generated: &str) -> String {
    let block = format!("{BEGIN}\n{}\n{END}", generated.trim_end());
    if let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END))
        && b < e
    {
        let mut out = String::with_capacity(doc.len() + generated.len());
        out.push_str(&doc[..b]);
        out.push_str(&block);
        out.push_str(&doc[e + END.len()..]);
        return out;
    }
    let mut out = doc.trim_end().to_owned();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    let _ = write!(out, "{HEADING}\n\n{}\n\n{block}\n", intro.trim_end());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase of 100 messages, 98 echoed, whose round trips are `rtt_ms` (ms).
    fn phase(name: &str, rtt_ms: &[f64], mps: f64) -> Phase {
        Phase {
            phase: name.into(),
            messages: 100,
            received: 98,
            rtt_us: rtt_ms.iter().map(|ms| (ms * 1e3).round() as u64).collect(),
            msgs_per_sec: mps,
            client_cpu_ticks: 3,
            server_cpu_ticks: 1,
        }
    }

    /// 100 round trips: 1..=100 times `unit` ms, so p50 = 50, p95 = 95, p99 = 99 units.
    fn ramp(unit: f64) -> Vec<f64> {
        (1..=100).map(|i| f64::from(i) * unit).collect()
    }

    fn row(t: &str, l: &str, unit: f64) -> Row {
        Row {
            transport: t.into(),
            link: l.into(),
            result: Ok(vec![
                phase("unreliable", &ramp(unit), 100.0),
                phase("reliable", &ramp(2.0 * unit), 100.0),
                phase("throughput", &ramp(unit), 1000.0 * unit),
            ]),
        }
    }

    #[test]
    fn phase_figures() {
        let p = phase("x", &[1.0], 3.0);
        assert!((p.lost_percent() - 2.0).abs() < 1e-9, "2 of 100 lost");
        // 4 ticks at 100 Hz = 40 ms over 100 messages = 400 µs each.
        assert!(
            (p.cpu_us_per_msg(100.0) - 400.0).abs() < 1e-9,
            "cpu per message"
        );
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 50), None, "no samples, no percentile");
        assert_eq!(
            percentile(&[7], 0),
            Some(7),
            "one sample is every percentile"
        );
        assert_eq!(percentile(&[7], 100), Some(7));
        let s: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&s, 50), Some(10), "rank ceil(0.5 * 20) = 10");
        assert_eq!(
            percentile(&s, 95),
            Some(19),
            "rank 19 exactly, no float rounding up"
        );
        assert_eq!(percentile(&s, 99), Some(20), "rank ceil(19.8) = 20");
        assert_eq!(percentile(&s, 0), Some(1), "p0 is the minimum");
        assert_eq!(percentile(&s, 100), Some(20), "p100 is the maximum");
        assert_eq!(percentile(&s, 255), Some(20), "above 100 counts as 100");
        let s: Vec<u64> = (1..=2000).collect();
        assert_eq!(percentile(&s, 95), Some(1900), "95 % of 2000 samples");
    }

    #[test]
    fn rtt_percentiles_sort_the_samples_first() {
        // Arrival order is not sorted order.
        let p = phase("x", &[5.0, 1.0, 4.0, 2.0, 3.0], 0.0);
        assert_eq!(p.rtt_ms(50), Some(3.0), "median of 1..5 ms");
        assert_eq!(p.rtt_ms(95), Some(5.0), "rank ceil(4.75) = 5");
        assert_eq!(phase("x", &[], 0.0).rtt_ms(50), None, "no echo");
        assert_eq!(
            phase("x", &[0.0015], 0.0).rtt_ms(50),
            Some(0.002),
            "microseconds become ms"
        );
    }

    #[test]
    fn table_has_a_line_per_row_and_names_failures() {
        let rows = vec![
            row("enet", "loopback", 0.1),
            Row {
                transport: "websocket".into(),
                link: "loopback".into(),
                result: Err("server did not start | really".into()),
            },
        ];
        let t = table(&rows, 100.0, 64);
        assert_eq!(t.lines().count(), 4, "header, rule, two rows:\n{t}");
        assert!(
            t.contains("| unreliable RTT p50 / p95 / p99 ms |"),
            "p95 column:\n{t}"
        );
        assert!(
            t.contains(
                "| enet | loopback | 5.0 / 9.5 / 9.9 | 2.0 % | 10.0 / 19.0 / 19.8 | 100 | 400.0 |"
            ),
            "enet row:\n{t}"
        );
        assert!(
            t.contains("failed: server did not start / really"),
            "failure:\n{t}"
        );
    }

    fn rtt_goal(link: &str, bound: Bound) -> Goal {
        Goal {
            link: link.into(),
            num: "fabric-websocket",
            den: "fabric-wt",
            metric: Metric::Rtt {
                phase: "unreliable",
                pct: 95,
            },
            bound,
            note: "",
        }
    }

    #[test]
    fn goal_lines_give_ratio_and_verdict() {
        let rows = vec![
            row("fabric-wt", "loopback", 1.0),
            row("fabric-websocket", "loopback", 2.0),
            row("fabric-wt", "lossy", 1.0),
            row("fabric-websocket", "lossy", 2.5),
        ];
        assert_eq!(
            goal_line(&rows, &rtt_goal("loopback", Bound::AtMost(2.0))),
            "- loopback, fabric-websocket / fabric-wt unreliable RTT p95: 2.00x (goal: <= 2x: met)",
            "exactly at the bound is met"
        );
        assert_eq!(
            goal_line(&rows, &rtt_goal("lossy", Bound::AtMost(2.0))),
            "- lossy, fabric-websocket / fabric-wt unreliable RTT p95: 2.50x (goal: <= 2x: not met)"
        );
        assert_eq!(
            goal_line(&rows, &rtt_goal("lossy", Bound::AtLeast(3.0))),
            "- lossy, fabric-websocket / fabric-wt unreliable RTT p95: 2.50x (goal: >= 3x: not met)"
        );
        let close = vec![
            row("fabric-wt", "loopback", 1.0),
            row("fabric-websocket", "loopback", 2.009),
        ];
        assert_eq!(
            goal_line(&close, &rtt_goal("loopback", Bound::AtMost(2.0))),
            "- loopback, fabric-websocket / fabric-wt unreliable RTT p95: 2.01x (goal: <= 2x: not met)",
            "rounded up above the bound"
        );
        let close = vec![
            row("fabric-wt", "loopback", 1.0),
            row("fabric-websocket", "loopback", 2.004),
        ];
        assert_eq!(
            goal_line(&close, &rtt_goal("loopback", Bound::AtMost(2.0))),
            "- loopback, fabric-websocket / fabric-wt unreliable RTT p95: 2.00x (goal: <= 2x: met)",
            "judged as printed: 2.004 shows as 2.00x, which meets <= 2x"
        );
        let mut plain = rtt_goal("lossy", Bound::None);
        plain.note = "a note";
        assert_eq!(
            goal_line(&rows, &plain),
            "- lossy, fabric-websocket / fabric-wt unreliable RTT p95: 2.50x; a note",
            "no goal: ratio and note only"
        );
        assert_eq!(
            goal_line(&rows, &rtt_goal("TUN", Bound::AtMost(2.0))),
            "- TUN, fabric-websocket / fabric-wt unreliable RTT p95: n/a (goal: <= 2x: n/a)",
            "a link without rows has no verdict"
        );
        let failed = vec![
            row("fabric-wt", "loopback", 1.0),
            Row {
                transport: "fabric-websocket".into(),
                link: "loopback".into(),
                result: Err("boom".into()),
            },
        ];
        assert!(
            goal_line(&failed, &rtt_goal("loopback", Bound::AtMost(2.0))).ends_with(": n/a)"),
            "a failed run has no verdict"
        );
    }

    #[test]
    fn comparisons_are_ratios_of_this_run() {
        let rows = vec![
            row("fabric-wt", "loopback", 2.0),
            row("enet", "loopback", 1.0),
            row("fabric-websocket", "loopback", 3.0),
            row("fabric-wt", "lossy", 1.0),
            row("websocket", "lossy", 3.0),
            row("fabric-websocket", "lossy", 1.5),
        ];
        let c = comparisons(&rows, "loopback", "lossy");
        assert!(
            c.contains(
                "- loopback, fabric-wt / enet unreliable RTT p50: 2.00x (goal: <= 1x: not met)"
            ),
            "p50 ratio:\n{c}"
        );
        assert!(
            c.contains("- loopback, fabric-wt / enet reliable msgs/s: 2.00x (goal: >= 1x: met)"),
            "throughput ratio:\n{c}"
        );
        assert!(
            c.contains(
                "- lossy, websocket / fabric-wt unreliable RTT p99: 3.00x (goal: >= 1x: met)"
            ),
            "p99 ratio:\n{c}"
        );
        for (link, verdict) in [
            ("loopback", "1.50x (goal: <= 2x: met)"),
            ("lossy", "1.50x (goal: <= 2x: met)"),
        ] {
            for phase in ["unreliable", "reliable"] {
                let line =
                    format!("- {link}, fabric-websocket / fabric-wt {phase} RTT p95: {verdict}");
                assert!(c.contains(&line), "missing `{line}`:\n{c}");
            }
        }
        assert_eq!(
            c.lines().count(),
            4 + 2 * 2,
            "4 fixed goals, 2 per link:\n{c}"
        );
        assert!(c.lines().all(|l| l.starts_with("- ")), "a list:\n{c}");
    }

    #[test]
    fn doc_section_is_created_then_replaced_in_place() {
        let doc = "# Benchmarks\n\n## Zone core\n\nfigures\n";
        let once = update_doc(doc, "intro", "table 1");
        assert!(once.starts_with(doc.trim_end()), "old text kept:\n{once}");
        assert!(
            once.contains(&format!("{HEADING}\n\nintro\n\n{BEGIN}\ntable 1\n{END}\n")),
            "{once}"
        );
        let edited = once.replace("intro", "hand-written notes");
        let twice = update_doc(&edited, "intro", "table 2");
        assert!(
            twice.contains("hand-written notes"),
            "notes outside markers kept:\n{twice}"
        );
        assert!(
            twice.contains("table 2") && !twice.contains("table 1"),
            "replaced:\n{twice}"
        );
        assert_eq!(twice.matches(HEADING).count(), 1, "one section");
        assert_eq!(
            update_doc("", "i", "t"),
            format!("{HEADING}\n\ni\n\n{BEGIN}\nt\n{END}\n"),
            "new file"
        );
    }
}
