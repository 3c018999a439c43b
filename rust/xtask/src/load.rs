//! `cargo xtask load --players N --zones Z --seconds S [--out DIR]`: a load scenario through
//! real processes (the registry backend, Z linked zones, the `fabric-load` generator) and its
//! Markdown report with PNG plots in `--out` (`fabric_e2e::load`); `--godot-clients N` adds
//! real headless Godot clients beside the simulated players (`fabric_e2e::load_godot`). Ctrl-C
//! stops it early; the processes it started are stopped either way.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use fabric_e2e::load::{LoadOptions, run_load};

mod scenario;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Simulated players.
    #[arg(long, default_value_t = 100)]
    pub players: u32,
    /// Zones.
    #[arg(long, default_value_t = 2)]
    pub zones: u32,
    /// Zones each headless Godot process runs (1 = a process per zone).
    #[arg(long, default_value_t = 1)]
    pub zones_per_process: u32,
    /// Seconds the players run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u32,
    /// Wanderers in the whole fabric.
    #[arg(long, default_value_t = 200)]
    pub entities: u32,
    /// `wt` (WebTransport) or `ws` (WebSocket fallback).
    #[arg(long, default_value = "wt")]
    pub transport: String,
    /// Seconds over which the players start.
    #[arg(long, default_value_t = 5.0)]
    pub ramp: f64,
    /// Report folder (default target/load/<players>p-<zones>z-<seconds>s).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Optimised builds of the zones' extension and the load generator.
    #[arg(long)]
    pub release: bool,
    /// A scenario of the fault ladder (steady16, lossy, storm, zone_kill, slow_reader,
    /// gateway_restart, zone_links) at its own size; its report
    /// goes to docs/load/<scenario>/ unless --out says otherwise.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Players of the scenario instead of the ladder's (e.g. the largest storm that recovers).
    #[arg(long)]
    pub scenario_players: Option<u32>,
    /// Zones of the scenario instead of the ladder's.
    #[arg(long)]
    pub scenario_zones: Option<u32>,
    /// Headless Godot clients (`examples/fabric_world/bot.tscn`) beside the simulated players,
    /// each joined to a zone directly with its own join token; their figures go in the report.
    #[arg(long, default_value_t = 0)]
    pub godot_clients: u32,
    /// The zones' interest radius, metres (the zone's default, 5 m, when not given).
    #[arg(long)]
    pub interest_radius: Option<f64>,
    /// Simulated players per shared QUIC endpoint (0: an endpoint per player, as game clients
    /// have; the load generator's default, 64, when not given).
    #[arg(long)]
    pub sessions_per_endpoint: Option<usize>,
    /// Observers of the original scheme (every entity as a 100-byte row every tick), spread
    /// over the zones: the baseline measured in the same run, in the report.
    #[arg(long, default_value_t = 0)]
    pub original_scheme: u32,
    /// Ticks outside a zone before an entity (an avatar too) migrates; 80 (4 s at 20 Hz) keeps
    /// an avatar crossing a corner of another zone where it is.
    #[arg(long, default_value_t = 80)]
    pub hysteresis_ticks: u32,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    if let Some(name) = &opts.scenario {
        return scenario::run(name, &opts, &stop);
    }
    let out = opts.out.clone().unwrap_or_else(|| {
        fabric_harness::paths::target_dir()
            .join("load")
            .join(format!(
                "{}p-{}z{}-{}s",
                opts.players,
                opts.zones,
                match opts.zones_per_process {
                    1 => String::new(),
                    k => format!("-{k}pp"),
                },
                opts.seconds
            ))
    });
    let command = format!(
        "cargo xtask load --players {} --zones {}{} --seconds {} --entities {} --transport {} --ramp {}{}{}{}{}{}{}",
        opts.players,
        opts.zones,
        match opts.zones_per_process {
            1 => String::new(),
            k => format!(" --zones-per-process {k}"),
        },
        opts.seconds,
        opts.entities,
        opts.transport,
        opts.ramp,
        match opts.godot_clients {
            0 => String::new(),
            n => format!(" --godot-clients {n}"),
        },
        opts.interest_radius
            .map_or(String::new(), |r| format!(" --interest-radius {r}")),
        opts.sessions_per_endpoint
            .map_or(String::new(), |n| format!(" --sessions-per-endpoint {n}")),
        match opts.original_scheme {
            0 => String::new(),
            n => format!(" --original-scheme {n}"),
        },
        match opts.hysteresis_ticks {
            80 => String::new(),
            n => format!(" --hysteresis-ticks {n}"),
        },
        if opts.release { " --release" } else { "" }
    );
    let lo = LoadOptions {
        players: opts.players,
        zones: opts.zones,
        zones_per_process: opts.zones_per_process,
        seconds: opts.seconds,
        entities: opts.entities,
        transport: opts.transport,
        ramp_s: opts.ramp,
        command_hz: 20.0,
        hysteresis_ticks: opts.hysteresis_ticks,
        out,
        command,
        release: opts.release,
        faults: Default::default(),
        godot_clients: opts.godot_clients,
        interest_radius_m: opts.interest_radius,
        sessions_per_endpoint: opts.sessions_per_endpoint,
        original_scheme_observers: opts.original_scheme,
    };
    let r = run_load(&lo, &stop, |l| println!("[load] {l}"))?;
    println!("{}", r.data.summary.text());
    println!("report: {}", r.written.markdown.display());
    if let Some(why) = &r.written.no_plots {
        println!("no plots: {why}");
    }
    Ok(())
}
