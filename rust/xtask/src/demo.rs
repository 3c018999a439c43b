//! `cargo xtask demo`: the main job. A zone fabric on loopback, each part its own process: the
//! registry backend, 3 zones with wanderers that register with it and link to each other
//! through it, the gateway in front of zone 0 that follows avatars across zones, and headless
//! Godot bots (`FabricWorld` with its walker) that each get a join token from the backend for
//! their own account, join through the gateway and walk through every zone. Once a second it prints one status line
//! per zone (from the zone's metrics) and per client (from the bot's own line: visible
//! entities, zones seen, bytes/s, update rate, its avatar's zone). After `--seconds` it stops
//! everything and prints a summary; it succeeds only when every bot saw entities of more than
//! one zone and its avatar crossed a border. `--visual` also opens the visual client
//! (`examples/fabric_world/visual.tscn`) in a window.
//!
//! `--static-membership` runs the older fabric instead: a members file and a shared fabric key,
//! no backend, clients without tokens ([`fabric_e2e::demo_fabric::Membership`]).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_e2e::demo_fabric::{DemoFabric, DemoOptions, Membership};
use fabric_e2e::zone_probe::{field, metrics};
use fabric_harness::engine;
use fabric_harness::process::Proc;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds the bots walk.
    pub seconds: u64,
    /// Headless Godot bots.
    pub bots: usize,
    /// Zone processes.
    pub zones: usize,
    /// Open the visual client in a window (needs a display).
    pub visual: bool,
    /// Pass the processes' own output through (prefixed with their role).
    pub verbose: bool,
    /// Static membership instead of the registry's.
    pub static_membership: bool,
}

fn step(t0: Instant, text: &str) {
    println!("[demo +{:>6.2} s] {text}", t0.elapsed().as_secs_f64());
}

/// A bot's last status line, as its numbers.
#[derive(Debug, Default, Clone)]
struct BotStatus {
    visible: u64,
    zones_seen: String,
    bytes_per_second: f64,
    updates_per_second: f64,
    avatar_zone: i64,
    crossings: u64,
}

impl BotStatus {
    fn parse(line: &str) -> Option<Self> {
        let num = |k: &str| field(line, k).and_then(|v| v.parse::<f64>().ok());
        Some(Self {
            visible: num("visible")? as u64,
            zones_seen: field(line, "zones_seen")?.to_owned(),
            bytes_per_second: num("bytes_per_second")?,
            updates_per_second: num("updates_per_second")?,
            avatar_zone: num("avatar_zone")? as i64,
            crossings: num("crossings")? as u64,
        })
    }

    fn zones_seen(&self) -> usize {
        self.zones_seen.split(',').filter(|z| !z.is_empty()).count()
    }

    fn line(&self, name: &str) -> String {
        format!(
            "client {name}: visible {:>4}  zones seen {:<7} {:>7.1} KB/s  {:>5.1} updates/s  avatar in zone {}  crossings {}",
            self.visible,
            self.zones_seen,
            self.bytes_per_second / 1024.0,
            self.updates_per_second,
            self.avatar_zone,
            self.crossings
        )
    }
}

