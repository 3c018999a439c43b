//! Hostile load on one server, over real loopback sessions: a client that stops reading, a
//! datagram flood while the owner polls slowly, 300 streams each announcing 16 MiB, a burst of
//! handshakes from one address, TCP connections that never finish TLS. In every case the
//! server's own counters stay within their budgets, the attacker gets the documented close,
//! and a well-behaved client on the same server keeps being served: its round trip is printed
//! before and during the attack.
//!
//! Sizes fit a 2-core CI machine. The handshake burst runs larger as a command:
//!
//! ```sh
//! FABRIC_HANDSHAKE_BURST=5000 cargo test --release -p fabric-net --test hostile_load \
//!   -- --nocapture handshakes_from_one_address
//! ```

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Path, next, next_message, raw_ws, spawn_echo, url, wt_close_reason};
use fabric_net::budget::SLOW_READER;
use fabric_net::lanes::LANE_MAGIC;
use fabric_net::reliable::MAX_MESSAGE_LEN;
use fabric_net::server::{ServerSender, close_code};
use fabric_net::{
    Client, ClientConfig, ClientEvent, CloseReason, NetError, Server, ServerConfig, ServerIdentity,
};
use tokio::io::AsyncWriteExt;
use wtransport::tls::Sha256Digest;

fn server_with(tune: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ServerIdentity::self_signed_local().unwrap(),
    );
    cfg.websocket = true;
    tune(&mut cfg);
    Server::start(cfg).expect("server binds")
}

/// A raw WebTransport session from `bind` (any loopback address), pinned to `server`.
async fn raw_wt(
    addr: SocketAddr,
    hash: fabric_net::CertHash,
    bind: &str,
) -> Result<wtransport::Connection, String> {
    // A large receive buffer, so the close that ends a test is not lost on a full socket.
    let socket = fabric_net::udp::bind(bind.parse().unwrap(), fabric_net::udp::SERVER_RECV_BUFFER)
        .map_err(|e| e.to_string())?;
    let cfg = wtransport::ClientConfig::builder()
        .with_bind_socket(socket)
        .with_server_certificate_hashes([Sha256Digest::new(hash.0)])
        // Keep-alives make the server repeat its close if the first one was lost (UDP on a
        // busy loopback drops packets when a receive buffer is full).
        .keep_alive_interval(Some(Duration::from_millis(10)))
        .build();
    let endpoint = wtransport::Endpoint::client(cfg).map_err(|e| e.to_string())?;
    endpoint
        .connect(format!("https://127.0.0.1:{}/wt", addr.port()))
        .await
        .map_err(|e| e.to_string())
}

/// A well-behaved client of the echo server: one reliable round trip, in milliseconds.
async fn round_trip(c: &mut Client, n: usize) -> f64 {
    let body = format!("bystander {n}").into_bytes();
    let t = Instant::now();
    c.send_message(body.clone()).expect("bystander sends");
    loop {
        let m = next_message(c).await;
        if m.ends_with(&body) {
            return t.elapsed().as_secs_f64() * 1000.0;
        }
    }
}

async fn bystander(server: &Server) -> Client {
    let mut c = Client::connect(ClientConfig::new(
        url(server, Path::WebTransport),
        server.cert_hash(),
    ));
    assert!(matches!(next(&mut c).await, ClientEvent::Connected { .. }));
    c
}

