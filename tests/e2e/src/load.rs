//! A load scenario through real processes, as `cargo xtask load` runs it: the registry backend
//! and a linked zone fabric ([`crate::fabric`]), then the `fabric-load` binary with its
//! simulated players; each second every zone's `/metrics` and every process group's CPU and
//! memory are sampled; at the end the players' summary and the samples become the Markdown
//! report with plots ([`fabric_load::report`]). Real headless Godot clients can run beside the
//! simulated players ([`crate::load_godot`]); their figures are added to the report.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use fabric_harness::engine;
use fabric_harness::process::{Outcome, Proc};
use fabric_load::report::{self, ProcSample, ProcSeries, ReportData, Written, ZoneSample};
use fabric_load::run::Summary;

use crate::create_account;
use crate::fabric::{Fabric, FabricOptions, start_fabric};
use crate::load_checks::{HeldCheck, HeldFigures};
use crate::load_faults::{CrashFigures, Faults, ZoneCrash};
use crate::load_gateway::{
    GatewayCrash, GatewayFigures, GatewaySpawn, PENDING_PER_ADDRESS, RunningGateway,
    SESSIONS_PER_ADDRESS,
};
use crate::load_godot::{GodotClients, GodotFigures};
use crate::load_links::{LinkFigures, LinkRelays};
use crate::proc_usage::{CpuMeter, is_running};
use crate::zone_probe::metrics;

/// A scenario.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Simulated players.
    pub players: u32,
    /// Zones.
    pub zones: u32,
    /// Zones each process runs (1 = a process per zone).
    pub zones_per_process: u32,
    /// Seconds the players run.
    pub seconds: u32,
    /// Wanderers in the whole fabric.
    pub entities: u32,
    /// `wt` or `ws`.
    pub transport: String,
    /// Seconds over which the players start.
    pub ramp_s: f64,
    /// Position commands per second per player.
    pub command_hz: f64,
    /// Ticks outside a zone before an entity (an avatar too) migrates.
    pub hysteresis_ticks: u32,
    /// Where the report goes.
    pub out: PathBuf,
    /// The command line to print in the report.
    pub command: String,
    /// Optimised builds: the zones' extension and the load generator are built with
    /// `--release` (the extension is installed over the debug one until the next `prepare`).
    pub release: bool,
    /// Faults applied during the run ([`crate::load_faults`]).
    pub faults: Faults,
    /// Headless Godot clients beside the simulated players ([`crate::load_godot`]).
    pub godot_clients: u32,
    /// The zones' interest radius, metres (`None`: the zone's default).
    pub interest_radius_m: Option<f64>,
    /// Simulated players per shared QUIC endpoint (`Some(0)`: an endpoint per player, as game
    /// clients have; `None`: the load generator's default).
    pub sessions_per_endpoint: Option<usize>,
    /// Observers of the original scheme (every entity as a 100-byte row every tick), spread
    /// over the zones: the baseline measured in the same run (`fabric_load::original`).
    pub original_scheme_observers: u32,
}

/// What a scenario produced.
#[derive(Debug)]
pub struct LoadResult {
    /// How the load generator ended.
    pub load_exit: Outcome,
    /// Everything measured.
    pub data: ReportData,
    /// The report's files.
    pub written: Written,
    /// The zones' `/state` dumps checked for ids held twice ([`crate::load_checks`]).
    pub held: HeldFigures,
    /// The zone crash, when the scenario had one ([`crate::load_faults::ZoneCrash`]).
    pub crash: Option<CrashFigures>,
    /// Each Godot client's figures over the run after the ramp.
    pub godot: Vec<(String, Option<GodotFigures>)>,
    /// The gateway's crash, when the players joined through a gateway.
    pub gateway: Option<GatewayFigures>,
    /// The conditioned zone links and their cut, when the run had them.
    pub links: Option<LinkFigures>,
}

