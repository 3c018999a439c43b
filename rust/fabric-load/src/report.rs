//! The scenario report: a Markdown file with PNG plots, from what the run measured (the
//! players' [`Summary`], and each second's samples of every zone's metrics and every process's
//! CPU and memory). Every figure in it comes from those inputs; nothing is typed in.
//!
//! Plots are drawn with `plotters` (bitmap backend, PNG). Text needs a TrueType font, read at
//! run time from `FABRIC_REPORT_FONT` or the usual system paths ([`FONT_PATHS`]); without one
//! the report says so and has tables only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::run::Summary;
use crate::stats::PlayerStats;

/// Where a font is looked for, after `FABRIC_REPORT_FONT`.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// A zone's tick budget at 20 Hz, milliseconds.
pub const TICK_BUDGET_MS: f64 = 50.0;

/// The issue's bandwidth goal per player, bytes per second.
pub const BYTES_GOAL: f64 = 64.0 * 1024.0;

/// The issue's update-rate goal, Hz.
pub const RATE_GOAL_HZ: f64 = 15.0;

/// Why the report could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No TrueType font was found for the plots' text.
    #[error(
        "no TrueType font found (set FABRIC_REPORT_FONT, install DejaVu Sans, or run scripts/setup-godot.sh, whose private root carries it)"
    )]
    NoFont,
    /// Drawing a plot failed.
    #[error("drawing {file}: {reason}")]
    Plot {
        /// The plot's file name.
        file: String,
        /// Why.
        reason: String,
    },
}

/// One second of one zone, read from its `/metrics` and `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneSample {
    /// Seconds since the players started.
    pub t: f64,
    /// Tick time p50, milliseconds (the zone's own window).
    pub tick_p50_ms: f64,
    /// Tick time p99, milliseconds.
    pub tick_p99_ms: f64,
    /// Ticks longer than one step since the zone started.
    pub overruns: f64,
    /// Ticks skipped since the zone started.
    pub dropped_ticks: f64,
    /// Ticks run in the last second (20 when the zone keeps up with real time).
    pub ticks_per_s: f64,
    /// Players (avatars with a session) on the zone.
    pub players: f64,
    /// Entities the zone owns.
    pub entities: f64,
    /// Replication bytes per second to all its clients.
    pub client_bytes_per_s: f64,
    /// Entities migrated in since the zone started (its counter).
    #[serde(default)]
    pub migrations_in: f64,
}

/// One second of one process, from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Seconds since the players started.
    pub t: f64,
    /// CPU used in the last second, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
}

/// A process's samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcSeries {
    /// `zone 0`, `load generator`, `backend`.
    pub name: String,
    /// Its samples.
    pub samples: Vec<ProcSample>,
}

/// Everything the report is made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportData {
    /// The command that ran the scenario.
    pub command: String,
    /// What the players measured.
    pub summary: Summary,
    /// Each zone's samples, by zone index.
    pub zones: Vec<Vec<ZoneSample>>,
    /// Each process's CPU and memory.
    pub processes: Vec<ProcSeries>,
}

/// The report's files.
#[derive(Debug, Clone)]
pub struct Written {
    /// `report.md`.
    pub markdown: PathBuf,
    /// The PNG plots.
    pub plots: Vec<PathBuf>,
    /// Why there are no plots, when there are none.
    pub no_plots: Option<String>,
}

fn max_of(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(0.0, f64::max)
}

