//! Cross-compiled libraries of the extension: Windows x86_64 (`x86_64-pc-windows-gnu`) and Linux
//! arm64 (`aarch64-unknown-linux-gnu`), built on this Linux x86_64 machine and checked, never run.
//!
//! The toolchain is Debian sid's, installed into the private root by `scripts/setup-cross.sh`:
//! rustc and cargo with `rust-src`, so cargo's `-Zbuild-std` compiles the standard library for
//! each target (no prebuilt std and no rustup download needed), MinGW-w64 GCC and the aarch64 GCC
//! as linkers and C compilers (SQLite, zstd, ring), and their binutils for the checks. Builds go
//! to `target/cross/` (their own cargo lock, so they never wait for the host builds or hold them).
//!
//! A library counts as built only when the target's own binutils read it as a file of that
//! target exporting [`ENTRY_SYMBOL`](crate::package::ENTRY_SYMBOL), the function Godot calls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::package::{ENTRY_SYMBOL, Platform};
use crate::{paths, process};

/// The `fabric-cross` launcher from `scripts/setup-cross.sh` (installing the toolchain the first
/// time; once per process).
pub fn toolchain() -> anyhow::Result<PathBuf> {
    static LAUNCHER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LAUNCHER
        .get_or_init(|| {
            let run = || -> anyhow::Result<PathBuf> {
                let path = process::setup_script("setup-cross.sh").context(
                    "no cross toolchain for Windows x86_64 and Linux arm64 \
                     (`cargo xtask package --platforms host` builds Linux x86_64 only)",
                )?;
                Ok(PathBuf::from(path))
            };
            run().map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Cargo's target folder for cross builds.
pub fn target_dir() -> PathBuf {
    paths::target_dir().join("cross")
}

/// A command run by the cross toolchain, in the repository root, with the cross target folder
/// reachable at its own path.
fn command(launcher: &Path) -> Command {
    let mut c = Command::new(launcher);
    c.current_dir(paths::repo_root())
        .env("FABRIC_CROSS_MOUNTS", target_dir());
    c
}

/// Builds the extension (no test code) for every platform of `platforms` in one cargo run
/// (single precision; `release`: the release profile, else the dev one), without debug
/// information, checks each library ([`check`]) and returns them in the order given.
pub fn build(platforms: &[Platform], release: bool) -> anyhow::Result<Vec<PathBuf>> {
    let launcher = toolchain()?;
    let dir = target_dir();
    let profile = if release { "RELEASE" } else { "DEV" };
    let mut c = command(&launcher);
    c.arg("env")
        .arg(format!("CARGO_TARGET_DIR={}", dir.display()))
        .arg(format!("CARGO_PROFILE_{profile}_DEBUG=false"))
        .arg(format!("CARGO_PROFILE_{profile}_STRIP=debuginfo"))
        .args(["cargo", "build", "-p", "fabric-godot", "--lib", "--locked"])
        .arg("-Zbuild-std=std,panic_abort");
    if release {
        c.arg("--release");
    }
    let mut libs = Vec::with_capacity(platforms.len());
    for p in platforms {
        let triple = p
            .triple()
            .with_context(|| format!("{} is built natively, not cross-compiled", p.key(false)))?;
        c.args(["--target", triple]);
        libs.push(
            dir.join(triple)
                .join(if release { "release" } else { "debug" })
                .join(p.cargo_file_name()),
        );
    }
    let status = c.status().context("running cargo in the cross toolchain")?;
    if !status.success() {
        bail!("cross-compiling the extension failed ({status})");
    }
    for (p, lib) in platforms.iter().zip(&libs) {
        check(*p, lib)?;
    }
    Ok(libs)
}

/// Checks with the target's own binutils that `lib` is a library of `platform` that exports
/// [`ENTRY_SYMBOL`].
pub fn check(platform: Platform, lib: &Path) -> anyhow::Result<()> {
    let (tool, args, format) = match platform {
        Platform::WindowsX86_64 => ("x86_64-w64-mingw32-objdump", &["-p"][..], "pei-x86-64"),
        Platform::LinuxArm64 => (
            "aarch64-linux-gnu-readelf",
            &["-h", "--dyn-syms", "-W"][..],
            "AArch64",
        ),
        Platform::LinuxX86_64 => bail!("{} is not cross-compiled", platform.key(false)),
    };
    let out = command(&toolchain()?)
        .arg(tool)
        .args(args)
        .arg(lib)
        .output()
        .with_context(|| format!("running {tool}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{tool} cannot read {}: {}",
            lib.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let exports = match platform {
        Platform::WindowsX86_64 => pe_exports(&text),
        _ => elf_exports(&text),
    };
    verdict(platform, &text, format, &exports).with_context(|| format!("{}", lib.display()))
}

/// Whether a tool's output names the expected file `format` and the exports hold the entry
/// symbol; the error says which is missing.
fn verdict(platform: Platform, text: &str, format: &str, exports: &[String]) -> anyhow::Result<()> {
    if !text.contains(format) {
        bail!(
            "not a {} library (no `{format}` in the binutils' description)",
            platform.key(false)
        );
    }
    if !exports.iter().any(|s| s == ENTRY_SYMBOL) {
        bail!(
            "does not export {ENTRY_SYMBOL}, the entry Godot calls (exports: {})",
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        );
    }
    Ok(())
}

/// The names in the export table of `objdump -p` output for a PE file (the lines of the
/// `[Ordinal/Name Pointer] Table` up to the next blank line).
pub fn pe_exports(objdump: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = objdump.lines();
    if lines.any(|l| l.starts_with("[Ordinal/Name Pointer] Table")) {
        for l in lines {
            let t = l.trim();
            if t.is_empty() {
                break;
            }
            if t.starts_with('[')
                && let Some(name) = t.split_whitespace().last()
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The defined global or weak symbols of `readelf --dyn-syms -W` output for an ELF file (the
/// version suffix, `@...`, left off).
pub fn elf_exports(readelf: &str) -> Vec<String> {
    readelf
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num: Value Size Type Bind Vis Ndx Name
            if f.len() < 8 || !f[0].ends_with(':') || f[0] == "Num:" {
                return None;
            }
            let defined = f[6] != "UND";
            let visible = matches!(f[4], "GLOBAL" | "WEAK");
            (defined && visible).then(|| f[7].split('@').next().unwrap_or(f[7]).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJDUMP: &str = "\
fabric_godot.dll:     file format pei-x86-64

The Export Tables (interpreted .edata section contents)

Export Address Table -- Ordinal Base 1
\t          Ordinal  Address  Type
\t[   0] +base[   1] 00266c40 Export RVA

[Ordinal/Name Pointer] Table -- Ordinal Base 1
\t          Ordinal   Hint Name
\t[   0] +base[   1]  0000 gdext_rust_init

The Function Table (interpreted .pdata section contents)
vma:\t\t\tBeginAddress\t EndAddress\t  UnwindData
";

    const READELF: &str = "\
ELF Header:
  Class:                             ELF64
  Machine:                           AArch64

Symbol table '.dynsym' contains 4 entries:
   Num:    Value          Size Type    Bind   Vis      Ndx Name
     0: 0000000000000000     0 NOTYPE  LOCAL  DEFAULT  UND 
     1: 0000000000000000     0 FUNC    GLOBAL DEFAULT  UND memcpy@GLIBC_2.17 (2)
     2: 00000000002a1b40   112 FUNC    GLOBAL DEFAULT   12 gdext_rust_init
     3: 00000000002a1c00     8 OBJECT  LOCAL  DEFAULT   20 local_thing
";

    #[test]
    fn pe_export_table_is_read_from_objdump() {
        assert_eq!(pe_exports(OBJDUMP), vec!["gdext_rust_init".to_owned()]);
        assert!(
            pe_exports("no tables here\n").is_empty(),
            "no table: no exports"
        );
    }

    #[test]
    fn elf_exports_are_defined_globals_only() {
        assert_eq!(
            elf_exports(READELF),
            vec!["gdext_rust_init".to_owned()],
            "imports (UND) and locals are not exports"
        );
    }

    #[test]
    fn verdict_needs_the_format_and_the_entry_symbol() {
        let win = Platform::WindowsX86_64;
        assert!(verdict(win, OBJDUMP, "pei-x86-64", &pe_exports(OBJDUMP)).is_ok());
        let wrong = verdict(win, READELF, "pei-x86-64", &elf_exports(READELF))
            .expect_err("an ELF file is not a Windows library");
        assert!(
            wrong.to_string().contains("not a windows.x86_64"),
            "{wrong}"
        );
        let none =
            verdict(Platform::LinuxArm64, READELF, "AArch64", &[]).expect_err("no entry symbol");
        assert!(
            none.to_string().contains("does not export gdext_rust_init"),
            "{none}"
        );
    }
}
