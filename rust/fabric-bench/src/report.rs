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
    /// Median round trip, ms.
    pub rtt_p50_ms: f64,
    /// 99th percentile round trip, ms.
    pub rtt_p99_ms: f64,
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

fn f1(x: f64) -> String {
    if x < 0.0 {
        "-".into()
    } else {
        format!("{x:.1}")
    }
}

/// The Markdown table of all rows.
pub fn table(rows: &[Row], clk_tck: f64, window: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| transport | link | unreliable RTT p50 / p99 ms | unreliable lost | reliable RTT p50 / p99 ms | reliable msgs/s (window {window}) | CPU µs/msg (client+server) |"
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
                    "| {} | {} | {} / {} | {:.1} % | {} / {} | {:.0} | {:.1} |",
                    r.transport,
                    r.link,
                    f1(u.rtt_p50_ms),
                    f1(u.rtt_p99_ms),
                    u.lost_percent(),
                    f1(rel.rtt_p50_ms),
                    f1(rel.rtt_p99_ms),
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

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// The goal comparisons, each as a ratio measured in this run.
pub fn comparisons(rows: &[Row], clean: &str, lossy: &str) -> String {
    let get = |t: &str, l: &str, ph: &str, f: fn(&Phase) -> f64| {
        rows.iter()
            .find(|r| r.transport == t && r.link == l)
            .and_then(|r| r.phase(ph))
            .map(f)
    };
    let p50 = |p: &Phase| p.rtt_p50_ms;
    let p99 = |p: &Phase| p.rtt_p99_ms;
    let tput = |p: &Phase| p.msgs_per_sec;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "- {clean}, fabric-wt / ENet unreliable RTT p50: {} (goal: <= 1x)",
        ratio(
            get("fabric-wt", clean, "unreliable", p50),
            get("enet", clean, "unreliable", p50)
        )
    );
    let _ = writeln!(
        s,
        "- {clean}, fabric-wt / ENet reliable msgs/s: {} (goal: >= 1x)",
        ratio(
            get("fabric-wt", clean, "throughput", tput),
            get("enet", clean, "throughput", tput)
        )
    );
    let _ = writeln!(
        s,
        "- {lossy}, WebSocket / fabric-wt unreliable RTT p99: {} (goal: >= 1x; original target WS p95 <= 2x WT p95 read the other way round)",
        ratio(
            get("websocket", lossy, "unreliable", p99),
            get("fabric-wt", lossy, "unreliable", p99)
        )
    );
    let _ = writeln!(
        s,
        "- {lossy}, WebSocket / fabric-wt reliable RTT p99: {}",
        ratio(
            get("websocket", lossy, "reliable", p99),
            get("fabric-wt", lossy, "reliable", p99)
        )
    );
    s
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

    fn phase(name: &str, p50: f64, p99: f64, mps: f64) -> Phase {
        Phase {
            phase: name.into(),
            messages: 100,
            received: 98,
            rtt_p50_ms: p50,
            rtt_p99_ms: p99,
            msgs_per_sec: mps,
            client_cpu_ticks: 3,
            server_cpu_ticks: 1,
        }
    }

    fn row(t: &str, l: &str, p50: f64) -> Row {
        Row {
            transport: t.into(),
            link: l.into(),
            result: Ok(vec![
                phase("unreliable", p50, 2.0 * p50, 100.0),
                phase("reliable", p50, 3.0 * p50, 100.0),
                phase("throughput", p50, 4.0 * p50, 1000.0 * p50),
            ]),
        }
    }

    #[test]
    fn phase_figures() {
        let p = phase("x", 1.0, 2.0, 3.0);
        assert!((p.lost_percent() - 2.0).abs() < 1e-9, "2 of 100 lost");
        // 4 ticks at 100 Hz = 40 ms over 100 messages = 400 µs each.
        assert!(
            (p.cpu_us_per_msg(100.0) - 400.0).abs() < 1e-9,
            "cpu per message"
        );
    }

    #[test]
    fn table_has_a_line_per_row_and_names_failures() {
        let rows = vec![
            row("enet", "loopback", 1.0),
            Row {
                transport: "websocket".into(),
                link: "loopback".into(),
                result: Err("server did not start | really".into()),
            },
        ];
        let t = table(&rows, 100.0, 64);
        assert_eq!(t.lines().count(), 4, "header, rule, two rows:\n{t}");
        assert!(
            t.contains("| enet | loopback | 1.0 / 2.0 | 2.0 % | 1.0 / 3.0 | 1000 | 400.0 |"),
            "enet row:\n{t}"
        );
        assert!(
            t.contains("failed: server did not start / really"),
            "failure:\n{t}"
        );
    }

    #[test]
    fn comparisons_are_ratios_of_this_run() {
        let rows = vec![
            row("fabric-wt", "loopback", 2.0),
            row("enet", "loopback", 1.0),
            row("fabric-wt", "lossy", 1.0),
            row("websocket", "lossy", 3.0),
        ];
        let c = comparisons(&rows, "loopback", "lossy");
        assert!(c.contains("RTT p50: 2.00x"), "p50 ratio:\n{c}");
        assert!(c.contains("msgs/s: 2.00x"), "throughput ratio:\n{c}");
        assert!(c.contains("unreliable RTT p99: 3.00x"), "p99 ratio:\n{c}");
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
