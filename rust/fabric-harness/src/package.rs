//! The release package: `multiplayer_fabric-<version>.zip`, the addon folder as a game developer
//! downloads it (`addons/multiplayer_fabric/` with `plugin.cfg`, a `.gdextension` that lists
//! only the libraries built, the tools and scripts, the libraries in `bin/`, the licences and a
//! README).
//!
//! `cargo xtask package` writes it with release libraries; the install tests write one with the
//! debug library users ship ([`shipped_zip`]) and unzip it into a fresh project, so they run what
//! the package holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::{engine, paths};

/// The folder the package holds, as a path inside the zip and inside a project.
pub const ADDON_DIR: &str = "addons/multiplayer_fabric";

/// The exported symbol Godot calls to load the library (the `.gdextension`'s `entry_symbol`).
pub const ENTRY_SYMBOL: &str = "gdext_rust_init";

/// The platforms no package holds a library for: macOS needs Apple's SDK, which no Linux
/// machine can install.
pub const NEVER_BUILT: &[&str] = &["macos"];

/// The package's version: the workspace version.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The zip's file name, `multiplayer_fabric-<version>.zip`.
pub fn zip_name() -> String {
    format!("multiplayer_fabric-{}.zip", version())
}

/// A platform the extension is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux x86_64: built natively, and the platform this project's tests run it on.
    LinuxX86_64,
    /// Windows x86_64: cross-compiled ([`crate::cross`]), checked, not run.
    WindowsX86_64,
    /// Linux arm64: cross-compiled ([`crate::cross`]), checked, not run.
    LinuxArm64,
}

impl Platform {
    /// The cross-compiled platforms.
    pub const CROSS: [Platform; 2] = [Platform::WindowsX86_64, Platform::LinuxArm64];

    /// The `.gdextension` feature key, e.g. `windows.x86_64` or `linux.double.x86_64`.
    pub fn key(self, double: bool) -> String {
        let (os, arch) = match self {
            Platform::LinuxX86_64 => ("linux", "x86_64"),
            Platform::WindowsX86_64 => ("windows", "x86_64"),
            Platform::LinuxArm64 => ("linux", "arm64"),
        };
        if double {
            format!("{os}.double.{arch}")
        } else {
            format!("{os}.{arch}")
        }
    }

    /// The Rust target triple of a cross-compiled platform (`None` for the host's).
    pub fn triple(self) -> Option<&'static str> {
        match self {
            Platform::LinuxX86_64 => None,
            Platform::WindowsX86_64 => Some("x86_64-pc-windows-gnu"),
            Platform::LinuxArm64 => Some("aarch64-unknown-linux-gnu"),
        }
    }

    /// The file cargo writes, e.g. `fabric_godot.dll`.
    pub fn cargo_file_name(self) -> &'static str {
        match self {
            Platform::WindowsX86_64 => "fabric_godot.dll",
            _ => "libfabric_godot.so",
        }
    }

    /// Whether this project's tests run the library (in headless Godot) or only build it.
    pub fn is_run_here(self) -> bool {
        self == Platform::LinuxX86_64
    }
}

/// One extension library to ship.
#[derive(Debug, Clone)]
pub struct Library {
    /// The platform it is built for.
    pub platform: Platform,
    /// True for the double-precision build.
    pub double: bool,
    /// The built (and stripped) file.
    pub path: PathBuf,
}

impl Library {
    /// The `.gdextension` feature key, e.g. `linux.double.x86_64`.
    pub fn key(&self) -> String {
        self.platform.key(self.double)
    }

    /// The file name inside the addon's `bin/` (for Linux x86_64 the one the committed
    /// `.gdextension` names), e.g. `fabric_godot.windows.x86_64.dll`.
    pub fn file_name(&self) -> String {
        match self.platform {
            Platform::WindowsX86_64 => format!("fabric_godot.{}.dll", self.key()),
            _ => format!("libfabric_godot.{}.so", self.key()),
        }
    }
}

