//! Headless Godot players driven in lock step: each its own process running
//! `res://scenes/tests/ownership_client.tscn` (a `FabricWorld` and
//! `scripts/tests/ownership_client.gd`), told what to do through numbered command files in a
//! scratch folder and answering with one `OC_...` line per command and per ownership event. The
//! test sends a command, then waits on the lines it causes (with a deadline; no sleep decides
//! anything). Used by `tests/ownership_godot.rs` and `tests/room_ladder.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fabric_harness::engine::Engine;
use fabric_harness::process::Proc;

use crate::proc_usage;
use crate::zone_probe::field;

/// The client scene.
pub const SCENE: &str = "res://scenes/tests/ownership_client.tscn";

/// Who a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Every player.
    All,
    /// The player of this index.
    One(usize),
}

/// The players of a test and their command folder.
pub struct GodotPlayers {
    procs: Vec<Proc>,
    /// Players that left on purpose ([`GodotPlayers::quit_one`]): their exit is no failure.
    left: Vec<bool>,
    /// Each player's avatar id (from its `OC_READY` line).
    pub avatars: Vec<u32>,
    dir: PathBuf,
    next_seq: u64,
}

/// The `OC_` lines of a process's output, from the marker on.
pub fn oc_lines(proc: &Proc) -> Vec<String> {
    proc.output()
        .lines()
        .filter_map(|l| l.find("OC_").map(|i| l[i..].to_owned()))
        .collect()
}

/// A numeric field of a line (panics with the line when missing: a malformed client line is a
/// failure of the test).
pub fn num(line: &str, key: &str) -> i64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key}= in {line}"))
}

impl GodotPlayers {
    /// Starts `spawns.len()` players joining the zone on `port` (player `i` asks to spawn at
    /// `spawns[i]`, metres), each at `fps` frames a second, and waits (up to `ready_timeout`)
    /// until each has its avatar and its join baseline.
    pub fn start(
        engine: &Engine,
        port: u16,
        cert_hash: &str,
        spawns: &[[f64; 3]],
        fps: u32,
        ready_timeout: Duration,
    ) -> anyhow::Result<Self> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fabric-godot-players-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let url = format!("https://127.0.0.1:{port}/wt");
        let dir_text = dir.to_string_lossy().into_owned();
        let fps = fps.to_string();
        let mut procs = Vec::with_capacity(spawns.len());
        for (i, at) in spawns.iter().enumerate() {
            let spawn = format!("{},{},{}", at[0], at[1], at[2]);
            let index = i.to_string();
            let args = [
                "--url",
                &url,
                "--cert-hash",
                cert_hash,
                "--commands",
                &dir_text,
                "--index",
                &index,
                "--spawn",
                &spawn,
                "--fps",
                &fps,
                "--timeout-sec",
                "900",
            ];
            let cmd = engine.scene_command(SCENE, &args);
            procs.push(Proc::spawn(&format!("player{i}"), cmd, true)?);
        }
        let mut players = Self {
            left: vec![false; procs.len()],
            procs,
            avatars: Vec::new(),
            dir,
            next_seq: 0,
        };
        players.wait("every player's OC_READY", ready_timeout, |lines| {
            lines
                .iter()
                .all(|l| l.iter().any(|l| l.starts_with("OC_READY ")))
        })?;
        players.avatars = players
            .lines()
            .iter()
            .map(|l| {
                let ready = l
                    .iter()
                    .find(|l| l.starts_with("OC_READY "))
                    .expect("ready");
                num(ready, "avatar") as u32
            })
            .collect();
        Ok(players)
    }

    /// How many players.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The process ids (each also its process group).
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Proc::pid).collect()
    }

    /// Every player's `OC_` lines so far.
    pub fn lines(&self) -> Vec<Vec<String>> {
        self.procs.iter().map(oc_lines).collect()
    }

    /// Sends `command` (e.g. `request 1`) to `to`; returns its sequence number. The file is
    /// written aside and renamed, so a player never reads half of it.
    pub fn send(&mut self, to: To, command: &str) -> anyhow::Result<u64> {
        let seq = self.next_seq;
        let target = match to {
            To::All => "*".to_owned(),
            To::One(i) => i.to_string(),
        };
        let tmp = self.dir.join(format!("{seq}.tmp"));
        std::fs::write(&tmp, format!("{target} {command}\n"))?;
        std::fs::rename(&tmp, self.dir.join(seq.to_string()))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Polls every player's lines until `done` holds; fails on an `OC_FAIL` line, a player
    /// that exited, or `timeout`.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Vec<String>]) -> bool,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if done(&lines) {
                return Ok(lines);
            }
            for (i, (l, p)) in lines.iter().zip(&self.procs).enumerate() {
                if let Some(f) = l.iter().find(|l| l.starts_with("OC_FAIL")) {
                    bail!(
                        "player {i} failed while waiting for {what}: {f}\n{}",
                        p.output()
                    );
                }
                if !self.left[i] && !proc_usage::is_running(p.pid()) {
                    bail!("player {i} exited while waiting for {what}\n{}", p.output());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {:.0} s waiting for {what}",
                    timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `command` to `to` and waits until each addressed player printed its `OC_DID` (and
    /// `extra`, a line of that seq such as `OC_SAMPLE`, when given); returns those lines per
    /// player (empty for players not addressed).
    pub fn run(
        &mut self,
        to: To,
        command: &str,
        line_prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Option<String>>> {
        let seq = self.send(to, command)?;
        let tag = format!("seq={seq} ");
        let addressed = |i: usize| to == To::All || to == To::One(i);
        let find = |l: &[String]| {
            l.iter()
                .find(|l| l.starts_with(line_prefix) && l.contains(&tag))
                .cloned()
        };
        let lines = self.wait(&format!("`{command}` ({line_prefix})"), timeout, |lines| {
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| !addressed(i) || find(l).is_some())
        })?;
        Ok(lines
            .iter()
            .enumerate()
            .map(|(i, l)| if addressed(i) { find(l) } else { None })
            .collect())
    }

    /// Tells player `i` to leave (its `FabricWorld` leaves the zone, the process exits) and
    /// waits for it to exit with 0; the others play on.
    pub fn quit_one(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        self.send(To::One(i), "quit")?;
        self.left[i] = true;
        let p = &mut self.procs[i];
        let out = p.wait(timeout);
        if !out.success() {
            bail!("player {i} did not leave cleanly ({out:?})\n{}", p.output());
        }
        Ok(())
    }

    /// Tells every player still here to leave and waits for each to exit with 0.
    pub fn quit(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.send(To::All, "quit")?;
        for (i, p) in self.procs.iter_mut().enumerate() {
            if self.left[i] {
                continue;
            }
            let out = p.wait(timeout);
            if !out.success() {
                bail!("player {i} did not leave cleanly ({out:?})\n{}", p.output());
            }
        }
        Ok(())
    }
}

impl Drop for GodotPlayers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
