//! `cargo xtask`: the project's commands. Everything a fresh machine needs (Godot, the
//! extension, the project import) is installed or built on the way.
//!
//! - `cargo xtask demo [--seconds S] [--bots N] [--visual] [--static-membership]`: the main
//!   job: the registry backend, 3 zones registered and linked through it, the gateway and
//!   headless Godot bots (each with its own join token) walking across borders, one status line
//!   per zone and per client each second, a summary at the end (`--visual` opens the visual
//!   client).
//!   `cargo xtask demo --cycle1`: the first cycle's demo: registry backend, a registered zone,
//!   the gateway, and cycle-1 clients (through the gateway, direct, and two that must be
//!   refused), each step printed, with the time from client start to the zone's datagram.
//! - `cargo xtask test`: formatting, lints (GDScript too: gdlint, gdformat), every Rust test
//!   (unit, integration, end-to-end), short fuzz runs and the in-engine tests (single, and double precision
//!   when ../shared/godot is present); the last line is `total: N passed, N failed`.
//! - `cargo xtask build [--release] [--double]`: build the extension into the addon.
//! - `cargo xtask package [--out DIR] [--platforms host|all]`: the release zip of the addon,
//!   `multiplayer_fabric-<version>.zip`: Linux x86_64 (double precision too with
//!   ../shared/godot) and, by default, Windows x86_64 and Linux arm64 cross-compiled.
//! - `cargo xtask gdlint`: only the GDScript checks (`gdformat FILES` in the cache's
//!   `gdtoolkit-venv/bin/` fixes the formatting).
//! - `cargo xtask docs`: the documentation site (MkDocs, strict) into `target/docs-site/`.
//! - `cargo xtask fuzz [--seconds N] [TARGET]`: build the fuzz targets and run each N seconds.
//! - `cargo xtask fabric --zones 3 --entities 3000`: the registry backend and a fabric of zone
//!   processes linked through it, one status line per zone each second, until Ctrl-C.
//! - `cargo xtask load --players N --zones Z --seconds S [--out DIR]`: a load scenario (backend,
//!   linked zones, the `fabric-load` generator) and its Markdown report with PNG plots.
//! - `cargo xtask idle --zones 8 --per-process 1,4,8`: CPU, memory and threads of idle zones
//!   per layout (zones per process) and engine frame rate.

