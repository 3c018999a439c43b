//! A server core and client cores wired in memory (`peer_pair::Net`): the join handshake and
//! its deadline, hostile joins, targeting, disconnects and the incoming queue, without sockets.

mod peer_pair;

use std::time::Duration;

use fabric_core::packet_frame::{PacketHeader, TransferMode};
use fabric_core::peer_core::{DisconnectError, PeerEvent, SendError, peer_id_from_random};
use fabric_core::session_control::{ControlMessage, close_code};
use peer_pair::Net;

use PeerEvent::{PeerConnected, PeerDisconnected};
use TransferMode::{Reliable, Unreliable, UnreliableOrdered};

fn frame(mode: TransferMode, channel: u8, peer: i32, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketHeader {
        mode,
        channel,
        peer,
        seq,
    }
    .encode_into(payload, &mut out);
    out
}

fn joined(ids: &[i32]) -> Net {
    let mut net = Net::new(ids);
    for i in 0..ids.len() {
        net.connect(i);
    }
    net
}

#[test]
fn join_handshake_connects_both_sides() {
    let net = joined(&[11, 22, 33]);
    assert_eq!(
        net.server_peer_events(),
        vec![PeerConnected(11), PeerConnected(22), PeerConnected(33)],
        "the server sees each client join, in order"
    );
    for (i, id) in [11, 22, 33].into_iter().enumerate() {
        assert_eq!(
            net.client_peer_events(i),
            vec![PeerConnected(1)],
            "client {id} sees the server once"
        );
        assert_eq!(net.clients[i].core.peer_count(), 1, "client {id} joined");
        assert_eq!(net.clients[i].core.unique_id(), id, "client keeps its id");
        assert_eq!(net.server.session_of(id), Some(net.clients[i].session));
        assert_eq!(net.server.peer_of(net.clients[i].session), Some(id));
    }
    assert_eq!(net.server.peer_count(), 3, "three peers on the server");
    assert_eq!(net.server.unique_id(), 1, "the server is peer 1");
    assert!(
        net.server.poll_timeout().is_none(),
        "no join deadline left once all joined"
    );
    assert!(
        matches!(
            &net.server_events[0],
            PeerEvent::ControlReceived { text, from: 0 } if text.contains("\"join\"")
        ),
        "the join is reported to the game from peer 0 before the peer connects: {:?}",
        net.server_events
    );
}

#[test]
fn client_cannot_send_before_the_server_confirmed_the_join() {
    let mut net = Net::new(&[5]);
    assert_eq!(
        net.client_send(0, 1, Reliable, 0, b"x"),
        Err(SendError::NotOpen),
        "nothing to send on before the transport opened"
    );
    net.open_session(0);
    // The transport is open on the client, but its join has not reached the server yet.
    net.clients[0].core.client_connected();
    let join = net.clients[0].core.poll_transmit().expect("the join");
    assert_eq!(
        net.client_send(0, 1, Reliable, 0, b"x"),
        Err(SendError::NotJoined),
        "joining"
    );
    assert_eq!(
        net.clients[0].core.stats().send_errors,
        2,
        "both refusals counted"
    );
    // A packet of the server overtakes the `joined` (another stream): queued, not readable.
    net.server_raw(0, &frame(Reliable, 3, 1, 0, b"early"));
    assert_eq!(net.clients[0].core.available_packets(), 0, "not joined yet");
    assert!(net.clients[0].core.pop_packet().is_none(), "not readable");
    let fabric_core::peer_core::Transmit::Message { bytes, session } = join else {
        panic!("the join is a reliable message");
    };
    assert_eq!(session, fabric_core::peer_core::SERVER_SESSION);
    net.server.receive(net.clients[0].session, &bytes);
    net.pump();
    assert_eq!(
        net.clients[0].core.available_packets(),
        1,
        "readable once joined"
    );
    let p = net.drain(Some(0));
    assert_eq!(
        (p[0].from, p[0].channel, &p[0].data[..]),
        (1, 3, &b"early"[..])
    );
    assert_eq!(net.client_send(0, 1, Reliable, 0, b"x"), Ok(()), "joined");
}

