//! In-engine tests of `FabricMMOGTransportPeer`, each run over WebTransport (`peer::wt::*`) and
//! over the WebSocket fallback (`peer::ws::*`), plus the transport-specific ones (fallback,
//! certificate mismatch). Everything runs in one process: one server peer, several client peers
//! and, for hostile input, raw `fabric_net` clients.

use std::cell::RefCell;
use std::rc::Rc;

use fabric_core::packet_frame::{PacketHeader, TransferMode as WireMode};
use fabric_core::session_control::ControlMessage;
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent};
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;
use godot::prelude::*;

use super::wait_until;
use crate::transport_peer::FabricMMOGTransportPeer;

type Peer = Gd<FabricMMOGTransportPeer>;

/// The transport a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    WebTransport,
    WebSocket,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::WebTransport => "webtransport",
            Via::WebSocket => "websocket",
        }
    }

    /// The URL a raw `fabric_net` client uses for this transport.
    fn raw_url(self, server: &Peer) -> String {
        let port = server.bind().get_bound_port();
        match self {
            Via::WebTransport => format!("https://127.0.0.1:{port}/wt"),
            Via::WebSocket => format!("wss://127.0.0.1:{port}/ws"),
        }
    }
}

/// Generates `wt::NAME` and `ws::NAME` wrappers that run `NAME(Via::...)`.
macro_rules! over_both {
    ($($f:ident),* $(,)?) => {
        pub mod wt {
            $(pub fn $f() -> Result<(), String> { super::$f(super::Via::WebTransport) })*
        }
        pub mod ws {
            $(pub fn $f() -> Result<(), String> { super::$f(super::Via::WebSocket) })*
        }
    };
}

over_both!(
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
);

/// A server peer on a free loopback port, listening on both transports.
fn server_peer() -> Result<Peer, String> {
    let mut server = FabricMMOGTransportPeer::new_gd();
    let err = server.bind_mut().create_server(0, "127.0.0.1".into());
    check!(err == Error::OK, "create_server: {err:?}");
    Ok(server)
}

fn client_url(server: &Peer) -> GString {
    GString::from(&format!(
        "https://127.0.0.1:{}/wt",
        server.bind().get_bound_port()
    ))
}

/// A client peer forced onto `via`, connecting (not yet connected).
fn start_client(server: &Peer, via: Via) -> Result<Peer, String> {
    let mut client = FabricMMOGTransportPeer::new_gd();
    client.bind_mut().set_transport(via.name().into());
    let hash = server.bind().get_cert_hash();
    let err = client.bind_mut().create_client(client_url(server), hash);
    check!(err == Error::OK, "create_client over {via:?}: {err:?}");
    Ok(client)
}

fn pump(server: &mut Peer, clients: &mut [Peer]) {
    server.poll();
    for c in clients.iter_mut() {
        c.poll();
    }
}

/// Connects `n` clients over `via` and waits until every one is joined.
fn connect_clients(server: &mut Peer, via: Via, n: usize) -> Result<Vec<Peer>, String> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(start_client(server, via)?);
    }
    let ok = wait_until(10.0, || {
        pump(server, &mut clients);
        clients
            .iter()
            .all(|c| c.get_connection_status() == ConnectionStatus::CONNECTED)
    });
    let errors: Vec<String> = clients
        .iter()
        .map(|c| c.bind().get_last_error().to_string())
        .collect();
    check!(ok, "{n} clients connected over {via:?}; errors: {errors:?}");
    for c in &clients {
        check!(
            c.bind().get_active_transport() == via.name(),
            "client runs over {}",
            c.bind().get_active_transport()
        );
    }
    Ok(clients)
}

/// Records the integer argument of every emission of `signal`.
fn record(peer: &mut Peer, signal: &str) -> Rc<RefCell<Vec<i64>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    peer.connect(
        signal,
        &Callable::from_fn("record", move |args: &[&Variant]| {
            sink.borrow_mut()
                .push(args.first().map_or(-1, |v| v.try_to::<i64>().unwrap_or(-1)));
        }),
    );
    seen
}

/// Drains every packet a peer has queued: `(from, channel, mode, payload)`.
fn drain(peer: &mut Peer) -> Vec<(i32, i32, TransferMode, Vec<u8>)> {
    let mut out = Vec::new();
    while peer.get_available_packet_count() > 0 {
        let (from, channel, mode) = (
            peer.get_packet_peer(),
            peer.get_packet_channel(),
            peer.get_packet_mode(),
        );
        out.push((from, channel, mode, peer.get_packet().to_vec()));
    }
    out
}

fn put(peer: &mut Peer, mode: TransferMode, channel: i32, target: i32, data: &[u8]) -> Error {
    peer.set_transfer_mode(mode);
    peer.set_transfer_channel(channel);
    peer.set_target_peer(target);
    peer.put_packet(&PackedByteArray::from(data))
}

