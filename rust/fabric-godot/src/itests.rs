//! Rust tests that need a live engine: they create the Godot classes for real and drive them
//! over real loopback sessions (WebTransport and WebSocket). Registered in [`ALL`], run by the
//! runner scene. The transport peer's tests live in [`peer`] and run over both transports.

use std::time::{Duration, Instant};

use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::global::Error;
use godot::prelude::*;

use crate::test_runner::RustTest;
use crate::zone::FabricZone;

/// Registers tests that run once per transport (`peer::wt::NAME`, `peer::ws::NAME`) and tests
/// that run once.
macro_rules! registry {
    (both: [$($f:ident),* $(,)?], once: [$($name:literal => $g:path),* $(,)?] $(,)?) => {
        /// Every registered in-engine Rust test.
        pub static ALL: &[RustTest] = &[
            $(
                RustTest { name: concat!("peer::wt::", stringify!($f)), run: peer::wt::$f },
                RustTest { name: concat!("peer::ws::", stringify!($f)), run: peer::ws::$f },
            )*
            $(RustTest { name: $name, run: $g },)*
        ];
    };
}

registry! {
    both: [
        client_and_server_exchange_packets_with_metadata,
        oversize_unreliable_packet_is_refused,
        target_peer_broadcasts_excludes_and_targets,
        disconnect_peer_ends_that_session_only,
        refuse_new_connections_turns_clients_away,
        channels_are_independent_per_mode,
        unreliable_ordered_drops_stale_packets,
        close_then_reconnect_reuses_the_peer,
        garbage_from_a_client_ends_only_its_session,
        server_close_reaches_every_client,
    ],
    once: [
        "peer::wrong_cert_hash_fails_without_falling_back" => peer::wrong_cert_hash_fails_without_falling_back,
        "peer::wrong_cert_hash_is_refused_over_wss" => peer::wrong_cert_hash_is_refused_over_wss,
        "peer::falls_back_to_websocket_when_webtransport_is_unavailable" => peer::falls_back_to_websocket_when_webtransport_is_unavailable,
        "peer::transport_and_address_checks" => peer::transport_and_address_checks,
        "peer::in_use_and_close_resets_for_reuse" => peer::in_use_and_close_resets_for_reuse,
        "zone::welcomes_a_session_until_acknowledged" => zone_welcomes_a_session_until_acknowledged,
    ],
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format!($($msg)+), line!()));
        }
    };
}

// After `check!`, so the module sees the macro.
mod peer;

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

fn zone_welcomes_a_session_until_acknowledged() -> Result<(), String> {
    let mut zone = FabricZone::new_alloc();
    {
        let mut z = zone.bind_mut();
        z.configure_for_test(0, 5);
        check!(z.start() == Error::OK, "zone starts");
    }
    let (port, hash) = {
        let z = zone.bind();
        (z.get_bound_port(), z.get_cert_hash().to_string())
    };
    let pin = CertHash::parse(&hash).map_err(|e| e.to_string())?;
    let mut client = Client::connect(ClientConfig::new(
        format!("https://127.0.0.1:{port}/wt"),
        pin,
    ));
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