#[test]
fn a_session_that_never_joins_is_closed_at_the_deadline() {
    let mut net = Net::new(&[7, 8]);
    net.server
        .set_join_timeout(Some(Duration::from_millis(1500)));
    let opened = net.now;
    net.open_session(0);
    net.connect(1);
    assert_eq!(
        net.server.poll_timeout(),
        Some(opened + Duration::from_millis(1500)),
        "the deadline of the session that has not joined"
    );
    net.advance(Duration::from_millis(1499));
    assert!(net.clients[0].open, "still inside its deadline");
    net.advance(Duration::from_millis(1));
    assert_eq!(
        net.clients[0].closed_with,
        Some((
            close_code::PROTOCOL,
            "no join within 1500 ms of opening the session".into()
        )),
        "closed with code 1 and the reason"
    );
    assert!(net.clients[1].open, "the joined client is untouched");
    assert_eq!(net.server.poll_timeout(), None, "no deadline left");
    assert_eq!(
        net.server_peer_events(),
        vec![PeerConnected(8)],
        "a session that never joined brings no peer event"
    );
}

#[test]
fn a_join_after_the_deadline_passed_is_ignored() {
    let mut net = Net::new(&[7]);
    net.server.set_join_timeout(Some(Duration::from_secs(1)));
    let session = net.clients[0].session;
    net.server.session_opened(net.now, session);
    net.now += Duration::from_secs(2);
    net.server.handle_timeout(net.now);
    let close = net.server.poll_transmit();
    assert!(
        matches!(
            close,
            Some(fabric_core::peer_core::Transmit::Close { code: 1, .. })
        ),
        "late: {close:?}"
    );
    // The join was already in flight when the server decided to close.
    net.server
        .receive(session, &ControlMessage::Join { peer_id: 7 }.encode());
    assert_eq!(net.server.poll_transmit(), None, "no joined reply");
    assert_eq!(net.server.peer_count(), 0, "it did not join");
    assert_eq!(net.server.poll_event(), None, "no event at all");
    net.server.session_closed(session);
    assert_eq!(net.server.poll_event(), None, "its close brings no event");
}

#[test]
fn no_deadline_when_the_timeout_is_off() {
    let mut net = Net::new(&[7]);
    net.server.set_join_timeout(None);
    net.open_session(0);
    assert_eq!(net.server.poll_timeout(), None);
    net.advance(Duration::from_secs(3600));
    assert!(net.clients[0].open, "never closed");
}

#[test]
fn a_duplicate_peer_id_closes_only_the_second_session() {
    let mut net = Net::new(&[42, 42, 43]);
    net.connect(0);
    net.connect(1);
    net.connect(2);
    assert_eq!(
        net.clients[1].closed_with,
        Some((
            close_code::PROTOCOL,
            "peer id already in use; reconnect to pick another".into()
        )),
        "the second 42 is refused"
    );
    assert_eq!(
        net.clients[1].events,
        vec![],
        "the refused client never joined"
    );
    assert_eq!(
        net.server_peer_events(),
        vec![PeerConnected(42), PeerConnected(43)],
        "one 42, and 43"
    );
    assert_eq!(
        net.server.session_of(42),
        Some(net.clients[0].session),
        "42 is still the first session"
    );
    assert_eq!(net.server_send(0, Reliable, 0, b"all"), Ok(vec![0, 2]));
    assert!(net.server.is_consistent());
}

#[test]
fn a_second_join_of_a_joined_session_changes_nothing() {
    let mut net = joined(&[42]);
    net.client_raw(0, &ControlMessage::Join { peer_id: 77 }.encode());
    net.client_raw(0, &ControlMessage::Join { peer_id: 42 }.encode());
    assert!(net.clients[0].open, "not closed");
    assert_eq!(
        net.server_peer_events(),
        vec![PeerConnected(42)],
        "joined once"
    );
    assert_eq!(net.server.session_of(77), None, "no second peer id");
    assert_eq!(net.server.peer_of(net.clients[0].session), Some(42));
    assert_eq!(net.client_peer_events(0), vec![PeerConnected(1)]);
}

