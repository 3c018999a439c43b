//! Sessions over each transport: `disconnect_peer`, refusing new connections, close then
//! reconnect with the same object, hostile input from one client, the server closing.
use fabric_net::{ClientEvent, CloseReason};
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
            if let ClientEvent::Closed { reason } = ev {
                closed = Some(reason);
            }
        }
        closed.is_some() && server.bind().peer_count() == 1
    });
    check!(ended, "hostile session ended: {closed:?}");
    let reason = closed.expect("closed");
    check!(
        matches!(
            &reason,
            CloseReason::ByPeer { code: Some(1), text, .. } if text.contains("malformed packet")
        ),
        "closed by the server with the protocol code and a clear reason: {reason:?}"
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

/// This process's resident set, KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One reliable round trip of the joined client `good[0]` through the server, milliseconds.
fn round_trip(server: &mut Peer, good: &mut [Peer], n: u32) -> Result<f64, String> {
    let body = format!("round trip {n}").into_bytes();
    let started = std::time::Instant::now();
    check!(
        put(&mut good[0], TransferMode::RELIABLE, 0, 1, &body) == Error::OK,
        "the joined client sends"
    );
    let mut from = 0;
    let arrived = wait_until(5.0, || {
        pump(server, good);
        while server.get_available_packet_count() > 0 {
            let p = server.get_packet();
            if p.as_slice() == body.as_slice() {
                from = server.get_packet_peer();
                return true;
            }
        }
        false
    });
    check!(arrived, "round trip {n}: the server got the packet");
    check!(
        put(server, TransferMode::RELIABLE, 0, from, &body) == Error::OK,
        "the server answers"
    );
    let back = wait_until(5.0, || {
        pump(server, good);
        while good[0].get_available_packet_count() > 0 {
            if good[0].get_packet().as_slice() == body.as_slice() {
                return true;
            }
        }
        false
    });
    check!(back, "round trip {n}: the answer came back");
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Sessions that open and never join (issue 9): 100 raw sessions opened at once from this
/// address stay silent after the handshake. Each that opened is closed at the join deadline
/// (1.5 s here) with close code 1 and a reason that says so; over WebSocket only the
/// `max_pending_per_address` (16) TCP connections in TLS or the upgrade at once are taken and the
/// others are turned away at accept (their attempt fails: admission, not this deadline). The
/// server keeps only its one joined peer, the joined client keeps exchanging reliable packets
/// the whole time (its round trip is printed before and during), and the process's memory once
/// they are gone is within 64 MiB of before (the server and the 100 clients share this process,
/// so this bounds both).
pub(super) fn sessions_that_never_join_are_closed_at_the_deadline(via: Via) -> Result<(), String> {
    const SILENT: usize = 100;
    const DEADLINE_MS: i32 = 1500;
    let mut server = server_peer()?;
    server.bind_mut().set_join_timeout_msec(DEADLINE_MS);
    let mut good = connect_clients(&mut server, via, 1)?;
    let before = round_trip(&mut server, &mut good, 0)?;
    let rss_before = rss_kib().unwrap_or(0);
    let pin =
        CertHash::parse(&server.bind().get_cert_hash().to_string()).map_err(|e| e.to_string())?;
    let opened = std::time::Instant::now();
    let mut silent: Vec<Client> = (0..SILENT)
        .map(|_| Client::connect(ClientConfig::new(via.raw_url(&server), pin)))
        .collect();
    let mut connected = 0;
    let mut closed: Vec<Option<(CloseReason, f64)>> = vec![None; SILENT];
    let mut turned_away = vec![false; SILENT];
    let mut during = Vec::new();
    let mut next_rtt = std::time::Instant::now();
    let all_closed = wait_until(20.0, || {
        pump(&mut server, &mut good);
        for (i, c) in silent.iter_mut().enumerate() {
            while let Some(ev) = c.try_next_event() {
                match ev {
                    ClientEvent::Connected { .. } => connected += 1,
                    ClientEvent::Closed { reason } => {
                        closed[i] = Some((reason, opened.elapsed().as_secs_f64()));
                    }
                    ClientEvent::Failed(_) => turned_away[i] = true,
                    _ => {}
                }
            }
        }
        if std::time::Instant::now() >= next_rtt {
            next_rtt = std::time::Instant::now() + std::time::Duration::from_millis(100);
            match round_trip(&mut server, &mut good, during.len() as u32 + 1) {
                Ok(ms) => during.push(ms),
                Err(e) => {
                    during.push(f64::INFINITY);
                    godot_error!("{e}");
                }
            }
        }
        closed
            .iter()
            .zip(&turned_away)
            .all(|(c, away)| c.is_some() || *away)
    });
    let refused = turned_away.iter().filter(|a| **a).count();
    check!(
        all_closed,
        "every silent session closed or turned away within 20 s: {} closed, {refused} turned \
         away of {SILENT} ({connected} connected)",
        closed.iter().filter(|c| c.is_some()).count()
    );
    check!(
        connected + refused == SILENT,
        "each session either opened or was turned away: {connected} + {refused}"
    );
    match via {
        Via::WebTransport => check!(connected == SILENT, "all {SILENT} opened: {connected}"),
        Via::WebSocket => check!(
            connected >= 16,
            "at least the 16 pending connections an address may have were taken: {connected}"
        ),
    }
    for (reason, at) in closed.iter().flatten() {
        check!(
            matches!(
                reason,
                CloseReason::ByPeer { code: Some(1), text, .. } if text.contains("no join within 1500 ms")
            ),
            "closed by the server with code 1 and why: {reason:?}"
        );
        let early = *at < f64::from(DEADLINE_MS) / 1000.0;
        check!(!early, "not closed before the deadline: {at:.2} s");
    }
    check!(
        during.iter().all(|ms| ms.is_finite()),
        "the joined client was served throughout: {during:?}"
    );
    check!(
        server.bind().peer_count() == 1,
        "the server keeps only the joined peer: {}",
        server.bind().peer_count()
    );
    drop(silent);
    let after = round_trip(&mut server, &mut good, 9999)?;
    let rss_after = rss_kib().unwrap_or(0);
    let mut sorted = during.clone();
    sorted.sort_by(f64::total_cmp);
    godot_print!(
        "never-join over {via:?}: {connected} sessions opened ({refused} turned away at accept), \
         closed at {:.2}-{:.2} s; joined client's round \
         trip {before:.1} ms before, during {} round trips median {:.1} ms worst {:.1} ms, after \
         {after:.1} ms; RSS {rss_before} -> {rss_after} KiB",
        closed
            .iter()
            .flatten()
            .map(|c| c.1)
            .fold(f64::INFINITY, f64::min),
        closed.iter().flatten().map(|c| c.1).fold(0.0, f64::max),
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    check!(
        rss_after < rss_before + 64 * 1024,
        "memory returns near where it was: {rss_before} -> {rss_after} KiB"
    );
    good[0].close();
    server.close();
    Ok(())
}
