//! Godot itself: find or install it, build the extension into the addon, import the project.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::paths;
use crate::process::Proc;

/// A Godot engine to run.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The launcher or binary.
    pub bin: PathBuf,
    /// True for a double-precision (`real_t = f64`) engine.
    pub double: bool,
}

impl Engine {
    /// A command that runs this engine headless on the project folder.
    pub fn project_command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--headless")
            .arg("--path")
            .arg(paths::godot_project());
        c
    }

    /// Runs `scene` (a `res://` path) headless with user arguments after `--`.
    pub fn scene_command(&self, scene: &str, user_args: &[&str]) -> Command {
        let mut c = self.project_command();
        c.arg(scene);
        if !user_args.is_empty() {
            c.arg("--").args(user_args);
        }
        c
    }
}

fn setup_script(arg: Option<&str>) -> anyhow::Result<PathBuf> {
    let script = paths::repo_root().join("scripts/setup-godot.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if let Some(a) = arg {
        cmd.arg(a);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if out.status.code() == Some(3) {
        bail!("no double-precision engine: ../shared/godot is not beside the repository");
    }
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if path.is_empty() {
        bail!("{} printed no engine path", script.display());
    }
    Ok(PathBuf::from(path))
}

/// The single-precision engine (found on this machine or installed into the cache once).
pub fn single() -> anyhow::Result<Engine> {
    static E: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = E
        .get_or_init(|| setup_script(None).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(Engine { bin, double: false })
}

/// The double-precision editor engine from `../shared/godot` (an error says why when absent).
pub fn double_editor() -> anyhow::Result<Engine> {
    static E: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = E
        .get_or_init(|| setup_script(Some("--double")).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(Engine { bin, double: true })
}

/// The double-precision release template (what production zone servers run).
pub fn double_template() -> anyhow::Result<Engine> {
    let editor = double_editor()?;
    let bin = editor.bin.with_file_name("godot-template_release-double");
    if !bin.exists() {
        bail!("{} is missing", bin.display());
    }
    Ok(Engine { bin, double: true })
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Whether `name` is one of the variables cargo sets for the one package whose program it runs
/// (`cargo run`, `cargo test`), as opposed to settings of cargo itself (`CARGO`,
/// `CARGO_TARGET_DIR`, `CARGO_HOME`, ...).
fn is_package_env(name: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name)
}

/// A `cargo` command (the cargo running this program, if any) in the repository root, without
/// the package variables of the program that starts it (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// ...). Build scripts such as ring's rebuild when those change, so a build started from inside
/// `cargo test` or `cargo xtask` would otherwise rebuild ring and everything above it (rustls,
/// quinn, wtransport, fabric-net, the extension) once with the caller's values and again at
/// the next plain build.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(paths::repo_root());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_package_env) {
            c.env_remove(name);
        }
    }
    c
}

/// Builds the extension users ship (debug, or release with `release`) for a precision and
/// installs it into `addons/multiplayer_fabric/bin/` under the name the `.gdextension` file
/// gives. It holds no test code: the in-engine test runner is left out (feature `itest` off).
pub fn build_extension(double: bool, release: bool) -> anyhow::Result<PathBuf> {
    install(double, release, false)
}

/// Builds the library users ship (no test code) for a precision and returns the file cargo
/// wrote, without installing it (the next build of the same profile overwrites it: copy it).
pub fn build_library(double: bool, release: bool) -> anyhow::Result<PathBuf> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    build(double, release, false)
}

/// Builds the extension for the project's own tests (debug, with fabric-godot's feature
/// `itest`: the in-engine test runner `FabricTestRunner` and the Rust tests it runs) and installs
/// it like [`build_extension`].
pub fn build_test_extension(double: bool) -> anyhow::Result<PathBuf> {
    install(double, false, true)
}

/// The library users ship (debug build, no test code), built once per process and kept in a
/// scratch file, for tests that copy the addon into a fresh project: the addon's own `bin/` holds
/// the test build the in-engine tests need, so it is left as it is.
pub fn shipped_library(double: bool) -> anyhow::Result<PathBuf> {
    static SINGLE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static DOUBLE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let cell = if double { &DOUBLE } else { &SINGLE };
    cell.get_or_init(|| {
        let run = || -> anyhow::Result<PathBuf> {
            let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let built = build(double, false, false)?;
            let dest = paths::target_dir()
                .join("fabric-scratch")
                .join(format!("shipped-{}", std::process::id()))
                .join(
                    paths::addon_library(double)
                        .file_name()
                        .expect("a file name"),
                );
            install_file(&built, &dest)?;
            Ok(dest)
        };
        run().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Builds and installs into the addon's `bin/`.
fn install(double: bool, release: bool, itest: bool) -> anyhow::Result<PathBuf> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let built = build(double, release, itest)?;
    let dest = paths::addon_library(double);
    install_file(&built, &dest)?;
    Ok(dest)
}

/// Runs `cargo build` for the extension and returns the library it wrote (hold `BUILD_LOCK`).
fn build(double: bool, release: bool, itest: bool) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "-p", "fabric-godot", "--lib"]);
    if release {
        cmd.arg("--release");
    }
    let mut features = Vec::new();
    if double {
        let shared = paths::shared_godot().context(
            "no double-precision API: ../shared/godot/extension_api.double.json is missing",
        )?;
        cmd.arg("--no-default-features").env(
            "GODOT4_GDEXTENSION_JSON",
            shared.join("extension_api.double.json"),
        );
        features.push("double");
    }
    if itest {
        features.push("itest");
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the extension failed ({status})");
    }
    Ok(paths::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("libfabric_godot.so"))
}

/// Copies via a temporary file and a rename, so a running Godot keeps its mapped copy intact.
fn install_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to.parent().expect("has a parent"))?;
    let tmp = to.with_extension("so.tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// Imports the project once (builds `.godot/`, the class cache for `class_name` scripts).
pub fn import_project(engine: &Engine) -> anyhow::Result<()> {
    let mut cmd = engine.project_command();
    cmd.arg("--import");
    let mut p = Proc::spawn("import", cmd, false)?;
    let out = p.wait(Duration::from_secs(180));
    if !out.success() {
        bail!("importing the project failed ({out:?})\n{}", p.output());
    }
    let cache = paths::godot_project().join(".godot/global_script_class_cache.cfg");
    if !cache.exists() {
        bail!("import finished but {} is missing", cache.display());
    }
    Ok(())
}

/// Everything needed before running the project: the engine, the extension built and installed,
/// and the project imported. Done once per process.
pub fn prepare(double: bool) -> anyhow::Result<Engine> {
    static SINGLE: OnceLock<Result<Engine, String>> = OnceLock::new();
    static DOUBLE: OnceLock<Result<Engine, String>> = OnceLock::new();
    let cell = if double { &DOUBLE } else { &SINGLE };
    cell.get_or_init(|| {
        let run = || -> anyhow::Result<Engine> {
            let engine = if double { double_editor()? } else { single()? };
            build_test_extension(double)?;
            if !double {
                import_project(&engine)?;
            } else {
                // The import cache is shared; the single engine writes it.
                prepare(false)?;
            }
            Ok(engine)
        };
        run().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Builds the workspace binaries (debug) once per process and returns the path of `name`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let status = cargo()
                .args([
                    "build",
                    "-p",
                    "fabric-gateway",
                    "-p",
                    "fabric-backend",
                    "-p",
                    "fabric-load",
                    "--bins",
                ])
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("building the binaries failed ({status})"))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    let p = paths::target_dir().join("debug").join(name);
    if !p.exists() {
        bail!("{} was not built", p.display());
    }
    Ok(p)
}
