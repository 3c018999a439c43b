//! `cargo xtask fuzz [--seconds N] [TARGET]`: builds the cargo-fuzz targets of `fuzz/` and runs
//! each for N seconds, then prints a table (target, runs, exec/s, result).
//!
//! cargo-fuzz is installed on first use (`cargo install cargo-fuzz --locked`) into
//! `<cache>/cargo-tools` (`$FABRIC_CACHE`, else `~/.cache/multiplayer-fabric`), so nothing is
//! assumed on the machine; the instrumented build goes to `<cache>/fuzz-target`. The stable
//! toolchain is used with `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes nightly `-Z` flags) and no
//! sanitizer: the targets are safe Rust, and the capped allocator
//! of `fuzz/src/lib.rs` catches allocations sized from untrusted lengths. Each target reads
//! its committed seeds (`fuzz/seeds/<target>/`) and dictionary (`fuzz/dicts/<target>.dict`, when
//! there is one) and keeps what it finds in `fuzz/corpus/<target>/`;
//! a crash leaves its input in `fuzz/artifacts/<target>/` (see docs/fuzzing.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use fabric_harness::{engine, paths};

/// The result of one target's run.
pub struct Outcome {
    /// Target name.
    pub target: String,
    /// Inputs executed.
    pub runs: u64,
    /// Executions per second.
    pub exec_per_s: u64,
    /// `ok`, or what went wrong (with the crash input's path).
    pub result: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.result == "ok"
    }
}

fn fuzz_dir() -> PathBuf {
    paths::repo_root().join("fuzz")
}

/// Every target declared in `fuzz/Cargo.toml`, in file order.
pub fn targets() -> anyhow::Result<Vec<String>> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml"))
        .context("reading fuzz/Cargo.toml")?;
    let mut in_bin = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
            names.push(v.trim_matches('"').to_owned());
        }
    }
    Ok(names)
}

/// `$FABRIC_CACHE`, else `~/.cache/multiplayer-fabric` (as `scripts/setup-godot.sh`).
fn cache_root() -> PathBuf {
    std::env::var_os("FABRIC_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("multiplayer-fabric"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/multiplayer-fabric"))
        })
        .unwrap_or_else(|| paths::target_dir().join("cache"))
}

fn tools_root() -> PathBuf {
    cache_root().join("cargo-tools")
}

/// Where the instrumented build goes: in the cache, so that a fresh clone on the same machine
/// (CI) rebuilds only the project's crates, not their dependencies.
fn fuzz_target_dir() -> PathBuf {
    cache_root().join("fuzz-target")
}

/// The cargo-fuzz binary: in the cache root, else on `PATH`, else installed in the cache now.
fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let cached = tools_root().join("bin/cargo-fuzz");
    if cached.is_file() {
        return Ok(cached);
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("cargo-fuzz"))
            .find(|c| c.is_file())
    }) {
        return Ok(found);
    }
    println!(
        "cargo-fuzz not found: installing it into {} (once)",
        tools_root().display()
    );
    let status = engine::cargo()
        .args(["install", "cargo-fuzz", "--locked", "--root"])
        .arg(tools_root())
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() || !cached.is_file() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(cached)
}

fn fuzz_command(cargo_fuzz: &Path) -> Command {
    let mut c = engine::cargo();
    // `cargo fuzz` finds its binary as a cargo subcommand on PATH.
    let dir = cargo_fuzz
        .parent()
        .expect("binary in a folder")
        .to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)))
        .expect("PATH entries join");
    c.env("PATH", joined).env("RUSTC_BOOTSTRAP", "1");
    c.args(["fuzz"]);
    c
}

/// Builds every target (release, debug assertions on, no sanitizer).
fn build(cargo_fuzz: &Path) -> anyhow::Result<()> {
    let status = fuzz_command(cargo_fuzz)
        .args(["build", "--sanitizer", "none", "--target-dir"])
        .arg(fuzz_target_dir())
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    Ok(())
}

/// The built binary of a target.
fn binary(target: &str) -> PathBuf {
    fuzz_target_dir()
        .join(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
        .join("release")
        .join(target)
}

/// Value of a libFuzzer `-print_final_stats` line, e.g. `stat::number_of_executed_units: 1234`.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs one built target for `seconds` over its seeds and corpus.
fn run_target(target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let mut cmd = Command::new(binary(target));
    cmd.arg(&corpus);
    let seeds = dir.join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    let dict = dir.join("dicts").join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=1024")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .with_context(|| format!("running fuzz target {target}"))?;
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let result = if out.status.success() {
        "ok".to_owned()
    } else {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        for l in tail.iter().rev() {
            eprintln!("[{target}] {l}");
        }
        let input = log
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()))
            .unwrap_or("no input saved");
        format!("FAILED ({}): {input}", out.status)
    };
    Ok(Outcome {
        target: target.to_owned(),
        runs: stat(&log, "number_of_executed_units").unwrap_or(0),
        exec_per_s: stat(&log, "average_exec_per_sec").unwrap_or(0),
        result,
    })
}

/// Builds the targets and runs `only` (or every target) for `seconds` each; prints the table.
/// Returns the outcomes; an error when the build fails or a target fails.
pub fn run(seconds: u64, only: Option<&str>) -> anyhow::Result<Vec<Outcome>> {
    let t0 = Instant::now();
    let all = targets()?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target `{t}` (targets: {})", all.join(", ")),
        None => all,
    };
    let tool = cargo_fuzz()?;
    build(&tool)?;
    println!(
        "fuzz targets built in {:.0} s; running each for {seconds} s",
        t0.elapsed().as_secs_f64()
    );
    let mut outcomes = Vec::new();
    for t in &chosen {
        let o = run_target(t, seconds)?;
        println!(
            "  {:<18} {:>10} runs {:>8} exec/s  {}",
            o.target, o.runs, o.exec_per_s, o.result
        );
        outcomes.push(o);
    }
    println!("\n| target | runs | exec/s | result |\n|---|---:|---:|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} |",
            o.target, o.runs, o.exec_per_s, o.result
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.target.as_str())
        .collect();
    println!(
        "fuzz: {} targets, {} failed, {:.0} s in all",
        outcomes.len(),
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(outcomes)
}
