//! Accepting WebSocket fallback sessions on TCP: TLS (`wss://`) or plain loopback `ws://` told
//! apart by the first byte, pending connections capped per address, one deadline for TLS and
//! the upgrade, then the link's messages turned into events within the session's budgets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{Instrument, debug, info_span, warn};

use super::{Entry, ServerEvent, SessionId, Shared, WS_PATH};
use crate::link::Link;
use crate::nosigpipe::NoSigPipe;
use crate::ws;

pub(super) async fn ws_accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                warn!("WebSocket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pending = match shared.admission.pending(remote.ip()) {
            Ok(p) => p,
            Err(why) => {
                debug!(%remote, "dropping a TCP connection: {why}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("ws_session", id, %remote);
        // The TLS handshake and the upgrade together get one deadline.
        let deadline = tokio::time::Instant::now() + shared.handshake_timeout;
        let pending = Handshake { pending, deadline };
        tokio::spawn(
            route_ws_connection(shared.clone(), id, tcp, remote, pending).instrument(span),
        );
    }
}

/// A TCP connection before its upgrade: its place among its address's pending connections and
/// the deadline of its handshakes.
struct Handshake {
    pending: crate::admission::Pending,
    deadline: tokio::time::Instant,
}

/// Tells `wss://` (a TLS handshake) from plain `ws://` by the first byte, on one port.
async fn route_ws_connection(
    shared: Arc<Shared>,
    id: SessionId,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    hs: Handshake,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(hs.deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == crate::tls::TLS_HANDSHAKE_BYTE {
        let Some(cfg) = shared.tls.read().expect("tls lock").clone() else {
            return;
        };
        let accepted = tokio::time::timeout_at(
            hs.deadline,
            tokio_rustls::TlsAcceptor::from(cfg).accept(NoSigPipe(tcp)),
        )
        .await;
        match accepted {
            Ok(Ok(stream)) => run_ws_session(shared, id, stream, remote, hs).await,
            Ok(Err(e)) => debug!("wss TLS handshake failed: {e}"),
            Err(_) => debug!("wss TLS handshake timed out"),
        }
    } else if remote.ip().is_loopback() || shared.allow_insecure_websocket {
        run_ws_session(shared, id, NoSigPipe(tcp), remote, hs).await;
    } else {
        warn!("refusing unencrypted ws:// from a non-loopback client; it must use wss://");
        let _ = tokio::time::timeout_at(
            hs.deadline,
            tokio::io::AsyncWriteExt::write_all(
                &mut NoSigPipe(tcp),
                b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 60\r\n\r\n\
                  unencrypted ws:// is accepted from loopback only; use wss://",
            ),
        )
        .await;
    }
}

// The handshake callback's error type is tungstenite's HTTP response, not ours to box.
#[allow(clippy::result_large_err)]
async fn run_ws_session<S>(
    shared: Arc<Shared>,
    id: SessionId,
    tcp: S,
    remote: SocketAddr,
    hs: Handshake,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio_tungstenite::tungstenite::http::{Response, StatusCode};
    let slot = shared.admission.reserve(remote.ip());
    let refusal = slot.as_ref().err().copied();
    let check =
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
         resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            let refuse = |status: StatusCode, why: &str| {
                let mut r = Response::new(Some(why.to_owned()));
                *r.status_mut() = status;
                r
            };
            if req.uri().path() != WS_PATH {
                Err(refuse(
                    StatusCode::NOT_FOUND,
                    "the WebSocket fallback path is /ws",
                ))
            } else if let Some(why) = refusal {
                Err(refuse(StatusCode::SERVICE_UNAVAILABLE, &why.to_string()))
            } else {
                Ok(resp)
            }
        };
    let accepted = tokio::time::timeout_at(
        hs.deadline,
        tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(ws::config())),
    )
    .await;
    drop(hs.pending);
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!("WebSocket handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!("WebSocket handshake timed out");
            return;
        }
    };
    let Ok(slot) = slot else {
        return;
    };
    let (tx, rx) = ws::WsSender::new(shared.send_budget);
    let limits = shared.read_limits();
    shared.sessions.lock().expect("session map lock").insert(
        id,
        Entry {
            link: Link::websocket(tx.clone(), limits.clone()),
            _slot: slot,
        },
    );
    debug!("WebSocket session opened");
    shared.emit(ServerEvent::Opened {
        session: id,
        remote,
        path: WS_PATH.to_owned(),
    });
    let reason = ws::run_link(
        stream,
        tx,
        rx,
        shared.keep_alive,
        shared.idle_timeout,
        &limits,
        shared.deliver_for(id),
    )
    .await;
    shared
        .sessions
        .lock()
        .expect("session map lock")
        .remove(&id);
    shared.emit(ServerEvent::Closed {
        session: id,
        reason,
    });
}
