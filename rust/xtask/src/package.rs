//! `cargo xtask package [--out DIR] [--platforms host|all]`: the release zip of the addon,
//! `multiplayer_fabric-<version>.zip`. Each library is a release build without test code (feature
//! `itest` off), stripped of debug information:
//!
//! - Linux x86_64, single precision and, when `../shared/godot` is present, double precision:
//!   the platform this project's tests run the extension on;
//! - with `--platforms all` (the default), Windows x86_64 and Linux arm64, single precision,
//!   cross-compiled with Debian sid's toolchain (`scripts/setup-cross.sh`,
//!   `fabric_harness::cross`) and checked for the exported entry symbol, never run here.
//!
//! macOS is not built (Apple's SDK). The package's `.gdextension` and README say which platforms
//! were run, which only built, and which are missing. The zip is written by
//! `fabric_harness::package`, which the install tests use too (with the host library only).
//! `cargo xtask test` builds the cross libraries once with [`check_cross`].

use std::path::{Path, PathBuf};

use fabric_harness::package::{self, Library, Platform};
use fabric_harness::{cross, engine, paths};

/// Which platforms `cargo xtask package` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platforms {
    /// Linux x86_64 only (no cross toolchain needed).
    Host,
    /// Linux x86_64, Windows x86_64 and Linux arm64.
    All,
}

/// Builds, strips and zips; prints each step, then the zip's size and contents.
pub fn run(out: Option<PathBuf>, platforms: Platforms) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| paths::target_dir().join("package"));
    let staging = out.join("staging");
    let mut precisions = vec![false];
    if paths::shared_godot().is_some() {
        precisions.push(true);
    } else {
        println!("package: double precision skipped: ../shared/godot is not beside the repository");
    }
    let mut libs = Vec::new();
    for double in precisions {
        let name = if double { "double" } else { "single" };
        println!("package: building the release library, {name} precision (no test code)");
        let built = engine::build_library(double, true)?;
        let lib = Library {
            platform: Platform::LinuxX86_64,
            double,
            path: staging.join(
                paths::addon_library(double)
                    .file_name()
                    .expect("a file name"),
            ),
        };
        package::strip_debug(&built, &lib.path)?;
        println!(
            "package: {} stripped of debug info: {} -> {} (exports {})",
            lib.key(),
            mib(&built)?,
            mib(&lib.path)?,
            package::ENTRY_SYMBOL
        );
        libs.push(lib);
    }
    if platforms == Platforms::All {
        let keys: Vec<String> = Platform::CROSS.iter().map(|p| p.key(false)).collect();
        println!(
            "package: cross-compiling the release library for {} (single precision, no debug info)",
            keys.join(", ")
        );
        let built = cross::build(&Platform::CROSS, true)?;
        for (platform, from) in Platform::CROSS.into_iter().zip(built) {
            let mut lib = Library {
                platform,
                double: false,
                path: PathBuf::new(),
            };
            lib.path = staging.join(lib.file_name());
            std::fs::create_dir_all(&staging)?;
            std::fs::copy(&from, &lib.path)?;
            println!(
                "package: {} built, {} (exports {}; not run here)",
                lib.key(),
                mib(&lib.path)?,
                package::ENTRY_SYMBOL
            );
            libs.push(lib);
        }
    }
    let zip = package::write_zip(&libs, &out)?;
    let keys: Vec<String> = libs.iter().map(Library::key).collect();
    println!("package: built {}", keys.join(", "));
    println!(
        "package: not built: {}",
        package::not_built(&libs).join(", ")
    );
    println!("package: wrote {} ({})", zip.display(), mib(&zip)?);
    for (name, size) in package::contents(&zip)? {
        println!("  {size:>10}  {name}");
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

/// `cargo xtask test`'s check of the cross builds: Windows x86_64 and Linux arm64 built in one
/// cargo run (dev profile: the release one costs twice as long and the check is the same) and
/// each checked for its entry symbol, so they cannot break unnoticed.
pub fn check_cross() -> anyhow::Result<()> {
    let built = cross::build(&Platform::CROSS, false)?;
    for (platform, lib) in Platform::CROSS.into_iter().zip(built) {
        println!(
            "cross: {} builds and exports {} ({}, {})",
            platform.key(false),
            package::ENTRY_SYMBOL,
            lib.display(),
            mib(&lib)?
        );
    }
    Ok(())
}

fn mib(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)?.len();
    // Display only: a size in MiB with one decimal.
    #[allow(clippy::cast_precision_loss)]
    Ok(format!("{:.1} MiB", len as f64 / (1024.0 * 1024.0)))
}