#[test]
fn hostile_joins_end_only_their_own_session() {
    let hostile: [&[u8]; 5] = [
        br#"{"action":"join","peer_id":1,"v":1}"#,
        br#"{"action":"join","peer_id":0,"v":1}"#,
        br#"{"action":"join","peer_id":2147483648,"v":1}"#,
        br#"{"action":"join","peer_id":"9","v":1}"#,
        br#"{"action":"join","peer_id":9"#,
    ];
    for bytes in hostile {
        let mut net = Net::new(&[20, 30]);
        net.connect(0);
        net.open_session(1);
        net.client_raw(1, bytes);
        let (code, reason) = net.clients[1].closed_with.clone().expect("closed");
        assert_eq!(
            code,
            close_code::PROTOCOL,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert!(reason.starts_with("malformed packet"), "{reason}");
        assert_eq!(net.server.peer_count(), 1, "only peer 20 remains");
        assert_eq!(
            net.client_send(0, 1, Reliable, 0, b"still here"),
            Ok(()),
            "the well-behaved client keeps sending"
        );
        assert_eq!(net.drain(None).len(), 1, "and is heard");
        assert!(net.server.is_consistent());
    }
}

#[test]
fn packets_from_a_session_that_has_not_joined_are_refused() {
    let mut net = Net::new(&[9]);
    net.open_session(0);
    net.client_raw(0, &frame(Reliable, 0, 1, 0, b"sneaky"));
    net.client_raw(0, &frame(Unreliable, 2, 1, 0, b"sneaky"));
    assert_eq!(net.server.available_packets(), 0, "nothing queued");
    assert_eq!(net.server.stats().packets_received, 0, "nothing counted");
    assert!(net.clients[0].open, "dropped quietly, as before the join");
    // Control messages are reported (the game may answer a ping or a hello before the join).
    net.client_raw(0, &ControlMessage::Ping { id: "p1".into() }.encode());
    assert_eq!(
        net.server_events.last(),
        Some(&PeerEvent::ControlReceived {
            text: String::from_utf8(ControlMessage::Ping { id: "p1".into() }.encode()).unwrap(),
            from: 0
        }),
        "reported from peer 0"
    );
}

#[test]
fn a_ping_is_answered_with_a_pong_datagram() {
    let mut net = Net::new(&[9]);
    net.open_session(0);
    net.server.receive(
        net.clients[0].session,
        &ControlMessage::Ping { id: "x".into() }.encode(),
    );
    // The control event comes first, then the transmit.
    let pong = net.server.poll_transmit();
    assert_eq!(
        pong,
        Some(fabric_core::peer_core::Transmit::Datagram {
            session: net.clients[0].session,
            bytes: ControlMessage::pong("x").encode()
        })
    );
}

#[test]
fn per_peer_targeting_and_broadcast() {
    let mut net = joined(&[10, 20, 30]);
    assert_eq!(
        net.server_send(0, Reliable, 0, b"all"),
        Ok(vec![0, 1, 2]),
        "0 = all"
    );
    assert_eq!(
        net.server_send(20, Reliable, 0, b"one"),
        Ok(vec![1]),
        "20 only"
    );
    assert_eq!(
        net.server_send(-20, Reliable, 0, b"not20"),
        Ok(vec![0, 2]),
        "all but 20"
    );
    assert_eq!(
        net.server_send(99, Reliable, 0, b"nobody"),
        Err(SendError::UnknownPeer(99)),
        "unknown peer"
    );
    assert_eq!(net.server.stats().send_errors, 1, "the refusal is counted");
    assert_eq!(
        net.server.stats().packets_sent,
        3,
        "one count per put_packet"
    );
    let got: Vec<Vec<u8>> = net.drain(Some(1)).into_iter().map(|p| p.data).collect();
    assert_eq!(got, vec![b"all".to_vec(), b"one".to_vec()]);
    for p in net.drain(Some(0)) {
        assert_eq!(p.from, 1, "the server writes itself as the source");
    }
    // A client's packet names its target; the server hears it from the sender.
    net.client_send(2, 10, Unreliable, 4, b"relay me").unwrap();
    let p = net.drain(None);
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].from, p[0].channel, p[0].mode, &p[0].data[..]),
        (30, 4, Unreliable, &b"relay me"[..]),
        "source from the session, not the header"
    );
}

