//! Every class the addon registers has an editor icon: Rust classes in the `.gdextension`
//! file's `[icons]` section, GDScript classes with `@icon("res://...")`, and each named file
//! exists. A class without one shows Godot's generic icon in the scene tree and the "Create New
//! Node" dialog; the docs build fails instead, naming it.

use std::path::Path;

/// The `res://` path the `[icons]` section of `gdextension` (its text) gives `class`.
fn gdextension_icon<'a>(gdextension: &'a str, class: &str) -> Option<&'a str> {
    let mut in_icons = false;
    for line in gdextension.lines().map(str::trim) {
        if line.starts_with('[') {
            in_icons = line == "[icons]";
            continue;
        }
        if !in_icons {
            continue;
        }
        if let Some((name, value)) = line.split_once('=')
            && name.trim() == class
        {
            return Some(value.trim().trim_matches('"'));
        }
    }
    None
}

/// The `res://` path of a GDScript class's `@icon("...")` annotation.
fn gdscript_icon(source: &str) -> Option<&str> {
    let rest = source
        .lines()
        .find_map(|l| l.trim().strip_prefix("@icon(\""))?;
    rest.split_once('"').map(|(path, _)| path)
}

/// Checks that each of `classes` (name and source file relative to `root`) has an icon whose
/// file exists; `gdextension` is the text of the addon's `.gdextension` file. `res://` is
/// the repository root (the addon sits at the same path in the test project).
pub fn check(root: &Path, gdextension: &str, classes: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for &(name, file) in classes {
        let icon = if file.ends_with(".gd") {
            let source = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            gdscript_icon(&source).map(str::to_owned)
        } else {
            gdextension_icon(gdextension, name).map(str::to_owned)
        };
        match icon {
            None => missing.push(format!("{name}: no icon ({file})")),
            Some(res) => {
                let on_disk = root.join(res.trim_start_matches("res://"));
                if !on_disk.is_file() {
                    missing.push(format!("{name}: {res} does not exist"));
                }
            }
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "classes without an editor icon (add an SVG under addons/multiplayer_fabric/icons/ and \
         name it in the .gdextension [icons] section, or with @icon in a GDScript class):\n  {}",
        missing.join("\n  ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GDEXTENSION: &str = "[configuration]\nentry_symbol = \"x\"\n\n[icons]\n\
        FabricZone = \"res://icons/FabricZone.svg\"\n\n[dependencies]\nFabricWorld = \"no\"\n";

    #[test]
    fn icons_are_read_from_the_icons_section_only() {
        assert_eq!(
            gdextension_icon(GDEXTENSION, "FabricZone"),
            Some("res://icons/FabricZone.svg")
        );
        assert_eq!(gdextension_icon(GDEXTENSION, "FabricWorld"), None);
        assert_eq!(gdextension_icon(GDEXTENSION, "entry_symbol"), None);
    }

    #[test]
    fn a_gdscript_icon_is_its_annotation() {
        assert_eq!(
            gdscript_icon("@icon(\"res://a/b.svg\")\nclass_name X\n"),
            Some("res://a/b.svg")
        );
        assert_eq!(gdscript_icon("class_name X\n"), None);
    }

    #[test]
    fn a_class_without_an_icon_or_with_a_missing_file_is_named() {
        let root = std::env::temp_dir().join(format!("xtask-icons-{}", std::process::id()));
        std::fs::create_dir_all(root.join("icons")).unwrap();
        std::fs::write(root.join("icons/FabricZone.svg"), "<svg/>").unwrap();
        std::fs::write(
            root.join("a.gd"),
            "@icon(\"res://icons/Gone.svg\")\nclass_name A\n",
        )
        .unwrap();
        assert!(check(&root, GDEXTENSION, &[("FabricZone", "src/zone.rs")]).is_ok());
        let err = check(
            &root,
            GDEXTENSION,
            &[
                ("FabricZone", "src/zone.rs"),
                ("FabricWorld", "src/world.rs"),
                ("A", "a.gd"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("FabricWorld: no icon"), "{err}");
        assert!(
            err.contains("A: res://icons/Gone.svg does not exist"),
            "{err}"
        );
        assert!(!err.contains("FabricZone"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
