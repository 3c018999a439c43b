//! A small load scenario through the real processes, as `cargo xtask load` runs it: the
//! registry backend, two linked zones (headless Godot) with wanderers, and the `fabric-load`
//! generator with 50 simulated players over WebTransport for 10 s, each joining with a
//! registry token, walking, and decoding and acking its replication stream. Asserted: what a
//! user of the report would read (every player joined, its own avatar updated at >= 15 Hz for
//! the median player, no errors, the zones' players seen in their metrics) and that the report
//! and its plots exist. Sized for CI on 2 cores.

use std::sync::atomic::AtomicBool;

use fabric_e2e::load::{LoadOptions, run_load};

#[test]
fn fifty_players_on_two_zones_get_their_updates_and_the_report_is_written() {
    let out = std::env::temp_dir().join(format!("fabric-load-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = LoadOptions {
        players: 50,
        zones: 2,
        zones_per_process: 1,
        seconds: 10,
        entities: 200,
        transport: "wt".into(),
        ramp_s: 2.0,
        command_hz: 20.0,
        hysteresis_ticks: 80,
        out: out.clone(),
        command: "e2e load test".into(),
        release: false,
        faults: Default::default(),
        godot_clients: 0,
        interest_radius_m: None,
        sessions_per_endpoint: None,
        original_scheme_observers: 0,
    };
    let stop = AtomicBool::new(false);
    let r = run_load(&opts, &stop, |l| eprintln!("[load-test] {l}")).expect("the scenario runs");
    let s = &r.data.summary;
    eprintln!("{}", s.text());
    assert!(
        r.load_exit.success(),
        "the load generator exits 0: {:?}",
        r.load_exit
    );
    assert_eq!(s.players, 50, "every player started");
    assert_eq!(s.joined, 50, "every player got an avatar");
    assert_eq!(s.errors, 0, "no errors: {:?}", s.error_examples);
    assert!(
        s.own_hz_median >= 15.0,
        "the median player sees its own avatar at >= 15 Hz: {:.1} Hz",
        s.own_hz_median
    );
    assert!(
        s.per_player
            .iter()
            .all(|p| p.own_updates > 0 && p.bytes > 0),
        "every player received its own avatar"
    );
    // A player that missed where its avatar went stays on the old zone with every command
    // refused (`not_joined`): the players follow `avatar_moved` and claim it there.
    let sent: u64 = s.per_player.iter().map(|p| p.commands_sent).sum();
    assert!(
        s.commands_refused * 100 <= sent,
        "at most 1 % of the commands refused: {} of {sent} ({} hand-offs)",
        s.commands_refused,
        s.handoffs
    );
    let most_players: f64 = r
        .data
        .zones
        .iter()
        .map(|z| z.iter().map(|x| x.players).fold(0.0, f64::max))
        .sum();
    assert!(
        most_players >= 40.0,
        "the zones' own metrics count the players: {most_players}"
    );
    let md = std::fs::read_to_string(&r.written.markdown).expect("report.md written");
    assert!(
        md.contains("| every player joined (50) | 50 | yes |"),
        "{md}"
    );
    assert!(
        r.written.no_plots.is_none(),
        "plots drawn: {:?}",
        r.written.no_plots
    );
    for name in [
        "tick_p99.png",
        "update_rate_hist.png",
        "gap_hist.png",
        "cpu.png",
    ] {
        let bytes = std::fs::read(out.join(name)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
        assert!(
            md.contains(&format!("]({name})")),
            "{name} is in the report"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
