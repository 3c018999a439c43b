//! The Godot wrapper against a real headless Godot: it must pass Godot's own exit code through,
//! stop a run that hits a script error (Godot itself would keep running), and stop a run that
//! hangs.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::process::Proc;

fn run_script(body: &str, timeout: Duration) -> (fabric_harness::process::Outcome, String) {
    let eng = engine::single().expect("a Godot 4.6 engine");
    let dir = fabric_harness::paths::scratch_dir("wrapper");
    let script = dir.join(format!("s{}.gd", body.len()));
    std::fs::write(&script, body).unwrap();
    let mut cmd = std::process::Command::new(&eng.bin);
    cmd.arg("--headless").arg("--script").arg(&script);
    let mut p = Proc::spawn("wrapped", cmd, true).expect("spawn");
    let out = p.wait(timeout);
    assert!(!p.group_alive(), "nothing left running");
    (out, p.output())
}

#[test]
fn exit_code_is_godots_own() {
    let (out, log) = run_script(
        "extends SceneTree\nfunc _init():\n\tprint(\"hi\")\n\tquit(7)\n",
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(7), "{out:?}\n{log}");
    assert!(out.fatal.is_none() && !out.timed_out, "{out:?}");
    assert!(log.contains("hi"));
}

#[test]
fn script_error_stops_the_run() {
    // Without the wrapper this Godot would sit in its main loop until killed.
    let (out, log) = run_script(
        "extends SceneTree\nfunc _init():\n\tvar x = null\n\tx.call(\"nope\")\n",
        Duration::from_secs(30),
    );
    assert!(!out.success(), "{out:?}");
    assert!(
        !out.timed_out,
        "stopped at the error, not by the timeout: {out:?}\n{log}"
    );
    let fatal = out.fatal.expect("the fatal line is reported");
    assert!(fatal.contains("SCRIPT ERROR"), "{fatal}");
}

#[test]
fn a_hang_is_stopped_by_the_timeout() {
    let (out, _log) = run_script(
        "extends SceneTree\nfunc _init():\n\tprint(\"waiting forever\")\n",
        Duration::from_secs(3),
    );
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.code, None);
    assert!(!out.success());
}
