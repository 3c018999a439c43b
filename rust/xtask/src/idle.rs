//! `cargo xtask idle --zones 8 --per-process 1,4,8 --max-fps 250,60 --seconds 20`: what idle
//! zones cost. For each layout (zones per process) and engine frame rate, starts the registry
//! backend and the linked zones (`fabric_e2e::fabric`, as `cargo xtask load` does) with no
//! players, lets them settle, then measures the CPU time, resident memory and threads of every
//! zone process over `--seconds` from `/proc`, and prints one table row per run: the figure an
//! operator needs to decide how many zones one process should run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use fabric_e2e::fabric::{FabricOptions, start_fabric};
use fabric_e2e::proc_usage::CpuMeter;
use fabric_harness::engine;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Zones in the fabric.
    #[arg(long, default_value_t = 8)]
    pub zones: u32,
    /// Zones per process, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub per_process: Vec<u32>,
    /// Engine frame rates, one run each (0 = the project's 250).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub max_fps: Vec<u32>,
    /// Wanderers in the whole fabric.
    #[arg(long, default_value_t = 0)]
    pub entities: u32,
    /// Seconds measured (after 5 s of settling).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The release build of the extension (what an operator runs).
    #[arg(long)]
    pub release: bool,
}

/// Threads of every process in process group `pgid`.
fn group_threads(pgid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state(0) ppid(1) pgrp(2) ... num_threads(17).
            (f.get(2)?.parse::<u32>().ok()? == pgid).then(|| f.get(17)?.parse::<u64>().ok())?
        })
        .sum()
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let eng = engine::prepare(false)?;
    if opts.release {
        engine::build_extension(false, true)?;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "idle zones: {} zones, {} wanderers, {} s measured, {} build; load average at start: {}",
        opts.zones,
        opts.entities,
        opts.seconds,
        if opts.release { "release" } else { "debug" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| zones per process | max fps | processes | CPU all zones % | CPU per zone % | RSS per zone MiB | threads per zone |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &fps in &opts.max_fps {
        for &per in &opts.per_process {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut extra = Vec::new();
            if fps > 0 {
                extra.extend(["--max-fps".to_owned(), fps.to_string()]);
            }
            let fo = FabricOptions {
                zones: opts.zones,
                zones_per_process: per,
                entities: opts.entities,
                backend_port: 0,
                hysteresis_ticks: 80,
                extra,
                backend_bin: None,
                link_via: None,
            };
            let (mut fabric, started) = start_fabric(&eng, &fo, &stop, |_| {})?;
            let measured = started.map(|()| {
                std::thread::sleep(Duration::from_secs(5));
                let mut meters: Vec<CpuMeter> = fabric
                    .processes
                    .iter()
                    .map(|(p, _)| CpuMeter::new(p.pid()))
                    .collect();
                for m in &mut meters {
                    m.sample();
                }
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(opts.seconds)
                    && !stop.load(Ordering::SeqCst)
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let (cpu, rss) = meters
                    .iter_mut()
                    .map(CpuMeter::sample)
                    .fold((0.0, 0.0), |(c, r), (c1, r1)| (c + c1, r + r1));
                let threads: u64 = fabric
                    .processes
                    .iter()
                    .map(|(p, _)| group_threads(p.pid()))
                    .sum();
                (cpu, rss, threads)
            });
            let processes = fabric.processes.len();
            fabric.stop();
            let (cpu, rss, threads) = measured?;
            let z = f64::from(opts.zones);
            println!(
                "| {per} | {} | {processes} | {cpu:.1} | {:.2} | {:.1} | {:.1} |",
                if fps == 0 {
                    "250".into()
                } else {
                    fps.to_string()
                },
                cpu / z,
                rss / z,
                threads as f64 / z
            );
        }
    }
    Ok(())
}
