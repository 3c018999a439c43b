//! `cargo xtask test`: every check, in order, with a total at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fabric_harness::process::Proc;
use fabric_harness::{engine, paths};

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    broken_steps: Vec<String>,
}

impl Tally {
    fn scan(&mut self, line: &str) {
        // cargo test: "test result: ok. 12 passed; 0 failed; ..."
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            let nums: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            if nums.len() >= 2 {
                self.passed += nums[0];
                self.failed += nums[1];
            }
        }
    }
}

fn cargo() -> Command {
    engine::cargo()
}

/// Below this much free space on the target folder's disk, `cargo xtask test` warns at the start:
/// a full run writes about 15 GiB of build outputs (debug, itest, double precision, fuzz).
const DISK_WARN_BYTES: u64 = 20 << 30;

/// Free bytes on the file system holding `path` (`df -Pk`), or `None` where `df` cannot tell.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Prints the free space where builds go, so a run that fails for want of disk says so.
fn report_disk(when: &str) -> Option<u64> {
    let dir = paths::target_dir();
    let probe = if dir.exists() {
        dir
    } else {
        paths::repo_root()
    };
    let free = free_bytes(&probe);
    match free {
        Some(b) => println!(
            "disk {when}: {:.1} GiB free on {}",
            b as f64 / f64::from(1u32 << 30),
            probe.display()
        ),
        None => println!("disk {when}: unknown (df did not answer)"),
    }
    free
}

