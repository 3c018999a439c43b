//! Garbage on the wire, over both transports: a bad stream header, an oversize length, a text
//! or unknown WebSocket message, random bytes instead of a handshake. Each ends only the
//! offending session, with a reason that says what was wrong; other sessions keep working.

mod common;

use std::time::Duration;

use common::{
    Path, next, next_message, next_server, raw_ws, spawn_echo, start_server, url, wt_close_reason,
};
use fabric_net::lanes::LANE_MAGIC;
use fabric_net::reliable::MAX_MESSAGE_LEN;
use fabric_net::{
    Client, ClientConfig, ClientEvent, CloseReason, ConnectStep, NetError, Server, ServerEvent,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use wtransport::tls::Sha256Digest;

async fn raw_wt(server: &Server) -> wtransport::Connection {
    let cfg = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(server.cert_hash().0)])
        .build();
    wtransport::Endpoint::client(cfg)
        .unwrap()
        .connect(url(server, Path::WebTransport))
        .await
        .expect("raw WebTransport session opens")
}

/// A good session on each transport (WebTransport, wss, ws), connected before the hostile one.
async fn bystanders(server: &Server) -> Vec<Client> {
    let mut out = Vec::new();
    for path in common::BOTH {
        let mut c = Client::connect(ClientConfig::new(url(server, path), server.cert_hash()));
        assert!(matches!(next(&mut c).await, ClientEvent::Connected { .. }));
        out.push(c);
    }
    out
}

async fn bystanders_still_served(clients: &mut [Client], what: &str) {
    for c in clients.iter_mut() {
        c.send_message_on(5, b"ch:5:still here".to_vec()).unwrap();
        let m = next_message(c).await;
        assert!(
            m.ends_with(b"ch:5:still here"),
            "after {what}: bystander still echoed"
        );
    }
}

async fn ws_close_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("close within 10 s")
        {
            Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_garbage_ends_only_that_session() {
    let server = start_server();
    let echo_server = start_server();
    // The echo server holds the bystanders; `server` is only watched for its close events.
    let mut watched = server;
    let mut good = bystanders(&echo_server).await;
    let _echo = spawn_echo(echo_server);

    // 1. A stream with a wrong header.
    let conn = raw_wt(&watched).await;
    let mut s = conn.open_uni().await.unwrap().await.unwrap();
    s.write_all(b"HTTP/1.1 garbage").await.unwrap();
    let (code, reason) = wt_close_reason(&conn).await;
    assert_eq!(code, 1, "protocol close code");
    assert!(reason.contains("bad reliable stream header"), "{reason}");
    assert!(matches!(
        next_server(&mut watched).await,
        ServerEvent::Opened { .. }
    ));
    assert!(
        matches!(next_server(&mut watched).await, ServerEvent::Closed { .. }),
        "the server reports the hostile session closed"
    );

    // 2. A length above the limit.
    let conn = raw_wt(&watched).await;
    let mut s = conn.open_uni().await.unwrap().await.unwrap();
    s.write_all(&LANE_MAGIC).await.unwrap();
    s.write_all(&[0]).await.unwrap();
    s.write_all(&(MAX_MESSAGE_LEN as u32 + 1).to_le_bytes())
        .await
        .unwrap();
    let (code, reason) = wt_close_reason(&conn).await;
    assert_eq!(code, 1, "protocol close code");
    assert!(reason.contains("exceeds the limit"), "{reason}");

    bystanders_still_served(&mut good, "WebTransport garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_garbage_ends_only_that_session() {
    let mut watched = start_server();
    let echo_server = start_server();
    let mut good = bystanders(&echo_server).await;
    let _echo = spawn_echo(echo_server);

    // 1. A text message.
    let mut ws = raw_ws(&watched).await;
    ws.send(Message::text("{\"hello\":1}")).await.unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 4001, "protocol close code 4000 + 1");
    assert!(reason.contains("text message"), "{reason}");
    assert!(matches!(
        next_server(&mut watched).await,
        ServerEvent::Opened { .. }
    ));
    match next_server(&mut watched).await {
        ServerEvent::Closed { reason, .. } => assert!(
            matches!(&reason, CloseReason::PeerViolation { why } if why.contains("text message")),
            "the server reports the peer's protocol violation: {reason:?}"
        ),
        other => panic!("expected Closed, got {other:?}"),
    }

    // 2. An unknown envelope byte.
    let mut ws = raw_ws(&watched).await;
    ws.send(Message::binary(vec![0x07, 1, 2, 3])).await.unwrap();
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("0x07"), "{reason}");

    // 3. A message above the limit.
    let mut ws = raw_ws(&watched).await;
    let _ = ws
        .send(Message::binary(vec![0x01; MAX_MESSAGE_LEN + 2]))
        .await;
    let (code, reason) = ws_close_frame(&mut ws).await;
    assert_eq!(code, 4001);
    assert!(
        reason.contains("too long") || reason.contains("size"),
        "{reason}"
    );

    // 4. Random bytes instead of a handshake: no session, nothing reported.
    let mut tcp = tokio::net::TcpStream::connect(watched.local_addr())
        .await
        .unwrap();
    tcp.write_all(&[0xde, 0xad, 0xbe, 0xef, b'\r', b'\n', b'\r', b'\n'])
        .await
        .unwrap();
    drop(tcp);
    // 5. A TLS record header followed by garbage: the wss handshake fails, nothing reported.
    let mut tcp = tokio::net::TcpStream::connect(watched.local_addr())
        .await
        .unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    drop(tcp);

    bystanders_still_served(&mut good, "WebSocket garbage").await;
    // Steps 2 and 3 opened (and closed) a session each; the handshake garbage opened none.
    let mut opened = 0;
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(300), watched.next_event()).await
    {
        opened += usize::from(matches!(ev, ServerEvent::Opened { .. }));
    }
    assert_eq!(opened, 2, "handshake garbage opened no session");
    assert_eq!(watched.sender().session_count(), 0, "no session left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_refuses_non_loopback_and_reports_refused_connections() {
    let cfg = ClientConfig::new("ws://192.0.2.1:4433/ws", fabric_net::CertHash([0; 32]));
    let mut c = Client::connect(cfg);
    match next(&mut c).await {
        ClientEvent::Failed(e @ NetError::InsecureWebSocket(_)) => {
            assert!(e.to_string().contains("unencrypted"), "{e}")
        }
        other => panic!("expected the insecure ws:// refusal, got {other:?}"),
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Client::connect(ClientConfig::new(
        format!("ws://127.0.0.1:{port}/ws"),
        fabric_net::CertHash([0; 32]),
    ));
    match next(&mut c).await {
        ClientEvent::Failed(NetError::Connect {
            step: ConnectStep::Tcp,
            cause,
            ..
        }) => assert_eq!(
            cause.io_kind(),
            Some(std::io::ErrorKind::ConnectionRefused),
            "{cause}"
        ),
        other => panic!("expected a refused connection, got {other:?}"),
    }
}
