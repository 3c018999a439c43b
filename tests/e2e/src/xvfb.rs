//! A virtual X server for windowed Godot runs on machines without a display or GPU: Xvfb and
//! Mesa's software OpenGL, installed by `scripts/setup-xvfb.sh` (from Debian's packages, into
//! the private root Godot runs from) and started on a free display number.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use fabric_harness::process::Proc;

/// A running Xvfb.
#[derive(Debug)]
pub struct Xvfb {
    /// The process (stopped on drop).
    pub proc: Proc,
    /// Its display number (`DISPLAY=:N`).
    pub display: u32,
    env: Vec<(String, String)>,
}

/// Runs `scripts/setup-xvfb.sh` (installing on the first call) and returns its launcher.
fn launcher() -> anyhow::Result<String> {
    fabric_harness::process::setup_script("setup-xvfb.sh")
}

impl Xvfb {
    /// Installs what is missing and starts Xvfb with one `width`x`height` 24-bit screen.
    pub fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let bin = launcher()?;
        let out = Command::new(&bin)
            .arg("--env")
            .output()
            .context("the launcher's environment")?;
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut cmd = Command::new(&bin);
        // -displayfd: Xvfb picks a free display and prints its number once it accepts clients.
        cmd.args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"));
        let mut proc = Proc::spawn("xvfb", cmd, false)?;
        let line =
            proc.wait_for_line(|l| l.trim().parse::<u32>().is_ok(), Duration::from_secs(20))?;
        let display = line.trim().parse()?;
        Ok(Self { proc, display, env })
    }

    /// Points `cmd` at this display and at Mesa's drivers in the private root.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("DISPLAY", format!(":{}", self.display));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }
}
