//! Sessions over each transport: `disconnect_peer`, refusing new connections, close then
//! reconnect with the same object, hostile input from one client, the server closing.
use fabric_net::ClientEvent;
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;

use super::super::wait_until;
use super::*;
use crate::transport_peer::FabricMMOGTransportPeer;

pub(super) fn disconnect_peer_ends_that_session_only(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let server_gone = record(&mut server, "peer_disconnected");
    let mut clients = connect_clients(&mut server, via, 2)?;
    let client_gone = record(&mut clients[0], "peer_disconnected");
    let kicked = clients[0].get_unique_id();
    server.disconnect_peer(kicked);
    let done = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        !server_gone.borrow().is_empty() && !client_gone.borrow().is_empty()
    });
    check!(
        done,
        "peer_disconnected on both sides: server {:?}, client {:?}",
        server_gone.borrow(),
        client_gone.borrow()
    );
    check!(
        *server_gone.borrow() == [i64::from(kicked)],
        "server saw {kicked} leave"
    );
    check!(
        *client_gone.borrow() == [1],
        "client saw the server (1) leave"
    );
    check!(
        clients[0]
            .bind()
            .get_last_error()
            .to_string()
            .contains("disconnected by the server"),
        "kicked client says why: {}",
        clients[0].bind().get_last_error()
    );
    check!(
        clients[0].get_connection_status() == ConnectionStatus::DISCONNECTED,
        "kicked client is disconnected"
    );
    // The other client still works.
    check!(
        put(&mut clients[1], TransferMode::RELIABLE, 0, 1, b"still") == Error::OK,
        "other client sends"
    );
    let ok = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        server.get_available_packet_count() > 0
    });
    check!(
        ok && server.get_packet().as_slice() == b"still",
        "other client unaffected"
    );
    check!(server.bind().peer_count() == 1, "one peer left");
    for c in clients.iter_mut() {
        c.close();
    }
    server.close();
    Ok(())
}

pub(super) fn refuse_new_connections_turns_clients_away(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut first = connect_clients(&mut server, via, 1)?;
    server.set_refuse_new_connections(true);
    check!(server.is_refusing_new_connections(), "flag reads back");
    let mut late = start_client(&server, via)?;
    let refused = wait_until(10.0, || {
        server.poll();
        late.poll();
        late.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED
    });
    check!(refused, "late client turned away");
    let why = late.bind().get_last_error().to_string();
    check!(why.contains("refusing new connections"), "says why: {why}");
    check!(server.bind().peer_count() == 1, "first client still joined");
    server.set_refuse_new_connections(false);
    late.close();
    check!(
        late.bind_mut()
            .create_client(client_url(&server), server.bind().get_cert_hash())
            == Error::OK,
        "retry"
    );
    let ok = wait_until(10.0, || {
        server.poll();
        late.poll();
        late.get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(ok, "accepted again once the server stops refusing");
    late.close();
    first[0].close();
    server.close();
    Ok(())
}

pub(super) fn close_then_reconnect_reuses_the_peer(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let joins = record(&mut server, "peer_connected");
    let mut clients = connect_clients(&mut server, via, 1)?;
    let first_id = clients[0].get_unique_id();
    clients[0].close();
    check!(
        clients[0].bind().get_state() == FabricMMOGTransportPeer::STATE_IDLE,
        "close() returns to idle"
    );
    check!(clients[0].get_unique_id() == 0, "no id while idle");
    let left = wait_until(5.0, || {
        server.poll();
        server.bind().peer_count() == 0
    });
    check!(left, "server saw the first session end");
    let hash = server.bind().get_cert_hash();
    check!(
        clients[0]
            .bind_mut()
            .create_client(client_url(&server), hash)
            == Error::OK,
        "same object connects again"
    );
    let ok = wait_until(10.0, || {
        pump(&mut server, &mut clients);
        clients[0].get_connection_status() == ConnectionStatus::CONNECTED
    });
    check!(ok, "reconnected: {}", clients[0].bind().get_last_error());
    check!(
        clients[0].bind().get_active_transport() == via.name(),
        "still over {via:?}"
    );
    check!(
        put(&mut clients[0], TransferMode::RELIABLE, 1, 1, b"again") == Error::OK,
        "send after reconnect"
    );
    let got = wait_until(5.0, || {
        server.poll();
        server.get_available_packet_count() > 0
    });
    check!(
        got && server.get_packet_peer() == clients[0].get_unique_id(),
        "packet from the new session"
    );
    check!(
        joins.borrow().len() == 2 && joins.borrow()[0] == i64::from(first_id),
        "two joins seen: {:?}",
        joins.borrow()
    );
    clients[0].close();
    server.close();
    Ok(())
}

pub(super) fn garbage_from_a_client_ends_only_its_session(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut good = connect_clients(&mut server, via, 1)?;
    let mut raw = raw_joined_client(&mut server, via, 777)?;
    check!(server.bind().peer_count() == 2, "both joined");
    // A frame of an unknown kind, on the reliable path.
    raw.send_message(vec![0x77, 1, 2, 3])
        .map_err(|e| e.to_string())?;
    let mut closed = None;
    let ended = wait_until(5.0, || {
        pump(&mut server, &mut good);
        while let Some(ev) = raw.try_next_event() {
            if let ClientEvent::Closed { reason, code } = ev {
                closed = Some((reason, code));
            }
        }
        closed.is_some() && server.bind().peer_count() == 1
    });
    check!(ended, "hostile session ended: {closed:?}");
    let (reason, code) = closed.expect("closed");
    check!(code == Some(1), "protocol close code, got {code:?}");
    check!(
        reason.contains("malformed packet"),
        "clear reason: {reason}"
    );
    // The good client is untouched.
    check!(
        put(&mut good[0], TransferMode::RELIABLE, 0, 1, b"fine") == Error::OK,
        "good client sends"
    );
    let ok = wait_until(5.0, || {
        pump(&mut server, &mut good);
        server.get_available_packet_count() > 0
    });
    check!(
        ok && server.get_packet().as_slice() == b"fine",
        "good client unaffected"
    );
    good[0].close();
    server.close();
    Ok(())
}

pub(super) fn server_close_reaches_every_client(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut clients = connect_clients(&mut server, via, 2)?;
    let gone: Vec<_> = clients
        .iter_mut()
        .map(|c| record(c, "peer_disconnected"))
        .collect();
    server.close();
    let ok = wait_until(5.0, || {
        for c in clients.iter_mut() {
            c.poll();
        }
        gone.iter().all(|g| *g.borrow() == [1])
    });
    check!(ok, "every client saw peer 1 leave");
    for c in &clients {
        check!(
            c.get_connection_status() == ConnectionStatus::DISCONNECTED,
            "client disconnected"
        );
        check!(
            c.bind().get_state() == FabricMMOGTransportPeer::STATE_FAILED,
            "client state FAILED with a reason: {}",
            c.bind().get_last_error()
        );
    }
    Ok(())
}