#[test]
fn disconnects_are_seen_on_both_sides() {
    let mut net = joined(&[10, 20, 30]);
    // A client leaves: the server sees it go, and its queued packets with it.
    net.client_send(0, 1, Reliable, 0, b"last words").unwrap();
    net.client_send(1, 1, Reliable, 0, b"from 20").unwrap();
    net.client_closes(0);
    assert_eq!(net.server.peer_count(), 2);
    let left: Vec<i32> = net.drain(None).iter().map(|p| p.from).collect();
    assert_eq!(left, vec![20], "peer 10's packet left with it");
    // The server disconnects a peer: both sides see it once the session closed.
    net.server.disconnect_peer(20, false).unwrap();
    net.pump();
    assert_eq!(
        net.clients[1].closed_with,
        Some((0, "disconnected by the server".into()))
    );
    assert_eq!(
        net.client_peer_events(1),
        vec![PeerConnected(1), PeerDisconnected(1)]
    );
    assert_eq!(
        net.client_peer_events(0),
        vec![PeerConnected(1), PeerDisconnected(1)]
    );
    assert_eq!(
        net.server_peer_events(),
        vec![
            PeerConnected(10),
            PeerConnected(20),
            PeerConnected(30),
            PeerDisconnected(10),
            PeerDisconnected(20)
        ]
    );
    // Forced: forgotten at once, no event (SceneMultiplayer removes the peer itself).
    net.server.disconnect_peer(30, true).unwrap();
    assert_eq!(net.server.session_of(30), None, "forgotten at once");
    net.pump();
    assert_eq!(
        net.server_peer_events().len(),
        5,
        "no event for a forced disconnect"
    );
    assert_eq!(
        net.client_peer_events(2),
        vec![PeerConnected(1), PeerDisconnected(1)]
    );
    assert_eq!(
        net.server.disconnect_peer(30, false),
        Err(DisconnectError::UnknownPeer(30))
    );
    assert_eq!(
        net.clients[2].core.disconnect_peer(1, false),
        Err(DisconnectError::NotServer)
    );
    assert_eq!(net.server.peer_count(), 0);
    assert!(net.server.is_consistent());
}

#[test]
fn a_refusing_server_closes_new_sessions_with_code_2() {
    let mut net = Net::new(&[10, 20]);
    net.connect(0);
    net.server.set_refuse_new(true);
    net.connect(1);
    assert_eq!(
        net.clients[1].closed_with,
        Some((
            close_code::REFUSED,
            "server is refusing new connections".into()
        ))
    );
    assert!(net.clients[0].open, "sessions already open stay");
    assert_eq!(net.server.peer_count(), 1);
}

#[test]
fn the_incoming_queue_keeps_arrival_order_across_peers() {
    let mut net = joined(&[10, 20]);
    net.client_send(0, 1, Reliable, 0, b"a").unwrap();
    net.client_send(1, 1, Unreliable, 1, b"b").unwrap();
    net.client_send(0, 1, UnreliableOrdered, 2, b"c").unwrap();
    net.client_send(1, 1, Reliable, 0, b"d").unwrap();
    net.client_send(0, 1, UnreliableOrdered, 2, b"e").unwrap();
    let front = net.server.front().expect("a packet");
    assert_eq!((front.from, front.channel, front.mode), (10, 0, Reliable));
    let order: Vec<(i32, u8)> = net
        .drain(None)
        .into_iter()
        .map(|p| (p.from, p.data[0]))
        .collect();
    assert_eq!(
        order,
        vec![(10, b'a'), (20, b'b'), (10, b'c'), (20, b'd'), (10, b'e')]
    );
    assert_eq!(net.server.available_packets(), 0);
    // An old unreliable-ordered packet (reordered on the way) is dropped.
    net.client_raw(0, &frame(UnreliableOrdered, 2, 1, 1, b"stale"));
    assert_eq!(net.server.available_packets(), 0, "older than seq 2");
    assert_eq!(net.server.stats().stale_dropped, 1);
}

