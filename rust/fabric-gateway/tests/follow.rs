//! The gateway follows a client's avatar from zone to zone, over real sockets on loopback. The
//! two zones here are small `fabric_net` servers that speak the zone's side of the session
//! protocol (`welcome`, `avatar_moved`, `claim`): stand-ins for zone processes, which need
//! Godot (the real ones: `tests/e2e/tests/gateway_follow.rs`).
//!
//! Checked: the client keeps its one gateway session; zone B hears the claim with the ticket
//! zone A gave (and `hello` with the client's join token only on a standby session);
//! the client hears `zone_changed`, then B's datagrams; what it sends next reaches B, not A.

mod common;

use std::time::Duration;

use common::next;

use fabric_core::session_control::ControlMessage;
use fabric_core::zone_directory::ZoneDirectory;
use fabric_gateway::{Gateway, GatewayConfig, ZonePin, Zones};
use fabric_net::{
    Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent, ServerIdentity,
};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// What a fake zone received: (zone, bytes).
type Heard = UnboundedSender<(u32, Vec<u8>)>;

/// A fake zone `zone`: welcomes every `hello`; zone 0 tells a session that acknowledged its
/// welcome that avatar 5 moved to zone 1; zone 1 answers a claim of avatar 5 with ticket
/// `t-1` with `avatar`, then sends a replication-like datagram. Everything heard is reported.
async fn fake_zone(zone: u32, mut server: Server, heard: Heard) {
    let tx = server.sender();
    while let Some(ev) = server.next_event().await {
        let (session, data) = match ev {
            ServerEvent::Datagram { session, data } => (session, data.to_vec()),
            ServerEvent::Message { session, data } => (session, data),
            _ => continue,
        };
        let _ = heard.send((zone, data.clone()));
        match ControlMessage::decode(&data) {
            Ok(ControlMessage::Hello { .. }) => {
                let w = ControlMessage::Welcome {
                    zone_id: zone,
                    tick: 1,
                    session,
                };
                let _ = tx.send_datagram(session, &w.encode());
            }
            Ok(ControlMessage::WelcomeAck { .. }) if zone == 0 => {
                let moved = ControlMessage::AvatarMoved {
                    id: 5,
                    zone: 1,
                    address: None,
                    cert_hash: None,
                    ticket: "t-1".into(),
                };
                let _ = tx.send_message(session, moved.encode());
            }
            Ok(ControlMessage::Claim { id: 5, ticket }) if zone == 1 && ticket == "t-1" => {
                let _ = tx.send_message(session, ControlMessage::Avatar { id: 5, zone }.encode());
                let _ = tx.send_datagram(session, b"CB-packet");
            }
            _ => {}
        }
    }
}

fn zone_server() -> Server {
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ServerIdentity::self_signed_local().unwrap(),
    );
    Server::start(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_keeps_its_session_while_the_gateway_follows_its_avatar() {
    let (a, b) = (zone_server(), zone_server());
    let list = format!(
        "0@{}#{} 1@{}#{}",
        a.local_addr(),
        a.cert_hash(),
        b.local_addr(),
        b.cert_hash()
    );
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        zone: a.local_addr(),
        zone_pin: ZonePin::Hash(vec![a.cert_hash()]),
        zone_connect_timeout: Duration::from_secs(5),
        limits: fabric_net::ServerLimits {
            max_sessions: 16,
            ..Default::default()
        },
        websocket: false,
        rotation: None,
        cert_hash_file: None,
        session_budget: fabric_gateway::DEFAULT_SESSION_BUDGET,
        follow: true,
        zones: Zones::Listed(ZoneDirectory::parse(&list).unwrap()),
        standby: true,
    };
    let (heard_tx, mut heard) = unbounded_channel();
    tokio::spawn(fake_zone(0, a, heard_tx.clone()));
    tokio::spawn(fake_zone(1, b, heard_tx));
    let gateway = Gateway::bind(cfg, ServerIdentity::self_signed_local().unwrap()).unwrap();
    let url = format!("https://127.0.0.1:{}/wt", gateway.local_addr().port());
    let hash = gateway.cert_hash();
    tokio::spawn(gateway.run(std::future::pending()));

    let mut client = Client::connect(ClientConfig::new(url, hash));
    assert!(matches!(
        next(&mut client).await,
        ClientEvent::Connected { .. }
    ));
    let hello = ControlMessage::Hello {
        id: "h".into(),
        token: Some("fj1.tok".into()),
    };
    client.send_datagram(&hello.encode()).unwrap();
    // Zone A's welcome through the gateway; the client acknowledges it, and A says the avatar
    // moved: the gateway claims it in B and switches.
    let mut acked = false;
    let mut changed = false;
    let packet = loop {
        match next(&mut client).await {
            ClientEvent::Datagram(d) if d.first() == Some(&b'{') => {
                match ControlMessage::decode(&d).unwrap() {
                    ControlMessage::Welcome {
                        zone_id, session, ..
                    } => {
                        assert_eq!(zone_id, 0, "the client's first zone is A");
                        if !acked {
                            acked = true;
                            let ack = ControlMessage::WelcomeAck { session }.encode();
                            client.send_datagram(&ack).unwrap();
                        }
                    }
                    ControlMessage::ZoneChanged { id: 5, zone: 1 } => changed = true,
                    other => panic!("unexpected datagram {other:?}"),
                }
            }
            ClientEvent::Datagram(d) => break d,
            ClientEvent::Message(m) => {
                let msg = ControlMessage::decode(&m).unwrap();
                assert_eq!(
                    msg,
                    ControlMessage::ZoneChanged { id: 5, zone: 1 },
                    "the gateway says where it follows the avatar (not avatar_moved)"
                );
                changed = true;
            }
            other => panic!("the client session must stay open: {other:?}"),
        }
    };
    assert!(changed, "zone_changed comes before zone B's packets");
    assert_eq!(&packet[..], b"CB-packet", "B's datagram, unchanged");

    // What the client sends now reaches B.
    client.send_datagram(b"\x43to-b").unwrap();
    let mut b_heard = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !b_heard.iter().any(|d: &Vec<u8>| d == b"\x43to-b") {
        let (zone, data) = tokio::time::timeout_at(until, heard.recv())
            .await
            .expect("zone B hears the client within 10 s")
            .unwrap();
        assert!(
            !(zone == 0 && data == b"\x43to-b"),
            "after the switch nothing goes to A"
        );
        if zone == 1 {
            b_heard.push(data);
        }
    }
    let decoded: Vec<_> = b_heard
        .iter()
        .filter_map(|d| ControlMessage::decode(d).ok())
        .collect();
    // A `hello` comes only from a standby session that was open before the avatar moved (with
    // the client's token); the session that follows claims at once, without `hello`.
    assert!(
        decoded.iter().all(|m| match m {
            ControlMessage::Hello { token, .. } => token.as_deref() == Some("fj1.tok"),
            _ => true,
        }),
        "any hello B heard carries the client's token: {decoded:?}"
    );
    assert!(
        decoded
            .iter()
            .any(|m| matches!(m, ControlMessage::Claim { id: 5, ticket } if ticket == "t-1")),
        "B heard the claim with A's ticket: {decoded:?}"
    );
}