/// Runs the scenario, logging through `log`; the fabric is stopped whatever happens.
pub fn run_load(
    opts: &LoadOptions,
    stop: &AtomicBool,
    log: impl Fn(&str),
) -> anyhow::Result<LoadResult> {
    log("preparing Godot, the extension, the project and the binaries");
    let eng = engine::prepare(false)?;
    let load_bin = if opts.release {
        engine::build_extension(false, true)?;
        let status = engine::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "fabric-load",
                "--bin",
                "fabric-load",
                "-p",
                "fabric-backend",
                "--bin",
                "fabric-backend",
                "-p",
                "fabric-gateway",
                "--bin",
                "fabric-gateway",
            ])
            .status()
            .context("running cargo build --release")?;
        anyhow::ensure!(
            status.success(),
            "building fabric-load, fabric-backend and fabric-gateway failed ({status})"
        );
        fabric_harness::paths::target_dir().join("release/fabric-load")
    } else {
        engine::binary("fabric-load")?
    };
    if opts.faults.zone_kill.is_some() {
        let dir = zone_data_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut links = match opts.faults.zone_links {
        Some(plan) => Some(LinkRelays::start(plan, opts.zones, 1)?),
        None => None,
    };
    let fabric_opts = FabricOptions {
        zones: opts.zones,
        zones_per_process: opts.zones_per_process,
        entities: opts.entities,
        backend_port: 0,
        hysteresis_ticks: opts.hysteresis_ticks,
        extra: zone_args(opts),
        backend_bin: opts
            .release
            .then(|| fabric_harness::paths::target_dir().join("release/fabric-backend")),
        link_via: links.as_ref().map(|l| l.via.clone()),
    };
    let (mut fabric, started) = start_fabric(&eng, &fabric_opts, stop, &log)?;
    let result = started
        .and_then(|()| write_directory(opts, &fabric))
        .and_then(|()| {
            drive(
                opts,
                &eng,
                &mut fabric,
                load_bin,
                links.as_mut(),
                stop,
                &log,
            )
        });
    log(&format!(
        "stopping {} zones and the backend",
        fabric.zones.len()
    ));
    fabric.stop();
    if let Some(l) = links {
        l.stop();
    }
    if opts.faults.zone_kill.is_some() {
        let _ = std::fs::remove_dir_all(zone_data_dir());
    }
    result
}

/// Where the zones read the zone directory (Godot clients only: they follow their avatars
/// by themselves, so `avatar_moved` must name the next zone's address).
fn directory_file(opts: &LoadOptions) -> PathBuf {
    opts.out.join("zones")
}

/// The zones' extra arguments: the interest radius and the zone directory, when asked for.
fn zone_args(opts: &LoadOptions) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(r) = opts.interest_radius_m {
        args.extend(["--interest-radius".into(), r.to_string()]);
    }
    if opts.original_scheme_observers > 0 {
        // The observers go to zones round robin.
        let per_zone = opts.original_scheme_observers.div_ceil(opts.zones.max(1));
        args.extend(["--original-scheme-sessions".into(), per_zone.to_string()]);
    }
    if opts.godot_clients > 0 {
        let file = directory_file(opts).display().to_string();
        args.extend(["--zone-directory-file".into(), file]);
    }
    // Every player's gateway session has its own upstream session, all from 127.0.0.1.
    if opts.faults.gateway.is_some() {
        args.extend([
            "--max-sessions-per-address".into(),
            SESSIONS_PER_ADDRESS.to_string(),
            "--max-pending-per-address".into(),
            PENDING_PER_ADDRESS.to_string(),
        ]);
    }
    // A zone that is killed reloads its journal when it starts again.
    if opts.faults.zone_kill.is_some() {
        let dir = zone_data_dir().display().to_string();
        args.extend(["--data-dir".into(), dir]);
    }
    args
}

/// The zones' journals in a run with a zone kill: a temporary folder of this process, not the
/// report's (removed when the fabric stops).
fn zone_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("fabric-load-zones-{}", std::process::id()))
}

/// Writes the zone directory (`k@address#hash` per zone) for the Godot clients.
fn write_directory(opts: &LoadOptions, fabric: &Fabric) -> anyhow::Result<()> {
    if opts.godot_clients == 0 {
        return Ok(());
    }
    std::fs::create_dir_all(&opts.out)?;
    fabric.write_zone_directory(&directory_file(opts))
}

