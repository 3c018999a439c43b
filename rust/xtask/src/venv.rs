//! Python tools (gdtoolkit, MkDocs) in private virtual environments under the cache folder,
//! installed with the machine's `python3` and pip from the package registry pip is configured
//! for, once per pinned requirements file (beside this crate's `Cargo.toml`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use fabric_harness::paths;

/// The `bin/` of the virtual environment `name`, holding `probe`; (re)installed from
/// `requirements` (a file name beside `Cargo.toml`) when missing or when the pins changed.
pub fn tools(name: &str, requirements: &str, probe: &str) -> anyhow::Result<PathBuf> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(requirements);
    let wanted =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let venv = paths::cache_dir().join(name);
    let stamp = venv.join("fabric-requirements.txt");
    let bin = venv.join("bin");
    if bin.join(probe).is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(bin);
    }
    println!("installing {requirements} into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(paths::cache_dir())?;
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&file))?;
    std::fs::write(&stamp, wanted)?;
    Ok(bin)
}

/// Runs `cmd`, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
