//! GDScript checks of `cargo xtask test`: gdtoolkit's `gdlint` and `gdformat --check` over the
//! addon, the project's scripts and the examples.
//!
//! gdtoolkit is installed with the machine's `python3` and pip into a private virtual
//! environment under the cache folder, once per pinned version (`gdtoolkit-requirements.txt`
//! beside this crate's `Cargo.toml`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use fabric_harness::paths;

/// The folders checked, those of them that exist.
const FOLDERS: [&str; 3] = ["addons", "scripts", "examples"];

fn requirements() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gdtoolkit-requirements.txt")
}

/// The virtual environment's `bin/`, installed on first use (and again when the pinned
/// requirements change).
pub fn tools() -> anyhow::Result<PathBuf> {
    let wanted = std::fs::read_to_string(requirements()).context("reading the requirements")?;
    let venv = paths::cache_dir().join("gdtoolkit-venv");
    let stamp = venv.join("fabric-requirements.txt");
    let bin = venv.join("bin");
    if bin.join("gdlint").is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(bin);
    }
    println!("installing gdtoolkit into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(paths::cache_dir())?;
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(requirements()))?;
    std::fs::write(&stamp, wanted)?;
    Ok(bin)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The two check commands (`gdlint`, `gdformat --check`), run in the repository root.
pub fn commands(bin: &Path) -> [(String, Command); 2] {
    let root = paths::repo_root();
    let folders: Vec<&str> = FOLDERS
        .into_iter()
        .filter(|f| root.join(f).is_dir())
        .collect();
    let mut lint = Command::new(bin.join("gdlint"));
    lint.current_dir(&root).args(&folders);
    let mut format = Command::new(bin.join("gdformat"));
    format.current_dir(&root).arg("--check").args(&folders);
    [
        (format!("gdlint {}", folders.join(" ")), lint),
        (format!("gdformat --check {}", folders.join(" ")), format),
    ]
}

/// `cargo xtask gdlint`: installs gdtoolkit if needed and runs both checks.
pub fn check() -> anyhow::Result<()> {
    let bin = tools()?;
    let mut failed = Vec::new();
    for (name, mut c) in commands(&bin) {
        println!("==> {name}");
        if !c
            .status()
            .with_context(|| format!("starting {name}"))?
            .success()
        {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}
