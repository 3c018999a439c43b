//! Rust tests that need a live engine: they create the Godot classes for real and drive them
//! over real loopback WebTransport sessions. Registered in [`ALL`], run by the runner scene.

use std::time::{Duration, Instant};

use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;
use godot::prelude::*;

use crate::test_runner::RustTest;
use crate::transport_peer::FabricMMOGTransportPeer;
use crate::zone::FabricZone;

/// Every registered in-engine Rust test.
pub static ALL: &[RustTest] = &[
    RustTest {
        name: "peer::client_and_server_exchange_packets_with_metadata",
        run: client_and_server_exchange_packets_with_metadata,
    },
    RustTest {
        name: "peer::wrong_cert_hash_fails_with_a_clear_error",
        run: wrong_cert_hash_fails_with_a_clear_error,
    },
    RustTest {
        name: "peer::oversize_unreliable_packet_is_refused",
        run: oversize_unreliable_packet_is_refused,
    },
    RustTest {
        name: "peer::in_use_and_close_resets_for_reuse",
        run: in_use_and_close_resets_for_reuse,
    },
    RustTest {
        name: "zone::welcomes_a_session_until_acknowledged",
        run: zone_welcomes_a_session_until_acknowledged,
    },
];

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format!($($msg)+), line!()));
        }
    };
}

