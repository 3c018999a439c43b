//! Real sessions over loopback, WebTransport (UDP) and the WebSocket fallback (TCP): datagrams,
//! reliable messages, pinning errors, timeouts, and several sessions at once each getting their
//! own replies. Tests that apply to both transports run over both.

mod common;

use std::time::Duration;

use common::{BOTH, Path, next, next_server, spawn_echo, start_server, url};
use fabric_net::{CertHash, Client, ClientConfig, ClientEvent, CloseReason, NetError, ServerEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_and_reliable_messages_round_trip() {
    for path in BOTH {
        datagrams_and_reliable_messages_round_trip_over(path).await;
    }
}

async fn datagrams_and_reliable_messages_round_trip_over(path: Path) {
    let server = start_server();
    let cfg = ClientConfig::new(url(&server, path), server.cert_hash());
    let _echo = spawn_echo(server);
    let mut client = Client::connect(cfg);
    let ClientEvent::Connected { max_datagram_size } = next(&mut client).await else {
        panic!("expected Connected first");
    };
    assert!(
        max_datagram_size >= 1000,
        "{path:?}: loopback datagram limit {max_datagram_size}"
    );
    // Reliable: in order, exactly once, including a message much larger than a datagram.
    let big = vec![7u8; 200_000];
    client.send_message(b"one".to_vec()).unwrap();
    client.send_message(big.clone()).unwrap();
    client.send_message(b"three".to_vec()).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        if let ClientEvent::Message(m) = next(&mut client).await {
            got.push(m);
        }
    }
    assert_eq!(got[0], b"1:one");
    assert_eq!(&got[1][..2], b"1:");
    assert_eq!(&got[1][2..], &big[..], "200 kB message intact");
    assert_eq!(got[2], b"1:three");
    // Datagrams on loopback: resend until the echo arrives (datagrams may be dropped).
    let mut echoed = false;
    for _ in 0..50 {
        client.send_datagram(b"ping").unwrap();
        if let Ok(Some(ClientEvent::Datagram(d))) =
            tokio::time::timeout(Duration::from_millis(100), client.next_event()).await
        {
            assert_eq!(&d[..], b"1:ping");
            echoed = true;
            break;
        }
    }
    assert!(echoed, "{path:?}: a datagram echo arrived");
    // Oversize datagram: a clear error, not a silent drop.
    let err = client.send_datagram(&vec![0u8; 64 * 1024]).unwrap_err();
    assert!(
        matches!(err, NetError::DatagramTooLarge { size: 65536, limit } if limit < 65536),
        "{path:?}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sessions_each_get_their_own_replies() {
    // Two sessions per transport on one server: ids are shared, replies never cross.
    let server = start_server();
    let cfgs = [
        ClientConfig::new(url(&server, Path::WebTransport), server.cert_hash()),
        ClientConfig::new(url(&server, Path::SecureWebSocket), server.cert_hash()),
    ];
    let _echo = spawn_echo(server);
    let mut clients: Vec<Client> = (0..4)
        .map(|i| Client::connect(cfgs[i % 2].clone()))
        .collect();
    for c in &mut clients {
        assert!(matches!(next(c).await, ClientEvent::Connected { .. }));
    }
    for (i, c) in clients.iter().enumerate() {
        c.send_message(format!("hello from {i}").into_bytes())
            .unwrap();
    }
    let mut sessions = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let ClientEvent::Message(m) = next(c).await else {
            panic!("client {i} expected its reply");
        };
        let text = String::from_utf8(m).unwrap();
        let (session, body) = text.split_once(':').unwrap();
        assert_eq!(
            body,
            format!("hello from {i}"),
            "client {i} got its own reply"
        );
        sessions.push(session.to_owned());
    }
    sessions.sort();
    sessions.dedup();
    assert_eq!(sessions.len(), 4, "four distinct sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_refused_with_a_clear_error() {
    let mut server = start_server();
    let wrong = CertHash([0x42; 32]);
    for path in [Path::WebTransport, Path::SecureWebSocket] {
        let mut client = Client::connect(ClientConfig::new(url(&server, path), wrong));
        match next(&mut client).await {
            ClientEvent::Failed(e @ NetError::CertMismatch { .. }) => {
                assert!(e.to_string().contains(&wrong.to_base64()), "{path:?}: {e}")
            }
            other => panic!("{path:?}: expected a certificate mismatch, got {other:?}"),
        }
    }
    // The server keeps serving others.
    let mut good = Client::connect(ClientConfig::new(
        url(&server, Path::WebTransport),
        server.cert_hash(),
    ));
    assert!(matches!(
        next(&mut good).await,
        ClientEvent::Connected { .. }
    ));
    assert!(matches!(
        next_server(&mut server).await,
        ServerEvent::Opened { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_times_out_with_a_clear_error() {
    // Bind and drop a socket to get a port with nobody behind it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = ClientConfig::new(format!("https://127.0.0.1:{port}/wt"), CertHash([1; 32]));
    cfg.connect_timeout = Duration::from_millis(700);
    let mut client = Client::connect(cfg);
    match next(&mut client).await {
        ClientEvent::Failed(e @ NetError::ConnectTimeout { millis: 700, .. }) => {
            assert!(
                e.to_string().contains("no answer from https://127.0.0.1"),
                "{e}"
            )
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_reason_reaches_the_client() {
    for path in BOTH {
        server_close_reason_reaches_the_client_over(path).await;
    }
}

async fn server_close_reason_reaches_the_client_over(path: Path) {
    let mut server = start_server();
    let mut client = Client::connect(ClientConfig::new(url(&server, path), server.cert_hash()));
    assert!(matches!(
        next(&mut client).await,
        ClientEvent::Connected { .. }
    ));
    let ServerEvent::Opened {
        session,
        path: opened_path,
        ..
    } = next_server(&mut server).await
    else {
        panic!("expected Opened");
    };
    let wanted = if path == Path::WebTransport {
        "/wt"
    } else {
        "/ws"
    };
    assert_eq!(opened_path, wanted);
    server
        .sender()
        .close_session(session, 3, "zone unavailable");
    match next(&mut client).await {
        ClientEvent::Closed { reason } => {
            assert_eq!(reason.code(), Some(3), "{path:?}: application close code");
            assert!(
                matches!(&reason, CloseReason::ByPeer { text, .. } if text == "zone unavailable"),
                "{path:?}: closed by the server with its words: {reason:?}"
            );
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    match next_server(&mut server).await {
        ServerEvent::Closed { session: s, reason } => {
            assert_eq!(s, session);
            // The server's own report names why it closed, not just "closed locally".
            assert!(
                matches!(&reason, CloseReason::Locally { why: Some(why) } if why.contains("zone unavailable")),
                "{path:?}: server's close report: {reason:?}"
            );
        }
        other => panic!("expected the server to report the close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_with_each_congestion_controller() {
    use fabric_net::{CongestionControl, Server, ServerConfig, ServerIdentity};
    for cc in CongestionControl::ALL {
        let mut cfg = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ServerIdentity::self_signed_local().unwrap(),
        );
        cfg.congestion = cc;
        let server = Server::start(cfg).unwrap();
        let mut ccfg = ClientConfig::new(url(&server, Path::WebTransport), server.cert_hash());
        ccfg.congestion = cc;
        let _echo = spawn_echo(server);
        let mut client = Client::connect(ccfg);
        assert!(
            matches!(next(&mut client).await, ClientEvent::Connected { .. }),
            "{cc:?}: connected"
        );
        // 1 MB of reliable messages goes through whatever the controller's window does.
        for i in 0..100u32 {
            let mut m = i.to_le_bytes().to_vec();
            m.resize(10_000, 7);
            client.send_message(m).unwrap();
        }
        for i in 0..100u32 {
            let m = common::next_message(&mut client).await;
            assert_eq!(&m[..2], b"1:", "{cc:?}");
            assert_eq!(m[2..6], i.to_le_bytes(), "{cc:?}: in order");
            assert_eq!(m.len(), 10_002, "{cc:?}");
        }
        let mut echoed = false;
        for _ in 0..50 {
            client.send_datagram(b"dg").unwrap();
            if let Ok(Some(ClientEvent::Datagram(d))) =
                tokio::time::timeout(Duration::from_millis(100), client.next_event()).await
            {
                assert_eq!(&d[..], b"1:dg", "{cc:?}");
                echoed = true;
                break;
            }
        }
        assert!(echoed, "{cc:?}: a datagram echo arrived");
    }
}
