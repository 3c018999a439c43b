//! GDScript checks of `cargo xtask test`: gdtoolkit's `gdlint` and `gdformat --check` over the
//! addon, the project's scripts and the examples.
//!
//! gdtoolkit is installed into a private virtual environment (`crate::venv`), pinned by
//! `gdtoolkit-requirements.txt` beside this crate's `Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use fabric_harness::paths;

/// The folders checked, those of them that exist.
const FOLDERS: [&str; 3] = ["addons", "scripts", "examples"];

/// gdtoolkit's `bin/`, installed on first use (and again when the pinned requirements change).
pub fn tools() -> anyhow::Result<PathBuf> {
    crate::venv::tools("gdtoolkit-venv", "gdtoolkit-requirements.txt", "gdlint")
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
