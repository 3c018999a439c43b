//! `fabric-gateway`: the WebTransport front door of a Multiplayer Fabric deployment.
//!
//! Prints one line `FABRIC_GATEWAY_READY addr=<ip:port> cert_hash=<base64>` on standard output
//! once it listens (scripts and tests wait for it); logs go to standard error.
//!
//! Besides the flags of [`Args`], it takes one flag per server limit (`--max-sessions`,
//! `--send-budget`, ...), made from the list in [`fabric_net::limits`] with its documentation
//! and default (`fabric-gateway --help` shows them; `docs/session-protocol.md`, "Limits", lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches};
use fabric_core::zone_directory::ZoneDirectory;
use fabric_gateway::{Gateway, GatewayConfig, ZonePin, Zones};
use fabric_net::limits::{SETTINGS, Unit};
use fabric_net::{CertHash, CertRotation, NetError, ServerIdentity, ServerLimits};
use tracing::{info, warn};

/// WebTransport gateway: answers pings and proxies each client session to a zone.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct Args {
    /// UDP address to listen on. Without it: [::]:443, or [::]:4433 when this process may not
    /// bind ports below 1024.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The zone's WebTransport address.
    #[arg(long, default_value = "127.0.0.1:7443")]
    zone: SocketAddr,
    /// The zone's certificate hash (base64 or hex); several separated by commas (e.g. the
    /// current and the announced next one).
    #[arg(long, conflicts_with = "zone_cert_hash_file")]
    zone_cert_hash: Option<String>,
    /// A file holding the zone's certificate hashes, one per line (read for every new session;
    /// the zone's --cert-hash-file).
    #[arg(long)]
    zone_cert_hash_file: Option<PathBuf>,
    /// PEM certificate chain to present (default: a fresh self-signed one).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Keep this gateway's certificate hash in this file (written once listening and again
    /// after every rotation).
    #[arg(long)]
    cert_hash_file: Option<PathBuf>,
    /// Replace the self-signed certificate (14 days valid) every this many seconds; 0 = never.
    /// Ignored with --cert/--key (rotate those files yourself).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    cert_rotation_sec: u64,
    /// Seconds to wait for the zone when a client session opens.
    #[arg(long, default_value_t = 3.0)]
    zone_timeout: f64,
    /// Bytes one client session may have waiting for its zone session (before it opens, and
    /// while the zone reads slower than the client sends); a datagram beyond it is dropped, a
    /// reliable message beyond it closes the client session (`KiB`/`MiB`/`GiB` suffixes
    /// allowed).
    #[arg(long, default_value = "1MiB", value_parser = bytes)]
    session_budget: usize,
    /// Do not accept the WebSocket fallback (wss://HOST:PORT/ws on TCP, same port number).
    #[arg(long)]
    no_websocket: bool,
    /// The fabric's zones, for following avatars across zones: `zone@host:port#hash[,hash]`
    /// entries separated by spaces or `;`.
    #[arg(long, conflicts_with = "zone_directory_file")]
    zones: Option<String>,
    /// A file of the fabric's zones (as --zones), read again each time an avatar is followed.
    #[arg(long)]
    zone_directory_file: Option<PathBuf>,
    /// Do not follow avatars: pass `avatar_moved` on to the client.
    #[arg(long)]
    no_follow: bool,
    /// Open the session to an avatar's new zone only when it moves (no standby session to
    /// each other zone per client session).
    #[arg(long)]
    no_standby: bool,
}

/// A size in bytes, as the limits write it (`65536`, `64KiB`, `1MiB`).
fn bytes(text: &str) -> Result<usize, String> {
    Unit::Bytes
        .parse(text)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("`{text}` is not {}", Unit::Bytes.expected()))
}

/// The command line: [`Args`] and a flag for each server limit of [`fabric_net::limits`].
fn command() -> clap::Command {
    SETTINGS.iter().fold(Args::command(), |cmd, s| {
        let value = match s.unit {
            Unit::Bytes => "BYTES",
            Unit::Count => "N",
            Unit::Millis => "MSEC",
        };
        cmd.arg(
            Arg::new(s.name)
                .long(s.flag)
                .value_name(value)
                .help(format!("{} [default: {}]", s.doc(), s.default_text())),
        )
    })
}