/// The keys of the libraries in `libs`: those this project's tests run, and those only built and
/// checked for their entry symbol.
fn run_and_checked(libs: &[Library]) -> (Vec<String>, Vec<String>) {
    let (run, checked): (Vec<&Library>, Vec<&Library>) =
        libs.iter().partition(|l| l.platform.is_run_here());
    (
        run.iter().map(|l| l.key()).collect(),
        checked.iter().map(|l| l.key()).collect(),
    )
}

/// The platforms `libs` holds no library for.
pub fn not_built(libs: &[Library]) -> Vec<String> {
    let mut out: Vec<String> = Platform::CROSS
        .iter()
        .filter(|p| !libs.iter().any(|l| l.platform == **p))
        .map(|p| p.key(false))
        .collect();
    out.extend(NEVER_BUILT.iter().map(|s| (*s).to_owned()));
    out
}

/// Copies `from` to `to` without debug information (`strip --strip-debug`; the dynamic symbols,
/// the entry symbol among them, stay) and checks that the entry symbol is still there.
pub fn strip_debug(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip {} failed ({status})", from.display());
    }
    let bytes = std::fs::read(to)?;
    if !contains(&bytes, ENTRY_SYMBOL.as_bytes()) {
        bail!("{} does not export {ENTRY_SYMBOL}", to.display());
    }
    Ok(())
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The packaged `.gdextension`: the committed file with its `[libraries]` section listing
/// exactly `libs` (double precision first: Godot takes the first line whose features match), and
/// a first comment line saying which platforms are in the package.
pub fn gdextension_text(committed: &str, libs: &[Library]) -> String {
    let (run, checked) = run_and_checked(libs);
    let mut out = format!(
        "; Package {}: libraries for {}{} (not built: {}).\n",
        version(),
        run.join(", "),
        if checked.is_empty() {
            String::new()
        } else {
            format!(
                "; cross-compiled, checked but not run by its tests: {}",
                checked.join(", ")
            )
        },
        not_built(libs).join(", ")
    );
    let mut ordered: Vec<&Library> = libs.iter().filter(|l| l.double).collect();
    ordered.extend(libs.iter().filter(|l| !l.double));
    let mut section = String::new();
    for line in committed.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_owned();
            out.push_str(line);
            out.push('\n');
            if section == "[libraries]" {
                for lib in &ordered {
                    out.push_str(&format!(
                        "{} = \"res://{ADDON_DIR}/bin/{}\"\n",
                        lib.key(),
                        lib.file_name()
                    ));
                }
            }
            continue;
        }
        if section == "[libraries]" && !t.is_empty() && !t.starts_with(';') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The README inside the package.
fn readme(libs: &[Library]) -> String {
    let (run, checked) = run_and_checked(libs);
    let checked = if checked.is_empty() {
        String::new()
    } else {
        format!(
            "- Built and checked only: {}. Cross-compiled on Linux x86_64 (MinGW-w64, aarch64\n  \
             GCC) and checked to export `{ENTRY_SYMBOL}`, the function Godot loads; never run by\n  \
             this project's tests. Please report what you find.\n",
            checked.join(", ")
        )
    };
    format!(
        "# Multiplayer Fabric {version}\n\n\
         Self-hosted, zone-sharded multiplayer for Godot 4.6: a WebTransport `MultiplayerPeer`\n\
         (`FabricMMOGTransportPeer`), a zone server node (`FabricZone`) and tools.\n\n\
         ## Platforms\n\n\
         - Run: {run}. The platform this project's tests run the extension on (headless\n  \
         Godot 4.6: in-engine tests, zone servers, this package installed in a fresh project).\n\
         {checked}\
         - Not built: {missing} (no library: Godot reports the platform as unsupported).\n\n\
         ## Install\n\n\
         1. Unzip into your project's folder (it creates `{ADDON_DIR}/`).\n\
         2. Before the first headless import (CI, export pipelines), register the extension, or\n\
         Godot 4.6 aborts at the end of that import (exit 134, an engine bug):\n\n\
         ```sh\n\
         godot --headless --path . --script res://{ADDON_DIR}/tools/register_extensions.gd\n\
         godot --headless --path . --import\n\
         ```\n\n\
         3. Enable the plugin in Project > Project Settings > Plugins (optional: it adds the\n\
         monitors and registry helpers); the classes are there without it.\n\n\
         Every class is documented in the editor (F1). Licence: MIT OR Apache-2.0 (`LICENSE`).\n",
        version = version(),
        run = run.join(", "),
        missing = not_built(libs).join(", "),
    )
}

