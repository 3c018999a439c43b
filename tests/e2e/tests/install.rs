//! The install test: only what a game developer has. The addon copied into a fresh project with
//! the library users ship, the documented first import, then the lobby example
//! (`examples/lobby/`) as three processes: a server and two players over
//! `FabricMMOGTransportPeer`, each player's line going to the server by `@rpc` and coming back
//! relayed by it. Every process must exit 0.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::process::Proc;
use fabric_harness::user_project::UserProject;

const SCENE: &str = "res://examples/lobby/lobby.tscn";

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
