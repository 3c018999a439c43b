//! Reliable channels: one stream per channel over WebTransport, so a channel that is stalled in
//! the middle of a large message does not hold back another; order is kept per channel with
//! many channels and large messages interleaved, over both transports.

mod common;

use std::collections::HashMap;

use common::{BOTH, Path, next, next_message, next_server, spawn_echo, start_server, url};
use fabric_net::lanes::LANE_MAGIC;
use fabric_net::{Client, ClientConfig, ClientEvent, ServerEvent};
use wtransport::tls::Sha256Digest;

/// A WebTransport connection made by hand, to write raw bytes on raw streams.
async fn raw_connection(url: &str, hash: [u8; 32]) -> wtransport::Connection {
    let cfg = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(hash)])
        .build();
    wtransport::Endpoint::client(cfg)
        .expect("client endpoint")
        .connect(url)
        .await
        .expect("raw WebTransport session opens")
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_stalled_mid_message_does_not_hold_back_another() {
    let mut server = start_server();
    let conn = raw_connection(&url(&server, Path::WebTransport), server.cert_hash().0).await;
    assert!(matches!(
        next_server(&mut server).await,
        ServerEvent::Opened { .. }
    ));
    // Channel 9: a 100 000-byte message of which only 10 bytes are sent (stalled, as if its
    // packets were lost).
    let mut b = conn.open_uni().await.unwrap().await.unwrap();
    b.write_all(&LANE_MAGIC).await.unwrap();
    b.write_all(&[9]).await.unwrap();
    b.write_all(&100_000u32.to_le_bytes()).await.unwrap();
    b.write_all(&[0xbb; 10]).await.unwrap();
    // Channel 2: three complete messages, sent after channel 9's partial one.
    let mut a = conn.open_uni().await.unwrap().await.unwrap();
    a.write_all(&LANE_MAGIC).await.unwrap();
    a.write_all(&[2]).await.unwrap();
    for m in [&b"a0"[..], b"a1", b"a2"] {
        a.write_all(&framed(m)).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        match next_server(&mut server).await {
            ServerEvent::Message { data, .. } => got.push(data),
            other => panic!("expected channel 2's messages, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![b"a0".to_vec(), b"a1".to_vec(), b"a2".to_vec()],
        "channel 2 flows, in order, while channel 9 is stuck mid-message"
    );
    // Channel 9 completes later and arrives whole.
    b.write_all(&[0xbb; 99_990]).await.unwrap();
    match next_server(&mut server).await {
        ServerEvent::Message { data, .. } => {
            assert_eq!(data.len(), 100_000, "channel 9's message arrives whole");
            assert!(data.iter().all(|&x| x == 0xbb), "channel 9's bytes intact");
        }
        other => panic!("expected channel 9's message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_keeps_its_order_with_large_messages_interleaved() {
    for path in BOTH {
        let server = start_server();
        let cfg = ClientConfig::new(url(&server, path), server.cert_hash());
        let _echo = spawn_echo(server);
        let mut client = Client::connect(cfg);
        assert!(
            matches!(next(&mut client).await, ClientEvent::Connected { .. }),
            "{path:?}: connected"
        );
        const ROUNDS: usize = 4;
        for round in 0..ROUNDS {
            for ch in 0..=255u8 {
                let mut m = format!("ch:{ch}:{round}:").into_bytes();
                // Every 64th channel carries a 100 kB message (many QUIC packets).
                let fill = if ch.is_multiple_of(64) { 100_000 } else { 16 };
                m.extend(std::iter::repeat_n(ch, fill));
                client.send_message_on(ch, m).unwrap();
            }
        }
        let mut seen: HashMap<u8, Vec<usize>> = HashMap::new();
        for _ in 0..ROUNDS * 256 {
            let m = next_message(&mut client).await;
            let text = String::from_utf8_lossy(&m[..m.len().min(40)]).into_owned();
            let mut parts = text.splitn(5, ':');
            let (_session, _ch) = (parts.next(), parts.next());
            let ch: u8 = parts.next().unwrap().parse().unwrap();
            let round: usize = parts.next().unwrap().parse().unwrap();
            let fill = if ch.is_multiple_of(64) { 100_000 } else { 16 };
            assert!(
                m.ends_with(&vec![ch; fill]),
                "{path:?}: channel {ch} round {round} payload intact"
            );
            seen.entry(ch).or_default().push(round);
        }
        assert_eq!(seen.len(), 256, "{path:?}: all 256 channels answered");
        for (ch, rounds) in seen {
            assert_eq!(
                rounds,
                (0..ROUNDS).collect::<Vec<_>>(),
                "{path:?}: channel {ch} kept its order"
            );
        }
    }
}