/// Polls `step` until it returns true or `secs` pass.
fn wait_until(secs: f64, mut step: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        if step() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn server_peer() -> Result<Gd<FabricMMOGTransportPeer>, String> {
    let mut server = FabricMMOGTransportPeer::new_gd();
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(err == Error::OK, "create_server: {err:?}");
    Ok(server)
}

fn client_url(server: &Gd<FabricMMOGTransportPeer>) -> GString {
    GString::from(&format!(
        "https://127.0.0.1:{}/wt",
        server.bind().get_bound_port()
    ))
}

fn client_and_server_exchange_packets_with_metadata() -> Result<(), String> {
    let mut server = server_peer()?;
    let hash = server.bind().get_cert_hash();
    let mut client = FabricMMOGTransportPeer::new_gd();
    let url = client_url(&server);
    check!(
        client.bind_mut().create_client(url, hash) == Error::OK,
        "create_client"
    );
    check!(
        client.get_connection_status() == ConnectionStatus::CONNECTING,
        "client starts CONNECTING"
    );
    let joined = wait_until(5.0, || {
        server.poll();
        client.poll();
        client.get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(
        joined,
        "client reached CONNECTED; last_error={}",
        client.bind().get_last_error()
    );
    let client_id = client.get_unique_id();
    check!(client_id >= 2, "client id {client_id} is in 2..2^31");
    check!(
        server.get_unique_id() == 1 && server.bind().is_server_peer(),
        "server is peer 1"
    );

    // Reliable, channel 3, client -> server.
    client.set_transfer_mode(TransferMode::RELIABLE);
    client.set_transfer_channel(3);
    client.set_target_peer(1);
    check!(
        client.put_packet(&PackedByteArray::from(&b"hello server"[..])) == Error::OK,
        "client put_packet"
    );
    let got = wait_until(5.0, || {
        server.poll();
        server.get_available_packet_count() > 0
    });
    check!(got, "server received the reliable packet");
    // Metadata describes the front packet before get_packet (SceneMultiplayer's order).
    check!(
        server.get_packet_peer() == client_id,
        "packet peer {} == {client_id}",
        server.get_packet_peer()
    );
    check!(
        server.get_packet_channel() == 3,
        "channel {}",
        server.get_packet_channel()
    );
    check!(
        server.get_packet_mode() == TransferMode::RELIABLE,
        "mode {:?}",
        server.get_packet_mode()
    );
    let data = server.get_packet();
    check!(
        data.as_slice() == b"hello server",
        "payload {:?}",
        data.as_slice()
    );

    // Unreliable-ordered broadcast, server -> client (resend until one arrives).
    server.set_transfer_mode(TransferMode::UNRELIABLE_ORDERED);
    server.set_transfer_channel(1);
    server.set_target_peer(0);
    let arrived = wait_until(5.0, || {
        let _ = server.put_packet(&PackedByteArray::from(&b"tick"[..]));
        server.poll();
        client.poll();
        client.get_available_packet_count() > 0
    });
    check!(arrived, "client received an unreliable-ordered packet");
    check!(client.get_packet_peer() == 1, "from the server");
    check!(client.get_packet_channel() == 1, "channel 1");
    check!(
        client.get_packet_mode() == TransferMode::UNRELIABLE_ORDERED,
        "mode"
    );
    check!(client.get_packet().as_slice() == b"tick", "payload");

    // Closing the client is seen by the server.
    client.close();
    check!(
        client.get_connection_status() == ConnectionStatus::DISCONNECTED,
        "client closed"
    );
    let gone = wait_until(5.0, || {
        server.poll();
        let s = server.bind();
        s.get_bound_port() > 0 && connected_peers(&s) == 0
    });
    check!(gone, "server noticed the client left");
    server.close();
    Ok(())
}

fn connected_peers(p: &FabricMMOGTransportPeer) -> usize {
    p.peer_count()
}

fn wrong_cert_hash_fails_with_a_clear_error() -> Result<(), String> {
    let mut server = server_peer()?;
    let mut client = FabricMMOGTransportPeer::new_gd();
    let wrong = CertHash([7; 32]).to_base64();
    let url = client_url(&server);
    check!(
        client.bind_mut().create_client(url, GString::from(&wrong)) == Error::OK,
        "create_client"
    );
    let failed = wait_until(5.0, || {
        server.poll();
        client.poll();
        client.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    check!(failed, "client state FAILED");
    let err = client.bind().get_last_error().to_string();
    check!(
        err.contains("does not match the pinned hash"),
        "clear error, got: {err}"
    );
    check!(
        client.get_connection_status() == ConnectionStatus::DISCONNECTED,
        "disconnected"
    );
    server.close();
    Ok(())
}

fn oversize_unreliable_packet_is_refused() -> Result<(), String> {
    let mut server = server_peer()?;
    let hash = server.bind().get_cert_hash();
    let mut client = FabricMMOGTransportPeer::new_gd();
    let url = client_url(&server);
    check!(
        client.bind_mut().create_client(url, hash) == Error::OK,
        "create_client"
    );
    let ok = wait_until(5.0, || {
        server.poll();
        client.poll();
        client.get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(ok, "connected");
    client.set_transfer_mode(TransferMode::UNRELIABLE);
    let big = PackedByteArray::from(vec![1u8; 64 * 1024]);
    let err = client.put_packet(&big);
    check!(
        err == Error::ERR_INVALID_PARAMETER,
        "oversize unreliable refused, got {err:?}"
    );
    client.set_transfer_mode(TransferMode::RELIABLE);
    check!(
        client.put_packet(&big) == Error::OK,
        "the same packet goes reliably"
    );
    let got = wait_until(5.0, || {
        server.poll();
        server.get_available_packet_count() > 0
    });
    check!(
        got && server.get_packet().len() == 64 * 1024,
        "64 KiB reliable packet intact"
    );
    client.close();
    server.close();
    Ok(())
}

fn in_use_and_close_resets_for_reuse() -> Result<(), String> {
    let mut server = server_peer()?;
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(
        err == Error::ERR_ALREADY_IN_USE,
        "second create_server: {err:?}"
    );
    server.close();
    check!(
        server.bind().get_bound_port() == 0,
        "closed server has no port"
    );
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(err == Error::OK, "create_server after close: {err:?}");
    let mut bad = FabricMMOGTransportPeer::new_gd();
    let err = bad
        .bind_mut()
        .create_client("https://127.0.0.1:1/wt".into(), "not-a-hash".into());
    check!(
        err == Error::ERR_INVALID_PARAMETER,
        "malformed hash refused: {err:?}"
    );
    server.close();
    Ok(())
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