/// Keeps measuring the bystander's round trip while `attack` runs; prints before and during,
/// and asserts it was served throughout.
async fn served_during<F: std::future::Future>(
    what: &str,
    by: &mut Client,
    attack: F,
) -> F::Output {
    let before = round_trip(by, 0).await;
    let done = Arc::new(AtomicBool::new(false));
    let attack = async {
        let out = attack.await;
        done.store(true, Ordering::Release);
        out
    };
    let measure = async {
        let mut rtts = Vec::new();
        while !done.load(Ordering::Acquire) || rtts.is_empty() {
            rtts.push(round_trip(by, rtts.len() + 1).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rtts
    };
    let (out, rtts) = tokio::join!(attack, measure);
    let worst = rtts.iter().copied().fold(0.0, f64::max);
    let median = {
        let mut v = rtts.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{what}: bystander round trip {before:.1} ms before; during: {} round trips, median \
         {median:.1} ms, worst {worst:.1} ms",
        rtts.len()
    );
    out
}

/// The session id of the most recent session other than `not`.
async fn newest_session(tx: &ServerSender, not: &[u64]) -> u64 {
    for _ in 0..200 {
        for id in (1..64).rev() {
            if !not.contains(&id) && tx.buffered(id).is_some() {
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no new session appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_as_a_slow_reader() {
    const BUDGET: usize = 256 * 1024;
    let server = server_with(|c| c.limits.send_budget = BUDGET);
    let (addr, hash, tx) = (server.local_addr(), server.cert_hash(), server.sender());
    let mut by = bystander(&server).await;
    let _echo = spawn_echo(server);
    // Session 2: a client whose owner never takes its events: once its event budget is full
    // it stops reading, and QUIC flow control stops the server's sends.
    let mut cfg = ClientConfig::new(format!("https://127.0.0.1:{}/wt", addr.port()), hash);
    cfg.event_budget = 64 * 1024;
    let mut reader = Client::connect(cfg);
    assert!(matches!(
        next(&mut reader).await,
        ClientEvent::Connected { .. }
    ));
    let victim = newest_session(&tx, &[1]).await;

    let (sent, err, peak) = served_during("slow reader", &mut by, async {
        let chunk = vec![7u8; 16 * 1024];
        let mut sent = 0usize;
        let mut peak = 0usize;
        loop {
            match tx.send_message_on(victim, 3, chunk.clone()) {
                Ok(()) => sent += chunk.len(),
                Err(e) => break (sent, e, peak),
            }
            let b = tx
                .buffered(victim)
                .expect("session open while sends succeed");
            peak = peak.max(b.send);
            assert!(b.send <= BUDGET, "send queue {} within budget", b.send);
            if sent.is_multiple_of(256 * 1024) {
                // Let the writer and QUIC move what the peer's window allows.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(sent < 512 << 20, "a reader that never reads must be caught");
        }
    })
    .await;
    println!("slow reader: {sent} bytes accepted, send queue peak {peak} bytes, then: {err}");
    assert!(
        matches!(err, NetError::SlowReader { budget: BUDGET, .. }),
        "the send beyond the budget is refused: {err}"
    );
    assert!(
        peak <= BUDGET && peak > BUDGET / 2,
        "queue filled up to its budget: {peak}"
    );
    // The owner looks again: what arrived, then the close with the slow-reader code.
    let reason = loop {
        match next(&mut reader).await {
            ClientEvent::Closed { reason } => break reason,
            ClientEvent::Message(_) | ClientEvent::Datagram(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        matches!(
            &reason,
            CloseReason::ByPeer { code: Some(SLOW_READER), text, .. } if text.contains("slow reader")
        ),
        "closed by the server with the slow-reader code and words: {reason:?}"
    );
    assert!(tx.buffered(victim).is_none(), "the session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_closed_as_a_slow_reader() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    const BUDGET: usize = 256 * 1024;
    let server = server_with(|c| c.limits.send_budget = BUDGET);
    let tx = server.sender();
    let mut by = bystander(&server).await;
    let mut reader = raw_ws(&server).await;
    let _echo = spawn_echo(server);
    let victim = newest_session(&tx, &[1]).await;
    let (err, peak) = served_during("WebSocket slow reader", &mut by, async {
        let chunk = vec![7u8; 16 * 1024];
        let mut peak = 0usize;
        loop {
            if let Err(e) = tx.send_message(victim, chunk.clone()) {
                break (e, peak);
            }
            let b = tx
                .buffered(victim)
                .expect("session open while sends succeed");
            peak = peak.max(b.send);
            assert!(b.send <= BUDGET, "send queue {} within budget", b.send);
            tokio::task::yield_now().await;
        }
    })
    .await;
    println!("WebSocket slow reader: send queue peak {peak} bytes, then: {err}");
    assert!(
        matches!(err, NetError::SlowReader { budget: BUDGET, .. }),
        "{err}"
    );
    // The reader wakes up: what was sent, then the close frame with 4000 + SLOW_READER.
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break u16::from(f.code),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected the close frame, got {other:?}"),
        }
    };
    assert_eq!(
        u32::from(code),
        4000 + SLOW_READER,
        "slow-reader close code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_flood_stays_within_the_event_budget_while_the_owner_polls_slowly() {
    const BUDGET: usize = 64 * 1024;
    let mut server = server_with(|c| c.limits.session_event_budget = BUDGET);
    let (addr, hash, tx) = (server.local_addr(), server.cert_hash(), server.sender());
    let mut by = bystander(&server).await;
    // The owner: a slow game loop that drains its events every 30 ms and echoes messages.
    let owner = tokio::spawn(async move {
        loop {
            while let Some(ev) = server.try_next_event() {
                if let fabric_net::ServerEvent::Message { session, data } = ev {
                    let mut out = format!("{session}:").into_bytes();
                    out.extend_from_slice(&data);
                    let _ = server.sender().send_message(session, out);
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let flooder = raw_wt(addr, hash, "127.0.0.1:0").await.unwrap();
    let victim = newest_session(&tx, &[1]).await;
    let peak = served_during("datagram flood", &mut by, async {
        let payload = bytes::Bytes::from(vec![9u8; 1000]);
        let mut peak = 0;
        for i in 0..20_000 {
            let _ = flooder.send_datagram(payload.clone());
            if i % 200 == 0 {
                let b = tx.buffered(victim).expect("flooder still open");
                peak = peak.max(b.events);
                assert!(b.events <= BUDGET, "events {} within budget", b.events);
                tokio::task::yield_now().await;
            }
        }
        peak
    })
    .await;
    let dropped = tx.dropped_datagrams();
    println!(
        "datagram flood: event bytes peak {peak} (budget {BUDGET}), {dropped} datagrams dropped"
    );
    assert!(
        dropped > 0,
        "datagrams over the flooder's share were dropped"
    );
    owner.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_streams_announcing_16_mib_each_end_only_that_session() {
    const PARTIAL: usize = 8 << 20;
    let server = server_with(|c| c.limits.partial_message_budget = PARTIAL);
    let (addr, hash, tx) = (server.local_addr(), server.cert_hash(), server.sender());
    let mut by = bystander(&server).await;
    let _echo = spawn_echo(server);
    let attacker = raw_wt(addr, hash, "127.0.0.1:0").await.unwrap();
    let victim = newest_session(&tx, &[1]).await;
    let peak = served_during("300 streams x 16 MiB", &mut by, async {
        let sampler = {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while let Some(b) = tx.buffered(victim) {
                    peak = peak.max(b.partial);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                peak
            })
        };
        let mut streams = Vec::new();
        for _ in 0..300 {
            let a = attacker.clone();
            streams.push(tokio::spawn(async move {
                let mut s = a.open_uni().await.ok()?.await.ok()?;
                s.write_all(&LANE_MAGIC).await.ok()?;
                s.write_all(&[1]).await.ok()?;
                s.write_all(&(MAX_MESSAGE_LEN as u32).to_le_bytes())
                    .await
                    .ok()?;
                s.write_all(&vec![5u8; 100 * 1024]).await.ok()?;
                Some(())
            }));
        }
        for s in streams {
            let _ = s.await;
        }
        sampler.await.unwrap()
    })
    .await;
    let (code, reason) = wt_close_reason(&attacker).await;
    println!("300 streams: partial bytes peak {peak} (budget {PARTIAL}); closed: {reason}");
    assert_eq!(code, u64::from(close_code::PROTOCOL), "{reason}");
    assert!(reason.contains("partially received"), "{reason}");
    assert!(peak <= PARTIAL, "partial bytes {peak} within budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_from_one_address_hold_max_sessions_and_the_address_cap_exactly() {
    let burst: usize = std::env::var("FABRIC_HANDSHAKE_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    const MAX: usize = 40;
    const PER_IP: usize = 25;
    let server = server_with(|c| {
        c.limits.max_sessions = MAX;
        c.limits.max_sessions_per_address = PER_IP;
    });
    let (addr, hash, tx) = (server.local_addr(), server.cert_hash(), server.sender());
    // The bystander holds one of 127.0.0.1's places.
    let mut by = bystander(&server).await;
    let _echo = spawn_echo(server);
    let (a, b) = served_during("handshake burst", &mut by, async {
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let open = |bind: &'static str| {
            let sem = sem.clone();
            tokio::spawn(async move {
                let _p = sem.acquire_owned().await.unwrap();
                raw_wt(addr, hash, bind).await.ok()
            })
        };
        // Most from 127.0.0.1, some from 127.0.0.2 (another address on the same host).
        let tasks: Vec<_> = (0..burst)
            .map(|i| {
                open(if i % 5 == 4 {
                    "127.0.0.2:0"
                } else {
                    "127.0.0.1:0"
                })
            })
            .collect();
        let mut held = (Vec::new(), Vec::new());
        for (i, t) in tasks.into_iter().enumerate() {
            if let Some(c) = t.await.unwrap() {
                if i % 5 == 4 {
                    held.1.push(c)
                } else {
                    held.0.push(c)
                }
            }
        }
        held
    })
    .await;
    println!(
        "handshake burst of {burst}: {} admitted from 127.0.0.1 (+1 bystander), {} from \
         127.0.0.2, server admits {}",
        a.len(),
        b.len(),
        tx.admitted_count()
    );
    assert_eq!(a.len() + 1, PER_IP, "127.0.0.1 holds exactly its cap");
    assert_eq!(
        a.len() + 1 + b.len(),
        MAX,
        "the server holds exactly max_sessions"
    );
    assert_eq!(tx.admitted_count(), MAX);
    assert_eq!(tx.session_count(), MAX);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_that_never_finish_tls_are_capped_and_timed_out() {
    const PENDING: usize = 8;
    let server = server_with(|c| {
        c.limits.max_pending_per_address = PENDING;
        c.limits.handshake_timeout_msec = 2_000;
    });
    let (addr, hash) = (server.local_addr(), server.cert_hash());
    let mut by = bystander(&server).await;
    let wss = url(&server, Path::SecureWebSocket);
    let _echo = spawn_echo(server);
    let (dropped_at_once, stuck) = served_during("stalled TLS", &mut by, async {
        let mut stuck = Vec::new();
        for _ in 0..50 {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A TLS record header, then silence.
            tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
            stuck.push(tcp);
        }
        // Those over the cap are dropped at accept: their read ends at once (all looked at
        // together, well within the handshake timeout).
        let peeks = stuck.iter_mut().map(|tcp| async move {
            let mut b = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_millis(300), tcp.peek(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        });
        let dropped = futures_util::future::join_all(peeks)
            .await
            .into_iter()
            .filter(|&d| d)
            .count();
        (dropped, stuck)
    })
    .await;
    println!("stalled TLS: 50 connections, {dropped_at_once} dropped at accept (cap {PENDING})");
    assert_eq!(
        dropped_at_once,
        50 - PENDING,
        "all but the cap are dropped at once"
    );
    // After the handshake timeout the stuck ones are gone and the address may connect again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut c = Client::connect(ClientConfig::new(wss, hash));
    assert!(
        matches!(next(&mut c).await, ClientEvent::Connected { .. }),
        "a wss client connects once the stalled handshakes timed out"
    );
    drop(stuck);
}
