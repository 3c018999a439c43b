//! `cargo xtask package [--out DIR]`: the release zip of the addon,
//! `multiplayer_fabric-<version>.zip`, for Linux x86_64 single precision and, when
//! `../shared/godot` is present, double precision. Each library is a release build without test
//! code (feature `itest` off), stripped of debug information. Windows, Linux arm64 and macOS are
//! not built (cross-compiling needs targets and linkers this machine cannot install); the
//! package's `.gdextension` and README say so. The zip is written by
//! `fabric_harness::package`, which the install tests use too.

use std::path::{Path, PathBuf};

use fabric_harness::package::{self, Library};
use fabric_harness::{engine, paths};

/// Builds, strips and zips; prints each step, then the zip's size and contents.
pub fn run(out: Option<PathBuf>) -> anyhow::Result<()> {
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
    let zip = package::write_zip(&libs, &out)?;
    let keys: Vec<&str> = libs.iter().map(Library::key).collect();
    println!("package: built {}", keys.join(", "));
    println!("package: not built: {}", package::NOT_BUILT.join(", "));
    println!("package: wrote {} ({})", zip.display(), mib(&zip)?);
    for (name, size) in package::contents(&zip)? {
        println!("  {size:>10}  {name}");
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

fn mib(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)?.len();
    // Display only: a size in MiB with one decimal.
    #[allow(clippy::cast_precision_loss)]
    Ok(format!("{:.1} MiB", len as f64 / (1024.0 * 1024.0)))
}
