//! `cargo xtask docs`: the documentation site. The pages of `docs/` and a class reference
//! generated from `fabric-godot`'s doc comments ([`reference`]) are staged in
//! `target/docs-src/` and built by MkDocs (a private venv, `mkdocs-requirements.txt`) with
//! `--strict`: a broken link or anchor, or an undocumented class member, fails the build.

mod icons;
pub mod reference;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use fabric_harness::paths;

/// Pages in the navigation, in order: (section, [(title, file)]). Every page of `docs/` must
/// be listed (checked), so none is published unreachable.
const NAV: &[(&str, &[(&str, &str)])] = &[
    (
        "",
        &[
            ("Home", "index.md"),
            ("Getting started", "getting-started.md"),
            ("Concepts", "concepts.md"),
        ],
    ),
    (
        "Guides",
        &[
            ("Dedicated server", "dedicated-server.md"),
            ("Running a zone fabric", "zone.md"),
            ("The client node (FabricWorld)", "client.md"),
            ("Host-run rooms", "host-rooms.md"),
            ("Replication manifest", "manifest.md"),
            ("Operating the registry", "backend.md"),
            ("Persistence", "persistence.md"),
            ("Assets", "assets.md"),
        ],
    ),
    (
        "Reference",
        &[
            ("Session protocol", "session-protocol.md"),
            ("Wire formats", "protocol.md"),
            ("Load tests", "load.md"),
            ("Benchmarks", "benchmarks.md"),
            ("Fuzzing", "fuzzing.md"),
        ],
    ),
];

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// The MkDocs configuration for the staged pages and the generated class pages.
fn config(classes: &[reference::Class], reports: &[String]) -> anyhow::Result<String> {
    let mut s = String::new();
    writeln!(s, "site_name: Multiplayer Fabric")?;
    writeln!(s, "docs_dir: docs-src")?;
    writeln!(s, "site_dir: docs-site")?;
    writeln!(s, "theme: mkdocs")?;
    writeln!(s, "use_directory_urls: false")?;
    writeln!(s, "validation:")?;
    writeln!(s, "  omitted_files: warn")?;
    writeln!(s, "  absolute_links: warn")?;
    writeln!(s, "  unrecognized_links: warn")?;
    writeln!(s, "  anchors: warn")?;
    writeln!(s, "nav:")?;
    for (section, pages) in NAV {
        let indent = if section.is_empty() {
            "  "
        } else {
            writeln!(s, "  - {section}:")?;
            "      "
        };
        for (title, file) in *pages {
            writeln!(s, "{indent}- {title:?}: {file}")?;
        }
        if *section == "Reference" {
            writeln!(s, "{indent}- Load reports:")?;
            for r in reports {
                writeln!(s, "{indent}    - {r:?}: load/{r}/report.md")?;
            }
            writeln!(s, "{indent}- Classes:")?;
            writeln!(s, "{indent}    - Overview: reference/index.md")?;
            for c in classes {
                writeln!(s, "{indent}    - {}: reference/{}.md", c.name, c.name)?;
            }
        }
    }
    Ok(s)
}

fn reference_index(classes: &[reference::Class]) -> String {
    let mut s = String::from(
        "# Class reference\n\nThe classes the addon registers with Godot, generated from the \
         same doc comments the editor shows under F1 (Search Help).\n\n| class | inherits | \
         summary |\n|---|---|---|\n",
    );
    for c in classes {
        let summary = c.doc.split("\n\n").next().unwrap_or("").replace('\n', " ");
        let _ = writeln!(
            s,
            "| [{0}]({0}.md) | `{1}` | {2} |",
            c.name,
            c.base,
            summary.replace('|', "\\|")
        );
    }
    s
}

/// Stages the pages, writes the class reference and builds the site; returns the site folder.
pub fn build() -> anyhow::Result<PathBuf> {
    let root = paths::repo_root();
    let target = root.join("target");
    let stage = target.join("docs-src");
    let _ = std::fs::remove_dir_all(&stage);
    copy_dir(&root.join("docs"), &stage)?;
    let listed: Vec<&str> = NAV
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, f)| *f))
        .collect();
    for e in std::fs::read_dir(root.join("docs"))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        anyhow::ensure!(
            !name.ends_with(".md") || listed.contains(&name.as_str()),
            "docs/{name} is not in the site's navigation (rust/xtask/src/docs/mod.rs, NAV)"
        );
    }
    let mut classes = reference::classes(&root.join("rust/fabric-godot/src"), &root)?;
    let addon = root.join("addons/multiplayer_fabric");
    for e in std::fs::read_dir(&addon)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "gd") {
            let text = std::fs::read_to_string(&p)?;
            let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            classes.extend(reference::gdscript_class(&text, &rel));
        }
    }
    classes.sort_by(|a, b| a.name.cmp(&b.name));
    anyhow::ensure!(
        !classes.is_empty(),
        "no Godot classes found in fabric-godot"
    );
    let gdextension = std::fs::read_to_string(addon.join("multiplayer_fabric.gdextension"))?;
    let named: Vec<(&str, &str)> = classes
        .iter()
        .map(|c| (c.name.as_str(), c.file.as_str()))
        .collect();
    icons::check(&root, &gdextension, &named)?;
    let refdir = stage.join("reference");
    std::fs::create_dir_all(&refdir)?;
    for c in &classes {
        std::fs::write(refdir.join(format!("{}.md", c.name)), reference::page(c)?)?;
    }
    std::fs::write(refdir.join("index.md"), reference_index(&classes))?;
    // Scenario reports of `cargo xtask load` kept in docs/load/<run>/report.md.
    let mut reports: Vec<String> = std::fs::read_dir(root.join("docs/load"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("report.md").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    reports.sort_by_key(|r| r.split('p').next().and_then(|n| n.parse::<u32>().ok()));
    let cfg = target.join("mkdocs.yml");
    std::fs::write(&cfg, config(&classes, &reports)?)?;
    let bin = crate::venv::tools("mkdocs-venv", "mkdocs-requirements.txt", "mkdocs")?;
    crate::venv::run(
        Command::new(bin.join("mkdocs"))
            .args(["build", "--strict", "--config-file"])
            .arg(&cfg),
    )
    .context("the documentation site has warnings (broken links or anchors): see above")?;
    let site = target.join("docs-site");
    println!(
        "docs site: {} ({} pages, {} classes)",
        site.join("index.html").display(),
        listed.len(),
        classes.len()
    );
    Ok(site)
}
