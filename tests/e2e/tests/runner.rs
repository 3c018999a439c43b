//! The in-engine test runner scene itself: it must count zero tests run as a failure, and report
//! a failing GDScript test with exit code 1 and the `N passed, N failed` line.

use std::time::Duration;

use fabric_harness::engine;
use fabric_harness::process::Proc;

fn run_runner(filter: &str) -> (fabric_harness::process::Outcome, String) {
    let eng = engine::prepare(false).expect("engine ready");
    let cmd = eng.scene_command("res://scenes/tests/test_runner.tscn", &["--filter", filter]);
    let mut p = Proc::spawn("runner", cmd, true).expect("spawn");
    let out = p.wait(Duration::from_secs(120));
    (out, p.output())
}

#[test]
fn zero_tests_run_is_a_failure() {
    let (out, log) = run_runner("no-test-has-this-name");
    assert_eq!(out.code, Some(1), "{out:?}\n{log}");
    assert!(
        log.lines().any(|l| l.trim() == "0 passed, 0 failed"),
        "{log}"
    );
    assert!(log.contains("no test ran"), "{log}");
}

#[test]
fn a_filtered_run_counts_exactly_its_tests() {
    let (out, log) = run_runner("test_zone::");
    assert_eq!(out.code, Some(0), "{out:?}\n{log}");
    assert!(
        log.lines().any(|l| l.trim() == "2 passed, 0 failed"),
        "{log}"
    );
}
