//! Connection limits on the HTTP server: a client that never finishes its headers is cut off
//! (before the fix `axum::serve` kept such sockets forever), and at `--max-connections` the
//! server stops accepting until a connection closes.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{Backend, EVENT_DEADLINE, ws_connect, ws_next, ws_send};

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(EVENT_DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection before the deadline")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a connection and sends a request that must not be answered within 500 ms (every
/// connection slot is taken: `why`); returns the connection to read the answer from later.
async fn waiting_request(addr: &str, why: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(early.is_err(), "{why}");
    s
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let be = Backend::spawn(&["--header-timeout-ms", "300"]);
    let mut slow = TcpStream::connect(&be.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let sent = read_to_close(&mut slow).await;
    assert!(
        !sent.contains("200 OK"),
        "no answer to half a request: {sent:?}"
    );

    // An idle keep-alive connection is closed the same way after its last request.
    let mut idle = TcpStream::connect(&be.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let sent = read_to_close(&mut idle).await;
    assert!(
        sent.starts_with("HTTP/1.1 200 OK"),
        "answered first: {sent:?}"
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let be = Backend::spawn(&["--max-connections", "2", "--header-timeout-ms", "60000"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&be.addr).await.unwrap();
        // A complete request proves the connection was accepted (it holds a slot).
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(EVENT_DEADLINE, s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        held.push(s);
    }
    let mut third = waiting_request(
        &be.addr,
        "a third connection is not served while two are open",
    )
    .await;
    drop(held.pop());
    let sent = read_to_close(&mut third).await;
    assert!(
        sent.starts_with("HTTP/1.1 200 OK"),
        "served once a slot frees: {sent:?}"
    );
}

#[tokio::test]
async fn websocket_sessions_count_toward_the_connection_cap() {
    let be = Backend::spawn(&["--max-connections", "2", "--header-timeout-ms", "60000"]);
    // Two upgraded sessions hold both slots (before the fix an upgrade gave its slot back).
    let mut sessions = vec![ws_connect(&be.addr).await, ws_connect(&be.addr).await];
    for ws in &mut sessions {
        ws_send(ws, serde_json::json!({"op": "ping"})).await;
        assert_eq!(ws_next(ws).await["type"], "pong", "the session is up");
    }
    let mut third = waiting_request(
        &be.addr,
        "no third connection while two WebSocket sessions are open",
    )
    .await;
    // A session that ends frees its slot.
    let mut gone = sessions.pop().unwrap();
    gone.close(None).await.unwrap();
    drop(gone);
    let sent = read_to_close(&mut third).await;
    assert!(
        sent.starts_with("HTTP/1.1 200 OK"),
        "served once a session ends: {sent:?}"
    );
}
