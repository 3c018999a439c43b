//! `fabric-load`: simulated players against zones on loopback.
//!
//! ```sh
//! fabric-load --zone 127.0.0.1:7443,HASH,SHARD_ID --zone ... --backend http://127.0.0.1:8080 \
//!     --players 1000 --seconds 60 --transport wt --summary out/summary.json
//! ```
//!
//! `--zone` once per zone, in zone-index order. With `--backend`, each join asks the registry
//! for a token with the key in `FABRIC_LOAD_API_KEY` (or a fresh account made for the run).
//! A progress line each second, the summary at the end, and the summary as JSON with
//! `--summary`. Exits 1 when a player never got an avatar or any error was counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use fabric_linksim::LinkConfig;
use fabric_load::desync::{self, Truths};
use fabric_load::player::Behaviour;
use fabric_load::relay::{self, RelayCounters};
use fabric_load::run::{Plan, run};
use fabric_load::stall::StallPlan;
use fabric_load::target::{Gateway, Target, Tokens, Transport, ZoneAddr};
use fabric_load::windows::WindowPlan;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// WebTransport.
    Wt,
    /// The WebSocket fallback.
    Ws,
}

#[derive(Debug, Parser)]
#[command(about = "Simulated players against Multiplayer Fabric zones on loopback")]
struct Args {
    /// A zone: ADDR,CERT_HASH[,SHARD_ID], once per zone in index order.
    #[arg(long = "zone", required = true)]
    zones: Vec<String>,
    /// Registry backend for join tokens (loopback).
    #[arg(long)]
    backend: Option<String>,
    /// Players.
    #[arg(long, default_value_t = 100)]
    players: u32,
    /// Seconds of the run (at most an hour).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Seconds over which the players' starts are spread.
    #[arg(long, default_value_t = 5.0)]
    ramp: f64,
    /// `wt` (WebTransport) or `ws` (WebSocket fallback).
    #[arg(long, value_enum, default_value_t = TransportArg::Wt)]
    transport: TransportArg,
    /// The zones' world half-width, metres.
    #[arg(long, default_value_t = 15.0)]
    half_m: f64,
    /// Position commands per second per player.
    #[arg(long, default_value_t = 20.0)]
    command_hz: f64,
    /// The zones' tick rate.
    #[arg(long, default_value_t = 20.0)]
    tick_hz: f64,
    /// Walking speed, metres per second.
    #[arg(long, default_value_t = 1.4)]
    speed: f64,
    /// Share of players walking in crowds.
    #[arg(long, default_value_t = 0.3)]
    crowd: f64,
    /// Seed of the walks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runtime worker threads (one runtime for every player).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Write the summary as JSON here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The reconnect storm: seconds from the start at which every player drops its session and
    /// joins again at once.
    #[arg(long)]
    storm_at: Option<f64>,
    /// A conditioned link for every player (WebTransport only): one-way delay, milliseconds,
    /// each way, through a UDP relay per zone on loopback.
    #[arg(long)]
    link_delay_ms: Option<u64>,
    /// Extra uniform delay per packet on the conditioned link, milliseconds.
    #[arg(long, default_value_t = 0)]
    link_jitter_ms: u64,
    /// Share of packets the conditioned link drops, each way (0..=1).
    #[arg(long, default_value_t = 0.0)]
    link_loss: f64,
    /// Failed sessions in a row after which a player gives up (it retries once a second,
    /// asking the registry for its zone's address again first).
    #[arg(long, default_value_t = 3)]
    max_failures: u32,
    /// A zone's metrics address (`/state`), once per zone in index order: players compare what
    /// they see with what the zones hold.
    #[arg(long = "state")]
    states: Vec<std::net::SocketAddr>,
    /// WebTransport players sharing one QUIC endpoint (UDP socket) per zone, at most this many
    /// on each; 0 gives every player its own endpoint, as a game client has.
    #[arg(long, default_value_t = fabric_net::client_endpoints::DEFAULT_SESSIONS_PER_ENDPOINT)]
    sessions_per_endpoint: usize,
    /// Observers of the original scheme (every entity as a 100-byte row every tick), spread
    /// over the zones: the baseline measured in the same run. The zones must allow as many
    /// (`--original-scheme-sessions`).
    #[arg(long, default_value_t = 0)]
    original_scheme_observers: u32,
    /// The slow reader: seconds from the start at which `--stall-share` of the players stop
    /// reading and sending, their sessions held open until the end.
    #[arg(long)]
    stall_at: Option<f64>,
    /// Share of the players that stall (0..=1).
    #[arg(long, default_value_t = 0.1)]
    stall_share: f64,
    /// Windows before and after a fault, `FROM,TO,AFTER` seconds from the start: the summary
    /// compares the players' own updates and gaps in `[FROM, TO)` with those from AFTER on
    /// (stalled players left out).
    #[arg(long)]
    windows: Option<String>,
    /// Join through this gateway (loopback) instead of the zones directly; it fronts
    /// `--gateway-zone` and follows the avatars.
    #[arg(long, requires = "gateway_cert_hash_file")]
    gateway: Option<std::net::SocketAddr>,
    /// The gateway's certificate hash file (its `--cert-hash-file`), read for every session.
    #[arg(long)]
    gateway_cert_hash_file: Option<PathBuf>,
    /// The zone the gateway fronts.
    #[arg(long, default_value_t = 0)]
    gateway_zone: u8,
}

