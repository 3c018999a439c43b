//! Random operation sequences on a server core and client cores wired in memory
//! (`peer_pair::Net`): the session-to-peer map and its inverse stay consistent, no packet is
//! ever queued from a session that has not joined, joined ids are unique, and both sides agree
//! on who is connected.

mod peer_pair;

use std::collections::HashSet;
use std::time::Duration;

use fabric_core::packet_frame::{PacketHeader, TransferMode};
use fabric_core::peer_core::PeerEvent;
use fabric_core::session_control::ControlMessage;
use peer_pair::Net;
use proptest::prelude::*;

const CLIENTS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    OpenOnly(usize),
    Join(usize, i32),
    ClientSend(usize, u8, i32),
    RawFrame(usize, u8),
    Garbage(usize, Vec<u8>),
    ClientCloses(usize),
    Disconnect(usize, bool),
    ServerSend(i32, u8),
    Advance(u64),
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        c.clone().prop_map(Op::Connect),
        c.clone().prop_map(Op::OpenOnly),
        (c.clone(), 2..6i32).prop_map(|(i, id)| Op::Join(i, id)),
        (c.clone(), 0..3u8, -6..6i32).prop_map(|(i, m, t)| Op::ClientSend(i, m, t)),
        (c.clone(), 0..3u8).prop_map(|(i, m)| Op::RawFrame(i, m)),
        (c.clone(), proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(i, b)| Op::Garbage(i, b)),
        c.clone().prop_map(Op::ClientCloses),
        (c.clone(), any::<bool>()).prop_map(|(i, f)| Op::Disconnect(i, f)),
        (-6..6i32, 0..3u8).prop_map(|(t, m)| Op::ServerSend(t, m)),
        (0..3000u64).prop_map(Op::Advance),
        (0..=CLIENTS).prop_map(Op::Read),
    ]
}

fn mode(m: u8) -> TransferMode {
    TransferMode::try_from(m).expect("0..3")
}

/// Applies the server's new events to the set of connected peer ids.
fn follow(events: &[PeerEvent], connected: &mut HashSet<i32>) -> Result<(), TestCaseError> {
    for e in events {
        match e {
            PeerEvent::PeerConnected(id) => {
                prop_assert!(connected.insert(*id), "{} connected twice", id)
            }
            PeerEvent::PeerDisconnected(id) => {
                prop_assert!(connected.remove(id), "{} left without joining", id)
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn bookkeeping_stays_consistent(ops in proptest::collection::vec(op(), 1..60)) {
        // Clients 0..5 pick ids 2, 3, 4, 2, 3: duplicates happen.
        let ids = [2, 3, 4, 2, 3];
        let mut net = Net::new(&ids);
        net.server.set_join_timeout(Some(Duration::from_millis(2000)));
        let mut connected = HashSet::new();
        let mut seen = 0;
        for op in ops {
            let received_before = net.server.stats().packets_received;
            let mut sender: Option<Option<i32>> = None;
            match op {
                Op::Connect(i) => {
                    if !net.clients[i].open && net.clients[i].closed_with.is_none()
                        && net.clients[i].events.is_empty()
                    {
                        net.connect(i);
                    }
                }
                Op::OpenOnly(i) => {
                    if !net.clients[i].open && net.clients[i].closed_with.is_none()
                        && net.clients[i].events.is_empty()
                    {
                        net.open_session(i);
                    }
                }
                Op::Join(i, id) => {
                    sender = Some(net.server.peer_of(net.clients[i].session));
                    net.client_raw(i, &ControlMessage::Join { peer_id: id as u32 }.encode());
                }
                Op::ClientSend(i, m, t) => {
                    sender = Some(net.server.peer_of(net.clients[i].session));
                    let _ = net.client_send(i, t, mode(m), m, b"p");
                }
                Op::RawFrame(i, m) => {
                    sender = Some(net.server.peer_of(net.clients[i].session));
                    let mut f = Vec::new();
                    PacketHeader { mode: mode(m), channel: 0, peer: 1, seq: 7 }
                        .encode_into(b"raw", &mut f);
                    net.client_raw(i, &f);
                }
                Op::Garbage(i, b) => {
                    sender = Some(net.server.peer_of(net.clients[i].session));
                    net.client_raw(i, &b);
                }
                Op::ClientCloses(i) => net.client_closes(i),
                Op::Disconnect(i, force) => {
                    if let Some(id) = net.server.peer_of(net.clients[i].session) {
                        net.server.disconnect_peer(id, force).expect("a joined peer");
                        if force {
                            // Forgotten at once, without an event.
                            follow(&net.server_events[seen..], &mut connected)?;
                            seen = net.server_events.len();
                            connected.remove(&id);
                        }
                        net.pump();
                    }
                }
                Op::ServerSend(t, m) => {
                    let _ = net.server_send(t, mode(m), m, b"s");
                }
                Op::Advance(ms) => net.advance(Duration::from_millis(ms)),
                Op::Read(i) => {
                    let _ = net.drain((i < CLIENTS).then_some(i));
                }
            }
            prop_assert!(net.server.is_consistent(), "map and inverse disagree");
            // No packet delivered from an unjoined session.
            let new = net.server.stats().packets_received - received_before;
            if new > 0 {
                let from = sender.flatten();
                prop_assert!(from.is_some(), "a packet was queued from an unjoined session");
                let newest = net.server.queued_packets().last().expect("queued").from;
                prop_assert_eq!(Some(newest), from);
            }
            // Every queued packet is from a peer joined now.
            for p in net.server.queued_packets() {
                prop_assert!(net.server.session_of(p.from).is_some(),
                    "a queued packet of {}, who is gone", p.from);
            }
            // The events say the same as the map.
            follow(&net.server_events[seen..], &mut connected)?;
            seen = net.server_events.len();
            prop_assert_eq!(net.server.peer_count(), connected.len(), "events and map disagree");
            for id in &connected {
                prop_assert!(net.server.session_of(*id).is_some(), "{} connected but unknown", id);
            }
            // A client with an open, joined session is joined on the server under its id.
            for c in &net.clients {
                if c.open && c.core.peer_count() == 1 {
                    prop_assert_eq!(net.server.peer_of(c.session), Some(c.core.unique_id()));
                }
            }
        }
    }
}
