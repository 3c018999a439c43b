//! Transport-specific behaviour, run once: the WebSocket fallback, certificate pinning on both
//! transports, transport names and address rules, reuse after `close()`.
use fabric_net::CertHash;
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;
use godot::prelude::*;

use super::super::wait_until;
use super::*;
use crate::transport_peer::FabricMMOGTransportPeer;

pub fn wrong_cert_hash_fails_without_falling_back() -> Result<(), String> {
    let mut server = server_peer()?;
    let mut client = FabricMMOGTransportPeer::new_gd();
    let wrong = CertHash([7; 32]).to_base64();
    check!(
        client
            .bind_mut()
            .create_client(client_url(&server), GString::from(&wrong))
            == Error::OK,
        "create_client"
    );
    let mut states = vec![client.bind().get_state()];
    let failed = wait_until(5.0, || {
        server.poll();
        client.poll();
        let s = client.bind().get_state();
        if states.last() != Some(&s) {
            states.push(s);
        }
        s == FabricMMOGTransportPeer::STATE_FAILED
    });
    check!(failed, "client state FAILED");
    check!(
        states
            == [
                FabricMMOGTransportPeer::STATE_TRYING_PRIMARY,
                FabricMMOGTransportPeer::STATE_FAILED
            ],
        "no WebSocket fallback after a certificate mismatch: {states:?}"
    );
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

pub fn wrong_cert_hash_is_refused_over_wss() -> Result<(), String> {
    let mut server = server_peer()?;
    let mut client = FabricMMOGTransportPeer::new_gd();
    client.bind_mut().set_transport("websocket".into());
    let wrong = CertHash([7; 32]).to_base64();
    check!(
        client
            .bind_mut()
            .create_client(client_url(&server), GString::from(&wrong))
            == Error::OK,
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
        err.contains("does not match the pinned hash") && err.contains("wss://"),
        "clear error naming the wss URL, got: {err}"
    );
    server.close();
    Ok(())
}

pub fn falls_back_to_websocket_when_webtransport_is_unavailable() -> Result<(), String> {
    // A server with no WebTransport listener: UDP gets no answer, as behind a UDP-blocking
    // firewall.
    let mut server = FabricMMOGTransportPeer::new_gd();
    server.bind_mut().set_transport("websocket".into());
    check!(
        server.bind_mut().create_server(0, "127.0.0.1".into()) == Error::OK,
        "WebSocket-only server"
    );
    let mut client = FabricMMOGTransportPeer::new_gd();
    let states = record(&mut client, "connection_state_changed");
    client.bind_mut().set_primary_timeout_msec(400);
    let hash = server.bind().get_cert_hash();
    check!(
        client.bind_mut().create_client(client_url(&server), hash) == Error::OK,
        "create_client (auto)"
    );
    check!(
        client.bind().get_active_transport() == "webtransport",
        "tries WebTransport first"
    );
    let ok = wait_until(10.0, || {
        server.poll();
        client.poll();
        client.get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(ok, "connected: {}", client.bind().get_last_error());
    check!(
        *states.borrow()
            == [
                i64::from(FabricMMOGTransportPeer::STATE_TRYING_PRIMARY),
                i64::from(FabricMMOGTransportPeer::STATE_TRYING_FALLBACK),
                i64::from(FabricMMOGTransportPeer::STATE_CONNECTED),
            ],
        "TRYING_PRIMARY -> TRYING_FALLBACK -> CONNECTED, got {:?}",
        states.borrow()
    );
    check!(
        client.bind().get_active_transport() == "websocket",
        "now over WebSocket"
    );
    check!(
        put(&mut client, TransferMode::RELIABLE, 9, 1, b"via ws") == Error::OK,
        "send"
    );
    let got = wait_until(5.0, || {
        server.poll();
        server.get_available_packet_count() > 0
    });
    check!(
        got && server.get_packet_channel() == 9 && server.get_packet().as_slice() == b"via ws",
        "packet over the fallback"
    );
    client.close();
    server.close();
    Ok(())
}

pub fn transport_and_address_checks() -> Result<(), String> {
    let mut p = FabricMMOGTransportPeer::new_gd();
    p.bind_mut().set_transport("carrier-pigeon".into());
    let hash = CertHash([1; 32]).to_base64();
    check!(
        p.bind_mut()
            .create_client("https://127.0.0.1:9/wt".into(), GString::from(&hash))
            == Error::ERR_INVALID_PARAMETER,
        "unknown transport refused"
    );
    check!(
        p.bind()
            .get_last_error()
            .to_string()
            .contains("unknown transport"),
        "says why: {}",
        p.bind().get_last_error()
    );
    p.bind_mut().set_transport("webtransport".into());
    check!(
        p.bind_mut()
            .create_client("ws://127.0.0.1:9/ws".into(), GString::from(&hash))
            == Error::ERR_INVALID_PARAMETER,
        "a ws:// URL with transport webtransport is refused"
    );
    // Plain ws:// towards another host is refused unless allowed; wss:// is pinned instead.
    p.bind_mut().set_transport("auto".into());
    check!(
        p.bind_mut()
            .create_client("ws://192.0.2.1:9/ws".into(), GString::from(&hash))
            == Error::OK,
        "create_client returns at once"
    );
    let failed = wait_until(5.0, || {
        p.poll();
        p.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    check!(
        failed
            && p.bind()
                .get_last_error()
                .to_string()
                .contains("unencrypted"),
        "ws:// to a non-loopback host refused: {}",
        p.bind().get_last_error()
    );
    p.close();
    // A server on all interfaces serves both transports (wss to everyone, ws to loopback).
    check!(
        p.bind_mut().create_server(0, "0.0.0.0".into()) == Error::OK,
        "auto on 0.0.0.0"
    );
    p.close();
    Ok(())
}

pub fn in_use_and_close_resets_for_reuse() -> Result<(), String> {
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
