//! Helpers shared by the loopback integration tests: servers listening on both transports,
//! URLs for each, and event waits with a deadline.
#![allow(dead_code)]

use std::time::Duration;

use fabric_net::{Client, ClientEvent, Server, ServerConfig, ServerEvent, ServerIdentity};

/// The transports every test runs over: WebTransport, the pinned `wss://` fallback and the
/// plain loopback `ws://` fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    WebTransport,
    SecureWebSocket,
    WebSocket,
}

pub const BOTH: [Path; 3] = [Path::WebTransport, Path::SecureWebSocket, Path::WebSocket];

/// A loopback server listening on WebTransport (UDP) and WebSocket (TCP), same port number.
pub fn start_server() -> Server {
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ServerIdentity::self_signed_local().unwrap(),
    );
    cfg.websocket = true;
    Server::start(cfg).expect("server binds a free loopback port on UDP and TCP")
}

pub fn url(server: &Server, path: Path) -> String {
    match path {
        Path::WebTransport => format!("https://127.0.0.1:{}/wt", server.local_addr().port()),
        Path::SecureWebSocket => format!("wss://127.0.0.1:{}/ws", server.local_addr().port()),
        Path::WebSocket => format!("ws://127.0.0.1:{}/ws", server.local_addr().port()),
    }
}

pub async fn next(client: &mut Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("client event within 10 s")
        .expect("client event stream open")
}

pub async fn next_server(server: &mut Server) -> ServerEvent {
    tokio::time::timeout(Duration::from_secs(10), server.next_event())
        .await
        .expect("server event within 10 s")
        .expect("server event stream open")
}

/// The next reliable message of a client, skipping other events.
pub async fn next_message(client: &mut Client) -> Vec<u8> {
    loop {
        match next(client).await {
            ClientEvent::Message(m) => return m,
            ClientEvent::Closed { reason, .. } => panic!("closed while waiting: {reason}"),
            _ => {}
        }
    }
}

/// Echo server: datagrams and messages come back prefixed with the session id; a message
/// `ch:N:...` is echoed on reliable channel N.
pub fn spawn_echo(mut server: Server) -> tokio::task::JoinHandle<Server> {
    tokio::spawn(async move {
        let tx = server.sender();
        while let Some(ev) = server.next_event().await {
            match ev {
                ServerEvent::Datagram { session, data } => {
                    let mut out = format!("{session}:").into_bytes();
                    out.extend_from_slice(&data);
                    let _ = tx.send_datagram(session, &out);
                }
                ServerEvent::Message { session, data } => {
                    let channel = channel_of(&data);
                    let mut out = format!("{session}:").into_bytes();
                    out.extend_from_slice(&data);
                    let _ = tx.send_message_on(session, channel, out);
                }
                _ => {}
            }
        }
        server
    })
}

/// `ch:N:...` names channel N; anything else is channel 0.
pub fn channel_of(data: &[u8]) -> u8 {
    let Some(rest) = data.strip_prefix(b"ch:") else {
        return 0;
    };
    let end = rest.iter().position(|&b| b == b':').unwrap_or(0);
    std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// How a raw WebTransport session was closed by the server: its application code and reason
/// (anything else fails the test, saying what it was).
pub async fn wt_close_reason(conn: &wtransport::Connection) -> (u64, String) {
    match tokio::time::timeout(Duration::from_secs(20), conn.closed())
        .await
        .expect("closed within 20 s")
    {
        wtransport::error::ConnectionError::ApplicationClosed(c) => (
            c.code().into_inner(),
            String::from_utf8_lossy(c.reason()).into_owned(),
        ),
        other => panic!("expected an application close, got {other}"),
    }
}

/// A raw `ws://` session (tungstenite, no fabric-net client) to `server`.
pub async fn raw_ws(server: &Server) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tokio_tungstenite::client_async(url(server, Path::WebSocket), tcp)
        .await
        .expect("raw WebSocket opens")
        .0
}
