//! The HTTP accept loop, with the limits `axum::serve` does not offer: a cap on open
//! connections (`--max-connections`; at the cap the loop stops accepting and new connections
//! wait in the kernel's backlog), a deadline for a request's headers that also closes idle
//! keep-alive connections (`--header-timeout-ms`, against slow-header and idle-socket
//! exhaustion), and a deadline for handling a request, body included (`--request-timeout-ms`,
//! answered with 408 `request_timeout`). WebSocket upgrades leave both deadlines behind once
//! upgraded, but keep their connection slot ([`ConnectionSlot`]) until the session ends. With a TLS configuration every connection is TLS (the handshake has the header
//! deadline). On shutdown it stops accepting, asks every connection to finish its in-flight
//! request and close, and waits for them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use crate::error::ApiError;

/// Connection limits and deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most (WebSocket sessions included).
    pub max_connections: usize,
    /// Deadline for a request's headers, and for the next request on an idle connection.
    pub header_timeout: Duration,
    /// Deadline for handling one request, body included.
    pub request_timeout: Duration,
    /// Deadline for an asset upload (`PUT /maps/{map}/assets/{name}`), body and bake included.
    pub upload_timeout: Duration,
}

/// Whether `req` is an asset upload, which gets [`Limits::upload_timeout`].
fn is_upload(req: &Request<Incoming>) -> bool {
    req.method() == axum::http::Method::PUT
        && req.uri().path().starts_with("/maps/")
        && req.uri().path().contains("/assets/")
}

/// The connection slot (`--max-connections`) a request came in on. A WebSocket session keeps
/// a clone for as long as it lives, so upgraded connections count toward the cap too.
#[derive(Clone)]
pub struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

async fn handle(
    app: Router,
    peer: SocketAddr,
    limits: Limits,
    slot: ConnectionSlot,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let deadline = if is_upload(&req) {
        limits.upload_timeout
    } else {
        limits.request_timeout
    };
    let mut req = req.map(Body::new);
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut().insert(slot);
    match tokio::time::timeout(deadline, app.oneshot(req)).await {
        Ok(resp) => resp,
        Err(_) => Ok(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request was not completed in time",
        )
        .into_response()),
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// drains the open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Connections hold a receiver; `closing` tells them to finish, and the sender's
    // `closed()` resolves once all of them have ended.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let closing = closing_rx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let slot = ConnectionSlot {
                _permit: Arc::new(permit),
            };
            match acceptor {
                None => serve_connection(stream, app, peer, limits, slot, closing).await,
                // The handshake gets the header deadline: a peer that stalls it holds a slot
                // no longer than one that stalls its headers.
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, app, peer, limits, slot, closing).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(closing_rx);
    closing_tx.closed().await;
    Ok(())
}

/// Serves HTTP/1.1 (with upgrades) on one connection until it ends or `closing` asks it to
/// finish its in-flight request.
async fn serve_connection<S>(
    stream: S,
    app: Router,
    peer: SocketAddr,
    limits: Limits,
    slot: ConnectionSlot,
    mut closing: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |req| handle(app.clone(), peer, limits, slot.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let mut asked = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = closing.wait_for(|v| *v), if !asked => {
                asked = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(closing);
}
