//! Packets and their metadata over each transport: reliable and unreliable-ordered delivery,
//! oversize refusal, `set_target_peer` (0, negative, positive), channels 0..255 per mode,
//! unreliable-ordered dropping stale packets.
use fabric_core::packet_frame::TransferMode as WireMode;
use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::global::Error;

use super::super::wait_until;
use super::*;

pub(super) fn client_and_server_exchange_packets_with_metadata(via: Via) -> Result<(), String> {
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

pub(super) fn oversize_unreliable_packet_is_refused(via: Via) -> Result<(), String> {
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

pub(super) fn target_peer_broadcasts_excludes_and_targets(via: Via) -> Result<(), String> {
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

pub(super) fn channels_are_independent_per_mode(via: Via) -> Result<(), String> {
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

pub(super) fn unreliable_ordered_drops_stale_packets(via: Via) -> Result<(), String> {
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
