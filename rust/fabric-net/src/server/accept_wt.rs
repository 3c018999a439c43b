//! Accepting WebTransport sessions: a slot reserved before the handshake, then the session's
//! datagrams and reliable streams turned into events within its budgets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{Instrument, debug, info_span, warn};
use wtransport::endpoint::IncomingSession;

use super::{Entry, ServerEvent, SessionId, Shared, WtEndpoint};
use crate::admission::Slot;
use crate::link::{self, Link};

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
    let limits = shared.read_limits();
    shared.sessions.lock().expect("session map lock").insert(
        id,
        Entry {
            link: Link::webtransport(&conn, shared.send_budget, limits.clone()),
            _slot: slot,
        },
    );
    debug!(%path, "session opened");
    shared.emit(ServerEvent::Opened {
        session: id,
        remote,
        path,
    });
    let reason =
        link::read_webtransport(&conn, &limits, Duration::ZERO, shared.deliver_for(id)).await;
    shared
        .sessions
        .lock()
        .expect("session map lock")
        .remove(&id);
    debug!(%reason, "session closed");
    shared.emit(ServerEvent::Closed {
        session: id,
        reason,
    });
}