fn mean_of(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

impl ReportData {
    /// The worst tick p99 any zone reported once the players had all started (`after_s`).
    pub fn worst_tick_p99_ms(&self, after_s: f64) -> f64 {
        max_of(
            self.zones
                .iter()
                .flatten()
                .filter(|s| s.t >= after_s)
                .map(|s| s.tick_p99_ms),
        )
    }

    /// Overruns and dropped ticks during the run, all zones.
    pub fn late_ticks(&self) -> (f64, f64) {
        let delta = |f: fn(&ZoneSample) -> f64| -> f64 {
            self.zones
                .iter()
                .filter_map(|z| Some(f(z.last()?) - f(z.first()?)))
                .sum()
        };
        (delta(|s| s.overruns), delta(|s| s.dropped_ticks))
    }
}

/// Writes `report.md` and its plots into `dir`; `after_s` is when the last player started
/// (tick figures are judged from then on).
pub fn write(dir: &Path, data: &ReportData, after_s: f64) -> Result<Written, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (plots, no_plots) = match draw_all(dir, data) {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let md = markdown(data, after_s, &plots, no_plots.as_deref());
    let markdown = dir.join("report.md");
    std::fs::write(&markdown, md).map_err(|source| ReportError::Io {
        path: markdown.clone(),
        source,
    })?;
    let json = dir.join("data.json");
    let text = serde_json::to_vec_pretty(data).unwrap_or_default();
    std::fs::write(&json, text).map_err(|source| ReportError::Io { path: json, source })?;
    Ok(Written {
        markdown,
        plots,
        no_plots,
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn markdown(data: &ReportData, after_s: f64, plots: &[PathBuf], no_plots: Option<&str>) -> String {
    let s = &data.summary;
    let worst = data.worst_tick_p99_ms(after_s);
    let (overruns, dropped) = data.late_ticks();
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Load scenario: {} players, {} zones, {:.0} s ({})\n",
        s.players, s.zones, s.seconds, s.transport
    );
    let _ = writeln!(m, "Command: `{}`\n", data.command);
    let _ = writeln!(m, "## Goals\n");
    let _ = writeln!(m, "| goal | measured | met |\n|---|---|---|");
    let rows = [
        (
            format!("every player joined ({})", s.players),
            format!("{}", s.joined),
            s.joined == s.players,
        ),
        (
            format!(
                "every zone's tick p99 <= {TICK_BUDGET_MS} ms (after the ramp, {after_s:.0} s)"
            ),
            format!("worst {worst:.2} ms; overruns {overruns:.0}, dropped ticks {dropped:.0}"),
            worst <= TICK_BUDGET_MS && dropped == 0.0,
        ),
        (
            format!("own avatar updates >= {RATE_GOAL_HZ} Hz (median player)"),
            format!("median {:.1} Hz, p5 {:.1} Hz", s.own_hz_median, s.own_hz_p5),
            s.own_hz_median >= RATE_GOAL_HZ,
        ),
        (
            format!("nearest entities >= {RATE_GOAL_HZ} Hz (median player)"),
            format!(
                "median {:.1} Hz, p5 {:.1} Hz",
                s.nearest_hz_median, s.nearest_hz_p5
            ),
            s.nearest_hz_median >= RATE_GOAL_HZ,
        ),
        (
            "<= 64 KB/s per player".into(),
            format!(
                "median {:.1} KB/s, max {:.1} KB/s",
                s.bytes_per_s_median / 1024.0,
                s.bytes_per_s_max / 1024.0
            ),
            s.bytes_per_s_max <= BYTES_GOAL,
        ),
        (
            "no errors".into(),
            format!("{} (commands refused: {})", s.errors, s.commands_refused),
            s.errors == 0,
        ),
    ];
    for (goal, got, ok) in rows {
        let _ = writeln!(m, "| {goal} | {got} | {} |", verdict(ok));
    }
    let _ = writeln!(m, "\n## Players\n\n```\n{}\n```\n", s.text());
    if !s.error_examples.is_empty() {
        let _ = writeln!(m, "Errors (first few):\n");
        for e in &s.error_examples {
            let _ = writeln!(m, "- {e}");
        }
        m.push('\n');
    }
    if !s.original_scheme.is_empty() {
        let _ = writeln!(
            m,
            "## The original scheme, measured in the same run\n\n\
             Observers that asked each zone for the original fabric's replication (every entity \
             of the zone as a 100-byte row every tick) and counted what arrived after the ramp, \
             beside the players above (bytes/s per player, median: {:.0}).\n\n\
             | observer | zone | seconds | bytes/s | datagrams/s | rows/s | entities | updates/s per entity | x ours | bad | error |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            s.bytes_per_s_median
        );
        for (i, o) in s.original_scheme.iter().enumerate() {
            let _ = writeln!(
                m,
                "| {i} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {} | {:.1} | {:.0} | {} | {} |",
                o.zone,
                o.seconds,
                o.bytes_per_s,
                o.datagrams_per_s,
                o.rows_per_s,
                o.entities,
                o.per_entity_hz(),
                o.bytes_per_s / s.bytes_per_s_median.max(1.0),
                o.bad,
                o.error.as_deref().unwrap_or("")
            );
        }
        m.push('\n');
    }
    let _ = writeln!(m, "## Zones\n");
    let _ = writeln!(
        m,
        "| zone | tick p50 (mean) | tick p99 (max) | ticks/s (mean) | overruns | dropped ticks | players (max) | entities (max) | CPU (mean) | RSS (max) |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (k, z) in data.zones.iter().enumerate() {
        let proc = data
            .processes
            .iter()
            .find(|p| p.name == format!("zone {k}"));
        // A zone sharing its process with others (`--zones-per-process`): see the process rows.
        let (cpu, rss) = proc.map_or(("shared".into(), "shared".into()), |p| {
            (
                format!("{:.0} %", mean_of(p.samples.iter().map(|s| s.cpu_percent))),
                format!("{:.0} MiB", max_of(p.samples.iter().map(|s| s.rss_mib))),
            )
        });
        let d = |f: fn(&ZoneSample) -> f64| match (z.first(), z.last()) {
            (Some(a), Some(b)) => f(b) - f(a),
            _ => 0.0,
        };
        let _ = writeln!(
            m,
            "| {k} | {:.2} ms | {:.2} ms | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {cpu} | {rss} |",
            mean_of(z.iter().map(|s| s.tick_p50_ms)),
            max_of(z.iter().filter(|s| s.t >= after_s).map(|s| s.tick_p99_ms)),
            mean_of(z.iter().skip(1).map(|s| s.ticks_per_s)),
            d(|s| s.overruns),
            d(|s| s.dropped_ticks),
            max_of(z.iter().map(|s| s.players)),
            max_of(z.iter().map(|s| s.entities)),
        );
    }
    let _ = writeln!(
        m,
        "\n## Processes\n\n| process | CPU mean | CPU max | RSS max |\n|---|---|---|---|"
    );
    let total_cpu: f64 = data
        .processes
        .iter()
        .map(|p| mean_of(p.samples.iter().map(|s| s.cpu_percent)))
        .sum();
    for p in &data.processes {
        let _ = writeln!(
            m,
            "| {} | {:.0} % | {:.0} % | {:.0} MiB |",
            p.name,
            mean_of(p.samples.iter().map(|s| s.cpu_percent)),
            max_of(p.samples.iter().map(|s| s.cpu_percent)),
            max_of(p.samples.iter().map(|s| s.rss_mib)),
        );
    }
    let _ = writeln!(m, "| all | {total_cpu:.0} % | | |");
    let _ = writeln!(
        m,
        "\n(CPU: percent of one core; this machine has {} cores.)\n",
        cores()
    );
    let _ = writeln!(m, "## Plots\n");
    if let Some(why) = no_plots {
        let _ = writeln!(m, "No plots: {why}\n");
    }
    for p in plots {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(m, "![{name}]({name})\n");
    }
    let _ = writeln!(
        m,
        "## Definitions\n\n\
         - Own updates: replication packets that carried the player's own avatar; gap: ticks between two.\n\
         - Nearest entities: the {} entities nearest to the avatar after each packet; their rate is the share updated per packet, summed per second.\n\
         - Delay: a packet's arrival minus its tick's nominal time (tick / 20 Hz), less the smallest such difference of the session: the delay above the fastest packet (queueing, late ticks), not the constant part of the one-way delay.\n\
         - Tick p50/p99: each zone's own figures from `/metrics`, sampled each second.",
        crate::stats::NEAREST
    );
    m
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Registers a TrueType font for the plots once.
fn font() -> Result<(), ReportError> {
    static FONT: OnceLock<bool> = OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        let env = std::env::var("FABRIC_REPORT_FONT").ok().map(PathBuf::from);
        // The project's private Debian root (scripts/setup-godot.sh) carries DejaVu (a
        // dependency of the engine package), so a machine without system fonts still has one.
        let private = fabric_harness::paths::cache_dir()
            .join("sid-root/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
        let candidates = env
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .chain(std::iter::once(private));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // Registered once per process for the plots' lifetime.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok { Ok(()) } else { Err(ReportError::NoFont) }
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

impl Chart {
    /// Title, x and y descriptions, and the axes' upper ends.
    fn frame(&self) -> (&'static str, &'static str, &'static str, f64, f64) {
        match self {
            Chart::Lines {
                title,
                y,
                series,
                limit,
            } => {
                let x_max = max_of(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))).max(1.0);
                let y_max = max_of(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)))
                    .max(limit.unwrap_or(0.0))
                    .max(1e-9);
                (title, "seconds", y, x_max, y_max * 1.1)
            }
            Chart::Bars { title, x, bars } => {
                let x_max = bars.iter().map(|p| p.0 + 1.0).fold(1.0, f64::max);
                let y_max = bars.iter().map(|p| p.1).fold(1.0, f64::max);
                (title, x, "count", x_max, y_max * 1.1)
            }
        }
    }
}

/// Draws `chart` as a 900 x 450 PNG at `path`.
fn draw(path: &Path, chart: &Chart) -> Result<(), String> {
    let (title, x_desc, y_desc, x_max, y_max) = chart.frame();
    let root = BitMapBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    match chart {
        Chart::Lines { series, limit, .. } => {
            for (k, (name, pts)) in series.iter().enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
                c.draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            }
            if let Some(l) = limit {
                c.draw_series(LineSeries::new(
                    [(0.0, *l), (x_max, *l)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label("limit")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
            }
            if series.len() <= 12 {
                c.configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }
        Chart::Bars { bars, .. } => {
            let fill = COLOURS[0].filled();
            c.draw_series(
                bars.iter()
                    .map(|&(x, n)| Rectangle::new([(x, 0.0), (x + 0.9, n)], fill)),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// Counts of `values` in buckets of `w`.
fn bucket(values: impl Iterator<Item = f64>, w: f64) -> Vec<(f64, f64)> {
    let mut counts: Vec<f64> = Vec::new();
    for v in values {
        let k = (v.max(0.0) / w) as usize;
        if counts.len() <= k {
            counts.resize(k + 1, 0.0);
        }
        counts[k] += 1.0;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(k, n)| (k as f64 * w, n))
        .collect()
}

/// One plot to draw.
enum Chart {
    /// Lines over time, with an optional limit line.
    Lines {
        title: &'static str,
        y: &'static str,
        series: Vec<(String, Vec<(f64, f64)>)>,
        limit: Option<f64>,
    },
    /// A histogram of 1-unit buckets.
    Bars {
        title: &'static str,
        x: &'static str,
        bars: Vec<(f64, f64)>,
    },
}

fn charts(data: &ReportData) -> Vec<(&'static str, Chart)> {
    let s = &data.summary;
    let per_zone = |suffix: &str, f: fn(&ZoneSample) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        data.zones
            .iter()
            .enumerate()
            .map(|(k, z)| {
                let pts = z.iter().map(|p| (p.t, f(p))).collect();
                (format!("zone {k}{suffix}"), pts)
            })
            .collect()
    };
    let per_process = |f: fn(&ProcSample) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        data.processes
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.samples.iter().map(|x| (x.t, f(x))).collect(),
                )
            })
            .collect()
    };
    let joined = || {
        s.per_player
            .iter()
            .filter(|p| p.seconds >= crate::run::MIN_RATE_SECONDS)
    };
    let mut players = per_zone("", |p| p.players);
    players.push((
        "all (load generator)".into(),
        s.series
            .iter()
            .map(|p| (p.t, f64::from(p.connected)))
            .collect(),
    ));
    let bytes = vec![(
        "mean per player".to_owned(),
        s.series
            .iter()
            .filter(|p| p.connected > 0)
            .map(|p| (p.t, p.bytes_per_s / f64::from(p.connected) / 1024.0))
            .collect(),
    )];
    let lines = |title, y, series, limit| Chart::Lines {
        title,
        y,
        series,
        limit,
    };
    vec![
        (
            "tick_p99.png",
            lines(
                "Tick time p99 per zone",
                "ms",
                per_zone("", |p| p.tick_p99_ms),
                Some(TICK_BUDGET_MS),
            ),
        ),
        (
            "tick_p50.png",
            lines(
                "Tick time p50 per zone",
                "ms",
                per_zone("", |p| p.tick_p50_ms),
                None,
            ),
        ),
        (
            "players.png",
            lines("Players per zone", "players", players, None),
        ),
        (
            "entities.png",
            lines(
                "Entities per zone",
                "entities",
                per_zone("", |p| p.entities),
                None,
            ),
        ),
        (
            "bytes_per_player.png",
            lines(
                "Bytes received per player",
                "KB/s",
                bytes,
                Some(BYTES_GOAL / 1024.0),
            ),
        ),
        (
            "update_rate_hist.png",
            Chart::Bars {
                title: "Own avatar update rate per player",
                x: "Hz",
                bars: bucket(joined().map(PlayerStats::own_hz), 1.0),
            },
        ),
        (
            "nearest_rate_hist.png",
            Chart::Bars {
                title: "Nearest entities' update rate per player",
                x: "Hz",
                bars: bucket(joined().map(PlayerStats::nearest_hz), 1.0),
            },
        ),
        (
            "gap_hist.png",
            Chart::Bars {
                title: "Gaps between own updates, all players",
                x: "ticks",
                bars: s
                    .gaps
                    .buckets()
                    .filter(|b| b.1 > 0)
                    .map(|(x, n)| (x, n as f64))
                    .collect(),
            },
        ),
        (
            "cpu.png",
            lines(
                "CPU per process",
                "% of one core",
                per_process(|p| p.cpu_percent),
                None,
            ),
        ),
        (
            "memory.png",
            lines(
                "Resident memory per process",
                "MiB",
                per_process(|p| p.rss_mib),
                None,
            ),
        ),
    ]
}

fn draw_all(dir: &Path, data: &ReportData) -> Result<Vec<PathBuf>, ReportError> {
    font()?;
    let mut out = Vec::new();
    for (file, chart) in charts(data) {
        let path = dir.join(file);
        let r = draw(&path, &chart);
        r.map_err(|reason| ReportError::Plot {
            file: file.into(),
            reason,
        })?;
        out.push(path);
    }
    Ok(out)
}
