//! One client session's bridge to its own upstream zone session.

use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_net::budget::Charge;
use fabric_net::server::{ServerSender, close_code};
use fabric_net::{Client, ClientConfig, ClientEvent};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::GatewayConfig;

/// Traffic from the client, on its way to the zone.
#[derive(Debug)]
pub enum Inbound {
    /// A datagram.
    Datagram(bytes::Bytes),
    /// A reliable message.
    Message(Vec<u8>),
}

/// Bridges `session` until either side ends.
pub async fn run(
    session: u64,
    client: ServerSender,
    mut inbound: UnboundedReceiver<(Inbound, Charge)>,
    cfg: GatewayConfig,
) {
    let span = info_span!("bridge", session, zone = %cfg.zone);
    async move {
        let fail = |why: String| {
            warn!("{why}");
            let err = ControlMessage::Error {
                code: "zone_unavailable".into(),
                message: why.clone(),
            };
            let _ = client.send_datagram(session, &err.encode());
            let _ = client.send_message(session, err.encode());
            // Give the error a moment to leave before the close frame overtakes it.
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client.close_session(session, close_code::UPSTREAM, &why);
            });
        };
        let pins = match cfg.zone_pin.current() {
            Ok(p) => p,
            Err(e) => return fail(format!("zone at {} unavailable: {e}", cfg.zone)),
        };
        let Some(mut ccfg) = ClientConfig::pinning(format!("https://{}/wt", cfg.zone), &pins)
        else {
            return fail(format!(
                "zone at {} unavailable: no certificate hash",
                cfg.zone
            ));
        };
        ccfg.connect_timeout = cfg.zone_connect_timeout;
        let mut up = Client::connect(ccfg);
        // Held until the zone session opens, each item still counted in the session's budget.
        let mut pending: Vec<(Inbound, Charge)> = Vec::new();
        let mut connected = false;
        loop {
            tokio::select! {
                item = inbound.recv() => {
                    let Some(item) = item else {
                        debug!("client left: closing the zone session");
                        up.close("client left");
                        return;
                    };
                    if connected {
                        forward_up(&up, item.0, &client, session);
                    } else {
                        pending.push(item);
                    }
                }
                ev = up.next_event() => match ev {
                    Some(ClientEvent::Connected { .. }) => {
                        info!("zone session open");
                        connected = true;
                        for (item, _charge) in pending.drain(..) {
                            forward_up(&up, item, &client, session);
                        }
                    }
                    Some(ClientEvent::Datagram(d)) => {
                        if let Err(e) = client.send_datagram(session, &d) {
                            debug!("zone datagram not delivered to the client: {e}");
                        }
                    }
                    Some(ClientEvent::Message(m)) => {
                        let _ = client.send_message(session, m);
                    }
                    Some(ClientEvent::Failed(e)) => {
                        return fail(format!("zone at {} unavailable: {e}", cfg.zone));
                    }
                    Some(ClientEvent::Closed { reason, .. }) => {
                        return fail(format!("zone at {} ended the session: {reason}", cfg.zone));
                    }
                    None => return,
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Forwards one item to the zone. A datagram that cannot go is dropped (datagrams may be
/// lost); a reliable message that cannot go ends the client session with the reason, so it is
/// never lost silently.
fn forward_up(up: &Client, item: Inbound, client: &ServerSender, session: u64) {
    match item {
        Inbound::Datagram(d) => {
            if let Err(e) = up.send_datagram(&d) {
                debug!("datagram not forwarded to the zone: {e}");
            }
        }
        Inbound::Message(m) => {
            if let Err(e) = up.send_message(m) {
                let why = format!("a reliable message could not be forwarded to the zone: {e}");
                warn!("{why}");
                client.close_session(session, close_code::UPSTREAM, &why);
            }
        }
    }
}
