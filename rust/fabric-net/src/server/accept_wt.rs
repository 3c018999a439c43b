//! Accepting WebTransport sessions: a slot reserved before the handshake, then the session's
//! datagrams and reliable streams turned into events within its budgets.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{Instrument, debug, info_span, warn};
use wtransport::endpoint::IncomingSession;

use super::{Entry, Link, ServerEvent, SessionId, Shared, WtEndpoint};
use crate::admission::Slot;
use crate::budget::ReadLimits;
use crate::lanes::{self, Lanes};

pub(super) async fn accept_loop(endpoint: Arc<WtEndpoint>, shared: Arc<Shared>) {
    loop {
        let incoming = endpoint.accept().await;
        let remote = incoming.remote_address();
        let slot = match shared.admission.reserve(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                warn!(%remote, "refusing a session: {why}");
                incoming.refuse();
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("session", id, %remote);
        tokio::spawn(run_session(shared.clone(), id, incoming, slot).instrument(span));
    }
}

async fn run_session(shared: Arc<Shared>, id: SessionId, incoming: IncomingSession, slot: Slot) {
    let handshake = async {
        let request = incoming.await.map_err(|e| e.to_string())?;
        let path = request.path().to_owned();
        let remote = request.remote_address();
        let conn = request.accept().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((path, remote, conn))
    };
    let (path, remote, conn) = match tokio::time::timeout(shared.handshake_timeout, handshake).await
    {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            debug!("handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!("handshake timed out");
            return;
        }
    };
    let limits = ReadLimits::new(
        shared.partial_budget,
        shared.event_budget,
        shared.dropped_datagrams.clone(),
    );
    shared.sessions.lock().expect("session map lock").insert(
        id,
        Entry {
            link: Link::Wt {
                conn: conn.clone(),
                lanes: Lanes::new(conn.clone(), shared.send_budget),
            },
            limits: limits.clone(),
            _slot: slot,
        },
    );
    debug!(%path, "session opened");
    shared.emit(ServerEvent::Opened {
        session: id,
        remote,
        path,
    });

    let datagrams = tokio::spawn({
        let (conn, shared) = (conn.clone(), shared.clone());
        let (events, dropped) = (limits.events.clone(), limits.dropped.clone());
        async move {
            while let Ok(d) = conn.receive_datagram().await {
                let data = d.payload();
                match events.try_charge(data.len()) {
                    Some(c) => shared.emit_charged(ServerEvent::Datagram { session: id, data }, c),
                    None => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        .in_current_span()
    });
    let local_close = limits.local_close.clone();
    let mut streams = tokio::spawn({
        let shared = shared.clone();
        lanes::accept_lanes(conn.clone(), limits, move |data, charge| {
            shared.emit_charged(ServerEvent::Message { session: id, data }, charge)
        })
        .in_current_span()
    });

    let err = conn.closed().await;
    datagrams.abort();
    // "Closed locally" from QUIC may be this side's HTTP/3 layer ending the session: the
    // stream acceptor knows why (see `close::close_report`).
    let session_end = if matches!(err, wtransport::error::ConnectionError::LocallyClosed) {
        tokio::time::timeout(std::time::Duration::from_millis(200), &mut streams)
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    streams.abort();
    shared
        .sessions
        .lock()
        .expect("session map lock")
        .remove(&id);
    let (reason, _code) = crate::close::close_report(&err, session_end, local_close.get());
    debug!(%reason, "session closed");
    shared.emit(ServerEvent::Closed {
        session: id,
        reason,
    });
}
