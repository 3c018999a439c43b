//! A zone's server limits and join deadline set on its command line take effect on real
//! client sessions: with `--max-sessions-per-address 2` a third session from 127.0.0.1 is
//! refused while two are open, and with `--require-token --join-timeout-msec 500` the two
//! sessions that never send a token are closed with the forbidden code well before the
//! default 10 s; their slots are then free for a new session.

use std::time::{Duration, Instant};

use fabric_core::session_control::close_code;
use fabric_e2e::zone_state::start_observed_zone;
use fabric_harness::engine;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent, CloseReason};

/// The next event of `c` within `within`, polling (the client has no blocking wait).
fn next_event(c: &mut Client, within: Duration) -> ClientEvent {
    let deadline = Instant::now() + within;
    loop {
        if let Some(ev) = c.try_next_event() {
            return ev;
        }
        assert!(Instant::now() < deadline, "no event within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The next event that is not a datagram or message (the zone's welcome).
fn next_state_event(c: &mut Client, within: Duration) -> ClientEvent {
    loop {
        match next_event(c, within) {
            ClientEvent::Datagram(_) | ClientEvent::Message(_) => continue,
            other => return other,
        }
    }
}

#[test]
fn a_zone_holds_the_session_cap_and_join_deadline_of_its_command_line() {
    const DEADLINE_MS: u64 = 500;
    let engine = engine::prepare(false).expect("engine and extension ready");
    let zone = start_observed_zone(
        &engine,
        &[
            "--max-sessions-per-address",
            "2",
            "--require-token",
            "--join-timeout-msec",
            &DEADLINE_MS.to_string(),
        ],
    )
    .expect("zone process starts");
    let url = format!("https://127.0.0.1:{}/wt", zone.port);
    let pin = CertHash::parse(&zone.cert_hash).expect("the ready line's hash");
    let open = || Client::connect(ClientConfig::new(url.clone(), pin));
    let started = Instant::now();
    let mut held = [open(), open()];
    for (i, c) in held.iter_mut().enumerate() {
        let ev = next_state_event(c, Duration::from_secs(10));
        assert!(
            matches!(ev, ClientEvent::Connected { .. }),
            "session {i} within the cap opens: {ev:?}"
        );
    }
    let mut third = open();
    let ev = next_state_event(&mut third, Duration::from_secs(10));
    assert!(
        matches!(ev, ClientEvent::Failed(_)),
        "a third session from 127.0.0.1 is refused: {ev:?}"
    );
    for (i, c) in held.iter_mut().enumerate() {
        let ev = next_state_event(c, Duration::from_secs(8));
        let elapsed = started.elapsed();
        match ev {
            ClientEvent::Closed { reason } => assert!(
                matches!(
                    reason,
                    CloseReason::ByPeer {
                        code: Some(close_code::FORBIDDEN),
                        ..
                    }
                ),
                "session {i} closed by the zone for want of a token: {reason:?}"
            ),
            other => panic!("session {i}: expected its close, got {other:?}"),
        }
        assert!(
            elapsed >= Duration::from_millis(DEADLINE_MS),
            "session {i} had its {DEADLINE_MS} ms ({elapsed:?})"
        );
        assert!(
            elapsed < Duration::from_secs(8),
            "session {i} closed at the configured deadline, not the default 10 s ({elapsed:?})"
        );
    }
    // The closed sessions gave their places back.
    let mut fourth = open();
    let ev = next_state_event(&mut fourth, Duration::from_secs(10));
    assert!(
        matches!(ev, ClientEvent::Connected { .. }),
        "a new session fits once the others are gone: {ev:?}"
    );
    drop(zone);
}
