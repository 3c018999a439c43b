//! The report from made-up measurements: the goals table says what the figures say, the plots
//! are real PNG files, and a zone over its budget is marked as missing the goal.

use fabric_load::report::{self, ProcSample, ProcSeries, ReportData, ZoneSample};
use fabric_load::run::Summary;
use fabric_load::stats::PlayerStats;
use fabric_load::target::{Target, Transport, ZoneAddr};

const HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn data(tick_p99_ms: f64) -> ReportData {
    let zones: Vec<ZoneAddr> = (0..2)
        .map(|k| ZoneAddr::parse(&format!("127.0.0.1:{},{HASH}", 7000 + k)).unwrap())
        .collect();
    let target = Target::new(zones, 15.0, None, Transport::WebTransport).unwrap();
    let players: Vec<PlayerStats> = (0..10)
        .map(|k| {
            let mut p = PlayerStats::new(k);
            p.joins = 1;
            p.seconds = 10.0;
            p.own_updates = 190;
            p.nearest_updates = 170.0;
            p.bytes = 10 * 3000;
            for _ in 0..189 {
                p.gaps.record(1.0);
            }
            p
        })
        .collect();
    let summary = Summary::new(&target, 10.0, Vec::new(), players);
    let zone = |k: f64| {
        (0..10)
            .map(|t| ZoneSample {
                t: f64::from(t),
                tick_p50_ms: 2.0 + k,
                tick_p99_ms: if t == 9 { tick_p99_ms } else { 5.0 },
                ticks_per_s: 20.0,
                players: 5.0,
                entities: 100.0,
                ..ZoneSample::default()
            })
            .collect()
    };
    ReportData {
        command: "test".into(),
        summary,
        zones: vec![zone(0.0), zone(1.0)],
        processes: vec![ProcSeries {
            name: "zone 0".into(),
            samples: (0..10)
                .map(|t| ProcSample {
                    t: f64::from(t),
                    cpu_percent: 30.0,
                    rss_mib: 80.0,
                })
                .collect(),
        }],
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fabric-load-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn the_report_states_the_measured_figures_and_draws_png_plots() {
    let d = dir("ok");
    let w = report::write(&d, &data(8.0), 2.0).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("| every player joined (10) | 10 | yes |"),
        "{md}"
    );
    assert!(
        md.contains("median 19.0 Hz"),
        "own rate from 190 updates in 10 s: {md}"
    );
    assert!(md.contains("worst 8.00 ms"), "{md}");
    assert!(
        md.contains("| 0 | 2.00 ms | 8.00 ms |"),
        "zone 0's row: {md}"
    );
    assert!(md.contains("| zone 0 | 30 % | 30 % | 80 MiB |"), "{md}");
    // Plots need a TrueType font; on a machine without one the report says so instead.
    match &w.no_plots {
        None => {
            assert!(w.plots.len() >= 8, "plots: {:?}", w.plots);
            for p in &w.plots {
                let bytes = std::fs::read(p).unwrap();
                assert_eq!(
                    &bytes[..8],
                    b"\x89PNG\r\n\x1a\n",
                    "{} is a PNG",
                    p.display()
                );
                let name = p.file_name().unwrap().to_str().unwrap();
                assert!(md.contains(&format!("]({name})")), "{name} linked");
            }
        }
        Some(why) => assert!(md.contains(why.as_str()), "the reason is in the report"),
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_zone_over_its_tick_budget_misses_the_goal() {
    let d = dir("late");
    let w = report::write(&d, &data(61.5), 2.0).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("worst 61.50 ms; overruns 0, dropped ticks 0 | **no** |"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
