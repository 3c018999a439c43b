//! A game developer's first import, reproduced on a fresh project every run: the addon copied
//! into a new folder with its built `bin/` and no `.godot/`, then the steps the install docs give
//! (`docs/dedicated-server.md`): register the extensions with the addon's tool, import headless,
//! run a script that uses `FabricMMOGTransportPeer`.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::user_project::UserProject;

/// The signal of the engine's abort (exit code 134 when a shell reports it).
const SIGABRT: i32 = 6;

const GDEXTENSION: &str = "res://addons/multiplayer_fabric/multiplayer_fabric.gdextension";

/// A script a user might run headless: it names the class statically (so it only parses when the
/// extension loaded at start-up), opens a server on a free loopback port and prints what it got.
const MAIN_GD: &str = r#"extends SceneTree

func _initialize() -> void:
	var peer := FabricMMOGTransportPeer.new()
	var err := peer.create_server(0, "127.0.0.1")
	print("FIRST_IMPORT_PEER err=%d port=%d hash_len=%d test_runner=%d" % [
		err, peer.get_bound_port(), peer.get_cert_hash().length(),
		int(ClassDB.class_exists(&"FabricTestRunner"))])
	peer.close()
	quit(0 if err == OK else 1)
"#;

fn peer_line(log: &str) -> Option<(i64, i64, i64, i64)> {
    let line = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("FIRST_IMPORT_PEER "))?;
    let mut vals = line.split_whitespace().map(|kv| {
        kv.split_once('=')
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .unwrap_or(-1)
    });
    Some((vals.next()?, vals.next()?, vals.next()?, vals.next()?))
}

/// Runs `main.gd` in the project and checks the line it prints.
fn run_main_and_check(project: &UserProject, eng: &engine::Engine) {
    project.write("main.gd", MAIN_GD).expect("write main.gd");
    let (out, log) = project
        .run(
            "main",
            eng,
            &["--script", "res://main.gd"],
            Duration::from_secs(60),
        )
        .expect("run main.gd");
    assert!(out.success(), "main.gd must exit 0: {out:?}\n{log}");
    let (err, port, hash_len, test_runner) =
        peer_line(&log).unwrap_or_else(|| panic!("main.gd printed no peer line\n{log}"));
    assert_eq!(err, 0, "create_server returned OK\n{log}");
    assert!(
        port > 0 && port < 65536,
        "a real bound port, got {port}\n{log}"
    );
    assert!(
        hash_len >= 40,
        "a base64 SHA-256 certificate hash, got {hash_len} chars\n{log}"
    );
    assert_eq!(
        test_runner, 0,
        "the library users ship has no FabricTestRunner (feature `itest` off)\n{log}"
    );
}

#[test]
fn documented_first_import_exits_0_and_the_peer_works() {
    let eng = engine::prepare(false).expect("engine ready");
    let project = UserProject::new("first-import").expect("fresh project");
    assert!(
        !project.dir().join(".godot").exists(),
        "the project starts without .godot/"
    );

    let log = project.register_extensions(&eng).expect("register tool");
    assert!(
        log.lines()
            .any(|l| l.trim() == format!("registered {GDEXTENSION}")),
        "the tool names the addon's extension\n{log}"
    );
    assert_eq!(
        project.extension_list().as_deref().map(str::trim),
        Some(GDEXTENSION),
        "extension_list.cfg lists exactly the addon's extension"
    );
    // Running it again keeps one entry per extension.
    project
        .register_extensions(&eng)
        .expect("register tool, twice");
    assert_eq!(
        project.extension_list().as_deref().map(str::trim),
        Some(GDEXTENSION),
        "a second run adds no duplicate"
    );

    let (out, log) = project.import(&eng).expect("import");
    assert!(
        out.success(),
        "the documented first import exits 0: {out:?}\n{log}"
    );
    assert!(
        project
            .dir()
            .join(".godot/global_script_class_cache.cfg")
            .exists(),
        "the import wrote the class cache\n{log}"
    );
    run_main_and_check(&project, &eng);
}

/// What the docs say about a plain first import (no registration): Godot 4.6 may abort at its end
/// (an engine bug, godotengine/godot#111048), and the next import and runs work. The abort itself
/// is not asserted either way: the suite must not depend on the engine bug.
#[test]
fn plain_first_import_is_recovered_by_a_second_import() {
    let eng = engine::prepare(false).expect("engine ready");
    let project = UserProject::new("plain-import").expect("fresh project");
    let (first, log) = project.import(&eng).expect("first import");
    eprintln!("plain first import ended: {first:?}");
    assert!(
        first.success()
            || (first.fatal.is_none()
                && (first.signal == Some(SIGABRT) || first.code == Some(134))),
        "a plain first import exits 0 or aborts (the engine bug), nothing else: {first:?}\n{log}"
    );
    assert_eq!(
        project.extension_list().as_deref().map(str::trim),
        Some(GDEXTENSION),
        "the first import registered the extension even when it aborted\n{log}"
    );
    let (second, log) = project.import(&eng).expect("second import");
    assert!(
        second.success(),
        "the second import exits 0: {second:?}\n{log}"
    );
    run_main_and_check(&project, &eng);
}
