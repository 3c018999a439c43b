//! What a game can read about its traffic, over each transport: `get_stats()` counts what was
//! really sent and received, round-trip times where the transport measures them; and warnings
//! of the network threads reach Godot's output when the peer polls.
use godot::classes::multiplayer_peer::TransferMode;
use godot::global::Error;
use godot::prelude::*;

use super::super::wait_until;
use super::*;

fn stat(peer: &Peer, key: &str) -> Result<i64, String> {
    peer.bind()
        .get_stats()
        .get(key)
        .ok_or_else(|| format!("get_stats() has no `{key}`"))?
        .try_to::<i64>()
        .map_err(|e| format!("{key}: {e}"))
}

pub(super) fn stats_count_traffic_and_rtt(via: Via) -> Result<(), String> {
    let mut server = server_peer()?;
    let mut clients = connect_clients(&mut server, via, 1)?;
    let id = clients[0].get_unique_id();
    // Joining counts no packet: control messages are not game traffic.
    for (who, p) in [("server", &server), ("client", &clients[0])] {
        check!(stat(p, "packets_sent")? == 0, "{who}: nothing sent yet");
        check!(
            stat(p, "packets_received")? == 0,
            "{who}: nothing received yet"
        );
    }
    for n in [10usize, 20, 30] {
        check!(
            put(&mut clients[0], TransferMode::RELIABLE, 0, 1, &vec![1u8; n]) == Error::OK,
            "client sends {n} bytes"
        );
    }
    check!(
        put(&mut server, TransferMode::RELIABLE, 2, id, &[2u8; 7]) == Error::OK,
        "server answers"
    );
    let arrived = wait_until(5.0, || {
        pump(&mut server, &mut clients);
        server.get_available_packet_count() == 3 && clients[0].get_available_packet_count() == 1
    });
    check!(arrived, "all packets arrived");
    drain(&mut server);
    drain(&mut clients[0]);
    // A refused send is counted as an error, not as traffic.
    server.set_target_peer(9999);
    let _ = server.put_packet(&PackedByteArray::from(&[0u8; 4][..]));

    let c = &clients[0];
    check!(
        (stat(c, "packets_sent")?, stat(c, "bytes_sent")?) == (3, 60),
        "client sent 3 packets / 60 bytes: {:?}",
        c.bind().get_stats()
    );
    check!(
        (stat(c, "packets_received")?, stat(c, "bytes_received")?) == (1, 7),
        "client received 1 / 7: {:?}",
        c.bind().get_stats()
    );
    check!(
        (stat(&server, "packets_sent")?, stat(&server, "bytes_sent")?) == (1, 7),
        "server sent 1 / 7: {:?}",
        server.bind().get_stats()
    );
    check!(
        (
            stat(&server, "packets_received")?,
            stat(&server, "bytes_received")?
        ) == (3, 60),
        "server received 3 / 60: {:?}",
        server.bind().get_stats()
    );
    check!(stat(&server, "send_errors")? == 1, "the refused send");
    check!(stat(&server, "peers")? == 1, "one peer");
    let transport = c.bind().get_stats().get("transport").map(|v| v.to_string());
    check!(
        transport.as_deref() == Some(via.name()),
        "client transport {transport:?}"
    );

    let client_rtt = c.bind().get_rtt_msec();
    let server_rtt = server.bind().get_peer_rtt_msec(id);
    match via {
        Via::WebTransport => check!(
            client_rtt > 0.0 && client_rtt < 1000.0 && server_rtt > 0.0 && server_rtt < 1000.0,
            "QUIC measures the RTT: client {client_rtt} ms, server {server_rtt} ms"
        ),
        Via::WebSocket => check!(
            client_rtt == -1.0 && server_rtt == -1.0,
            "no RTT over WebSocket: client {client_rtt}, server {server_rtt}"
        ),
    }
    check!(
        server.bind().get_peer_rtt_msec(4242) == -1.0,
        "unknown peer"
    );

    clients[0].bind_mut().reset_stats();
    check!(
        stat(&clients[0], "packets_sent")? == 0,
        "reset_stats zeroes"
    );
    for c in clients.iter_mut() {
        c.close();
    }
    server.close();
    Ok(())
}

/// A warning logged on a network thread waits in the bridge's queue until a peer polls on the
/// main thread, which prints it with Godot's warning function (it shows in this run's output as
/// `WARNING: fabric_net::itest: ...`).
pub fn network_warnings_reach_godot_on_poll() -> Result<(), String> {
    crate::log_bridge::drain_to_godot();
    std::thread::spawn(|| {
        tracing::warn!(target: "fabric_net::itest", "a warning from a network thread (expected)");
    })
    .join()
    .map_err(|_| "logging thread panicked".to_string())?;
    check!(
        crate::log_bridge::queued() == 1,
        "the warning waits for the main thread: {} queued",
        crate::log_bridge::queued()
    );
    let mut peer = crate::transport_peer::FabricMMOGTransportPeer::new_gd();
    peer.poll();
    check!(
        crate::log_bridge::queued() == 0,
        "poll() printed it: {} still queued",
        crate::log_bridge::queued()
    );
    Ok(())
}