/// Writes `out_dir/multiplayer_fabric-<version>.zip` with the addon folder of the repository
/// (its `bin/` left out), `libs` in `bin/`, the packaged `.gdextension`, the licences and the
/// README; returns its path.
pub fn write_zip(libs: &[Library], out_dir: &Path) -> anyhow::Result<PathBuf> {
    if libs.is_empty() {
        bail!("no library to package");
    }
    std::fs::create_dir_all(out_dir)?;
    let dest = out_dir.join(zip_name());
    let tmp = dest.with_extension("zip.tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut zip = ZipWriter::new(file);
    let text = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let library = text.unix_permissions(0o755);

    let root = paths::repo_root();
    let addon = root.join(ADDON_DIR);
    let gdextension = "multiplayer_fabric.gdextension";
    let mut files = Vec::new();
    list_files(&addon, &addon, &mut files)?;
    files.sort();
    for rel in files {
        if rel.starts_with("bin/") || rel == gdextension || rel.ends_with(".tmp") {
            continue;
        }
        zip.start_file(format!("{ADDON_DIR}/{rel}"), text)?;
        zip.write_all(&std::fs::read(addon.join(&rel))?)?;
    }
    let committed = std::fs::read_to_string(addon.join(gdextension))?;
    zip.start_file(format!("{ADDON_DIR}/{gdextension}"), text)?;
    zip.write_all(gdextension_text(&committed, libs).as_bytes())?;
    for name in ["LICENSE", "LICENSE-MIT", "LICENSE-APACHE"] {
        let bytes = std::fs::read(root.join(name)).with_context(|| format!("reading {name}"))?;
        zip.start_file(format!("{ADDON_DIR}/{name}"), text)?;
        zip.write_all(&bytes)?;
    }
    zip.start_file(format!("{ADDON_DIR}/README.md"), text)?;
    zip.write_all(readme(libs).as_bytes())?;
    for lib in libs {
        zip.start_file(format!("{ADDON_DIR}/bin/{}", lib.file_name()), library)?;
        let bytes =
            std::fs::read(&lib.path).with_context(|| format!("reading {}", lib.path.display()))?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?.sync_all()?;
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

/// The paths (with `/`, relative to `base`) of the files under `dir`, following links.
fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if std::fs::metadata(&path)?.is_dir() {
            list_files(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("under base");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// The zip's files and their unpacked sizes, in order.
pub fn contents(zip: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let file = std::fs::File::open(zip).with_context(|| format!("opening {}", zip.display()))?;
    let mut archive = ZipArchive::new(file)?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index(i)?;
        out.push((entry.name()?.into_owned(), entry.size()));
    }
    Ok(out)
}

/// Reads one file of the zip.
pub fn read_entry(zip: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(zip).with_context(|| format!("opening {}", zip.display()))?;
    let mut archive = ZipArchive::new(file)?;
    let mut entry = archive
        .by_name(name)
        .with_context(|| format!("{name} in {}", zip.display()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    std::io::copy(&mut entry, &mut bytes)?;
    Ok(bytes)
}

/// Unzips `zip` into `dest` (as a user unzips the package into a project folder).
pub fn extract(zip: &Path, dest: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(zip).with_context(|| format!("opening {}", zip.display()))?;
    ZipArchive::new(file)?
        .extract(dest)
        .with_context(|| format!("unzipping {} into {}", zip.display(), dest.display()))
}

/// A package with the single-precision library users ship, debug build (no test code, see
/// [`engine::shipped_library`]), stripped like the release: written once per process into a
/// scratch folder, for the install tests. `cargo xtask package` writes the release one.
pub fn shipped_zip() -> anyhow::Result<PathBuf> {
    static ZIP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ZIP.get_or_init(|| {
        let run = || -> anyhow::Result<PathBuf> {
            let built = engine::shipped_library(false)?;
            let dir = paths::scratch_dir("package");
            let lib = Library {
                platform: Platform::LinuxX86_64,
                double: false,
                path: dir
                    .join("bin")
                    .join(built.file_name().expect("a file name")),
            };
            strip_debug(&built, &lib.path)?;
            write_zip(&[lib], &dir)
        };
        run().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = "; comment\n[configuration]\nentry_symbol = \"gdext_rust_init\"\n\n\
        [libraries]\nlinux.double.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.double.x86_64.so\"\n\
        linux.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.x86_64.so\"\n\n\
        [icons]\nFabricZone = \"res://addons/multiplayer_fabric/icons/FabricZone.svg\"\n";

    fn lib(platform: Platform, double: bool) -> Library {
        Library {
            platform,
            double,
            path: PathBuf::from("unused"),
        }
    }

    fn libraries_section(text: &str) -> Vec<&str> {
        text.lines()
            .skip_while(|l| *l != "[libraries]")
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    #[test]
    fn every_platform_is_listed_double_first() {
        let libs = [
            lib(Platform::LinuxX86_64, false),
            lib(Platform::LinuxX86_64, true),
            lib(Platform::WindowsX86_64, false),
            lib(Platform::LinuxArm64, false),
        ];
        let text = gdextension_text(COMMITTED, &libs);
        assert_eq!(
            libraries_section(&text),
            vec![
                "linux.double.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.double.x86_64.so\"",
                "linux.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.x86_64.so\"",
                "windows.x86_64 = \"res://addons/multiplayer_fabric/bin/fabric_godot.windows.x86_64.dll\"",
                "linux.arm64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.arm64.so\"",
            ],
            "{text}"
        );
        let first = text.lines().next().expect("a first line");
        assert!(
            first.contains("libraries for linux.x86_64, linux.double.x86_64;")
                && first.contains("not run by its tests: windows.x86_64, linux.arm64")
                && first.contains("(not built: macos)"),
            "{first}"
        );
        assert!(
            text.contains("[icons]\nFabricZone = ") && text.contains("entry_symbol = "),
            "the other sections are kept:\n{text}"
        );
    }

    #[test]
    fn host_only_lists_what_it_holds_and_names_the_rest() {
        let libs = [lib(Platform::LinuxX86_64, false)];
        let text = gdextension_text(COMMITTED, &libs);
        assert_eq!(
            libraries_section(&text),
            vec![
                "linux.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.x86_64.so\""
            ],
            "{text}"
        );
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.ends_with("(not built: windows.x86_64, linux.arm64, macos).")),
            "{text}"
        );
    }

    #[test]
    fn readme_says_which_platforms_ran_and_which_were_only_built() {
        let libs = [
            lib(Platform::LinuxX86_64, false),
            lib(Platform::WindowsX86_64, false),
            lib(Platform::LinuxArm64, false),
        ];
        let text = readme(&libs);
        assert!(text.contains("- Run: linux.x86_64."), "{text}");
        assert!(
            text.contains("- Built and checked only: windows.x86_64, linux.arm64."),
            "{text}"
        );
        assert!(text.contains("- Not built: macos "), "{text}");
        let host = readme(&libs[..1]);
        assert!(!host.contains("checked only"), "{host}");
        assert!(
            host.contains("- Not built: windows.x86_64, linux.arm64, macos "),
            "{host}"
        );
    }
}
