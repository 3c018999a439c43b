//! Where things are.

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .expect("crate lives at rust/fabric-harness")
        .to_path_buf()
}

/// The Godot project folder.
pub fn godot_project() -> PathBuf {
    repo_root().join("godot-project")
}

/// The addon's `bin/` folder.
pub fn addon_bin() -> PathBuf {
    repo_root().join("addons/multiplayer_fabric/bin")
}

/// The extension library file the `.gdextension` names for a precision.
pub fn addon_library(double: bool) -> PathBuf {
    let name = if double {
        "libfabric_godot.linux.double.x86_64.so"
    } else {
        "libfabric_godot.linux.x86_64.so"
    };
    addon_bin().join(name)
}

/// Cargo's target folder (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_root().join(p)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The cache folder shared by this project's tools: `$FABRIC_CACHE`, else
/// `$XDG_CACHE_HOME/multiplayer-fabric`, else `~/.cache/multiplayer-fabric` (the same rule as
/// `scripts/setup-godot.sh`).
pub fn cache_dir() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("FABRIC_CACHE").unwrap_or_else(|| {
        var("XDG_CACHE_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(|| target_dir().join("cache"))
            .join("multiplayer-fabric")
    })
}

/// `../shared/godot` beside the repository, where the double-precision engine is kept.
pub fn shared_godot() -> Option<PathBuf> {
    let p = std::env::var_os("FABRIC_SHARED_GODOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/godot"));
    p.join("extension_api.double.json").is_file().then_some(p)
}

/// A fresh scratch folder under the target folder, unique to this call.
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = target_dir()
        .join("fabric-scratch")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("create scratch folder");
    p
}