/// Runs a command, passing its output through and scanning it for test totals.
fn run_step(name: &str, mut cmd: Command, tally: &mut Tally) -> anyhow::Result<()> {
    let t = Instant::now();
    println!("==> {name}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let err = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{l}");
            lines.push(l);
        }
        lines
    });
    for l in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        println!("{l}");
        tally.scan(&l);
    }
    for l in errs.join().unwrap_or_default() {
        tally.scan(&l);
    }
    let status = child.wait()?;
    println!(
        "<== {name}: {} in {:.0} s",
        if status.success() { "ok" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    if !status.success() {
        tally.broken_steps.push(name.to_owned());
        report_disk("after the failure");
    }
    Ok(())
}

fn in_engine(name: &str, eng: &engine::Engine, tally: &mut Tally) -> anyhow::Result<()> {
    println!("==> {name}");
    let cmd = eng.scene_command("res://scenes/tests/test_runner.tscn", &[]);
    let mut p = Proc::spawn(name, cmd, true)?;
    let out = p.wait(Duration::from_secs(600));
    let text = p.output();
    let summary = text.lines().rev().find_map(|l| {
        let (a, b) = l.trim().split_once(" passed, ")?;
        let b = b.strip_suffix(" failed")?;
        Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
    });
    match summary {
        Some((p_, f)) => {
            tally.passed += p_;
            tally.failed += f;
        }
        None => tally.failed += 1,
    }
    let ok = out.success() && summary.is_some_and(|(p_, f)| p_ > 0 && f == 0);
    println!("<== {name}: {} ({out:?})", if ok { "ok" } else { "FAILED" });
    if !ok {
        tally.broken_steps.push(name.to_owned());
    }
    Ok(())
}

/// Seconds each fuzz target runs in `cargo xtask test` (13 targets: about 2 minutes).
const FUZZ_SECONDS: u64 = 10;

/// A short run of every fuzz target (longer runs: docs/fuzzing.md).
fn fuzz_step(tally: &mut Tally) {
    let name = "fuzz targets (short run of each)";
    println!("==> {name}");
    let t = Instant::now();
    match crate::fuzz::run(FUZZ_SECONDS, None) {
        Ok(outcomes) => tally.passed += outcomes.len() as u64,
        Err(e) => {
            println!("fuzz: {e:#}");
            tally.failed += 1;
            tally.broken_steps.push(name.to_owned());
        }
    }
    println!("<== {name} in {:.0} s", t.elapsed().as_secs_f64());
}

/// The Windows x86_64 and Linux arm64 libraries cross-compiled and checked for their entry
/// symbol (the install tests use the host library; `cargo xtask package` builds these too).
fn cross_step(tally: &mut Tally) {
    let name = "cross-compiled libraries (windows.x86_64, linux.arm64): build, entry symbol";
    println!("==> {name}");
    let t = Instant::now();
    match crate::package::check_cross() {
        Ok(()) => tally.passed += 1,
        Err(e) => {
            println!("cross: {e:#}");
            tally.failed += 1;
            tally.broken_steps.push(name.to_owned());
        }
    }
    println!("<== {name} in {:.0} s", t.elapsed().as_secs_f64());
}

pub fn run(lint: bool) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    if report_disk("at start").is_some_and(|b| b < DISK_WARN_BYTES) {
        println!(
            "WARNING: under {} GiB free: a full run may fail with 'No space left on device'",
            DISK_WARN_BYTES >> 30
        );
    }
    if lint {
        let mut c = cargo();
        c.args(["fmt", "--all", "--", "--check"]);
        run_step("cargo fmt --check", c, &mut tally)?;
        let mut c = cargo();
        c.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        run_step("cargo clippy -D warnings", c, &mut tally)?;
        // The in-engine tests are behind fabric-godot's feature `itest` (off in the workspace
        // build, so the addon users ship has no test code): lint them too.
        let mut c = cargo();
        c.args([
            "clippy",
            "-p",
            "fabric-godot",
            "--features",
            "itest",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        run_step(
            "cargo clippy -p fabric-godot --features itest",
            c,
            &mut tally,
        )?;
        match crate::gdlint::tools() {
            Ok(bin) => {
                for (name, c) in crate::gdlint::commands(&bin) {
                    run_step(&name, c, &mut tally)?;
                }
            }
            Err(e) => {
                println!("gdtoolkit could not be installed: {e:#}");
                tally.broken_steps.push("gdtoolkit install".to_owned());
            }
        }
    }
    println!("==> Godot, extension and project import");
    let single = engine::prepare(false)?;
    println!("<== engine {}", single.bin.display());

    let mut c = cargo();
    // Every test binary runs even after one fails, so a CI log names every failure at once.
    c.args(["test", "--workspace", "--no-fail-fast"])
        .env("FABRIC_QUIET", "1");
    run_step(
        "cargo test --workspace (unit, integration, end-to-end)",
        c,
        &mut tally,
    )?;

    // The backend suite again, every backend on its own database of a real PostgreSQL server
    // that the tests install (scripts/setup-postgres.sh) and start themselves.
    let mut c = cargo();
    c.args(["test", "-p", "fabric-backend"])
        .env("FABRIC_QUIET", "1")
        .env("FABRIC_BACKEND_TEST_STORE", "postgres");
    run_step(
        "cargo test -p fabric-backend against PostgreSQL",
        c,
        &mut tally,
    )?;

    fuzz_step(&mut tally);
    cross_step(&mut tally);

    // The documentation site: MkDocs --strict (broken links and anchors fail) and the class
    // reference generated from the doc comments (an undocumented member fails).
    let mut c = Command::new(std::env::current_exe().context("the xtask binary")?);
    c.arg("docs");
    run_step("cargo xtask docs (site, strict)", c, &mut tally)?;

    in_engine("in-engine tests (single precision)", &single, &mut tally)?;
    match paths::shared_godot() {
        Some(_) => {
            let double = engine::prepare(true)?;
            in_engine("in-engine tests (double precision)", &double, &mut tally)?;
        }
        None => println!(
            "SKIPPED in-engine tests (double precision): ../shared/godot is not beside this repository"
        ),
    }
    report_disk("at the end");
    println!("xtask test finished in {:.0} s", t0.elapsed().as_secs_f64());
    if !tally.broken_steps.is_empty() {
        println!("failed steps: {}", tally.broken_steps.join(", "));
        tally.failed = tally.failed.max(1);
    }
    println!("total: {} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 || tally.passed == 0 {
        anyhow::bail!("tests failed");
    }
    Ok(())
}