fn client_and_server_exchange_packets_with_metadata(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut client = start_client(&server, via)?;
    check!(
        client.get_connection_status() == ConnectionStatus::CONNECTING,
        "client starts CONNECTING"
    );
    let joined = wait_until(10.0, || {
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
    check!(
        put(&mut client, TransferMode::RELIABLE, 3, 1, b"hello server") == Error::OK,
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
    let arrived = wait_until(5.0, || {
        let _ = put(&mut server, TransferMode::UNRELIABLE_ORDERED, 1, 0, b"tick");
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
        server.bind().peer_count() == 0
    });
    check!(gone, "server noticed the client left");
    server.close();
    Ok(())
}

fn oversize_unreliable_packet_is_refused(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut clients = connect_clients(&mut server, via, 1)?;
    let client = &mut clients[0];
    let big = vec![1u8; 64 * 1024];
    let err = put(client, TransferMode::UNRELIABLE, 0, 1, &big);
    check!(
        err == Error::ERR_INVALID_PARAMETER,
        "oversize unreliable refused, got {err:?}"
    );
    check!(
        put(client, TransferMode::RELIABLE, 0, 1, &big) == Error::OK,
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
    clients[0].close();
    server.close();
    Ok(())
}

fn target_peer_broadcasts_excludes_and_targets(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut clients = connect_clients(&mut server, via, 3)?;
    let ids: Vec<i32> = clients.iter().map(|c| c.get_unique_id()).collect();
    // Reliable channel 2 keeps order, so a final broadcast marks "everything before arrived".
    check!(
        put(&mut server, TransferMode::RELIABLE, 2, 0, b"all") == Error::OK,
        "broadcast"
    );
    check!(
        put(&mut server, TransferMode::RELIABLE, 2, -ids[1], b"not-1") == Error::OK,
        "all but client 1"
    );
    check!(
        put(&mut server, TransferMode::RELIABLE, 2, ids[2], b"only-2") == Error::OK,
        "only client 2"
    );
    check!(
        put(&mut server, TransferMode::RELIABLE, 2, 0, b"end") == Error::OK,
        "end marker"
    );
    let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
    let done = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        for (i, c) in clients.iter_mut().enumerate() {
            got[i].extend(drain(c).into_iter().map(|p| p.3));
        }
        got.iter().all(|g| g.last().is_some_and(|m| m == b"end"))
    });
    check!(done, "every client got the end marker: {got:?}");
    let texts: Vec<Vec<String>> = got
        .iter()
        .map(|g| {
            g.iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect()
        })
        .collect();
    check!(
        texts[0] == ["all", "not-1", "end"],
        "client 0 (target 0, -id1): {:?}",
        texts[0]
    );
    check!(
        texts[1] == ["all", "end"],
        "client 1 is excluded by a negative target: {:?}",
        texts[1]
    );
    check!(
        texts[2] == ["all", "not-1", "only-2", "end"],
        "client 2 also gets its own packet: {:?}",
        texts[2]
    );
    // Relayed packets name their source: client 0 -> client 2 through the server.
    check!(
        put(&mut server, TransferMode::RELIABLE, 0, 999_999, b"x") == Error::ERR_INVALID_PARAMETER,
        "an unknown target is an error"
    );
    for c in clients.iter_mut() {
        c.close();
    }
    server.close();
    Ok(())
}

fn disconnect_peer_ends_that_session_only(via: Via) -> Result<(), String> {
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

fn refuse_new_connections_turns_clients_away(via: Via) -> Result<(), String> {
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

fn channels_are_independent_per_mode(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut clients = connect_clients(&mut server, via, 1)?;
    let client = &mut clients[0];
    // Two reliable packets on every channel 0..=255, interleaved across channels, plus one
    // unreliable-ordered packet on channel 0 (a separate channel from reliable channel 0).
    for round in 0..2u8 {
        for ch in 0..=255u8 {
            check!(
                put(
                    client,
                    TransferMode::RELIABLE,
                    i32::from(ch),
                    1,
                    &[ch, round]
                ) == Error::OK,
                "put on channel {ch}"
            );
        }
    }
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); 256];
    let mut total = 0;
    let mut bad = Vec::new();
    let done = wait_until(10.0, || {
        server.poll();
        for (_, channel, mode, data) in drain(&mut server) {
            if mode != TransferMode::RELIABLE || data.len() != 2 || i32::from(data[0]) != channel {
                bad.push((channel, mode, data));
                continue;
            }
            seen[channel as usize].push(data[1]);
            total += 1;
        }
        total == 512
    });
    check!(bad.is_empty(), "metadata matches payloads: {bad:?}");
    check!(done, "512 reliable packets arrived, got {total}");
    for (ch, rounds) in seen.iter().enumerate() {
        check!(rounds == &[0, 1], "channel {ch} in order: {rounds:?}");
    }
    // Channel 0 unreliable-ordered does not disturb channel 0 reliable, and vice versa.
    let arrived = wait_until(5.0, || {
        let _ = put(
            &mut clients[0],
            TransferMode::UNRELIABLE_ORDERED,
            0,
            1,
            b"uo",
        );
        server.poll();
        server.get_available_packet_count() > 0
    });
    check!(arrived, "unreliable-ordered on channel 0 arrives");
    check!(
        server.get_packet_mode() == TransferMode::UNRELIABLE_ORDERED
            && server.get_packet_channel() == 0,
        "mode and channel of the unreliable-ordered packet"
    );
    let _ = drain(&mut server);
    check!(
        put(&mut clients[0], TransferMode::RELIABLE, 0, 1, b"rel") == Error::OK,
        "reliable after unreliable-ordered"
    );
    // Unreliable-ordered copies still in flight may come first; the reliable one must follow.
    let mut reliable = None;
    let mut others_ok = true;
    let ok = wait_until(5.0, || {
        server.poll();
        for (_, channel, mode, data) in drain(&mut server) {
            if mode == TransferMode::RELIABLE {
                reliable = Some((channel, data));
            } else {
                others_ok &= data == b"uo";
            }
        }
        reliable.is_some()
    });
    check!(
        ok && reliable == Some((0, b"rel".to_vec())) && others_ok,
        "reliable channel 0 still delivers: {reliable:?}"
    );
    clients[0].close();
    server.close();
    Ok(())
}

/// A raw `fabric_net` client joined to the server peer as `peer_id`.
fn raw_joined_client(server: &mut Peer, via: Via, peer_id: u32) -> Result<Client, String> {
    let pin =
        CertHash::parse(&server.bind().get_cert_hash().to_string()).map_err(|e| e.to_string())?;
    let mut raw = Client::connect(ClientConfig::new(via.raw_url(server), pin));
    let before = server.bind().peer_count();
    let mut connected = false;
    let ok = wait_until(5.0, || {
        server.poll();
        while let Some(ev) = raw.try_next_event() {
            if matches!(ev, ClientEvent::Connected { .. }) {
                connected = true;
                let _ = raw.send_message(ControlMessage::Join { peer_id }.encode());
            }
        }
        connected && server.bind().peer_count() > before
    });
    check!(ok, "raw client over {via:?} joined as {peer_id}");
    Ok(raw)
}

fn frame(mode: WireMode, channel: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketHeader {
        mode,
        channel,
        peer: 1,
        seq,
    }
    .encode_into(payload, &mut out);
    out
}

fn unreliable_ordered_drops_stale_packets(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let raw = raw_joined_client(&mut server, via, 4242)?;
    // Sent on the reliable path so they arrive in exactly this order: the test controls
    // reordering instead of hoping for it. Channel 3's stale ones (3, 5 again, 2) are dropped;
    // channel 4 has its own sequence; unreliable packets have none.
    let sends = [
        (WireMode::UnreliableOrdered, 3, 5, "c3s5"),
        (WireMode::UnreliableOrdered, 3, 3, "c3s3"),
        (WireMode::UnreliableOrdered, 4, 1, "c4s1"),
        (WireMode::UnreliableOrdered, 3, 5, "c3s5-dup"),
        (WireMode::UnreliableOrdered, 3, 6, "c3s6"),
        (WireMode::UnreliableOrdered, 3, 2, "c3s2"),
        (WireMode::Unreliable, 3, 0, "u1"),
        (WireMode::Unreliable, 3, 0, "u2"),
        (WireMode::UnreliableOrdered, 3, 7, "c3s7"),
    ];
    for (mode, ch, seq, text) in sends {
        raw.send_message(frame(mode, ch, seq, text.as_bytes()))
            .map_err(|e| e.to_string())?;
    }
    let mut got = Vec::new();
    let done = wait_until(5.0, || {
        server.poll();
        got.extend(
            drain(&mut server)
                .into_iter()
                .map(|p| String::from_utf8_lossy(&p.3).into_owned()),
        );
        got.last().is_some_and(|t| t == "c3s7")
    });
    check!(done, "last packet arrived: {got:?}");
    check!(
        got == ["c3s5", "c4s1", "c3s6", "u1", "u2", "c3s7"],
        "stale packets dropped per channel over {via:?}: {got:?}"
    );
    raw.close("done");
    server.close();
    Ok(())
}

fn close_then_reconnect_reuses_the_peer(via: Via) -> Result<(), String> {
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

fn garbage_from_a_client_ends_only_its_session(via: Via) -> Result<(), String> {
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

fn server_close_reaches_every_client(via: Via) -> Result<(), String> {
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