#[test]
fn malformed_bytes_close_a_joined_client_and_it_is_disconnected() {
    let mut net = joined(&[10, 20]);
    net.client_raw(0, &[0x07, 1, 2]);
    let (code, reason) = net.clients[0].closed_with.clone().expect("closed");
    assert_eq!(code, close_code::PROTOCOL);
    assert!(reason.starts_with("malformed packet"), "{reason}");
    assert_eq!(
        net.server_peer_events(),
        vec![PeerConnected(10), PeerConnected(20), PeerDisconnected(10)]
    );
    assert_eq!(net.server_send(0, Reliable, 0, b"x"), Ok(vec![1]));
}

#[test]
fn a_client_drops_bad_packets_from_the_server_and_stays() {
    let mut net = joined(&[10]);
    net.server_raw(0, &[0x01, 9]);
    net.server_raw(0, b"{not json");
    assert!(net.clients[0].open);
    let dropped = net.clients[0]
        .events
        .iter()
        .filter(|e| matches!(e, PeerEvent::Dropped { .. }))
        .count();
    assert_eq!(dropped, 2, "{:?}", net.clients[0].events);
    assert_eq!(net.server_send(0, Reliable, 0, b"ok"), Ok(vec![0]));
    assert_eq!(net.drain(Some(0)).len(), 1);
}

#[test]
fn a_joined_message_for_another_id_is_ignored() {
    let mut net = Net::new(&[10]);
    net.open_session(0);
    net.clients[0].core.client_connected();
    let _join = net.clients[0].core.poll_transmit();
    net.server_raw(0, &ControlMessage::Joined { peer_id: 11 }.encode());
    assert_eq!(
        net.clients[0].core.peer_count(),
        0,
        "not this client's join"
    );
    net.server_raw(0, &ControlMessage::Joined { peer_id: 10 }.encode());
    net.server_raw(0, &ControlMessage::Joined { peer_id: 10 }.encode());
    assert_eq!(net.client_peer_events(0), vec![PeerConnected(1)], "once");
}

#[test]
fn close_resets_the_peer() {
    let mut net = joined(&[10]);
    net.client_send(0, 1, Reliable, 0, b"a").unwrap();
    net.server.set_target_peer(10);
    net.server.close();
    assert_eq!(net.server.unique_id(), 0);
    assert!(!net.server.is_server());
    assert_eq!(net.server.available_packets(), 0, "queue cleared");
    assert_eq!(net.server.target_peer(), 0, "target cleared");
    assert_eq!(net.server.peer_count(), 0);
    assert_eq!(
        net.server.prepare_send(b"x", &mut Vec::new()).err(),
        Some(SendError::NotOpen)
    );
}

#[test]
fn peer_ids_are_valid_and_spread() {
    for r in [0, 1, 2, 0x7fff_ffff, u64::MAX, 0x8000_0000, 0x1_0000_0001] {
        let id = peer_id_from_random(r);
        assert!((2..=i32::MAX).contains(&id), "{r:#x} -> {id}");
    }
    let ids: std::collections::HashSet<i32> = (0..1000u64)
        .map(|i| peer_id_from_random(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    assert_eq!(ids.len(), 1000, "distinct inputs give distinct ids");
    // Each joined id is unique on the server, whatever the clients chose.
    let net = joined(&[5, 6, 5, 7, 6]);
    let mut joined_ids: Vec<i32> = net
        .server_peer_events()
        .into_iter()
        .map(|e| match e {
            PeerConnected(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    joined_ids.sort_unstable();
    assert_eq!(joined_ids, vec![5, 6, 7]);
}
