//! The HTTP accept loop, with the limits `axum::serve` does not offer: a cap on open
//! connections (`--max-connections`; at the cap the loop stops accepting and new connections
//! wait in the kernel's backlog), a deadline for a request's headers that also closes idle
//! keep-alive connections (`--header-timeout-ms`, against slow-header and idle-socket
//! exhaustion), and a deadline for handling a request, body included (`--request-timeout-ms`,
//! answered with 408 `request_timeout`). WebSocket upgrades leave both deadlines behind once
//! upgraded. On shutdown it stops accepting, asks every connection to finish its in-flight
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
use tokio::sync::{Semaphore, watch};
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

async fn handle(
    app: Router,
    peer: SocketAddr,
    limits: Limits,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let deadline = if is_upload(&req) {
        limits.upload_timeout
    } else {
        limits.request_timeout
    };
    let mut req = req.map(Body::new);
    req.extensions_mut().insert(ConnectInfo(peer));
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

/// Serves `app` on `listener` until `shutdown` resolves, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let mut closing = closing_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req| handle(app.clone(), peer, limits, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
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
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(closing_rx);
    closing_tx.closed().await;
    Ok(())
}
