//! The session modules of `fabric-net` form layers, never a circle: the shared pieces at the
//! bottom (`budget`, `close`, then `limits`, `reliable`), the transports (`lanes`, `ws`), the
//! link over either transport, and the client and the server on top, neither using the other.
//!
//! Read from the sources: every `crate::` path in code (comments are skipped, so doc links may
//! point anywhere) names the module it reaches, directly or through a re-export at the crate
//! root (`crate::ClientConfig` is the `client` module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layered modules and their layer: a module may use only modules of lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("budget", 0),
    ("close", 0),
    ("limits", 1),
    ("reliable", 1),
    ("lanes", 2),
    ("ws", 2),
    ("link", 3),
    ("client", 4),
    ("server", 4),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file without its comments (whole-line comments and ` // ` tails).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| l.split(" // ").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sources of module `name`: `name.rs`, or `name/` with everything under it.
fn files_of(name: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let dir = src().join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("module {name}: no {name}.rs and {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "module {name}: no sources in {}",
        dir.display()
    );
    files
}

/// Names re-exported at the crate root and the module each comes from (`pub use m::{A, b as c}`).
fn root_reexports() -> BTreeMap<String, String> {
    let lib = code_of(&src().join("lib.rs"));
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        for item in items
            .trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace())
            .split(',')
        {
            let name = item.rsplit(" as ").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    map
}

/// First segments of every `crate::` path in `code`, `crate::{a, b::c}` groups included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        // A word glued before `crate` makes another word (`$crate::` is this crate too).
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            // Only the top level of the group: `a`, `b` of `{a, b::{c, d}}`.
            for part in split_top_level(&group[..end]) {
                let name = ident(part.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut level, mut from) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            ',' if level == 0 => {
                parts.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

/// The layered modules each layered module uses.
fn edges() -> BTreeMap<&'static str, BTreeSet<String>> {
    let reexports = root_reexports();
    let layered: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    LAYERS
        .iter()
        .map(|&(module, _)| {
            let mut uses = BTreeSet::new();
            for file in files_of(module) {
                for first in crate_paths(&code_of(&file)) {
                    let target = reexports.get(&first).cloned().unwrap_or(first);
                    if target != module && layered.contains(target.as_str()) {
                        uses.insert(target);
                    }
                }
            }
            (module, uses)
        })
        .collect()
}

#[test]
fn session_modules_form_layers_and_client_and_server_do_not_use_each_other() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let edges = edges();
    let mut wrong = Vec::new();
    for (module, uses) in &edges {
        for used in uses {
            if layer[used.as_str()] >= layer[module] {
                wrong.push(format!(
                    "{module} (layer {}) uses {used} (layer {})",
                    layer[module],
                    layer[used.as_str()]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "modules used across layers: {wrong:?}; edges: {edges:?}"
    );
}

#[test]
fn the_source_reader_sees_the_known_uses() {
    // The layering test above passes vacuously if the reader finds nothing: pin edges that
    // must exist, and the parser on a line of each form.
    let edges = edges();
    for (module, used) in [
        ("client", "link"),
        ("server", "link"),
        ("lanes", "close"),
        ("ws", "budget"),
    ] {
        assert!(
            edges[module].contains(used),
            "{module} should use {used}; found {:?}",
            edges[module]
        );
    }
    let paths = crate_paths(
        "use crate::{NetError, a::{b, c}, d as e};\nlet x = crate::server::X; notcrate::y",
    );
    let expected: BTreeSet<String> = ["NetError", "a", "d", "server"].map(String::from).into();
    assert_eq!(paths, expected, "paths read from a sample");
    assert_eq!(
        root_reexports().get("ClientConfig").map(String::as_str),
        Some("client"),
        "crate-root re-exports map to their module"
    );
}