fn drive(
    opts: &LoadOptions,
    eng: &engine::Engine,
    fabric: &mut Fabric,
    load_bin: PathBuf,
    links: Option<&mut LinkRelays>,
    stop: &AtomicBool,
    log: &impl Fn(&str),
) -> anyhow::Result<LoadResult> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let players_key = create_account(&fabric.backend.url, "players")?;
    let summary_path = opts.out.join("summary.json");
    let _ = std::fs::remove_file(&summary_path);
    let mut cmd = std::process::Command::new(load_bin);
    cmd.args(["--backend", &fabric.backend.url])
        .args(["--players", &opts.players.to_string()])
        .args(["--seconds", &opts.seconds.to_string()])
        .args(["--ramp", &opts.ramp_s.to_string()])
        .args(["--transport", &opts.transport])
        .args(["--command-hz", &opts.command_hz.to_string()])
        .args(
            opts.sessions_per_endpoint
                .map(|n| ["--sessions-per-endpoint".to_owned(), n.to_string()])
                .into_iter()
                .flatten(),
        )
        .args([
            "--original-scheme-observers".to_owned(),
            opts.original_scheme_observers.to_string(),
        ])
        .arg("--summary")
        .arg(&summary_path)
        .args(opts.faults.args(fabric))
        .env("FABRIC_LOAD_API_KEY", &players_key);
    for z in &fabric.zones {
        cmd.arg("--zone")
            .arg(format!("{},{},{}", z.client, z.cert_hash, z.shard));
    }
    let mut gateway = match opts.faults.gateway {
        Some(_) => {
            let bin = if opts.release {
                fabric_harness::paths::target_dir().join("release/fabric-gateway")
            } else {
                engine::binary("fabric-gateway")?
            };
            // Its working files (the zone directory, its certificate hash) beside the zones'
            // journals, not in the report.
            let dir =
                std::env::temp_dir().join(format!("fabric-load-gateway-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let spawn = GatewaySpawn::new(bin, fabric, &dir)?;
            let gw = spawn.start("127.0.0.1:0".parse().expect("address"))?;
            log(&format!(
                "gateway on {} in front of zone 0, following avatars",
                gw.addr
            ));
            cmd.arg("--gateway")
                .arg(gw.addr.to_string())
                .arg("--gateway-cert-hash-file")
                .arg(&spawn.cert_hash_file);
            Some((spawn, gw))
        }
        None => None,
    };
    if opts.godot_clients > 0 {
        log(&format!(
            "starting {} headless Godot clients beside the simulated players",
            opts.godot_clients
        ));
    }
    // The wanderers, before the players' avatars: no entity of these may be lost.
    let mut held = HeldCheck::default();
    let state_addrs: Vec<_> = fabric.zones.iter().map(|z| z.metrics).collect();
    let baseline = held.baseline(&state_addrs, 30);
    log(&format!(
        "{baseline} entities held before the players joined"
    ));
    // First, so they are up when the players' ramp ends.
    let mut godot = GodotClients::start(eng, fabric, opts.godot_clients, 1.5)?;
    let mut load = match Proc::spawn("load", cmd, false) {
        Ok(p) => p,
        Err(e) => {
            godot.stop();
            if let Some((_, gw)) = &mut gateway {
                gw.proc.stop();
            }
            return Err(e);
        }
    };
    let started = Started {
        load: &mut load,
        godot: &mut godot,
        gateway: gateway.as_mut(),
        links,
        held,
    };
    let result = sample(opts, fabric, started, stop, log);
    godot.stop();
    if let Some((spawn, gw)) = &mut gateway {
        gw.proc.stop();
        if let Some(dir) = spawn.cert_hash_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}

/// What runs beside the fabric once the load generator started.
struct Started<'a> {
    load: &'a mut Proc,
    godot: &'a mut GodotClients,
    gateway: Option<&'a mut (GatewaySpawn, RunningGateway)>,
    links: Option<&'a mut LinkRelays>,
    /// The duplicate and loss check, its baseline read before the players joined.
    held: HeldCheck,
}

/// Samples the zones and processes each second while the load generator runs, applies the
/// harness's faults, then writes the report.
fn sample(
    opts: &LoadOptions,
    fabric: &mut Fabric,
    started: Started<'_>,
    stop: &AtomicBool,
    log: &impl Fn(&str),
) -> anyhow::Result<LoadResult> {
    let Started {
        load,
        godot,
        mut gateway,
        mut links,
        mut held,
    } = started;
    let summary_path = opts.out.join("summary.json");
    let t0 = Instant::now();
    let window_at = opts.ramp_s + 2.0;
    let mut window_started = false;
    let mut zone_cpu: Vec<CpuMeter> = fabric
        .processes
        .iter()
        .map(|(p, _)| CpuMeter::new(p.pid()))
        .collect();
    let mut others = vec![
        ("load generator", CpuMeter::new(load.pid())),
        ("backend", CpuMeter::new(fabric.backend.proc.pid())),
    ];
    if let Some((_, gw)) = &gateway {
        others.push(("gateway", CpuMeter::new(gw.proc.pid())));
    }
    let mut gateway_crash = opts.faults.gateway.map(GatewayCrash::new);
    let mut processes: Vec<ProcSeries> = fabric
        .processes
        .iter()
        .map(|(_, r)| match r.len() {
            1 => format!("zone {}", r.start),
            _ => format!("zones {}-{}", r.start, r.end - 1),
        })
        .chain(others.iter().map(|o| o.0.to_owned()))
        .map(|name| ProcSeries {
            name,
            samples: Vec::new(),
        })
        .collect();
    let mut zones: Vec<Vec<ZoneSample>> = vec![Vec::new(); fabric.zones.len()];
    let mut last_bytes = vec![None::<f64>; fabric.zones.len()];
    let mut last_ticks = vec![None::<f64>; fabric.zones.len()];
    let limit = Duration::from_secs(u64::from(opts.seconds) + 90);

    let mut crash = opts.faults.zone_kill.map(ZoneCrash::new);
    let mut next = t0;
    while is_running(load.pid())
        && t0.elapsed() < limit
        && !stop.load(std::sync::atomic::Ordering::SeqCst)
    {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let t = t0.elapsed().as_secs_f64();
        if let Some(c) = &mut crash {
            let before = fabric
                .processes
                .iter()
                .map(|(p, _)| p.pid())
                .collect::<Vec<_>>();
            c.step(t, fabric, log)?;
            for (meter, ((p, _), old)) in
                zone_cpu.iter_mut().zip(fabric.processes.iter().zip(before))
            {
                if p.pid() != old {
                    *meter = CpuMeter::new(p.pid());
                }
            }
        }
        if let (Some(c), Some((spawn, gw))) = (&mut gateway_crash, gateway.as_deref_mut()) {
            let before = gw.proc.pid();
            c.step(t, gw, spawn, log)?;
            if gw.proc.pid() != before
                && let Some(m) = others.iter_mut().find(|o| o.0 == "gateway")
            {
                m.1 = CpuMeter::new(gw.proc.pid());
            }
        }
        if let Some(l) = links.as_deref_mut() {
            l.step(t, log);
        }
        if !window_started && t >= window_at {
            godot.start_window();
            window_started = true;
        }
        for (k, z) in fabric.zones.iter().enumerate() {
            if crash.as_ref().is_some_and(|c| c.is_out(k)) {
                continue;
            }
            let Ok(m) = metrics(z.metrics) else {
                log(&format!("zone {k}: metrics unreadable"));
                continue;
            };
            let get = |name: &str| m.get(name).copied().unwrap_or(0.0);
            let bytes = get("fabric_zone_client_bytes_total");
            let rate = last_bytes[k].map_or(0.0, |b| bytes - b);
            last_bytes[k] = Some(bytes);
            let ticks = get("fabric_zone_ticks_total");
            let ticks_per_s = last_ticks[k].map_or(0.0, |b| ticks - b);
            last_ticks[k] = Some(ticks);
            zones[k].push(ZoneSample {
                t,
                tick_p50_ms: get("fabric_zone_tick_p50_seconds") * 1e3,
                tick_p99_ms: get("fabric_zone_tick_p99_seconds") * 1e3,
                overruns: get("fabric_zone_overruns_total"),
                dropped_ticks: get("fabric_zone_dropped_ticks_total"),
                ticks_per_s,
                players: get("fabric_zone_players"),
                entities: get("fabric_zone_owned"),
                client_bytes_per_s: rate,
                migrations_in: get("fabric_zone_migrations_in_total"),
            });
        }
        let state_addrs: Vec<_> = fabric.zones.iter().map(|z| z.metrics).collect();
        held.sample(&state_addrs);
        let meters = zone_cpu
            .iter_mut()
            .chain(others.iter_mut().map(|o| &mut o.1));
        for (series, meter) in processes.iter_mut().zip(meters) {
            let (cpu_percent, rss_mib) = meter.sample();
            series.samples.push(ProcSample {
                t,
                cpu_percent,
                rss_mib,
            });
        }
        let worst = zones
            .iter()
            .filter_map(|z| z.last())
            .map(|s| s.tick_p99_ms)
            .fold(0.0, f64::max);
        let cpu: f64 = processes
            .iter()
            .filter_map(|p| p.samples.last())
            .map(|s| s.cpu_percent)
            .sum();
        log(&format!(
            "+{t:>5.1} s  worst zone tick p99 {worst:>6.2} ms  CPU all {cpu:>4.0} %"
        ));
    }
    let load_exit = load.wait(Duration::from_secs(30));
    let godot_figures = godot.figures();
    // The first sample of each meter has no interval: drop it.
    for p in &mut processes {
        if !p.samples.is_empty() {
            p.samples.remove(0);
        }
    }
    let text = std::fs::read(&summary_path).with_context(|| {
        format!(
            "the load generator wrote no summary ({load_exit:?})\n{}",
            load.output()
        )
    })?;
    let summary: Summary = serde_json::from_slice(&text).context("reading the summary")?;
    let data = ReportData {
        command: opts.command.clone(),
        summary,
        zones,
        processes,
    };
    let written = report::write(&opts.out, &data, opts.ramp_s + 2.0)?;
    if !godot_figures.is_empty() {
        let section = godot_section(&data, &godot_figures, opts, window_at);
        let mut md = std::fs::read_to_string(&written.markdown)?;
        md.push_str(&section);
        std::fs::write(&written.markdown, md)?;
        log(&section);
    }
    log(&format!("report: {}", written.markdown.display()));
    Ok(LoadResult {
        load_exit,
        data,
        written,
        held: held.figures(),
        crash: crash.map(|c| c.figures()),
        godot: godot_figures,
        gateway: gateway_crash.map(|c| c.figures()),
        links: links.map(|l| l.figures()),
    })
}

/// The report's section on the Godot clients, with the zones' CPU per client (all zone
/// processes' CPU after `from_s`, mean, over every client: simulated and Godot).
fn godot_section(
    data: &ReportData,
    figures: &[(String, Option<GodotFigures>)],
    opts: &LoadOptions,
    from_s: f64,
) -> String {
    let zone_cpu: f64 = data
        .processes
        .iter()
        .filter(|p| p.name.starts_with("zone"))
        .map(|p| {
            let v: Vec<f64> = p
                .samples
                .iter()
                .filter(|s| s.t >= from_s)
                .map(|s| s.cpu_percent)
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .sum();
    let clients = opts.players + opts.godot_clients;
    format!(
        "\n## Godot clients\n\n{} headless Godot clients (`examples/fabric_world/bot.tscn`, 30 fps, \
         walking 1.5 m/s through every zone, each joined to a zone directly with its own join token) \
         beside the {} simulated players; figures from {from_s:.0} s on. Zones' CPU: {zone_cpu:.0} % \
         of a core in all, {:.2} % per client ({clients} clients).\n\n{}",
        opts.godot_clients,
        opts.players,
        zone_cpu / f64::from(clients.max(1)),
        crate::load_godot::table(figures)
    )
}
