//! One client session's bridge to its own upstream zone session, which follows the client's
//! avatar from zone to zone ([`crate::follow`]).

use std::time::Duration;

use fabric_core::session_control::ControlMessage;
use fabric_net::budget::Charge;
use fabric_net::server::{ServerSender, close_code};
use fabric_net::{Client, ClientConfig, ClientEvent};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::GatewayConfig;
use crate::follow::{Follow, Moved, Step};

/// Traffic from the client, on its way to the zone.
#[derive(Debug)]
pub enum Inbound {
    /// A datagram.
    Datagram(bytes::Bytes),
    /// A reliable message.
    Message(Vec<u8>),
}

/// Bridges `session` until either side ends, following its avatar from zone to zone.
pub async fn run(
    session: u64,
    client: ServerSender,
    mut inbound: UnboundedReceiver<(Inbound, Charge)>,
    cfg: GatewayConfig,
) {
    let span = info_span!("bridge", session, zone = %cfg.zone);
    async move {
        let fail = |code: &str, why: String| {
            warn!("{why}");
            let err = ControlMessage::Error {
                code: code.into(),
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
        let unavailable = |why: String| fail("zone_unavailable", why);
        let pins = match cfg.zone_pin.current() {
            Ok(p) => p,
            Err(e) => return unavailable(format!("zone at {} unavailable: {e}", cfg.zone)),
        };
        let Some(mut ccfg) = ClientConfig::pinning(format!("https://{}/wt", cfg.zone), &pins)
        else {
            return unavailable(format!(
                "zone at {} unavailable: no certificate hash",
                cfg.zone
            ));
        };
        ccfg.connect_timeout = cfg.zone_connect_timeout;
        let mut up = Client::connect(ccfg);
        let mut zone_addr = cfg.zone;
        // Held until the zone session opens, each item still counted in the session's budget.
        let mut pending: Vec<(Inbound, Charge)> = Vec::new();
        let mut connected = false;
        // The client's join token (from its `hello`), for the sessions that follow its avatar.
        let mut token: Option<String> = None;
        let mut follow: Option<Follow> = None;
        loop {
            let follow_timer = follow.as_ref().map(Follow::next_send);
            tokio::select! {
                item = inbound.recv() => {
                    let Some(item) = item else {
                        debug!("client left: closing the zone session");
                        up.close("client left");
                        if let Some(f) = &follow {
                            f.up.close("client left");
                        }
                        return;
                    };
                    if let Inbound::Datagram(d) = &item.0 {
                        note_token(d, &mut token);
                    }
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
                        let moved = if cfg.follow { Moved::parse(&m) } else { None };
                        match moved {
                            Some(moved) if follow.is_none() => {
                                info!(avatar = moved.id, to = moved.zone, "following the avatar");
                                match Follow::start(
                                    moved,
                                    &cfg.zones.current(),
                                    token.clone(),
                                    cfg.zone_connect_timeout,
                                ) {
                                    Ok(f) => follow = Some(f),
                                    Err(e) => {
                                        // The gateway cannot follow: the client may.
                                        warn!("cannot follow the avatar: {e}");
                                        let _ = client.send_message(session, m);
                                    }
                                }
                            }
                            _ => {
                                let _ = client.send_message(session, m);
                            }
                        }
                    }
                    Some(ClientEvent::Failed(e)) => {
                        return unavailable(format!("zone at {zone_addr} unavailable: {e}"));
                    }
                    Some(ClientEvent::Closed { reason, .. }) => {
                        return unavailable(format!("zone at {zone_addr} ended the session: {reason}"));
                    }
                    None => return,
                },
                ev = next_follow_event(&mut follow) => {
                    let step = follow.as_mut().map_or(Step::Wait, |f| f.on_event(ev));
                    if let Some(why) = finish(step, &mut follow, &mut up, &mut zone_addr, &client, session) {
                        return fail("follow_failed", why);
                    }
                }
                () = sleep_until(follow_timer) => {
                    let step = follow.as_mut().map_or(Step::Wait, Follow::on_timer);
                    if let Some(why) = finish(step, &mut follow, &mut up, &mut zone_addr, &client, session) {
                        return fail("follow_failed", why);
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// The next event of the follow in progress (never, without one).
async fn next_follow_event(follow: &mut Option<Follow>) -> Option<ClientEvent> {
    match follow {
        Some(f) => f.up.next_event().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at` (forever without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Acts on a follow's step: on [`Step::Done`] the new session replaces `up` (the client hears
/// `zone_changed`, then the held datagrams), the old one is closed. Returns why following
/// failed, if it did.
fn finish(
    step: Step,
    follow: &mut Option<Follow>,
    up: &mut Client,
    zone_addr: &mut std::net::SocketAddr,
    client: &ServerSender,
    session: u64,
) -> Option<String> {
    match step {
        Step::Wait => None,
        Step::Failed(why) => {
            let f = follow.take()?;
            f.up.close("giving up");
            Some(format!(
                "could not follow avatar {} to zone {} at {}: {why}",
                f.moved.id, f.moved.zone, f.addr
            ))
        }
        Step::Done => {
            let f = follow.take()?;
            let old = std::mem::replace(up, f.up);
            old.close(&format!("followed the avatar to zone {}", f.moved.zone));
            *zone_addr = f.addr;
            info!(avatar = f.moved.id, zone = f.moved.zone, addr = %f.addr, "now bridged to the avatar's zone");
            let changed = ControlMessage::ZoneChanged {
                id: f.moved.id,
                zone: f.moved.zone,
            };
            let _ = client.send_message(session, changed.encode());
            for d in f.held {
                let _ = client.send_datagram(session, &d);
            }
            None
        }
    }
}

/// Remembers the join token of a client's `hello`.
fn note_token(d: &[u8], token: &mut Option<String>) {
    if !ControlMessage::is_control(d) {
        return;
    }
    if let Ok(ControlMessage::Hello { token: Some(t), .. }) = ControlMessage::decode(d) {
        *token = Some(t);
    }
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
