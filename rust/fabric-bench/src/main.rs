//! `fabric-bench`: the transport benchmark of issue 4, one command:
//!
//! ```sh
//! cargo run --release -p fabric-bench -- --messages 2000
//! ```
//!
//! For each link (clean loopback, then 2 % loss + 50 ms delay per direction through the
//! `fabric-linksim` TUN conditioner) and each transport (`fabric-wt` = FabricMMOGTransportPeer
//! over WebTransport, `fabric-websocket` = the same peer over its `wss://` fallback, `enet`,
//! `websocket`), it starts a headless Godot server
//! (`scenes/bench/bench_server.tscn`) and client (`scenes/bench/bench_client.tscn`) of the same
//! engine, collects the client's `BENCH_RESULT` lines, prints one table and writes it into the
//! "Transport (issue 4)" section of `docs/benchmarks.md`. A new transport is one more name in
//! `bench_common.gd` and in `--transports`.
//!
//! It is a benchmark, not a test: nothing here asserts on timings.

mod report;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use fabric_harness::engine::{self, Engine};
use fabric_harness::paths;
use fabric_harness::process::Proc;
use fabric_linksim::{LinkConfig, LinkSim};

use report::{Phase, Row};

/// Transport benchmark: RTT, throughput and CPU per message of Godot multiplayer peers.
#[derive(Debug, Parser)]
struct Args {
    /// Messages per phase (unreliable RTT, reliable RTT, reliable throughput).
    #[arg(long, default_value_t = 2000)]
    messages: u32,
    /// Send rate of the two RTT phases, messages per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Messages of the throughput phase on clean links (its CPU time gives the CPU per message,
    /// so it must run long enough for /proc's 10 ms ticks); on the lossy link it sends
    /// --messages.
    #[arg(long, default_value_t = 20_000)]
    throughput_messages: u32,
    /// Reliable messages in flight during the throughput phase.
    #[arg(long, default_value_t = 64)]
    window: u32,
    /// Loss per direction on the conditioned link, percent.
    #[arg(long, default_value_t = 2.0)]
    loss_percent: f64,
    /// Delay per direction on the conditioned link, milliseconds.
    #[arg(long, default_value_t = 50)]
    delay_ms: u64,
    /// Seed of the conditioner's decisions.
    #[arg(long, default_value_t = 4)]
    seed: u64,
    /// Transports, comma separated (names of `scripts/bench/bench_common.gd`).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_TRANSPORTS)]
    transports: Vec<String>,
    /// Links, comma separated: `loopback`; `conditioned` (--loss-percent and --delay-ms per
    /// direction through the TUN conditioner); `tun` (through the conditioner, no loss or delay:
    /// its own cost).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "loopback,tun,conditioned"
    )]
    links: Vec<String>,
    /// Frame cap of both Godot processes (SceneMultiplayer polls once per frame).
    #[arg(long, default_value_t = 1000)]
    fps: u32,
    /// Instead of Godot's own frame pacing (whose phase drifts, and on a busy machine tends to
    /// line the two processes' frames up), wake both main loops on a 1/fps grid of the shared
    /// clock, the server this many microseconds after the client: shows how the loopback RTT
    /// depends on the phase between the two loops.
    #[arg(long)]
    phase_us: Option<u64>,
    /// Use the extension as installed (skip the release build).
    #[arg(long)]
    no_build: bool,
    /// Do not write docs/benchmarks.md.
    #[arg(long)]
    no_write: bool,
    /// Show the Godot processes' output.
    #[arg(long)]
    verbose: bool,
}

/// The transports measured by default: ours over WebTransport and over the WebSocket fallback,
/// then Godot's ENet and WebSocket peers.
const DEFAULT_TRANSPORTS: &str = "fabric-wt,fabric-websocket,enet,websocket";

/// Where a run's processes live and how they reach each other.
struct Site {
    name: String,
    lossy: bool,
    bind: Ipv4Addr,
    server_ns: Option<String>,
    client_ns: Option<String>,
}

fn godot_command(engine: &Engine, ns: Option<&str>, scene: &str, args: &[String]) -> Command {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = engine.scene_command(scene, &args);
    match ns {
        None => plain,
        Some(ns) => {
            let mut c = LinkSim::command_in(ns, plain.get_program());
            c.args(plain.get_args());
            c
        }
    }
}

