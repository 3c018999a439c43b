//! WebTransport sessions sharing QUIC endpoints ([`ClientEndpoints`]) over loopback: each
//! session gets only its own replies, the pool binds a new endpoint only when the others are
//! full, and a wrong pin still fails with its typed error.

mod common;

use std::time::Duration;

use common::{Path, next, next_message, spawn_echo, start_server, url};
use fabric_net::{CertHash, Client, ClientConfig, ClientEndpoints, ClientEvent, NetError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sessions_on_two_shared_endpoints_each_get_their_own_replies() {
    let server = start_server();
    let mut cfg = ClientConfig::new(url(&server, Path::WebTransport), server.cert_hash());
    let pool = ClientEndpoints::new(3);
    cfg.endpoints = Some(pool.clone());
    let _echo = spawn_echo(server);

    // One at a time, so each pick sees the sessions before it: 3 on the first endpoint, 2 on
    // a second one bound when the first was full.
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = Client::connect(cfg.clone());
        assert!(
            matches!(next(&mut c).await, ClientEvent::Connected { .. }),
            "a pooled session opens"
        );
        clients.push(c);
    }
    assert_eq!(pool.endpoint_count(), 2, "3 + 2 sessions: two endpoints");
    assert_eq!(pool.session_count(), 5);

    // Replies never cross: each session's echo carries its own server-side id, and the ids
    // of the five sessions differ.
    let mut ids = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_message(format!("hello {i}").into_bytes()).unwrap();
        let reply = String::from_utf8(next_message(c).await).unwrap();
        let (id, text) = reply.split_once(':').expect("id:text");
        assert_eq!(text, format!("hello {i}"), "session {i} got its own reply");
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "five distinct sessions: {ids:?}");

    // Closing sessions frees room: the next one reuses an endpoint instead of binding a third.
    for c in clients.drain(..3) {
        c.close("done");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pool.session_count() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed sessions leave the endpoints within 5 s ({} left)",
            pool.session_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = Client::connect(cfg.clone());
    assert!(matches!(
        next(&mut again).await,
        ClientEvent::Connected { .. }
    ));
    assert!(
        pool.endpoint_count() <= 2,
        "no third endpoint: {}",
        pool.endpoint_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_through_the_pool_is_a_certificate_mismatch() {
    let server = start_server();
    let pool = ClientEndpoints::default();
    let mut cfg = ClientConfig::new(url(&server, Path::WebTransport), CertHash([9; 32]));
    cfg.endpoints = Some(pool.clone());
    let _echo = spawn_echo(server);
    let mut c = Client::connect(cfg);
    match next(&mut c).await {
        ClientEvent::Failed(NetError::CertMismatch { .. }) => {}
        other => panic!("expected a certificate mismatch, got {other:?}"),
    }
}