/// Most players one process runs.
const MAX_PLAYERS: u32 = 20_000;

fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        (1..=MAX_PLAYERS).contains(&args.players),
        "--players must be 1..={MAX_PLAYERS}"
    );
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be in (0, 3600]"
    );
    let mut zones = args
        .zones
        .iter()
        .map(|z| ZoneAddr::parse(z))
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let relays = conditioned_links(&rt, &args, &mut zones)?;
    let tokens = match &args.backend {
        None => None,
        Some(url) => Some(Tokens {
            backend: url.clone(),
            api_key: match std::env::var("FABRIC_LOAD_API_KEY") {
                Ok(k) if !k.is_empty() => k,
                _ => rt.block_on(make_account(url))?,
            },
        }),
    };
    let transport = match args.transport {
        TransportArg::Wt => Transport::WebTransport,
        TransportArg::Ws => Transport::WebSocket,
    };
    let mut target = Target::new(zones, args.half_m, tokens, transport)?;
    if let Some(addr) = args.gateway {
        anyhow::ensure!(
            addr.ip().is_loopback() && matches!(args.transport, TransportArg::Wt),
            "--gateway: a loopback address, WebTransport"
        );
        anyhow::ensure!(
            usize::from(args.gateway_zone) < target.zones.len(),
            "--gateway-zone {} of {} zones",
            args.gateway_zone,
            target.zones.len()
        );
        target.gateway = Some(Gateway {
            addr,
            cert_hash_file: args
                .gateway_cert_hash_file
                .clone()
                .context("--gateway-cert-hash-file")?,
            zone: args.gateway_zone,
        });
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.stall_share),
        "--stall-share must be in [0, 1]"
    );
    let windows = args
        .windows
        .as_deref()
        .map(WindowPlan::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--windows {e}"))?;
    if args.sessions_per_endpoint > 0 {
        target.endpoints = Some(fabric_net::ClientEndpoints::new(args.sessions_per_endpoint));
    }
    if !args.states.is_empty() {
        anyhow::ensure!(
            args.states.len() == target.zones.len()
                && args.states.iter().all(|a| a.ip().is_loopback()),
            "--state once per zone, on loopback"
        );
        let truths = Arc::new(Truths::new(target.zones.len()));
        rt.spawn(desync::sample(
            args.states.clone(),
            truths.clone(),
            Duration::from_millis(100),
        ));
        target.truths = Some(truths);
    }
    let plan = Plan {
        players: args.players,
        seconds: args.seconds,
        ramp_s: args.ramp,
        behaviour: Behaviour {
            command_hz: args.command_hz,
            tick_hz: args.tick_hz,
            speed_m_s: args.speed,
            crowd: args.crowd,
            seed: args.seed,
            join_timeout: Duration::from_secs(20),
            max_failures: args.max_failures.max(1),
            windows,
        },
        storm_at_s: args.storm_at,
        original_scheme_observers: args.original_scheme_observers,
        stall: args.stall_at.map(|at_s| StallPlan {
            at_s,
            share: args.stall_share,
        }),
    };
    println!(
        "[load] {} players over {} zones ({:?}) for {} s",
        plan.players,
        target.zones.len(),
        args.transport,
        plan.seconds
    );
    let mut summary = rt.block_on(run(target, plan, |l| println!("{l}")));
    summary.relay = relays.map(|c| c.figures());
    println!("[load] summary\n{}", summary.text());
    if let Some(path) = &args.summary {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    let ok = summary.joined == summary.players
        && summary.errors == 0
        && summary.original_scheme.iter().all(|o| o.error.is_none());
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// With `--link-delay-ms`, starts a conditioned relay per zone and points the players at it.
fn conditioned_links(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    zones: &mut [ZoneAddr],
) -> anyhow::Result<Option<Arc<RelayCounters>>> {
    let Some(delay) = args.link_delay_ms else {
        return Ok(None);
    };
    anyhow::ensure!(
        matches!(args.transport, TransportArg::Wt),
        "the conditioned link relays UDP: use --transport wt"
    );
    let cfg = LinkConfig {
        delay: Duration::from_millis(delay),
        jitter: Duration::from_millis(args.link_jitter_ms),
        loss: args.link_loss,
        ..LinkConfig::default()
    };
    let counters = Arc::new(RelayCounters::default());
    for (k, z) in zones.iter_mut().enumerate() {
        let via = rt.block_on(relay::start(
            z.addr,
            cfg.clone(),
            args.seed.wrapping_add(k as u64),
            counters.clone(),
        ))?;
        println!(
            "[load] zone {k}: players reach {} through {via} ({delay} ms, loss {})",
            z.addr, args.link_loss
        );
        z.addr = via;
    }
    Ok(Some(counters))
}

/// Makes an account for this run's players; returns its API key.
async fn make_account(backend: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({ "name": format!("load-{}", std::process::id()) });
    let r = fabric_net::http::request(
        backend,
        "POST",
        "/accounts",
        None,
        Some(&body),
        Duration::from_secs(10),
    )
    .await?;
    anyhow::ensure!(
        r.status == 201,
        "creating the players' account: HTTP {} {}",
        r.status,
        r.body
    );
    r.body["api_key"]
        .as_str()
        .map(str::to_owned)
        .context("no api_key in the answer")
}