fn run_one(
    engine: &Engine,
    site: &Site,
    transport: &str,
    port: u16,
    a: &Args,
) -> anyhow::Result<Vec<Phase>> {
    let common = |extra: &[(&str, String)]| -> Vec<String> {
        let mut v = vec![
            "--transport".to_owned(),
            transport.to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--fps".to_owned(),
            a.fps.to_string(),
            "--timeout".to_owned(),
            "240".to_owned(),
        ];
        for (k, val) in extra {
            v.push(format!("--{k}"));
            v.push(val.clone());
        }
        v
    };
    let mut server_extra = vec![("bind", site.bind.to_string())];
    if let Some(p) = a.phase_us {
        server_extra.push(("phase-us", p.to_string()));
    }
    let server_args = common(&server_extra);
    let mut server = Proc::spawn(
        &format!("server {transport}"),
        godot_command(
            engine,
            site.server_ns.as_deref(),
            "res://scenes/bench/bench_server.tscn",
            &server_args,
        ),
        true,
    )?;
    let ready = server.wait_for_line(
        |l| l.starts_with("BENCH_SERVER_READY"),
        Duration::from_secs(60),
    )?;
    let cert_hash = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("cert_hash="))
        .unwrap_or("")
        .to_owned();
    let mut client_extra = vec![
        ("host", site.bind.to_string()),
        ("cert-hash", cert_hash),
        ("messages", a.messages.to_string()),
        ("rate", a.rate.to_string()),
        ("window", a.window.to_string()),
        (
            "burst",
            if site.lossy {
                a.messages
            } else {
                a.throughput_messages
            }
            .to_string(),
        ),
    ];
    if a.phase_us.is_some() {
        client_extra.push(("phase-us", "0".to_owned()));
    }
    let client_args = common(&client_extra);
    let mut client = Proc::spawn(
        &format!("client {transport}"),
        godot_command(
            engine,
            site.client_ns.as_deref(),
            "res://scenes/bench/bench_client.tscn",
            &client_args,
        ),
        true,
    )?;
    let out = client.wait(Duration::from_secs(300));
    let text = client.output();
    let _ = server.wait(Duration::from_secs(5));
    if !out.success() {
        let err: Vec<&str> = text.lines().filter(|l| l.contains("BENCH_ERROR")).collect();
        bail!("client ended with {out:?}: {}", err.join("; "));
    }
    let phases = text
        .lines()
        .filter_map(|l| l.split_once("BENCH_RESULT ").map(|(_, j)| j))
        .map(|j| serde_json::from_str::<Phase>(j).with_context(|| format!("parsing {j}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if phases.len() != 3 {
        bail!("expected 3 phases, got {}", phases.len());
    }
    Ok(phases)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if !a.verbose {
        // SAFETY: set before any thread starts.
        unsafe { std::env::set_var("FABRIC_QUIET", "1") };
    }
    let started = Instant::now();
    let engine = engine::single()?;
    if !a.no_build {
        eprintln!("[bench] building the extension (release) ...");
        engine::build_extension(false, true)?;
    }
    eprintln!("[bench] importing the project ...");
    engine::import_project(&engine)?;
    // SAFETY: sysconf has no preconditions.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let lossy_name = format!("{}% + {}ms", a.loss_percent, a.delay_ms);
    let base_port = 40_000 + (std::process::id() % 5_000) as u16 * 4;
    let mut rows = Vec::new();
    let mut link_notes = Vec::new();
    for link in &a.links {
        let (site, mut sim) = match link.as_str() {
            "loopback" => (
                Site {
                    name: "loopback".into(),
                    lossy: false,
                    bind: Ipv4Addr::LOCALHOST,
                    server_ns: None,
                    client_ns: None,
                },
                None,
            ),
            "conditioned" | "tun" => {
                if let Err(e) = fabric_linksim::available() {
                    eprintln!("[bench] skipping the {link} link: {e}");
                    link_notes.push(format!("{link} link skipped: {e}"));
                    continue;
                }
                let (cfg, name) = if link == "tun" {
                    (LinkConfig::default(), "TUN, clean".to_owned())
                } else {
                    (
                        LinkConfig {
                            delay: Duration::from_millis(a.delay_ms),
                            loss: a.loss_percent / 100.0,
                            ..Default::default()
                        },
                        lossy_name.clone(),
                    )
                };
                let tag = format!("fbb{}", std::process::id() % 100_000);
                let sim = LinkSim::start(&tag, cfg.clone(), cfg, a.seed)?;
                (
                    Site {
                        lossy: link != "tun",
                        name,
                        bind: fabric_linksim::netns::SERVER_ADDR,
                        server_ns: Some(sim.server_ns().to_owned()),
                        client_ns: Some(sim.client_ns().to_owned()),
                    },
                    Some(sim),
                )
            }
            other => bail!("unknown link `{other}` (loopback, tun, conditioned)"),
        };
        for (i, t) in a.transports.iter().enumerate() {
            eprintln!("[bench] {} over {} ...", t, site.name);
            let t0 = Instant::now();
            let result =
                run_one(&engine, &site, t, base_port + i as u16, &a).map_err(|e| format!("{e:#}"));
            match &result {
                Ok(_) => eprintln!("[bench]   done in {:.1} s", t0.elapsed().as_secs_f64()),
                Err(e) => eprintln!("[bench]   FAILED: {e}"),
            }
            rows.push(Row {
                transport: t.clone(),
                link: site.name.clone(),
                result,
            });
        }
        if let Some(sim) = sim.as_mut() {
            let s = sim.stop();
            let pct = |d: u64, r: u64| 100.0 * d as f64 / r.max(1) as f64;
            link_notes.push(format!(
                "conditioner on {} (seed {}): client->server {} packets, {} dropped ({:.2} %); server->client {} packets, {} dropped ({:.2} %)",
                site.name,
                a.seed,
                s.to_server.link.received,
                s.to_server.link.dropped,
                pct(s.to_server.link.dropped, s.to_server.link.received),
                s.to_client.link.received,
                s.to_client.link.dropped,
                pct(s.to_client.link.dropped, s.to_client.link.received),
            ));
        }
    }
    let table = report::table(&rows, clk_tck, a.window);
    let comparisons = report::comparisons(&rows, "loopback", &lossy_name);
    println!("{table}");
    println!("{comparisons}");
    for n in &link_notes {
        println!("{n}");
    }
    eprintln!(
        "[bench] finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !a.no_write {
        let generated = generated_text(&a, &table, &comparisons, &link_notes);
        let path = paths::repo_root().join("docs/benchmarks.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, report::update_doc(&old, INTRO, &generated))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("[bench] wrote {}", path.display());
    }
    if rows.iter().any(|r| r.result.is_err()) {
        bail!("some runs failed (see the table)");
    }
    Ok(())
}

const INTRO: &str = "How FabricMMOGTransportPeer (WebTransport, and its WebSocket fallback) \
compares with Godot's own ENetMultiplayerPeer and WebSocketMultiplayerPeer, same engine, same \
run, same machine.";

fn generated_text(a: &Args, table: &str, comparisons: &str, notes: &[String]) -> String {
    let mut cmd = "cargo run --release -p fabric-bench --".to_owned();
    cmd.push_str(&format!(" --messages {}", a.messages));
    if a.rate != 500 {
        cmd.push_str(&format!(" --rate {}", a.rate));
    }
    if a.throughput_messages != 20_000 {
        cmd.push_str(&format!(" --throughput-messages {}", a.throughput_messages));
    }
    if a.window != 64 {
        cmd.push_str(&format!(" --window {}", a.window));
    }
    if a.links != ["loopback", "tun", "conditioned"] {
        cmd.push_str(&format!(" --links {}", a.links.join(",")));
    }
    if a.transports.join(",") != DEFAULT_TRANSPORTS {
        cmd.push_str(&format!(" --transports {}", a.transports.join(",")));
    }
    if a.fps != 1000 {
        cmd.push_str(&format!(" --fps {}", a.fps));
    }
    let pacing = match a.phase_us {
        Some(p) => {
            cmd.push_str(&format!(" --phase-us {p}"));
            format!(
                "both Godot main loops woken on a {} µs grid of the shared clock, the server {p} µs \
                 after the client",
                1_000_000 / a.fps.max(1)
            )
        }
        None => format!("both Godot processes capped at {} fps", a.fps),
    };
    let uname = Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut s = format!("Command (generated by the last run):\n\n```sh\n{cmd}\n```\n\n");
    s.push_str(&format!(
        "Machine: {uname}, {cpus} CPUs, load average at the end {} (shared with other work: \
         figures are noisy; compare rows of the same run, not runs). Release extension; {}; {} messages of 64 bytes per RTT phase, sent at \
         {} messages/s; the throughput phase sends {} messages ({} on the lossy link) with {} \
         reliable messages in flight, and its CPU time (utime + stime from /proc/<pid>/stat of \
         both processes, 10 ms ticks) divided by its messages is the CPU column.\n\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        pacing,
        a.messages,
        a.rate,
        a.throughput_messages,
        a.messages,
        a.window,
    ));
    s.push_str(table);
    s.push('\n');
    s.push_str(comparisons);
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}
