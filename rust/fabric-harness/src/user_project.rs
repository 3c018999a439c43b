//! A Godot project as a game developer has it: a fresh folder with its own `project.godot`, the
//! packaged addon unzipped in (with its built `bin/`), and no `.godot/` until the first import.
//!
//! The install tests run what the addon's documentation tells a user to run on such a folder:
//! register the extensions, import, then run a scene (see `docs/dedicated-server.md`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::engine::Engine;
use crate::package;
use crate::paths;
use crate::process::{Outcome, Proc};

/// The tool in the addon that lists the project's extensions in `.godot/extension_list.cfg`
/// before the first import (see its header comment).
pub const REGISTER_TOOL: &str = "res://addons/multiplayer_fabric/tools/register_extensions.gd";

/// A fresh project folder under the target folder.
#[derive(Debug)]
pub struct UserProject {
    dir: PathBuf,
}

impl UserProject {
    /// Creates `project.godot` (named `name`, Godot 4.6 features) in a fresh scratch folder and
    /// unzips the package into it, as a user does: [`package::shipped_zip`], the addon with the
    /// single-precision library users ship in its `bin/` (no test code).
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let zip = package::shipped_zip()?;
        let dir = paths::scratch_dir(name);
        std::fs::write(
            dir.join("project.godot"),
            format!(
                "config_version=5\n\n[application]\n\nconfig/name=\"{name}\"\n\
                 config/features=PackedStringArray(\"4.6\")\nrun/flush_stdout_on_print=true\n"
            ),
        )?;
        package::extract(&zip, &dir)?;
        Ok(Self { dir })
    }

    /// The project folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `text` to `rel` (a path inside the project, e.g. `main.gd`).
    pub fn write(&self, rel: &str, text: &str) -> anyhow::Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Copies a folder of the repository (e.g. `examples/chat`) to `rel` inside the project.
    pub fn copy_from_repo(&self, repo_rel: &str, rel: &str) -> anyhow::Result<()> {
        copy_tree(
            &paths::repo_root().join(repo_rel),
            &self.dir.join(rel),
            &|_| false,
        )
    }

    /// A headless Godot command on this project: `godot --headless --path DIR ARGS...`.
    pub fn command(&self, engine: &Engine, args: &[&str]) -> Command {
        let mut c = Command::new(&engine.bin);
        c.arg("--headless").arg("--path").arg(&self.dir).args(args);
        c
    }

    /// Runs a headless Godot command on this project to its end; returns how it ended and what
    /// it printed.
    pub fn run(
        &self,
        role: &str,
        engine: &Engine,
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<(Outcome, String)> {
        let mut p = Proc::spawn(role, self.command(engine, args), true)?;
        let out = p.wait(timeout);
        Ok((out, p.output()))
    }

    /// The documented first step: run [`REGISTER_TOOL`]; fails unless it exits 0.
    pub fn register_extensions(&self, engine: &Engine) -> anyhow::Result<String> {
        let (out, log) = self.run(
            "register",
            engine,
            &["--script", REGISTER_TOOL],
            Duration::from_secs(120),
        )?;
        if !out.success() {
            bail!("{REGISTER_TOOL} failed ({out:?})\n{log}");
        }
        Ok(log)
    }

    /// `godot --headless --path DIR --import`, however it ends.
    pub fn import(&self, engine: &Engine) -> anyhow::Result<(Outcome, String)> {
        self.run("import", engine, &["--import"], Duration::from_secs(180))
    }

    /// The contents of `.godot/extension_list.cfg`, if written.
    pub fn extension_list(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(".godot/extension_list.cfg")).ok()
    }
}

/// Copies a folder recursively, following links, leaving out half-written `*.tmp` files and the
/// paths `skip` names.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if skip(&src) {
            continue;
        }
        if std::fs::metadata(&src)?.is_dir() {
            copy_tree(&src, &dst, skip)?;
        } else if src.extension().is_none_or(|e| e != "tmp") {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}
