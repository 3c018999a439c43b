//! The install test: only what a game developer has. The packaged addon (the zip `cargo xtask
//! package` writes, here with the debug library users ship) unzipped into a fresh project, the
//! documented first import, a check that the package holds no test code, then the lobby example
//! (`examples/lobby/`) as three processes: a server and two players over
//! `FabricMMOGTransportPeer`, each player's line going to the server by `@rpc` and coming back
//! relayed by it. Every process must exit 0.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::package;
use fabric_harness::process::Proc;
use fabric_harness::user_project::UserProject;

const SCENE: &str = "res://examples/lobby/lobby.tscn";

/// Prints whether the extension's classes are registered, then quits.
const CLASS_CHECK: &str = "extends SceneTree\n\n\nfunc _initialize() -> void:\n\
    \tfor c in [\"FabricMMOGTransportPeer\", \"FabricZone\", \"FabricTestRunner\"]:\n\
    \t\tprint(\"CLASS \", c, \" \", ClassDB.class_exists(c))\n\tquit(0)\n";

#[test]
fn package_holds_the_addon_and_no_test_code() {
    let zip = package::shipped_zip().expect("package written");
    let names: Vec<String> = package::contents(&zip)
        .expect("zip readable")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for expected in [
        "plugin.cfg",
        "multiplayer_fabric.gdextension",
        "tools/register_extensions.gd",
        "LICENSE",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "README.md",
        "bin/libfabric_godot.linux.x86_64.so",
    ] {
        let path = format!("{}/{expected}", package::ADDON_DIR);
        assert!(names.contains(&path), "{path} in the zip: {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("addons/multiplayer_fabric/")),
        "everything lies under the addon folder: {names:?}"
    );
    let gdext = String::from_utf8(
        package::read_entry(
            &zip,
            "addons/multiplayer_fabric/multiplayer_fabric.gdextension",
        )
        .expect("gdextension in the zip"),
    )
    .expect("utf-8");
    assert!(
        gdext.contains("compatibility_minimum = \"4.6\""),
        "minimum 4.6:\n{gdext}"
    );
    assert!(
        gdext.contains(
            "linux.x86_64 = \"res://addons/multiplayer_fabric/bin/libfabric_godot.linux.x86_64.so\""
        ),
        "the built library is listed:\n{gdext}"
    );
    assert!(
        !gdext.contains("linux.double.x86_64 ="),
        "a library the package does not hold is not listed:\n{gdext}"
    );
    let lib = package::read_entry(
        &zip,
        "addons/multiplayer_fabric/bin/libfabric_godot.linux.x86_64.so",
    )
    .expect("library in the zip");
    assert!(
        package::contains(&lib, b"FabricMMOGTransportPeer"),
        "the library registers FabricMMOGTransportPeer (the search can find a class name)"
    );
    assert!(
        !package::contains(&lib, b"FabricTestRunner"),
        "the packaged library holds no test code (FabricTestRunner)"
    );
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn lobby_example_runs_server_and_two_players_in_a_fresh_project() {
    let eng = engine::prepare(false).expect("engine ready");
    let project = UserProject::new("install").expect("fresh project");
    project
        .copy_from_repo("examples/lobby", "examples/lobby")
        .expect("copy the example");
    project.register_extensions(&eng).expect("register tool");
    let (out, log) = project.import(&eng).expect("import");
    assert!(
        out.success(),
        "the documented first import exits 0: {out:?}\n{log}"
    );
    project
        .write("class_check.gd", CLASS_CHECK)
        .expect("write class check");
    let (out, log) = project
        .run(
            "classes",
            &eng,
            &["--script", "res://class_check.gd"],
            Duration::from_secs(60),
        )
        .expect("class check");
    assert!(out.success(), "the class check exits 0: {out:?}\n{log}");
    for (class, exists) in [
        ("FabricMMOGTransportPeer", true),
        ("FabricZone", true),
        ("FabricTestRunner", false),
    ] {
        let line = format!("CLASS {class} {exists}");
        assert!(
            log.lines().any(|l| l.trim() == line),
            "{line}: the packaged library's classes, without the test runner\n{log}"
        );
    }

    let server_cmd = project.command(
        &eng,
        &[
            SCENE,
            "--",
            "--server",
            "0",
            "--players",
            "2",
            "--timeout",
            "60",
        ],
    );
    let mut server = Proc::spawn("server", server_cmd, true).expect("spawn server");
    let ready = server
        .wait_for_line(
            |l| l.starts_with("LOBBY_SERVER_READY "),
            Duration::from_secs(60),
        )
        .expect("server ready");
    let port = field(&ready, "port").expect("port in the ready line");
    let hash = field(&ready, "cert_hash").expect("cert_hash in the ready line");
    let url = format!("https://127.0.0.1:{port}/wt");

    let players: Vec<(&str, Proc)> = ["alice", "bob"]
        .into_iter()
        .map(|name| {
            let cmd = project.command(
                &eng,
                &[
                    SCENE,
                    "--",
                    "--join",
                    &url,
                    "--cert-hash",
                    hash,
                    "--name",
                    name,
                    "--timeout",
                    "60",
                ],
            );
            (name, Proc::spawn(name, cmd, true).expect("spawn player"))
        })
        .collect();
    for (name, mut p) in players {
        let out = p.wait(Duration::from_secs(90));
        let log = p.output();
        assert!(out.success(), "{name} exits 0: {out:?}\n{log}");
        let heard = format!("LOBBY_HEARD {name}: hello from {name}");
        assert!(
            log.lines().any(|l| l.trim() == heard),
            "{name} heard its own line relayed by the server\n{log}"
        );
    }
    let out = server.wait(Duration::from_secs(60));
    let log = server.output();
    assert!(
        out.success(),
        "the server exits 0 once both left: {out:?}\n{log}"
    );
    for name in ["alice", "bob"] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("LOBBY_JOINED {name} "))),
            "the server saw {name} join\n{log}"
        );
        assert!(
            log.lines()
                .any(|l| l.trim() == format!("LOBBY_LEFT {name}")),
            "the server saw {name} leave\n{log}"
        );
    }
}