mod demo;
mod demo_cycle1;
mod docs;
mod fabric;
mod fuzz;
mod gdlint;
mod idle;
mod load;
mod package;
mod test;
mod venv;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Multiplayer Fabric project commands")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the main job: 3 zones, the gateway and bots walking across borders on loopback.
    Demo {
        /// Seconds the bots walk.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Headless Godot bot clients.
        #[arg(long, default_value_t = 2)]
        bots: usize,
        /// Zone processes.
        #[arg(long, default_value_t = 3)]
        zones: usize,
        /// Also open the visual client in a window (entities coloured by owning zone).
        #[arg(long)]
        visual: bool,
        /// Show the output of every process it starts (zones, gateway, bots).
        #[arg(long)]
        verbose: bool,
        /// Static membership (a members file, no registry backend, no join tokens) instead of
        /// the registry's.
        #[arg(long)]
        static_membership: bool,
        /// Run the first cycle's demo instead (one zone, gateway, cycle-1 clients).
        #[arg(long)]
        cycle1: bool,
        /// Zone UDP port (--cycle1).
        #[arg(long, default_value_t = 7443)]
        zone_port: u16,
        /// Gateway UDP port (--cycle1).
        #[arg(long, default_value_t = 4433)]
        gateway_port: u16,
        /// Registry backend TCP port (--cycle1).
        #[arg(long, default_value_t = 8080)]
        backend_port: u16,
    },
    /// Run every test (what CI runs).
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Build the extension and install it into addons/multiplayer_fabric/bin/.
    Build {
        /// Optimised build.
        #[arg(long)]
        release: bool,
        /// Double-precision build (needs ../shared/godot/extension_api.double.json).
        #[arg(long)]
        double: bool,
    },
    /// Find or install Godot, build the extension and import the project; install the
    /// S3-compatible test server.
    Setup,
    /// Build the release libraries (no test code, stripped) and write the addon's zip.
    Package {
        /// Folder for the zip (default: target/package).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// `all`: Linux x86_64, and Windows x86_64 and Linux arm64 cross-compiled with the
        /// toolchain scripts/setup-cross.sh installs (root; about 10 minutes each on 2 cores);
        /// `host`: Linux x86_64 only.
        #[arg(long, value_enum, default_value_t = package::Platforms::All)]
        platforms: package::Platforms,
    },
    /// Check the GDScript (gdlint, gdformat --check) as `test` does; installs gdtoolkit.
    Gdlint,
    /// Build the documentation site into target/docs-site (MkDocs, strict; the class
    /// reference generated from the doc comments); installs MkDocs.
    Docs,
    /// Build the fuzz targets of fuzz/ (installing cargo-fuzz when missing) and run each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (default: all).
        target: Option<String>,
    },
    /// Run a zone fabric: the registry backend and one zone process per zone, linked through
    /// it, with wanderers; one status line per zone each second until Ctrl-C.
    Fabric {
        /// Zone processes.
        #[arg(long, default_value_t = 3)]
        zones: u32,
        /// Wanderers in the whole fabric.
        #[arg(long, default_value_t = 3000)]
        entities: u32,
        /// Stop after this many seconds (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// Registry backend TCP port (0 = any free port).
        #[arg(long, default_value_t = 0)]
        backend_port: u16,
        /// Ticks outside a zone before a wanderer migrates.
        #[arg(long, default_value_t = 4)]
        hysteresis_ticks: u32,
    },
    /// Run a load scenario: the backend, linked zones and the `fabric-load` generator; write
    /// a Markdown report with PNG plots.
    Load(load::Options),
    /// Measure what idle zones cost (CPU, memory, threads) per zones-per-process layout.
    Idle(idle::Options),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo {
            cycle1: true,
            zone_port,
            gateway_port,
            backend_port,
            ..
        } => demo_cycle1::run(demo_cycle1::Ports {
            zone: zone_port,
            gateway: gateway_port,
            backend: backend_port,
        }),
        Cmd::Demo {
            seconds,
            bots,
            zones,
            visual,
            verbose,
            static_membership,
            ..
        } => demo::run(demo::Options {
            seconds,
            bots,
            zones,
            visual,
            verbose,
            static_membership,
        }),
        Cmd::Test { no_lint } => test::run(!no_lint),
        Cmd::Build { release, double } => fabric_harness::engine::build_extension(double, release)
            .map(|p| println!("installed {}", p.display())),
        Cmd::Gdlint => gdlint::check(),
        Cmd::Docs => docs::build().map(drop),
        Cmd::Package { out, platforms } => package::run(out, platforms),
        Cmd::Fuzz { seconds, target } => fuzz::run(seconds, target.as_deref()).map(drop),
        Cmd::Fabric {
            zones,
            entities,
            seconds,
            backend_port,
            hysteresis_ticks,
        } => fabric::run(fabric::Options {
            zones,
            entities,
            seconds,
            backend_port,
            hysteresis_ticks,
        }),
        Cmd::Load(opts) => load::run(opts),
        Cmd::Idle(opts) => idle::run(opts),
        Cmd::Setup => fabric_harness::engine::prepare(false).and_then(|e| {
            println!("Godot: {}", e.bin.display());
            println!("extension built and project imported");
            // The S3-compatible server of the asset-store tests (they install it themselves
            // too; doing it here keeps the first test run from waiting on pip).
            let s3 = fabric_harness::s3::server_bin()?;
            println!("S3 test server: {}", s3.display());
            Ok(())
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