/// [`Args`] and the server limits from `argv` (the program name first).
fn parse(argv: impl IntoIterator<Item = String>) -> Result<(Args, ServerLimits), clap::Error> {
    let mut cmd = command();
    let m: ArgMatches = cmd.try_get_matches_from_mut(argv)?;
    let args = Args::from_arg_matches(&m)?;
    let mut limits = ServerLimits::default();
    for s in SETTINGS {
        if let Some(v) = m.get_one::<String>(s.name) {
            s.set_text(&mut limits, v)
                .map_err(|e| cmd.error(clap::error::ErrorKind::ValueValidation, e))?;
        }
    }
    Ok((args, limits))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fabric-gateway: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (args, limits) = parse(std::env::args()).unwrap_or_else(|e| e.exit());
    let zone_pin = match (&args.zone_cert_hash, &args.zone_cert_hash_file) {
        (Some(h), _) => ZonePin::Hash(CertHash::parse_list(h)?),
        (None, Some(p)) => ZonePin::File(p.clone()),
        (None, None) => bail!(
            "the zone's certificate hash is required: pass --zone-cert-hash HASH or --zone-cert-hash-file PATH"
        ),
    };
    let zones = match (&args.zones, &args.zone_directory_file) {
        (Some(list), _) => Zones::Listed(ZoneDirectory::parse(list).context("--zones")?),
        (None, Some(p)) => Zones::File(p.clone()),
        (None, None) => Zones::None,
    };
    let names = ServerIdentity::LOCAL_NAMES;
    let (identity, rotation) = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => (ServerIdentity::load_pem(c, k)?, None),
        _ => (
            ServerIdentity::self_signed(&names, 14)?,
            (args.cert_rotation_sec > 0).then(|| CertRotation {
                every: Duration::from_secs(args.cert_rotation_sec),
                ..CertRotation::weekly(&names)
            }),
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut cfg = GatewayConfig {
            listen: args
                .listen
                .unwrap_or_else(|| "[::]:443".parse().expect("address")),
            zone: args.zone,
            zone_pin,
            zone_connect_timeout: Duration::from_secs_f64(args.zone_timeout.max(0.1)),
            limits,
            websocket: !args.no_websocket,
            rotation,
            cert_hash_file: args.cert_hash_file.clone(),
            session_budget: args.session_budget,
            follow: !args.no_follow,
            zones,
            standby: !args.no_standby,
        };
        let gateway = match Gateway::bind(cfg.clone(), identity.clone()) {
            Ok(g) => g,
            Err(NetError::Bind { cause, .. })
                if args.listen.is_none()
                    && cause.io_kind() == Some(std::io::ErrorKind::PermissionDenied) =>
            {
                warn!("may not bind UDP 443 ({cause}); listening on 4433 instead");
                cfg.listen = "[::]:4433".parse().expect("address");
                Gateway::bind(cfg, identity)?
            }
            Err(e) => return Err(e).context("starting the gateway"),
        };
        info!(addr = %gateway.local_addr(), zone = %args.zone, "gateway listening");
        println!(
            "FABRIC_GATEWAY_READY addr={} cert_hash={} next_cert_hash={}",
            gateway.local_addr(),
            gateway.cert_hash(),
            gateway
                .next_cert_hash()
                .map(|h| h.to_base64())
                .unwrap_or_default()
        );
        gateway.run(shutdown_signal()).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Result<(Args, ServerLimits), clap::Error> {
        parse(
            std::iter::once("fabric-gateway")
                .chain(text.split_whitespace())
                .map(String::from),
        )
    }

    #[test]
    fn every_limit_is_a_flag_with_its_default() {
        let (args, limits) = line("--zone-cert-hash h").unwrap();
        assert_eq!(limits, ServerLimits::default(), "no flag, the defaults");
        assert_eq!(args.session_budget, fabric_gateway::DEFAULT_SESSION_BUDGET);
        let help = command().render_long_help().to_string();
        for s in SETTINGS {
            assert!(
                help.contains(&format!("--{}", s.flag)),
                "{} in --help",
                s.name
            );
        }
        let (args, limits) = line(
            "--max-sessions 7 --max-sessions-per-address=2 --max-pending-per-address 3 \
             --send-budget 64KiB --session-event-budget 1MiB --partial-message-budget 2097152 \
             --handshake-timeout-msec 1500 --session-budget 16KiB",
        )
        .unwrap();
        assert_eq!(
            limits,
            ServerLimits {
                max_sessions: 7,
                max_sessions_per_address: 2,
                max_pending_per_address: 3,
                send_budget: 65_536,
                session_event_budget: 1 << 20,
                partial_message_budget: 2 << 20,
                handshake_timeout_msec: 1500,
            }
        );
        assert_eq!(args.session_budget, 16 * 1024);
    }

    #[test]
    fn a_bad_limit_is_refused_naming_it() {
        for bad in [
            "--max-sessions 0",
            "--send-budget lots",
            "--handshake-timeout-msec=-5",
            "--session-budget 1TB",
        ] {
            let e = line(bad).expect_err(bad);
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}: {e}"
            );
        }
    }
}