/// The newest `FABRIC_BOT` status line `bot` printed.
fn last_status(bot: &Proc) -> Option<BotStatus> {
    bot.output()
        .lines()
        .rev()
        .filter(|l| l.contains("FABRIC_BOT ") && l.contains(" crossings="))
        .find_map(|l| BotStatus::parse(&l[l.find("FABRIC_BOT ")?..]))
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let t0 = Instant::now();
    if !opts.verbose {
        // SAFETY: no other thread runs yet (nothing is started before this point).
        unsafe { std::env::set_var("FABRIC_QUIET", "1") };
    }
    step(
        t0,
        "preparing Godot, the extension and the project (the first run installs Godot: about a minute)",
    );
    let eng = engine::prepare(false)?;
    let shape = DemoOptions {
        zones: opts.zones,
        membership: if opts.static_membership {
            Membership::Static
        } else {
            Membership::Registry
        },
        ..DemoOptions::default()
    };
    step(
        t0,
        &format!(
            "starting {} zones ({} wanderers in all, a {} m world, interest radius {} m) and the gateway",
            shape.zones,
            shape.entities,
            shape.half_m * 2.0,
            shape.radius_m
        ),
    );
    let mut fabric = DemoFabric::start("demo", shape)?;
    match fabric.backend_url() {
        Some(url) => step(
            t0,
            &format!("registry backend on {url}: the zones registered and linked through it"),
        ),
        None => step(t0, "static membership: no registry, no join tokens"),
    }
    for (k, z) in fabric.zones.iter().enumerate() {
        step(
            t0,
            &format!(
                "zone {k} on UDP 127.0.0.1:{}, metrics on http://{}/metrics",
                z.port, z.metrics
            ),
        );
    }
    step(
        t0,
        &format!(
            "gateway on {} (in front of zone 0, following avatars)",
            fabric.gateway_url()
        ),
    );
    let result = play(&opts, &eng, &fabric, t0);
    step(t0, "stopping the clients, the gateway and the zones");
    fabric.stop();
    let names = result?;
    step(t0, &format!("done: {names}"));
    Ok(())
}

/// Starts the clients, prints the status lines until the time is up, and checks the bots.
fn play(
    opts: &Options,
    eng: &engine::Engine,
    fabric: &DemoFabric,
    t0: Instant,
) -> anyhow::Result<String> {
    let mut bots = Vec::new();
    for i in 0..opts.bots {
        let name = format!("bot{i}");
        let (spawn, tour) = fabric.bot_tour(i);
        step(
            t0,
            &format!(
                "client {name}: headless Godot FabricWorld through the gateway{}, spawns at {spawn:?}, walks {tour:?}",
                if fabric.backend_url().is_some() {
                    " with its join token"
                } else {
                    ""
                }
            ),
        );
        let cmd = fabric.bot_command(eng, &name, i, &[])?;
        bots.push((name.clone(), Proc::spawn(&name, cmd, true)?));
    }
    let mut visual = None;
    if opts.visual {
        std::env::var_os("DISPLAY").context("--visual needs a display (DISPLAY is not set)")?;
        step(t0, "the visual client: entities coloured by owning zone");
        let cmd = fabric.visual_command(eng, &[])?;
        visual = Some(Proc::spawn("visual", cmd, true)?);
    }
    let started = Instant::now();
    let mut next = started + Duration::from_secs(1);
    let mut last_migrations = vec![0.0; fabric.zones.len()];
    while started.elapsed() < Duration::from_secs(opts.seconds) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        step(t0, "status");
        for (k, z) in fabric.zones.iter().enumerate() {
            match metrics(z.metrics) {
                Ok(m) => {
                    let total = m.get("fabric_zone_migrations_in_total").copied();
                    let rate = total.map_or(0.0, |t| t - last_migrations[k]);
                    last_migrations[k] = total.unwrap_or(last_migrations[k]);
                    println!("  {}", crate::fabric::status_line(k as u32, &m, rate));
                }
                Err(e) => println!("  zone {k}: metrics unreadable: {e:#}"),
            }
        }
        for (name, bot) in &bots {
            match last_status(bot) {
                Some(s) => println!("  {}", s.line(name)),
                None if bot.group_alive() => println!("  client {name}: joining"),
                None => println!("  client {name}: exited"),
            }
        }
    }
    if let Some(mut v) = visual {
        v.stop();
    }
    let mut failed = Vec::new();
    println!("summary:");
    for (name, mut bot) in bots {
        let status = last_status(&bot);
        bot.stop();
        match status {
            Some(s) => {
                let ok = s.zones_seen() > 1 && s.crossings > 0;
                println!(
                    "  {} {}",
                    if ok { "ok    " } else { "FAILED" },
                    s.line(&name)
                );
                if !ok {
                    failed.push(name);
                }
            }
            None => {
                println!("  FAILED client {name}: no status line\n{}", bot.output());
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} did not both see entities of more than one zone and cross a border",
            failed.join(", ")
        );
    }
    Ok(format!(
        "{} bots each saw entities of more than one zone and crossed a border",
        opts.bots
    ))
}
