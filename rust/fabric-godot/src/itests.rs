//! Rust tests that need a live engine: they create the Godot classes for real and drive them
//! over real loopback sessions (WebTransport and WebSocket). Registered in [`all`], run by the
//! runner scene. The transport peer's tests live in [`peer`] and run over both transports.

use std::time::{Duration, Instant};

use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::global::Error;
use godot::prelude::*;

use crate::test_runner::RustTest;
use crate::zone::FabricZone;

/// The tests that run once; the transport peer's tests over both transports are in
/// [`peer::BOTH`].
static ONCE: &[RustTest] = &[
    RustTest {
        name: "peer::wrong_cert_hash_fails_without_falling_back",
        run: peer::wrong_cert_hash_fails_without_falling_back,
    },
    RustTest {
        name: "peer::wrong_cert_hash_is_refused_over_wss",
        run: peer::wrong_cert_hash_is_refused_over_wss,
    },
    RustTest {
        name: "peer::falls_back_to_websocket_when_webtransport_is_unavailable",
        run: peer::falls_back_to_websocket_when_webtransport_is_unavailable,
    },
    RustTest {
        name: "peer::transport_and_address_checks",
        run: peer::transport_and_address_checks,
    },
    RustTest {
        name: "peer::in_use_and_close_resets_for_reuse",
        run: peer::in_use_and_close_resets_for_reuse,
    },
    RustTest {
        name: "peer::auto_mode_gives_each_transport_its_connect_timeout",
        run: peer::auto_mode_gives_each_transport_its_connect_timeout,
    },
    RustTest {
        name: "peer::connect_timeout_must_be_positive",
        run: peer::connect_timeout_must_be_positive,
    },
    RustTest {
        name: "peer::network_warnings_reach_godot_on_poll",
        run: peer::network_warnings_reach_godot_on_poll,
    },
    RustTest {
        name: "zone::welcomes_a_session_until_acknowledged",
        run: zone_welcomes_a_session_until_acknowledged,
    },
    RustTest {
        name: "zone::players_join_are_refused_and_leave_with_signals",
        run: players::join_are_refused_and_leave_with_signals,
    },
];

/// Every registered in-engine Rust test.
pub fn all() -> impl Iterator<Item = &'static RustTest> {
    peer::BOTH
        .iter()
        .chain(ONCE.iter())
        .chain(snapshot::TESTS.iter())
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format!($($msg)+), line!()));
        }
    };
}

// After `check!`, so the modules see the macro.
mod peer;
mod players;
mod snapshot;

/// Polls `step` until it returns true or `secs` pass.
pub(crate) fn wait_until(secs: f64, mut step: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        if step() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// A WebTransport client of the running `zone`, pinning its certificate.
pub(crate) fn client_of(zone: &Gd<FabricZone>) -> Result<Client, String> {
    let (port, hash) = {
        let z = zone.bind();
        (z.get_bound_port(), z.get_cert_hash().to_string())
    };
    let pin = CertHash::parse(&hash).map_err(|e| e.to_string())?;
    Ok(Client::connect(ClientConfig::new(
        format!("https://127.0.0.1:{port}/wt"),
        pin,
    )))
}

fn zone_welcomes_a_session_until_acknowledged() -> Result<(), String> {
    let mut zone = FabricZone::new_alloc();
    {
        let mut z = zone.bind_mut();
        z.configure_for_test(0, 5);
        check!(z.start() == Error::OK, "zone starts");
    }
    let mut client = client_of(&zone)?;
    // Do not ask: the zone must push the welcome (and keep resending it) by itself.
    let mut welcomes = 0;
    let mut session = None;
    let ok = wait_until(5.0, || {
        zone.bind_mut().pump_for_test();
        while let Some(ev) = client.try_next_event() {
            if let ClientEvent::Datagram(d) = ev
                && let Ok(ControlMessage::Welcome {
                    zone_id,
                    session: s,
                    ..
                }) = ControlMessage::decode(&d)
                && zone_id == 5
            {
                welcomes += 1;
                session = Some(s);
            }
        }
        welcomes >= 2
    });
    check!(
        ok,
        "welcome pushed and resent while unacknowledged (got {welcomes})"
    );
    let s = session.expect("a session number");
    let ack = ControlMessage::WelcomeAck { session: s }.encode();
    // Acks are datagrams too: resend until the zone records one, like a real client.
    let acked = wait_until(5.0, || {
        let _ = client.send_datagram(&ack);
        zone.bind_mut().pump_for_test();
        zone.bind().is_acknowledged(s)
    });
    check!(acked, "zone recorded the acknowledgement");
    zone.bind_mut().stop();
    zone.free();
    Ok(())
}
